"""Refunds of destination charges: previewed exactly, booked once, never more than was paid,
kept in step with Stripe whatever order its webhooks come in, made in Souq or in Stripe."""

from __future__ import annotations

import concurrent.futures

import pytest

from tests.helpers import api_user, error_code
from tests.ledger.money_helpers import (
    assert_invariant,
    entry_sum,
    money,
    paid_order,
    refund,
    stripe_balance,
)
from tests.payments.stripe_helpers import (
    checkout,
    clear_faults,
    flush,
    listing,
    onboarded_team,
    order,
    pay,
    platform_admin,
    sdk,
    set_faults,
    stock,
)
from tests.servers import LiveServer


def test_a_partial_then_a_full_refund_move_exactly_what_the_preview_said(
    live: LiveServer,
) -> None:
    with onboarded_team(live) as team:
        paid = paid_order(live, team)  # 2 × 19.99: commission 2.00, Stripe's fee 1.46
        owner = team.owner.client
        flow = money(owner, paid.id)
        assert (flow["charged"], flow["commission"], flow["processingFee"]) == (
            "39.98",
            "2.00",
            "1.46",
        )
        assert (flow["storeBalance"], flow["platformBalance"]) == ("37.98", "0.54")
        assert stripe_balance(live, paid.account_id) == 3798 == entry_sum(live, paid.id, "store")

        preview = owner.post(f"/api/orders/{paid.id}/refunds/preview", json={"amount": "10.00"})
        assert preview.status_code == 200, preview.text
        seen = preview.json()
        # The transfer is reversed pro rata (10.00 of 39.98 of a 39.98 transfer) and the
        # commission returned pro rata: 200 × 1000 / 3998 = 50.03 → 0.50.
        assert (seen["buyer"], seen["store"], seen["platform"]) == ("10.00", "-9.50", "-0.50")
        assert (seen["transferReversal"], seen["commissionRefund"]) == ("10.00", "0.50")
        assert seen["processingFeeBorneByPlatform"] == "0.37"
        assert seen["policy"]["refundCommission"] == "returned"

        made = refund(owner, paid.id, "first", amount="10.00", reason="requested_by_customer")
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["status"] == "succeeded" and body["stripeRefundId"].startswith("re_")
        assert (body["amount"], body["transferReversed"], body["commissionRefunded"]) == (
            "10.00",
            "10.00",
            "0.50",
        )
        assert order(live, paid.id)["payment_status"] == "partially_refunded"
        flow = money(owner, paid.id)
        assert (flow["refunded"], flow["reversedFromStore"], flow["commissionReturned"]) == (
            "10.00",
            "10.00",
            "0.50",
        )
        assert flow["storeBalance"] == "28.48" and flow["netPaid"] == "29.98"
        assert stripe_balance(live, paid.account_id) == 2848 == entry_sum(live, paid.id, "store")
        assert_invariant(live, paid.id)

        rest = refund(owner, paid.id, "second")
        assert rest.status_code == 201, rest.text
        assert rest.json()["amount"] == "29.98"
        flush(live)  # the refund webhooks change nothing more
        assert order(live, paid.id)["payment_status"] == "refunded"
        flow = money(owner, paid.id)
        # The store is back to zero; the platform bears Stripe's processing fee.
        assert (flow["storeBalance"], flow["platformBalance"], flow["netPaid"]) == (
            "0.00",
            "-1.46",
            "0.00",
        )
        assert stripe_balance(live, paid.account_id) == 0
        assert_invariant(live, paid.id)
        again = refund(owner, paid.id, "third", amount="0.01")
        assert again.status_code == 409 and error_code(again) == "not_refundable"


def test_an_over_refund_is_refused_and_writes_nothing(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        paid = paid_order(live, team)
        owner = team.owner.client
        before = live.scalar("SELECT count(*) FROM ledger_entry WHERE order_id = :id", id=paid.id)
        for amount in ("39.99", "100000.00"):
            response = refund(owner, paid.id, f"too-much-{amount}", amount=amount)
            assert response.status_code == 422, response.text
            assert error_code(response) == "refund_exceeds_payment"
        for bad in ({"amount": "0"}, {"amount": "1.234"}, {"amount": "-1"}, {"amount": "x"}):
            response = refund(owner, paid.id, "bad", **bad)
            assert response.status_code == 422, (bad, response.text)
        missing_key = owner.post(f"/api/orders/{paid.id}/refunds", json={})
        assert missing_key.status_code == 422
        assert error_code(missing_key) == "invalid_input"
        assert "idempotency-key" in missing_key.text.lower()
        assert live.scalar("SELECT count(*) FROM refund WHERE order_id = :id", id=paid.id) == 0
        assert (
            live.scalar("SELECT count(*) FROM ledger_entry WHERE order_id = :id", id=paid.id)
            == before
        )
        assert order(live, paid.id)["payment_status"] == "paid"
        assert sdk(live).v1.refunds.list(params={"charge": _charge(live, paid.id)}).data == []


def _charge(live: LiveServer, order_id: int) -> str:
    charge: str = live.scalar(
        "SELECT stripe_charge_id FROM order_payment WHERE order_id = :id", id=order_id
    )
    return charge


def test_the_same_key_is_the_same_refund_and_another_body_is_a_conflict(
    live: LiveServer,
) -> None:
    with onboarded_team(live) as team:
        paid = paid_order(live, team)
        owner = team.owner.client
        first = refund(owner, paid.id, "k1", amount="5.00")
        second = refund(owner, paid.id, "k1", amount="5.00")
        assert first.status_code == second.status_code == 201
        assert first.json()["id"] == second.json()["id"]
        other = refund(owner, paid.id, "k1", amount="6.00")
        assert other.status_code == 409 and error_code(other) == "idempotency_key_reused"
        assert len(sdk(live).v1.refunds.list(params={"charge": _charge(live, paid.id)}).data) == 1
        assert_invariant(live, paid.id)


@pytest.mark.slow
def test_concurrent_refunds_never_exceed_what_was_paid(live: LiveServer) -> None:
    with onboarded_team(live) as team, platform_admin(live) as admin:
        paid = paid_order(live, team)  # 39.98
        callers = [team.owner.client, team.admin.client, admin.client, team.owner.client]
        with concurrent.futures.ThreadPoolExecutor(len(callers)) as pool:
            answers = list(
                pool.map(
                    lambda pair: refund(pair[1], paid.id, f"race-{pair[0]}", amount="15.00"),
                    enumerate(callers),
                )
            )
        codes = sorted(a.status_code for a in answers)
        assert codes == [201, 201, 422, 422], [a.text for a in answers]
        refunds = sdk(live).v1.refunds.list(params={"charge": _charge(live, paid.id)}).data
        assert sum(r.amount for r in refunds) == 3000
        flush(live)
        assert money(team.owner.client, paid.id)["refunded"] == "30.00"
        assert_invariant(live, paid.id)


def test_refunds_made_in_stripes_dashboard_are_booked_once_whatever_the_webhooks_do(
    live: LiveServer,
) -> None:
    with onboarded_team(live) as team:
        paid = paid_order(live, team)
        charge = _charge(live, paid.id)
        set_faults(live, webhook_duplicate_rate=1, webhook_shuffle=True)
        try:
            client = sdk(live)
            for amount in (700, 300):
                client.v1.refunds.create(
                    params={"charge": charge, "amount": amount, "reverse_transfer": True}
                )
            flush(live)
            flush(live)
        finally:
            clear_faults(live)
        rows = live.rows(
            "SELECT amount, source, status FROM refund WHERE order_id = :id ORDER BY amount",
            id=paid.id,
        )
        assert [tuple(r) for r in rows] == [
            (300, "stripe", "succeeded"),
            (700, "stripe", "succeeded"),
        ]
        assert (
            live.scalar(
                "SELECT count(*) FROM ledger_entry WHERE order_id = :id AND kind = 'refund'",
                id=paid.id,
            )
            == 2
        )
        assert order(live, paid.id)["payment_status"] == "partially_refunded"
        flow = money(team.owner.client, paid.id)
        assert (flow["refunded"], flow["reversedFromStore"]) == ("10.00", "10.00")
        assert stripe_balance(live, paid.account_id) == entry_sum(live, paid.id, "store")
        assert_invariant(live, paid.id)
        # What is left to refund through Souq accounts for them.
        over = refund(team.owner.client, paid.id, "after-dashboard", amount="29.99")
        assert over.status_code == 422


def test_restock_puts_the_items_back_once(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        paid = paid_order(live, team, stock=5, quantity=2)
        assert stock(live, paid.listing_id) == 3
        owner = team.owner.client
        assert refund(owner, paid.id, "r1", amount="1.00", restock=True).status_code == 201
        assert stock(live, paid.listing_id) == 5
        assert refund(owner, paid.id, "r2", amount="1.00", restock=True).status_code == 201
        assert refund(owner, paid.id, "r1", amount="1.00", restock=True).status_code == 201
        assert stock(live, paid.listing_id) == 5


def test_who_may_refund_and_who_sees_refunds(live: LiveServer) -> None:
    with onboarded_team(live) as team, api_user(live) as buyer, api_user(live) as stranger:
        item = listing(team, price="12.00")
        started = checkout(buyer.client, team.id, [(item, 1)], email=None)
        assert started.status_code == 200, started.text
        order_id = started.json()["orderId"]
        assert pay(live, started.json()["url"], card="4242424242424242").status_code == 200
        flush(live)
        assert refund(team.seller.client, order_id, "s", amount="1.00").status_code == 403
        for outsider in (buyer.client, stranger.client):
            assert refund(outsider, order_id, "o", amount="1.00").status_code == 404
            preview = outsider.post(f"/api/orders/{order_id}/refunds/preview", json={})
            assert preview.status_code == 404
        assert refund(team.admin.client, order_id, "a", amount="1.00").status_code == 201
        mine = buyer.client.get(f"/api/orders/{order_id}/refunds")
        assert mine.status_code == 200
        assert [r["amount"] for r in mine.json()["data"]] == ["1.00"]
        assert "commissionRefunded" not in mine.json()["data"][0]
        assert stranger.client.get(f"/api/orders/{order_id}/refunds").status_code == 404
        assert buyer.client.get(f"/api/orders/{order_id}/money").status_code == 403
        assert team.seller.client.get(f"/api/orders/{order_id}/money").status_code == 200


def test_a_store_override_of_the_loss_policy_changes_what_a_refund_moves(
    live: LiveServer,
) -> None:
    with onboarded_team(live) as team, platform_admin(live) as admin:
        paid = paid_order(live, team)  # 39.98, commission 2.00, Stripe's fee 1.46
        owner = team.owner.client
        policy_path = f"/api/admin/stores/{team.id}/loss-policy"
        assert owner.put(policy_path, json={"processingFeeBearer": "store"}).status_code == 403
        put = admin.client.put(policy_path, json={"processingFeeBearer": "store"})
        assert put.status_code == 200, put.text
        assert put.json()["effective"]["processingFeeBearer"] == "store"
        assert put.json()["overrides"]["refundCommission"] is None
        seen = team.seller.client.get(f"/api/stores/{team.id}/loss-policy")
        assert seen.status_code == 200 and seen.json() == put.json()

        preview = owner.post(f"/api/orders/{paid.id}/refunds/preview", json={"amount": "10.00"})
        # Stripe's fee on 10.00 of 39.98 is 1.46 × 1000 / 3998 = 0.37: the store bears it out
        # of the 0.50 commission it would get back.
        assert preview.json()["processingFeeBorneByStore"] == "0.37"
        assert (preview.json()["commissionRefund"], preview.json()["store"]) == ("0.13", "-9.87")
        assert preview.json()["platform"] == "-0.13"
        made = refund(owner, paid.id, "fee-on-store", amount="10.00")
        assert made.status_code == 201, made.text
        assert made.json()["commissionRefunded"] == "0.13"
        assert money(owner, paid.id)["storeBalance"] == "28.11"
        assert stripe_balance(live, paid.account_id) == 2811 == entry_sum(live, paid.id, "store")

        kept = {"refundCommission": "kept", "processingFeeBearer": None}
        assert admin.client.put(policy_path, json=kept).status_code == 200
        preview = owner.post(f"/api/orders/{paid.id}/refunds/preview", json={"amount": "5.00"})
        assert (preview.json()["store"], preview.json()["platform"]) == ("-5.00", "0.00")
        assert refund(owner, paid.id, "kept", amount="5.00").status_code == 201
        assert stripe_balance(live, paid.account_id) == 2311 == entry_sum(live, paid.id, "store")
        assert_invariant(live, paid.id)
