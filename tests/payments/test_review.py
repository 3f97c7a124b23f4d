"""An order is paid only by the payment it asked for; a checkout whose Stripe call timed out
never oversells; whatever else Stripe took is recorded and put in front of a platform admin."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tests.helpers import StoreTeam, anonymous, error_code
from tests.payments.stripe_helpers import (
    checkout,
    clear_faults,
    direct_session,
    flush,
    listing,
    onboarded_team,
    order,
    pay,
    payments_status,
    platform_admin,
    sdk,
    session_id_of,
    set_faults,
    start,
    stock,
)
from tests.servers import Cli, LiveServer


def foreign_session(
    live: LiveServer, team: StoreTeam, order_id: int, *, amount: int, fee: int, destination: str
) -> str:
    """A Checkout Session made straight through Stripe's API (not by Souq) that names the
    order: another integration on the account, or someone holding the key."""
    session = direct_session(
        live,
        amount=amount,
        client_reference_id=str(order_id),
        metadata={"orderId": str(order_id)},
        payment_intent_data={
            "application_fee_amount": fee,
            "transfer_data": {"destination": destination},
        },
    )
    url: str = session.url or ""
    return url


def review_queue(live: LiveServer, admin: Any) -> dict[int, dict[str, Any]]:
    response = admin.client.get("/api/admin/orders?status=needs_review&limit=100")
    assert response.status_code == 200, response.text
    return {o["id"]: o for o in response.json()["data"]}


def test_a_smaller_payment_through_another_session_does_not_pay_the_order(
    live: LiveServer, caplog: Any
) -> None:
    with onboarded_team(live) as team, platform_admin(live) as admin:
        account = payments_status(team)["stripeAccountId"]
        item = listing(team, price="19.99", stock=3)
        started = start(live, team, [(item, 1)])
        url = foreign_session(
            live, team, started["orderId"], amount=100, fee=5, destination=account
        )
        assert pay(live, url, card="4242424242424242").status_code == 200
        flush(live)
        assert order(live, started["orderId"])["payment_status"] == "needs_review"
        held = review_queue(live, admin)[started["orderId"]]
        assert "amount 100 instead of 1999" in held["reviewReason"]
        assert [p["amount"] for p in held["payments"]] == ["1.00"]
        assert held["payments"][0]["reviewReason"] and held["payment"] is None
        assert stock(live, item) == 2  # still held: an admin decides
        assert any(
            "needs review" in r.getMessage() and session_id_of(url) in r.getMessage()
            for r in caplog.records
        )
        # The order's own session, paid in full later, is recorded too; the order stays in
        # review (a stray payment still has to be refunded) until an admin settles it.
        assert pay(live, started["url"], card="4242424242424242").status_code == 200
        flush(live)
        assert order(live, started["orderId"])["payment_status"] == "needs_review"
        held = review_queue(live, admin)[started["orderId"]]
        assert held["payment"]["amount"] == "19.99"
        resolved = admin.client.post(
            f"/api/admin/orders/{started['orderId']}/resolve",
            json={"resolution": "paid", "note": "refunded the stray 1.00 in Stripe"},
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["paymentStatus"] == "paid"
        assert started["orderId"] not in review_queue(live, admin)
        assert stock(live, item) == 2


def test_a_mismatched_payment_for_an_order_without_its_session_id_is_held(live: LiveServer) -> None:
    """The session id was never saved (a crash), so any session naming the order could claim
    it: only one exactly as asked for may pay it."""
    with onboarded_team(live) as team, platform_admin(live) as admin:
        account = payments_status(team)["stripeAccountId"]
        item = listing(team, price="19.99")
        started = start(live, team, [(item, 1)])
        with live.db.begin() as conn:
            conn.execute(
                sa.text("UPDATE orders SET stripe_checkout_session_id = NULL WHERE id = :i"),
                {"i": started["orderId"]},
            )
        url = foreign_session(
            live, team, started["orderId"], amount=1999, fee=0, destination=account
        )
        assert pay(live, url, card="4242424242424242").status_code == 200
        flush(live)
        assert order(live, started["orderId"])["payment_status"] == "needs_review"
        assert (
            "application fee 0 instead of 100"
            in (review_queue(live, admin)[started["orderId"]]["reviewReason"])
        )
        count = live.scalar(
            "SELECT count(*) FROM order_payment WHERE order_id = :i AND review_reason IS NULL",
            i=started["orderId"],
        )
        assert count == 0  # never a normal sale


@pytest.mark.fresh_server
def test_a_timed_out_checkout_never_oversells_the_last_item(live: LiveServer, cli: Cli) -> None:
    """Stock 1; Stripe made the first buyer's session but its answer timed out; a second
    buyer tries; then the first session is paid after all."""
    with onboarded_team(live) as team, platform_admin(live) as admin:
        item = listing(team, stock=1, name="Flash sale")
        set_faults(live, timeout_rate=1.0, timeout_seconds=5)
        try:
            with anonymous(live) as first:
                timed_out = checkout(first, team.id, [(item, 1)], email="first@example.com")
        finally:
            clear_faults(live)
        assert timed_out.status_code == 503
        assert "Nothing has been charged" in timed_out.json()["error"]["message"]
        first_order = live.scalar("SELECT max(id) FROM orders WHERE store_id = :s", s=team.id)
        assert order(live, first_order)["payment_status"] == "session_unknown"
        with anonymous(live) as second:
            late = checkout(second, team.id, [(item, 1)], email="second@example.com")
        assert late.status_code == 409 and error_code(late) == "out_of_stock"
        sessions = sdk(live).v1.checkout.sessions.list(params={"limit": 100}).to_dict()["data"]
        made = [s for s in sessions if s["client_reference_id"] == str(first_order)]
        assert len(made) == 1  # Stripe made it although Souq never heard back
        assert pay(live, made[0]["url"], card="4242424242424242").status_code == 200
        flush(live)
        assert order(live, first_order)["payment_status"] == "paid"
        assert stock(live, item) == 0
        paid = admin.client.get("/api/admin/orders?status=paid&limit=100").json()["data"]
        assert first_order in [o["id"] for o in paid]
        again = cli("reconcile")
        assert again.returncode == 0, again.stderr
        assert order(live, first_order)["payment_status"] == "paid"
        assert stock(live, item) == 0


@pytest.mark.fresh_server
def test_reconcile_expires_the_session_of_a_timed_out_checkout_and_releases_stock_once(
    live: LiveServer, cli: Cli
) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=2)
        set_faults(live, timeout_rate=1.0, timeout_seconds=5)
        try:
            with anonymous(live) as buyer:
                assert checkout(buyer, team.id, [(item, 2)]).status_code == 503
        finally:
            clear_faults(live)
        order_id = live.scalar("SELECT max(id) FROM orders WHERE store_id = :s", s=team.id)
        assert stock(live, item) == 0
        for _ in range(2):
            result = cli("reconcile")
            assert result.returncode == 0, result.stderr
            assert order(live, order_id)["payment_status"] == "failed"
            assert stock(live, item) == 2  # released exactly once
        session_id = order(live, order_id)["stripe_checkout_session_id"]
        assert sdk(live).v1.checkout.sessions.retrieve(session_id).status == "expired"


def _released_by_an_older_version(
    live: LiveServer, order_id: int, item: int, quantity: int
) -> None:
    """What Souq did before this fix on a timeout: the order failed and its stock went back,
    although Stripe had made its session."""
    with live.db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE orders SET payment_status = 'failed', holds_stock = false WHERE id = :i"
            ),
            {"i": order_id},
        )
        conn.execute(
            sa.text("UPDATE listing SET stock = stock + :q WHERE id = :l"),
            {"q": quantity, "l": item},
        )


def test_a_payment_for_a_released_order_whose_stock_is_gone_goes_to_review(
    live: LiveServer,
) -> None:
    with onboarded_team(live) as team, platform_admin(live) as admin:
        item = listing(team, stock=1)
        first = start(live, team, [(item, 1)])
        _released_by_an_older_version(live, first["orderId"], item, 1)
        second = start(live, team, [(item, 1)])  # the unit went to someone else
        assert stock(live, item) == 0
        assert pay(live, first["url"], card="4242424242424242").status_code == 200
        flush(live)
        assert order(live, first["orderId"])["payment_status"] == "needs_review"
        assert stock(live, item) == 0  # never below zero, never silently oversold
        held = review_queue(live, admin)[first["orderId"]]
        assert "stock given back" in held["reviewReason"]
        assert order(live, second["orderId"])["payment_status"] == "pending"
        # Without stock the admin cannot count it as a sale; after refunding it, they cancel.
        refused = admin.client.post(
            f"/api/admin/orders/{first['orderId']}/resolve",
            json={"resolution": "paid", "note": "try"},
        )
        assert refused.status_code == 409 and error_code(refused) == "out_of_stock"
        canceled = admin.client.post(
            f"/api/admin/orders/{first['orderId']}/resolve",
            json={"resolution": "canceled", "note": "refunded in Stripe"},
        )
        assert canceled.status_code == 200 and canceled.json()["paymentStatus"] == "canceled"
        assert stock(live, item) == 0


@pytest.mark.fresh_server
def test_reconcile_finds_a_payment_for_a_failed_order_and_takes_its_stock_back(
    live: LiveServer, cli: Cli
) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=3)
        started = start(live, team, [(item, 2)])
        _released_by_an_older_version(live, started["orderId"], item, 2)
        assert stock(live, item) == 3
        set_faults(live, webhook_failure_rate=1.0)
        assert pay(live, started["url"], card="4242424242424242").status_code == 200
        flush(live)
        clear_faults(live)
        assert order(live, started["orderId"])["payment_status"] == "failed"
        result = cli("reconcile")
        assert result.returncode == 0, result.stderr
        assert order(live, started["orderId"])["payment_status"] == "paid"
        assert stock(live, item) == 1


def test_only_platform_admins_see_and_settle_the_review_queue(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        with anonymous(live) as client:
            assert client.get("/api/admin/orders").status_code == 401
        assert team.owner.client.get("/api/admin/orders").status_code == 403
        response = team.owner.client.post(
            "/api/admin/orders/1/resolve", json={"resolution": "paid", "note": "x"}
        )
        assert response.status_code == 403
