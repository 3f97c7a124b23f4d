"""Helpers for payment tests: drive the embedded sandbox through its control API and the
official SDK, over HTTP, as a person or Stripe would."""

from __future__ import annotations

from typing import Any

import httpx
import stripe

from tests.helpers import StoreTeam, store_team
from tests.servers import LiveServer


def control(live: LiveServer, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST to the sandbox's control API and return its JSON answer."""
    with httpx.Client(timeout=60) as client:
        response = client.post(f"{live.sandbox_url}/_control{path}", json=body or {})
    assert response.status_code < 300, response.text
    answer: dict[str, Any] = response.json()
    return answer


def flush(live: LiveServer) -> dict[str, Any]:
    """Deliver every webhook that is due now, synchronously."""
    return control(live, "/webhooks/flush")


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
    return client.post("/api/stripe/checkout/create", json=body)


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
