"""Helpers for payment tests: drive the embedded sandbox through its control API and the
official SDK, over HTTP, as a person or Stripe would."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import sqlalchemy as sa
import stripe

from tests.helpers import Account, StoreTeam, anonymous, api_user, store_team
from tests.servers import LiveServer


def control(live: LiveServer, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST to the sandbox's control API and return its JSON answer."""
    with httpx.Client(timeout=60) as client:
        response = client.post(f"{live.sandbox_url}/_control{path}", json=body or {})
    assert response.status_code < 300, response.text
    answer: dict[str, Any] = response.json()
    return answer


def flush(live: LiveServer) -> dict[str, Any]:
    """Deliver every webhook that is due now, synchronously, and wait until the app's jobs
    have handled them (the endpoints only record events)."""
    delivered = control(live, "/webhooks/flush")
    settle(live)
    return delivered


def settle(live: LiveServer, timeout: float = 30) -> None:
    """Wait until every event in the inbox has been tried at least once: processed, or failed
    with its error recorded, and every store transfer a paid group queued has had Stripe's
    answer (they are sent by a job of their own, after the payment's transaction). Polls the
    tables, so it returns as soon as that is true."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = live.scalar(
            "SELECT count(*) FROM stripe_event WHERE processed_at IS NULL AND last_error IS NULL"
        ) + live.scalar(
            "SELECT count(*) FROM store_transfer WHERE status = 'pending' AND attempts = 0"
        )
        if waiting == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{waiting} event(s) still unprocessed after {timeout} s")
        time.sleep(0.005)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    """Poll `check` until it holds; fail after `timeout` seconds saying `what` never happened."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)


def advance_clock(live: LiveServer, seconds: int) -> None:
    """Travel the sandbox's clock forward (sessions and links expire, delayed payments settle).
    Pair with `reset_clock`: Souq computes expiries from its own clock, as against Stripe."""
    control(live, "/clock/advance", {"seconds": seconds})


def reset_clock(live: LiveServer) -> None:
    control(live, "/clock/reset")


def set_faults(live: LiveServer, **faults: Any) -> None:
    control(live, "/faults", faults)


def clear_faults(live: LiveServer) -> None:
    control(
        live,
        "/faults",
        {
            "api_error_rate": 0,
            "api_latency_ms": 0,
            "timeout_rate": 0,
            "webhook_duplicate_rate": 0,
            "webhook_shuffle": False,
            "webhook_failure_rate": 0,
        },
    )


def sdk(live: LiveServer) -> stripe.StripeClient:
    """The official SDK pointed at the embedded sandbox."""
    key = live.stripe_secret_key
    return stripe.StripeClient(key, base_addresses={"api": live.sandbox_url})


def create_account(team: StoreTeam) -> str:
    response = team.owner.client.post(
        "/api/stripe/connect/create-account", json={"storeId": team.id}
    )
    assert response.status_code == 200, response.text
    account_id: str = response.json()["stripeAccountId"]
    assert account_id.startswith("acct_")
    return account_id


def payments_status(team: StoreTeam) -> dict[str, Any]:
    response = team.owner.client.get(f"/api/stores/{team.id}/payments")
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()
    return status


def failed_account_event(live: LiveServer, team: StoreTeam) -> str:
    """The store's account.updated event, made to fail for real: Stripe answers errors (until
    `clear_faults`) while its handler re-reads the account. Its event id."""
    account_id = create_account(team)
    set_faults(live, api_error_rate=1.0)
    control(live, f"/accounts/{account_id}/onboard", {"outcome": "complete"})
    flush(live)
    event_id = live.scalar(
        "SELECT stripe_event_id FROM stripe_event WHERE account = :a "
        "AND processed_at IS NULL AND last_error IS NOT NULL",
        a=account_id,
    )
    assert event_id, "the event must have failed"
    return str(event_id)


def onboarded_team(live: LiveServer, *, name: str = "Ready Store", **fields: Any) -> StoreTeam:
    """A store whose Express account finished onboarding, with the webhook applied."""
    team = store_team(live, name=name, **fields)
    account_id = create_account(team)
    control(live, f"/accounts/{account_id}/onboard", {"outcome": "complete"})
    flush(live)
    status = payments_status(team)
    assert status["chargesEnabled"] is True, status
    return team


def checkout(
    client: httpx.Client,
    store_id: int,
    items: list[tuple[int, int]],
    *,
    currency: str = "usd",
    email: str | None = "buyer@example.com",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    body: dict[str, Any] = {
        "storeId": store_id,
        "currency": currency,
        "items": [{"listingId": listing, "quantity": quantity} for listing, quantity in items],
        **extra,
    }
    if email is not None:
        body["customerEmail"] = email
    return client.post("/api/stripe/checkout/create", json=body, headers=headers)


def session_id_of(url: str) -> str:
    """The Checkout Session id in a sandbox checkout URL (…/checkout/cs_test_…)."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def pay(live: LiveServer, url: str, **how: Any) -> httpx.Response:
    """The buyer pays on the sandbox (card number, or a delayed method)."""
    with httpx.Client(timeout=60) as client:
        return client.post(
            f"{live.sandbox_url}/_control/checkout/sessions/{session_id_of(url)}/pay", json=how
        )


def order(live: LiveServer, order_id: int) -> dict[str, Any]:
    row = live.rows(
        "SELECT payment_status, total_amount, platform_fee_amount, paid_at, "
        "stripe_checkout_session_id FROM orders WHERE id = :id",
        id=order_id,
    )[0]
    return dict(row._mapping)


def stock(live: LiveServer, listing_id: int) -> int | None:
    value: int | None = live.scalar("SELECT stock FROM listing WHERE id = :id", id=listing_id)
    return value


def listing(
    team: StoreTeam,
    *,
    price: str = "19.99",
    currency: str = "usd",
    stock: int | None = None,
    name: str = "Olive wood bowl",
) -> int:
    body: dict[str, Any] = {"name": name, "price": price, "currency": currency}
    if stock is not None:
        body["stock"] = stock
    response = team.seller.client.post(f"/api/stores/{team.id}/listings", json=body)
    assert response.status_code == 201, response.text
    listing_id: int = response.json()["id"]
    return listing_id


def start(
    live: LiveServer, team: StoreTeam, items: list[tuple[int, int]], **kw: Any
) -> dict[str, Any]:
    """A guest checkout that must succeed: its order id and the sandbox's payment page."""
    with anonymous(live) as buyer:
        response = checkout(buyer, team.id, items, **kw)
    assert response.status_code == 200, response.text
    started: dict[str, Any] = response.json()
    assert started["url"].startswith(f"{live.sandbox_url}/checkout/cs_")
    return started


def api_order(team: StoreTeam, order_id: int) -> dict[str, Any]:
    response = team.owner.client.get(f"/api/orders/{order_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def sign(payload: bytes, secret: str, t: int | None = None) -> str:
    """A Stripe-Signature header for the payload, as Stripe computes it."""
    t = int(time.time()) if t is None else t
    signature = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={signature}"


def deliver(live: LiveServer, event: Any, *, connect: bool = False) -> httpx.Response:
    """POST a signed event (any JSON) to one of the app's webhook endpoints, then wait until
    the app's jobs have tried it."""
    body = json.dumps(event).encode()
    secret = live.connect_webhook_secret if connect else live.webhook_secret
    path = "/api/stripe/connect/webhook" if connect else "/api/stripe/webhook"
    with anonymous(live) as client:
        response = client.post(path, content=body, headers={"Stripe-Signature": sign(body, secret)})
    settle(live)
    return response


def completed_event(live: LiveServer, session_id: str) -> dict[str, Any]:
    events = sdk(live).v1.events.list(params={"type": "checkout.session.completed", "limit": 100})
    for event in events.data:
        data = event.to_dict()
        if data["data"]["object"]["id"] == session_id:
            return data
    raise AssertionError("no checkout.session.completed event")


def platform_admin(live: LiveServer) -> Account:
    """A user made platform admin, as `souq create-admin` would."""
    admin = api_user(live, name="Platform Admin")
    with live.db.begin() as conn:
        conn.execute(
            sa.text('UPDATE "user" SET is_platform_admin = :t WHERE id = :i'),
            {"t": True, "i": admin.id},
        )
    return admin


def direct_session(live: LiveServer, *, amount: int, **params: Any) -> stripe.checkout.Session:
    """A Checkout Session made straight through Stripe's API, not by Souq (another integration
    on the same account, or someone holding the key)."""
    line = {
        "quantity": 1,
        "price_data": {"currency": "usd", "unit_amount": amount, "product_data": {"name": "X"}},
    }
    body: Any = {
        "mode": "payment",
        "line_items": [line],
        "success_url": f"{live.url}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
        **params,
    }
    return sdk(live).v1.checkout.sessions.create(params=body)


@contextmanager
def webhooks_paused(live: LiveServer) -> Iterator[None]:
    """Disable the app's platform webhook endpoint through Stripe's API, as an operator can:
    events made meanwhile are never delivered (nothing is left to retry later), so only the
    pages and `souq reconcile` can learn of payments."""
    client = sdk(live)
    endpoint = next(
        e
        for e in client.v1.webhook_endpoints.list(params={"limit": 100}).data
        if e.url == f"{live.url}/api/stripe/webhook"
    )
    client.v1.webhook_endpoints.update(endpoint.id, params={"disabled": True})
    try:
        yield
    finally:
        client.v1.webhook_endpoints.update(endpoint.id, params={"disabled": False})
