"""The authorization matrix: every store-scoped (and platform admin) route × every caller.

Owner and admin manage the store and its members; owner, admin and seller manage listings;
anyone else (a member of another store, an unrelated user, a platform admin who is not a
member) gets 404, as if the store did not exist; anonymous callers get 401. A refused write
changes nothing: each case snapshots what it would change, before and after.

To cover a new store-scoped route, add a Route to ROUTES.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.helpers import (
    Account,
    StoreTeam,
    add_member,
    anonymous,
    api_user,
    create_listing,
    create_store,
    invite,
    store_team,
    unique_email,
)
from tests.ledger.money_helpers import paid_order
from tests.ledger.test_disputes import DISPUTE_CARD as DISPUTED
from tests.servers import LiveServer

ACTORS = ["anonymous", "owner", "admin", "seller", "other_store", "unrelated", "platform_admin"]
OUTSIDERS = {"other_store": 404, "unrelated": 404, "platform_admin": 404, "anonymous": 401}
READ = {"owner": 200, "admin": 200, "seller": 200, **OUTSIDERS}
MANAGE = {"owner": 200, "admin": 200, "seller": 403, **OUTSIDERS}
# Store webhook endpoints: the store's owners only.
OWNER = {"owner": 200, "admin": 403, "seller": 403, **OUTSIDERS}
# An order's money: its store's members (owners and admins act) and platform admins.
ORDER_READ = {**READ, "platform_admin": 200, "anonymous": 404}  # as GET /api/orders/{id}
REFUND = {**MANAGE, "platform_admin": 200}
# Platform-wide routes: platform admins only; every other user is refused outright.
PLATFORM = {
    "anonymous": 401,
    "owner": 403,
    "admin": 403,
    "seller": 403,
    "other_store": 403,
    "unrelated": 403,
    "platform_admin": 200,
}


@dataclass
class World:
    team: StoreTeam
    other_owner: Account
    unrelated: Account
    platform_admin: Account
    live: LiveServer

    def client(self, actor: str) -> httpx.Client:
        accounts = {
            "owner": self.team.owner,
            "admin": self.team.admin,
            "seller": self.team.seller,
            "other_store": self.other_owner,
            "unrelated": self.unrelated,
            "platform_admin": self.platform_admin,
        }
        return accounts[actor].client

    def new_seller(self) -> Account:
        """A fresh seller of the team's store, to be the target of member changes."""
        account = api_user(self.live, name="Target")
        response = add_member(self.team.owner, self.team.id, account.email, "seller")
        assert response.status_code == 201
        return account


@dataclass
class Case:
    """One request, and a snapshot of the state it would change."""

    method: str
    path: str
    body: Any = None
    snapshot: Callable[[], Any] = lambda: None
    form: dict[str, str] | None = None  # a page's form fields (pages take forms, not JSON)
    headers: dict[str, str] | None = None


@dataclass
class Route:
    name: str
    expected: dict[str, int]
    prepare: Callable[[World], Case]
    success: int | None = None  # the status for allowed callers, when not 200
    writes: bool = True  # whether an allowed non-GET request changes the snapshot


def _store_name(w: World) -> Any:
    return w.live.scalar("SELECT name FROM store WHERE id = :s", s=w.team.id)


def _members(w: World) -> Any:
    return sorted(
        (r.user_id, r.role)
        for r in w.live.rows(
            "SELECT user_id, role FROM store_member WHERE store_id = :s", s=w.team.id
        )
    )


def _listings(w: World) -> Any:
    return sorted(
        tuple(r)
        for r in w.live.rows(
            "SELECT id, name, price_amount, active FROM listing WHERE store_id = :s", s=w.team.id
        )
    )


def get_store(w: World) -> Case:
    return Case("GET", f"/api/stores/{w.team.id}")


def patch_store(w: World) -> Case:
    body = {"name": f"Renamed {uuid.uuid4().hex[:8]}"}
    return Case("PATCH", f"/api/stores/{w.team.id}", body, lambda: _store_name(w))


def list_members(w: World) -> Case:
    return Case("GET", f"/api/stores/{w.team.id}/members")


def _invitations(w: World) -> Any:
    return sorted(
        (r.email, r.role)
        for r in w.live.rows(
            "SELECT email, role FROM store_invitation WHERE store_id = :s", s=w.team.id
        )
    )


def invite_member(w: World) -> Case:
    body = {"email": unique_email("invitee"), "role": "seller"}
    return Case("POST", f"/api/stores/{w.team.id}/invitations", body, lambda: _invitations(w))


def list_invitations(w: World) -> Case:
    return Case("GET", f"/api/stores/{w.team.id}/invitations")


def withdraw_invitation(w: World) -> Case:
    response = invite(w.team.owner, w.team.id, unique_email("invitee"), "seller")
    assert response.status_code == 201, response.text
    path = f"/api/stores/{w.team.id}/invitations/{response.json()['id']}"
    return Case("DELETE", path, None, lambda: _invitations(w))


def change_member_role(w: World) -> Case:
    target = w.new_seller()
    target.close()
    path = f"/api/stores/{w.team.id}/members/{target.id}"
    return Case("PATCH", path, {"role": "admin"}, lambda: _members(w))


def remove_store_member(w: World) -> Case:
    target = w.new_seller()
    target.close()
    return Case("DELETE", f"/api/stores/{w.team.id}/members/{target.id}", None, lambda: _members(w))


def create_store_listing(w: World) -> Case:
    body = {"name": "New thing", "price": "3.00", "currency": "usd"}
    return Case("POST", f"/api/stores/{w.team.id}/listings", body, lambda: _listings(w))


def update_listing(w: World) -> Case:
    listing = create_listing(w.team.owner, w.team.id)
    body = {"name": "Changed", "price": "99.00"}
    return Case("PATCH", f"/api/listings/{listing['id']}", body, lambda: _listings(w))


def delete_listing(w: World) -> Case:
    listing = create_listing(w.team.owner, w.team.id)
    return Case("DELETE", f"/api/listings/{listing['id']}", None, lambda: _listings(w))


def get_inactive_listing(w: World) -> Case:
    listing = create_listing(w.team.owner, w.team.id)
    response = w.team.owner.client.patch(f"/api/listings/{listing['id']}", json={"active": False})
    assert response.status_code == 200
    return Case("GET", f"/api/listings/{listing['id']}")


def _account(w: World) -> Any:
    return w.live.scalar("SELECT stripe_account_id FROM store WHERE id = :s", s=w.team.id)


def _ensure_account(w: World) -> str:
    response = w.team.owner.client.post(
        "/api/stripe/connect/create-account", json={"storeId": w.team.id}
    )
    assert response.status_code == 200, response.text
    account_id: str = response.json()["stripeAccountId"]
    return account_id


def create_connected_account(w: World) -> Case:
    # Disconnect first (as a deauthorization would), so every allowed call creates one.
    with w.live.db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE store SET stripe_account_id = NULL, stripe_deauthorized_at = "
                "CURRENT_TIMESTAMP WHERE id = :s"
            ),
            {"s": w.team.id},
        )
    body = {"storeId": w.team.id}
    return Case("POST", "/api/stripe/connect/create-account", body, lambda: _account(w))


def create_account_link(w: World) -> Case:
    _ensure_account(w)
    return Case("POST", "/api/stripe/connect/account-link", {"storeId": w.team.id})


def _onboard(w: World) -> None:
    account_id = _ensure_account(w)
    with httpx.Client(timeout=30) as client:
        done = client.post(
            f"{w.live.sandbox_url}/_control/accounts/{account_id}/onboard",
            json={"outcome": "complete"},
        )
        assert done.status_code == 200, done.text
    w.team.owner.client.get(f"/dashboard/settings/payments/onboarding/success?storeId={w.team.id}")


def create_login_link(w: World) -> Case:
    _onboard(w)
    return Case("POST", "/api/stripe/connect/login-link", {"storeId": w.team.id})


def _paid_order(w: World) -> int:
    _onboard(w)
    return paid_order(w.live, w.team, price="5.00", quantity=1, stock=None).id


def _refunds(w: World, order_id: int) -> Any:
    return w.live.scalar("SELECT count(*) FROM refund WHERE order_id = :i", i=order_id)


def create_refund(w: World) -> Case:
    order_id = _paid_order(w)
    return Case(
        "POST",
        f"/api/orders/{order_id}/refunds",
        {"amount": "1.00"},
        lambda: _refunds(w, order_id),
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )


def preview_refund(w: World) -> Case:
    order_id = _paid_order(w)
    path = f"/api/orders/{order_id}/refunds/preview"
    return Case("POST", path, {"amount": "1.00"}, lambda: _refunds(w, order_id))


def list_refunds(w: World) -> Case:
    return Case("GET", f"/api/orders/{_paid_order(w)}/refunds")


def _disputed_order(w: World) -> tuple[int, int]:
    _onboard(w)
    order_id = paid_order(w.live, w.team, price="5.00", quantity=1, stock=None, card=DISPUTED).id
    dispute_id: int = w.live.scalar("SELECT id FROM dispute WHERE order_id = :i", i=order_id)
    return order_id, dispute_id


def list_disputes(w: World) -> Case:
    order_id, _ = _disputed_order(w)
    return Case("GET", f"/api/orders/{order_id}/disputes")


def submit_evidence(w: World) -> Case:
    order_id, dispute_id = _disputed_order(w)
    return Case(
        "POST",
        f"/api/orders/{order_id}/disputes/{dispute_id}/evidence",
        {"text": "winning_evidence"},
        lambda: w.live.scalar("SELECT status FROM dispute WHERE id = :i", i=dispute_id),
    )


def get_loss_policy(w: World) -> Case:
    return Case("GET", f"/api/stores/{w.team.id}/loss-policy")


def put_loss_policy(w: World) -> Case:
    # Each allowed call flips the override, so the snapshot changes every time.
    now = w.live.scalar(
        "SELECT refund_commission FROM store_loss_policy WHERE store_id = :s", s=w.team.id
    )
    body = {"refundCommission": "returned" if now == "kept" else "kept"}
    return Case(
        "PUT",
        f"/api/admin/stores/{w.team.id}/loss-policy",
        body,
        lambda: w.live.scalar(
            "SELECT refund_commission FROM store_loss_policy WHERE store_id = :s", s=w.team.id
        ),
    )


def order_money(w: World) -> Case:
    return Case("GET", f"/api/orders/{_paid_order(w)}/money")


def get_payments(w: World) -> Case:
    return Case("GET", f"/api/stores/{w.team.id}/payments")


def list_store_orders(w: World) -> Case:
    return Case("GET", f"/api/stores/{w.team.id}/orders")


def list_all_orders(w: World) -> Case:
    return Case("GET", "/api/admin/orders?status=needs_review")


def _order_status(w: World, order_id: int) -> Any:
    return w.live.scalar("SELECT payment_status FROM orders WHERE id = :i", i=order_id)


def resolve_order(w: World) -> Case:
    """An order held for review (as a mismatched payment leaves it), to be canceled."""
    with w.live.db.begin() as conn:
        order_id = conn.execute(
            sa.text(
                "INSERT INTO orders (store_id, customer_email, currency, subtotal_amount, "
                "total_amount, platform_fee_amount, payment_status, holds_stock, review_reason, "
                "created_at) VALUES (:s, 'b@example.com', 'usd', 1000, 1000, 50, 'needs_review', "
                "false, 'amount 100 instead of 1000', CURRENT_TIMESTAMP) RETURNING id"
            ),
            {"s": w.team.id},
        ).scalar_one()
    body = {"resolution": "canceled", "note": "refunded in Stripe"}
    path = f"/api/admin/orders/{order_id}/resolve"
    return Case("POST", path, body, lambda: _order_status(w, order_id))


HOOK_URL = "http://127.0.0.1:9/hooks"  # nothing listens; the tests env allows loopback
# An event type nothing emits yet, so the matrix's endpoints get no deliveries meanwhile.
QUIET_EVENT = "transfer.failed"


def _endpoints(w: World) -> Any:
    return sorted(
        tuple(r)
        for r in w.live.rows(
            "SELECT id, url, description, secret_sealed FROM webhook_endpoint "
            "WHERE store_id = :s OR store_id IS NULL",
            s=w.team.id,
        )
    )


def _store_endpoint(w: World) -> int:
    response = w.team.owner.client.post(
        "/api/webhook-endpoints",
        json={"url": HOOK_URL, "events": [QUIET_EVENT], "storeId": w.team.id},
    )
    assert response.status_code == 201, response.text
    endpoint_id: int = response.json()["id"]
    return endpoint_id


def create_store_endpoint(w: World) -> Case:
    body = {"url": HOOK_URL, "events": [QUIET_EVENT], "storeId": w.team.id}
    return Case("POST", "/api/webhook-endpoints", body, lambda: _endpoints(w))


def create_platform_endpoint(w: World) -> Case:
    body = {"url": HOOK_URL, "events": [QUIET_EVENT]}
    return Case("POST", "/api/webhook-endpoints", body, lambda: _endpoints(w))


def list_store_endpoints(w: World) -> Case:
    return Case("GET", f"/api/webhook-endpoints?storeId={w.team.id}")


def list_platform_endpoints(w: World) -> Case:
    return Case("GET", "/api/webhook-endpoints")


def get_endpoint(w: World) -> Case:
    return Case("GET", f"/api/webhook-endpoints/{_store_endpoint(w)}")


def update_endpoint(w: World) -> Case:
    body = {"description": f"changed {uuid.uuid4().hex[:8]}"}
    path = f"/api/webhook-endpoints/{_store_endpoint(w)}"
    return Case("PATCH", path, body, lambda: _endpoints(w))


def rotate_endpoint_secret(w: World) -> Case:
    path = f"/api/webhook-endpoints/{_store_endpoint(w)}/rotate-secret"
    return Case("POST", path, None, lambda: _endpoints(w))


def delete_endpoint(w: World) -> Case:
    path = f"/api/webhook-endpoints/{_store_endpoint(w)}"
    return Case("DELETE", path, None, lambda: _endpoints(w))


def list_deliveries(w: World) -> Case:
    return Case("GET", f"/api/webhook-endpoints/{_store_endpoint(w)}/deliveries")


def given_up_delivery(w: World, endpoint_id: int, store_id: int | None) -> int:
    """A delivery of a quiet event to the endpoint that failed for good (every try used)."""
    key = uuid.uuid4().hex
    with w.live.db.begin() as conn:
        event_id = conn.execute(
            sa.text(
                "INSERT INTO webhook_event (public_id, key, type, store_id, payload, created_at) "
                "VALUES (:p, :k, :t, :s, '{}', CURRENT_TIMESTAMP) RETURNING id"
            ),
            {"p": f"evt_{key}", "k": key, "t": QUIET_EVENT, "s": store_id},
        ).scalar_one()
        delivery_id: int = conn.execute(
            sa.text(
                "INSERT INTO webhook_delivery (event_id, endpoint_id, status, attempts, "
                "next_attempt_at, created_at) VALUES (:e, :n, 'failed', 8, CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP) RETURNING id"
            ),
            {"e": event_id, "n": endpoint_id},
        ).scalar_one()
    return delivery_id


def redeliver(w: World) -> Case:
    endpoint_id = _store_endpoint(w)
    delivery_id = given_up_delivery(w, endpoint_id, w.team.id)
    path = f"/api/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver"
    return Case("POST", path)


def list_outbox(w: World) -> Case:
    return Case("GET", "/api/admin/outbox")


def _message_status(w: World, message_id: int) -> Any:
    return w.live.scalar("SELECT status FROM mail_message WHERE id = :i", i=message_id)


def retry_message(w: World) -> Case:
    key = uuid.uuid4().hex
    with w.live.db.begin() as conn:
        message_id = conn.execute(
            sa.text(
                "INSERT INTO mail_message (key, kind, to_email, subject, text_body, html_body, "
                "status, attempts, next_attempt_at, created_at) VALUES (:k, 'order_paid_buyer', "
                "'b@example.com', 's', 't', 'h', 'failed', 6, CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP) RETURNING id"
            ),
            {"k": key},
        ).scalar_one()
    path = f"/api/admin/outbox/{message_id}/retry"
    return Case("POST", path, None, lambda: _message_status(w, message_id))


def _commission(w: World) -> Any:
    return w.live.scalar("SELECT platform_fee_bps FROM store WHERE id = :s", s=w.team.id)


def set_store_commission(w: World) -> Case:
    body = {"bps": (_commission(w) or 0) + 1}
    path = f"/api/admin/stores/{w.team.id}/commission"
    return Case("PATCH", path, body, lambda: _commission(w))


def _fulfilment(w: World, order_id: int) -> Any:
    return tuple(
        w.live.rows(
            "SELECT fulfilment_status, fulfilment_tracking_number FROM orders WHERE id = :i",
            i=order_id,
        )[0]
    )


def fulfil_order(w: World) -> Case:
    order_id = _paid_order(w)
    body = {"status": "shipped", "carrier": "DHL", "trackingNumber": uuid.uuid4().hex[:12]}
    path = f"/api/orders/{order_id}/fulfilment"
    return Case("POST", path, body, lambda: _fulfilment(w, order_id))


ROUTES = [
    Route("GET /api/stores/{storeId}", READ, get_store),
    Route("PATCH /api/stores/{storeId}", MANAGE, patch_store),
    Route("GET /api/stores/{storeId}/members", READ, list_members),
    Route("POST /api/stores/{storeId}/invitations", MANAGE, invite_member, success=201),
    Route("GET /api/stores/{storeId}/invitations", MANAGE, list_invitations),
    Route(
        "DELETE /api/stores/{storeId}/invitations/{invitationId}", MANAGE, withdraw_invitation, 204
    ),
    Route("PATCH /api/stores/{storeId}/members/{userId}", MANAGE, change_member_role),
    Route("DELETE /api/stores/{storeId}/members/{userId}", MANAGE, remove_store_member, 204),
    Route("POST /api/stores/{storeId}/listings", READ, create_store_listing, success=201),
    Route("PATCH /api/listings/{listingId}", READ, update_listing),
    Route("DELETE /api/listings/{listingId}", READ, delete_listing),
    # An inactive listing is private to its store; anonymous callers get 404, not 401.
    Route(
        "GET /api/listings/{listingId} (inactive)", {**READ, "anonymous": 404}, get_inactive_listing
    ),
    Route("POST /api/stripe/connect/create-account", MANAGE, create_connected_account),
    Route("POST /api/stripe/connect/account-link", MANAGE, create_account_link, writes=False),
    Route("POST /api/stripe/connect/login-link", MANAGE, create_login_link, writes=False),
    Route("GET /api/stores/{storeId}/payments", READ, get_payments),
    Route("GET /api/stores/{storeId}/orders", READ, list_store_orders),
    Route(
        "GET /api/stores/{storeId}/balance",
        READ,
        lambda w: Case("GET", f"/api/stores/{w.team.id}/balance"),
    ),
    Route("GET /api/admin/orders", PLATFORM, list_all_orders),
    Route("POST /api/admin/orders/{orderId}/resolve", PLATFORM, resolve_order),
    Route("POST /api/webhook-endpoints (store)", OWNER, create_store_endpoint, success=201),
    Route("POST /api/webhook-endpoints (platform)", PLATFORM, create_platform_endpoint, 201),
    Route("GET /api/webhook-endpoints?storeId", OWNER, list_store_endpoints),
    Route("GET /api/webhook-endpoints", PLATFORM, list_platform_endpoints),
    Route("GET /api/webhook-endpoints/{id}", OWNER, get_endpoint),
    Route("PATCH /api/webhook-endpoints/{id}", OWNER, update_endpoint),
    Route("POST /api/webhook-endpoints/{id}/rotate-secret", OWNER, rotate_endpoint_secret),
    Route("DELETE /api/webhook-endpoints/{id}", OWNER, delete_endpoint, success=204),
    Route("GET /api/webhook-endpoints/{id}/deliveries", OWNER, list_deliveries),
    Route(
        "POST /api/webhook-endpoints/{id}/deliveries/{id}/redeliver",
        OWNER,
        redeliver,
        success=202,
        writes=False,
    ),
    Route("GET /api/admin/outbox", PLATFORM, list_outbox),
    Route("POST /api/admin/outbox/{id}/retry", PLATFORM, retry_message),
    Route("PATCH /api/admin/stores/{storeId}/commission", PLATFORM, set_store_commission),
    Route(
        "GET /api/admin/transfers", PLATFORM, lambda w: Case("GET", "/api/admin/transfers?limit=5")
    ),
    Route("GET /api/admin/payouts", PLATFORM, lambda w: Case("GET", "/api/admin/payouts?limit=5")),
    Route("POST /api/orders/{orderId}/refunds", REFUND, create_refund, success=201),
    Route("POST /api/orders/{orderId}/refunds/preview", REFUND, preview_refund, writes=False),
    Route("GET /api/orders/{orderId}/refunds", ORDER_READ, list_refunds),
    Route("GET /api/orders/{orderId}/money", ORDER_READ, order_money),
    Route("GET /api/orders/{orderId}/disputes", ORDER_READ, list_disputes),
    Route(
        "GET /api/stores/{storeId}/disputes",
        READ,
        lambda w: Case("GET", f"/api/stores/{w.team.id}/disputes"),
    ),
    # Whoever packs and ships marks an order fulfilled: every member of its store.
    Route("POST /api/orders/{orderId}/fulfilment", READ, fulfil_order),
    Route(
        "GET /api/admin/reports/fees", PLATFORM, lambda w: Case("GET", "/api/admin/reports/fees")
    ),
    Route(
        "GET /api/stores/{storeId}/statements",
        READ,
        lambda w: Case("GET", f"/api/stores/{w.team.id}/statements"),
    ),
    Route("POST /api/orders/{orderId}/disputes/{disputeId}/evidence", REFUND, submit_evidence),
    Route(
        "GET /api/stores/{storeId}/loss-policy", {**READ, "platform_admin": 200}, get_loss_policy
    ),
    Route("PUT /api/admin/stores/{storeId}/loss-policy", PLATFORM, put_loss_policy),
    Route(
        "GET /api/admin/disputes/recoveries",
        PLATFORM,
        lambda w: Case("GET", "/api/admin/disputes/recoveries"),
    ),
    Route(
        "GET /api/admin/refunds/refused-reversals",
        PLATFORM,
        lambda w: Case("GET", "/api/admin/refunds/refused-reversals"),
    ),
    # No dispute is due in this world: a platform admin is let through to the 404.
    Route(
        "POST /api/admin/disputes/{disputeId}/recover",
        PLATFORM,
        lambda w: Case("POST", "/api/admin/disputes/999999/recover"),
        success=404,
        writes=False,
    ),
]


@pytest.fixture(scope="module")
def world(shared_live: LiveServer) -> Iterator[World]:
    live = shared_live
    team = store_team(live, name="Matrix Store")
    other_owner = api_user(live, name="Other Owner")
    create_store(other_owner, name="Other Store")
    unrelated = api_user(live, name="Unrelated")
    platform_admin = api_user(live, name="Platform Admin")
    with live.db.begin() as conn:
        conn.execute(
            sa.text('UPDATE "user" SET is_platform_admin = :t WHERE id = :i'),
            {"t": True, "i": platform_admin.id},
        )
    yield World(team, other_owner, unrelated, platform_admin, live)
    for account in (other_owner, unrelated, platform_admin):
        account.close()
    team.close()


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_store_scoped_route(world: World, route: Route, actor: str) -> None:
    case = route.prepare(world)
    before = case.snapshot()
    if actor == "anonymous":
        with anonymous(world.live) as client:
            response = client.request(case.method, case.path, json=case.body, headers=case.headers)
    else:
        response = world.client(actor).request(
            case.method, case.path, json=case.body, headers=case.headers
        )
    expected = route.expected[actor]
    if expected == 200 and route.success is not None:
        expected = route.success
    assert response.status_code == expected, (route.name, actor, response.text)
    if expected >= 400:
        assert set(response.json()) == {"error"}
        assert case.snapshot() == before, f"{route.name} by {actor} changed state"
    elif case.method != "GET" and route.writes:
        assert case.snapshot() != before, f"{route.name} by {actor} changed nothing"


# The same rules on the pages: a refusal is an HTML page with the same status, except that an
# anonymous visitor is sent to the login page (303); an allowed form post redirects (303).


def page_expected(
    expected: dict[str, int], method: str, success: int | None = None
) -> dict[str, int]:
    allowed = 200 if method == "GET" else (success or 303)
    return {
        actor: 303 if actor == "anonymous" else (allowed if code == 200 else code)
        for actor, code in expected.items()
    }


def _page_listing(w: World) -> int:
    listing_id: int = create_listing(w.team.owner, w.team.id)["id"]
    return listing_id


def _page(method: str, path: str, form: dict[str, str] | None = None, snap: Any = None) -> Case:
    return Case(method, path, None, snap or (lambda: None), form=form or {})


def _on_page(
    api: Callable[[World], Case],
    suffix: str,
    form: dict[str, str] | None = None,
    *,
    prefix: tuple[str, str] = ("/api/", "/dashboard/"),
) -> Callable[[World], Case]:
    """The page twin of an API case: the same object and snapshot, posted as a form."""

    def prepare(w: World) -> Case:
        case = api(w)
        path = case.path.replace(*prefix) + suffix
        return Case("POST", path, None, case.snapshot, form=form or {})

    return prepare


def _platform_endpoint(w: World) -> int:
    response = w.platform_admin.client.post(
        "/api/webhook-endpoints", json={"url": HOOK_URL, "events": [QUIET_EVENT]}
    )
    assert response.status_code == 201, response.text
    endpoint_id: int = response.json()["id"]
    return endpoint_id


def _endpoint_row(w: World, endpoint_id: int) -> Any:
    rows = w.live.rows(
        "SELECT enabled, secret_sealed FROM webhook_endpoint WHERE id = :i", i=endpoint_id
    )
    return [tuple(r) for r in rows]


def platform_endpoint_page(suffix: str, form: dict[str, str] | None = None) -> Any:
    """A form post on a fresh platform endpoint's page, with that endpoint's snapshot."""

    def prepare(w: World) -> Case:
        endpoint_id = _platform_endpoint(w)
        path = f"/admin/webhook-endpoints/{endpoint_id}{suffix}"
        return _page("POST", path, form, lambda: _endpoint_row(w, endpoint_id))

    return prepare


def _transfer(w: World, transfer_id: int) -> Any:
    return w.live.scalar("SELECT failure_reason FROM store_transfer WHERE id = :i", i=transfer_id)


def retry_transfer_page(w: World) -> Case:
    """A refused transfer of a group whose charge is not known: a retry records why it still
    cannot be sent, without a Stripe transfer."""
    with w.live.db.begin() as conn:
        group_id = conn.execute(
            sa.text(
                "INSERT INTO checkout_group (customer_email, currency, total_amount, status, "
                "created_at) VALUES ('b@example.com', 'usd', 1000, 'pending', "
                "CURRENT_TIMESTAMP) RETURNING id"
            )
        ).scalar_one()
        order_id = conn.execute(
            sa.text(
                "INSERT INTO orders (store_id, customer_email, currency, subtotal_amount, "
                "total_amount, platform_fee_amount, payment_status, holds_stock, created_at) "
                "VALUES (:s, 'b@example.com', 'usd', 1000, 1000, 50, 'paid', false, "
                "CURRENT_TIMESTAMP) RETURNING id"
            ),
            {"s": w.team.id},
        ).scalar_one()
        transfer_id = conn.execute(
            sa.text(
                "INSERT INTO store_transfer (order_id, checkout_group_id, store_id, "
                "destination_account_id, amount, currency, status, failure_reason, attempts, "
                "refusals, created_at) VALUES (:o, :g, :s, 'acct_matrix', 950, 'usd', 'failed', "
                "'refused', 1, 1, CURRENT_TIMESTAMP) RETURNING id"
            ),
            {"o": order_id, "g": group_id, "s": w.team.id},
        ).scalar_one()
    path = f"/admin/transfers/{transfer_id}/retry"
    return _page("POST", path, None, lambda: _transfer(w, transfer_id))


def _event(w: World, event_id: str) -> Any:
    return w.live.scalar(
        "SELECT processed_at FROM stripe_event WHERE stripe_event_id = :e", e=event_id
    )


def replay_event_page(w: World) -> Case:
    """A failed event of a type Souq does not handle: replayed, it is processed (ignored)."""
    event_id = f"evt_matrix_{uuid.uuid4().hex}"
    with w.live.db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO stripe_event (stripe_event_id, type, created, payload, received_at, "
                "attempts, last_error) VALUES (:e, 'customer.created', 0, '{}', "
                "CURRENT_TIMESTAMP, 1, 'RuntimeError: boom')"
            ),
            {"e": event_id},
        )
    return _page("POST", f"/admin/events/{event_id}/replay", None, lambda: _event(w, event_id))


def commission_page(w: World) -> Case:
    form = {"bps": str((_commission(w) or 0) + 1)}
    path = f"/admin/stores/{w.team.id}/commission"
    return _page("POST", path, form, lambda: _commission(w))


def create_endpoint_page(w: World) -> Case:
    form = {"url": HOOK_URL, "events": QUIET_EVENT}
    return _page("POST", "/admin/webhook-endpoints", form, lambda: _endpoints(w))


def redeliver_page(w: World) -> Case:
    endpoint_id = _platform_endpoint(w)
    delivery_id = given_up_delivery(w, endpoint_id, None)
    path = f"/admin/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver"
    return _page("POST", path)


LISTING_FORM = {"name": "Paged", "price": "7.00", "currency": "usd", "stock": "4"}
PAGE_ROUTES = [
    Route(
        "GET /dashboard/stores/{id}",
        READ,
        lambda w: _page("GET", f"/dashboard/stores/{w.team.id}"),
    ),
    Route(
        "POST /dashboard/stores/{id}/invitations",
        MANAGE,
        lambda w: _page(
            "POST",
            f"/dashboard/stores/{w.team.id}/invitations",
            {"email": unique_email("invitee"), "role": "seller"},
            lambda: _invitations(w),
        ),
    ),
    Route(
        "POST /dashboard/stores/{id}/invitations/{invitationId}/withdraw",
        MANAGE,
        _on_page(withdraw_invitation, "/withdraw"),
    ),
    Route(
        "POST /dashboard/stores/{id}/members/{userId}/role",
        MANAGE,
        _on_page(change_member_role, "/role", {"role": "admin"}),
    ),
    Route(
        "POST /dashboard/stores/{id}/members/{userId}/remove",
        MANAGE,
        _on_page(remove_store_member, "/remove"),
    ),
    Route(
        "GET /dashboard/stores/{id}/listings/new",
        READ,
        lambda w: _page("GET", f"/dashboard/stores/{w.team.id}/listings/new"),
    ),
    Route(
        "POST /dashboard/stores/{id}/listings",
        READ,
        _on_page(create_store_listing, "", LISTING_FORM),
    ),
    Route(
        "GET /dashboard/listings/{id}/edit",
        READ,
        lambda w: _page("GET", f"/dashboard/listings/{_page_listing(w)}/edit"),
    ),
    Route(
        "POST /dashboard/listings/{id}/edit",
        READ,
        _on_page(update_listing, "/edit", {**LISTING_FORM, "name": "Edited"}),
    ),
    Route(
        "POST /dashboard/listings/{id}/deactivate",
        READ,
        _on_page(update_listing, "/deactivate"),
    ),
    Route(
        "GET /dashboard/orders?storeId",
        READ,
        lambda w: _page("GET", f"/dashboard/orders?storeId={w.team.id}"),
    ),
    Route(
        "GET /dashboard/settings/payments?storeId",
        READ,
        lambda w: _page("GET", f"/dashboard/settings/payments?storeId={w.team.id}"),
    ),
    Route(
        "GET /dashboard/orders/{id}",
        {**READ, "platform_admin": 200},
        lambda w: _page("GET", f"/dashboard/orders/{_paid_order(w)}"),
    ),
    Route(
        "POST /dashboard/orders/{id}/fulfilment",
        READ,
        _on_page(
            fulfil_order, "", {"status": "shipped", "carrier": "DHL", "tracking_number": "T1"}
        ),
    ),
    # The preview answers with the order's page showing it, and writes nothing.
    Route(
        "POST /dashboard/orders/{id}/refunds/preview",
        REFUND,
        _on_page(preview_refund, "", {"amount": "1.00"}),
        success=200,
        writes=False,
    ),
    Route(
        "POST /dashboard/orders/{id}/refunds",
        REFUND,
        _on_page(create_refund, "", {"amount": "1.00", "idempotency_key": "matrix-page-refund-1"}),
    ),
    Route(
        "POST /dashboard/orders/{id}/disputes/{disputeId}/evidence",
        REFUND,
        _on_page(submit_evidence, "", {"text": "winning_evidence"}),
    ),
    Route(
        "GET /dashboard/disputes?storeId",
        READ,
        lambda w: _page("GET", f"/dashboard/disputes?storeId={w.team.id}"),
    ),
    Route(
        "GET /dashboard/statements?storeId",
        READ,
        lambda w: _page("GET", f"/dashboard/statements?storeId={w.team.id}"),
    ),
    Route(
        "GET /dashboard/statements/csv?storeId",
        READ,
        lambda w: _page("GET", f"/dashboard/statements/csv?storeId={w.team.id}"),
    ),
    Route("GET /admin", PLATFORM, lambda w: _page("GET", "/admin")),
    Route("GET /admin/orders", PLATFORM, lambda w: _page("GET", "/admin/orders")),
    Route(
        "POST /admin/orders/{id}/resolve",
        PLATFORM,
        _on_page(
            resolve_order,
            "",
            {"resolution": "canceled", "note": "refunded in Stripe"},
            prefix=("/api/admin/", "/admin/"),
        ),
    ),
    Route(
        "GET /admin/stores/{id}/commission",
        PLATFORM,
        lambda w: _page("GET", f"/admin/stores/{w.team.id}/commission"),
    ),
    Route("POST /admin/stores/{id}/commission", PLATFORM, commission_page),
    Route("GET /admin/reports/fees", PLATFORM, lambda w: _page("GET", "/admin/reports/fees")),
    Route("GET /admin/outbox", PLATFORM, lambda w: _page("GET", "/admin/outbox")),
    Route("GET /admin/transfers", PLATFORM, lambda w: _page("GET", "/admin/transfers")),
    Route("POST /admin/transfers/{id}/retry", PLATFORM, retry_transfer_page),
    Route("GET /admin/events", PLATFORM, lambda w: _page("GET", "/admin/events?failed=true")),
    Route("POST /admin/events/{eventId}/replay", PLATFORM, replay_event_page),
    Route(
        "GET /admin/webhook-endpoints", PLATFORM, lambda w: _page("GET", "/admin/webhook-endpoints")
    ),
    # Made: the page answering shows the secret, once (no redirect).
    Route("POST /admin/webhook-endpoints", PLATFORM, create_endpoint_page, success=200),
    Route(
        "GET /admin/webhook-endpoints/{id}",
        PLATFORM,
        lambda w: _page("GET", f"/admin/webhook-endpoints/{_platform_endpoint(w)}"),
    ),
    Route(
        "POST /admin/webhook-endpoints/{id}/enabled",
        PLATFORM,
        platform_endpoint_page("/enabled", {"enabled": "false"}),
    ),
    Route(
        "POST /admin/webhook-endpoints/{id}/rotate-secret",
        PLATFORM,
        platform_endpoint_page("/rotate-secret"),
        success=200,
    ),
    Route("POST /admin/webhook-endpoints/{id}/delete", PLATFORM, platform_endpoint_page("/delete")),
    Route(
        "POST /admin/webhook-endpoints/{id}/deliveries/{id}/redeliver",
        PLATFORM,
        redeliver_page,
        writes=False,
    ),
]


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("route", PAGE_ROUTES, ids=lambda r: r.name)
def test_store_scoped_page(world: World, route: Route, actor: str) -> None:
    case = route.prepare(world)
    before = case.snapshot()
    if actor == "anonymous":
        with anonymous(world.live) as client:
            response = client.request(case.method, case.path, data=case.form)
    else:
        response = world.client(actor).request(case.method, case.path, data=case.form)
    expected = page_expected(route.expected, case.method, route.success)[actor]
    assert response.status_code == expected, (route.name, actor, response.text[:500])
    if actor == "anonymous":
        assert response.headers["location"].startswith("/login?next="), response.headers
    if expected >= 400:
        assert response.headers["content-type"].startswith("text/html")
    if expected >= 400 or actor == "anonymous":
        assert case.snapshot() == before, f"{route.name} by {actor} changed state"
    elif case.method != "GET" and route.writes:
        assert case.snapshot() != before, f"{route.name} by {actor} changed nothing"
    else:
        assert case.snapshot() == before, f"{route.name} by {actor} changed state"


@dataclass
class UserRoute:
    """A route on the caller's own account: anonymous callers get 401, and another user's
    object (a token, an invitation) is as unknown to them as a missing one (404)."""

    name: str
    prepare: Callable[[World, Account], Case]
    success: int
    others_object: bool = True


def _fresh_invitation(w: World, invitee: Account) -> int:
    response = invite(w.team.owner, w.team.id, invitee.email, "seller")
    assert response.status_code == 201, response.text
    invitation_id: int = response.json()["id"]
    return invitation_id


USER_ROUTES = [
    UserRoute("GET /api/auth/tokens", lambda w, a: Case("GET", "/api/auth/tokens"), 200, False),
    UserRoute(
        "DELETE /api/auth/tokens/{tokenId}",
        lambda w, a: Case(
            "DELETE",
            f"/api/auth/tokens/{a.client.post('/api/auth/tokens', json={}).json()['id']}",
        ),
        204,
    ),
    UserRoute(
        "GET /api/me/invitations", lambda w, a: Case("GET", "/api/me/invitations"), 200, False
    ),
    UserRoute(
        "POST /api/me/invitations/{invitationId}/accept",
        lambda w, a: Case("POST", f"/api/me/invitations/{_fresh_invitation(w, a)}/accept"),
        201,
    ),
    UserRoute(
        "POST /api/me/invitations/{invitationId}/decline",
        lambda w, a: Case("POST", f"/api/me/invitations/{_fresh_invitation(w, a)}/decline"),
        204,
    ),
    UserRoute(
        "POST /api/auth/password",
        lambda w, a: Case(
            "POST",
            "/api/auth/password",
            {"currentPassword": a.password, "newPassword": a.password + "!"},
        ),
        200,
        False,
    ),
    UserRoute(
        "POST /api/auth/logout-all", lambda w, a: Case("POST", "/api/auth/logout-all"), 200, False
    ),
]


@pytest.mark.parametrize(
    ("route", "actor"),
    [
        pytest.param(route, actor, id=f"{route.name}-{actor}")
        for route in USER_ROUTES
        for actor in ("anonymous", "owner", "other_user")
        # Routes that only ever act on the caller's own account have no one else's object.
        if actor != "other_user" or route.others_object
    ],
)
def test_user_scoped_route(world: World, route: UserRoute, actor: str) -> None:
    with api_user(world.live, name="Account holder") as holder:
        case = route.prepare(world, holder)
        if actor == "anonymous":
            with anonymous(world.live) as client:
                response = client.request(case.method, case.path, json=case.body)
            assert response.status_code == 401, response.text
        elif actor == "other_user":
            response = world.unrelated.client.request(case.method, case.path, json=case.body)
            assert response.status_code == 404, response.text
        else:
            response = holder.client.request(case.method, case.path, json=case.body)
            assert response.status_code == route.success, response.text
