"""Refunds of split-cart orders (one charge on the platform's account, one transfer per store):
the store's part of the charge refunded, its transfer reversed by what the preview said, or,
while its money is held, the held transfer lowered (or canceled) instead; the other stores'
orders untouched; the refund webhooks replayed in any order change nothing."""

from __future__ import annotations

from typing import Any

import httpx

from tests.carts.test_cart import order_json
from tests.carts.test_holds import fulfil, hold, paid_cart, transfers_to
from tests.helpers import StoreTeam, anonymous
from tests.ledger.money_helpers import entry_sum, money, refund, stripe_balance
from tests.payments.stripe_helpers import (
    advance_clock,
    deliver,
    flush,
    listing,
    onboarded_team,
    payments_status,
    platform_admin,
    sdk,
)
from tests.servers import Cli, LiveServer

DAY = 86_400


def keep_funds(live: LiveServer, team: StoreTeam) -> str:
    """Manual payouts, so the store's available balance stays there for reversals."""
    account: str = payments_status(team)["stripeAccountId"]
    sdk(live).v1.accounts.update(
        account, params={"settings": {"payouts": {"schedule": {"interval": "manual"}}}}
    )
    return account


def preview(client: httpx.Client, order_id: int, amount: str | None = None) -> dict[str, Any]:
    body = {} if amount is None else {"amount": amount}
    response = client.post(f"/api/orders/{order_id}/refunds/preview", json=body)
    assert response.status_code == 200, response.text
    seen: dict[str, Any] = response.json()
    return seen


def moves(seen: dict[str, Any]) -> tuple[str, ...]:
    keys = ("buyer", "store", "platform", "stripeTransferReversal", "heldTransferReduced")
    return tuple(seen[key] for key in keys)


def assert_books(live: LiveServer, order_id: int) -> None:
    """A split order's entries sum to its total minus what went back to the buyer."""
    total: int = live.scalar("SELECT total_amount FROM orders WHERE id = :id", id=order_id)
    refunded: int = live.scalar(
        "SELECT coalesce(sum(amount), 0) FROM refund WHERE order_id = :id "
        "AND status NOT IN ('failed', 'canceled')",
        id=order_id,
    )
    assert entry_sum(live, order_id) == total - refunded


def entries(live: LiveServer, order_id: int) -> list[tuple[Any, ...]]:
    """The order's entries but its payouts (the clock travels, so the stores that do not keep
    their funds are paid out meanwhile)."""
    rows = live.rows(
        "SELECT kind, party, amount, stripe_object_id FROM ledger_entry WHERE order_id = :id "
        "AND kind NOT IN ('payout', 'payout_failure') ORDER BY id",
        id=order_id,
    )
    return [tuple(row) for row in rows]


def cart_of(
    live: LiveServer, buyer: httpx.Client, *parts: tuple[StoreTeam, str]
) -> tuple[list[int], str]:
    """One listing of each store at its price, paid in one cart: the orders, the charge."""
    body = paid_cart(live, buyer, *(listing(team, price=price) for team, price in parts))
    charge: str = live.scalar(
        "SELECT stripe_charge_id FROM checkout_group WHERE id = :g", g=body["checkoutGroupId"]
    )
    return [o["orderId"] for o in body["orders"]], charge


def replay_refund_events(live: LiveServer, charge_id: str) -> None:
    """Every refund event of the charge delivered again, newest first."""
    found = [e.to_dict() for e in sdk(live).v1.events.list(params={"limit": 100}).data]
    wanted = [
        e
        for e in found
        if e["type"].startswith(("refund.", "charge.refund"))
        and charge_id in (e["data"]["object"].get("charge"), e["data"]["object"].get("id"))
    ]
    assert wanted
    for event in wanted:
        assert deliver(live, event).status_code == 200
    flush(live)


def test_partial_then_full_refund_of_one_store_in_a_three_store_cart(live: LiveServer) -> None:
    with (
        onboarded_team(live, name="Cedar") as a,
        onboarded_team(live, name="Olive") as b,
        onboarded_team(live, name="Thyme") as c,
        anonymous(live) as buyer,
    ):
        account = keep_funds(live, b)
        (a_id, b_id, c_id), charge_id = cart_of(
            live, buyer, (a, "20.00"), (b, "10.00"), (c, "30.00")
        )
        others = {oid: entries(live, oid) for oid in (a_id, c_id)}
        # The group's processing fee is shared pro rata: every order's books add up.
        fees = [
            live.scalar(
                "SELECT -sum(amount) FROM ledger_entry WHERE order_id = :id AND party = 'platform' "
                "AND kind = 'processing_fee'",
                id=oid,
            )
            for oid in (a_id, b_id, c_id)
        ]
        charge = sdk(live).v1.charges.retrieve(
            charge_id, params={"expand": ["balance_transaction"]}
        )
        assert sum(fees) == charge.to_dict()["balance_transaction"]["fee"]
        flow = money(b.owner.client, b_id)
        assert (flow["charged"], flow["commission"], flow["sentToStore"]) == (
            "10.00",
            "0.50",
            "10.00",
        )
        assert flow["storeBalance"] == "9.50" == order_json(b, b_id)["transfer"]["amount"]
        assert stripe_balance(live, account) == 950 == entry_sum(live, b_id, "store")
        advance_clock(live, 3 * DAY)  # the store's funds become available for a reversal

        # 4.00 of 10.00: the store's transfer gives back 4.00 less the commission on it.
        seen = preview(b.owner.client, b_id, "4.00")
        assert moves(seen) == ("4.00", "-3.80", "-0.20", "3.80", "0.00")
        made = refund(b.owner.client, b_id, "part", amount="4.00")
        assert made.status_code == 201, made.text
        row = made.json()
        assert row["status"] == "succeeded" and row["stripeReversalId"].startswith("trr_")
        assert (row["transferReversed"], row["commissionRefunded"]) == ("4.00", "0.20")
        refunds = sdk(live).v1.refunds.list(params={"charge": charge_id}).data
        assert [r.amount for r in refunds] == [400]
        transfer_id = order_json(b, b_id)["transfer"]["stripeTransferId"]
        assert sdk(live).v1.transfers.retrieve(transfer_id).amount_reversed == 380
        assert order_json(b, b_id)["paymentStatus"] == "partially_refunded"
        assert stripe_balance(live, account) == 570 == entry_sum(live, b_id, "store")
        assert_books(live, b_id)

        # The rest: the last refund takes whatever is left of each share.
        seen = preview(b.owner.client, b_id)
        assert moves(seen) == ("6.00", "-5.70", "-0.30", "5.70", "0.00")
        rest = refund(b.owner.client, b_id, "rest")
        assert rest.status_code == 201, rest.text
        assert sdk(live).v1.transfers.retrieve(transfer_id).amount_reversed == 950
        assert order_json(b, b_id)["paymentStatus"] == "refunded"
        flow = money(b.owner.client, b_id)
        assert (flow["refunded"], flow["storeBalance"], flow["netPaid"]) == (
            "10.00",
            "0.00",
            "0.00",
        )
        assert stripe_balance(live, account) == 0

        # Webhooks again, newest first, and twice: the books stay as they are.
        before = entries(live, b_id)
        replay_refund_events(live, charge_id)
        replay_refund_events(live, charge_id)
        assert entries(live, b_id) == before
        assert live.scalar("SELECT count(*) FROM refund WHERE order_id = :id", id=b_id) == 2
        assert_books(live, b_id)

        # The other stores: paid, their transfers whole, their books unchanged.
        for team, oid, amount in ((a, a_id, 1900), (c, c_id, 2850)):
            assert order_json(team, oid)["paymentStatus"] == "paid"
            assert [t["amount_reversed"] for t in transfers_to(live, team)] == [0]
            assert [t["amount"] for t in transfers_to(live, team)] == [amount]
            assert entries(live, oid) == others[oid]
            assert live.scalar("SELECT count(*) FROM refund WHERE order_id = :id", id=oid) == 0


def test_a_refund_while_held_lowers_or_cancels_the_held_transfer(live: LiveServer) -> None:
    with (
        onboarded_team(live, name="Kept Part") as part,
        onboarded_team(live, name="Kept None") as whole,
        onboarded_team(live, name="Paid Now") as paid,
        anonymous(live) as buyer,
    ):
        hold(live, part)
        hold(live, whole)
        account = keep_funds(live, part)
        (part_id, whole_id, paid_id), charge_id = cart_of(
            live, buyer, (part, "20.00"), (whole, "12.00"), (paid, "10.00")
        )

        # 5.00 of 20.00 while held: 4.75 comes off the held 19.00, nothing is reversed.
        seen = preview(part.owner.client, part_id, "5.00")
        assert moves(seen) == ("5.00", "-4.75", "-0.25", "0.00", "4.75")
        made = refund(part.owner.client, part_id, "held-part", amount="5.00")
        assert made.status_code == 201, made.text
        assert made.json()["heldTransferReduced"] == "4.75"
        assert made.json()["stripeReversalId"] is None
        transfer = order_json(part, part_id)["transfer"]
        assert (transfer["status"], transfer["amount"]) == ("held", "14.25")

        # All of the other held order: its transfer is canceled.
        seen = preview(whole.owner.client, whole_id)
        assert moves(seen) == ("12.00", "-11.40", "-0.60", "0.00", "11.40")
        assert refund(whole.owner.client, whole_id, "held-all").status_code == 201
        transfer = order_json(whole, whole_id)["transfer"]
        assert (transfer["status"], transfer["amount"]) == ("canceled", "0.00")
        assert sorted(
            r.amount for r in sdk(live).v1.refunds.list(params={"charge": charge_id}).data
        ) == [500, 1200]
        replay_refund_events(live, charge_id)
        assert order_json(part, part_id)["transfer"]["amount"] == "14.25"

        # Fulfilment releases only what is left; the canceled one is never sent.
        shipped = fulfil(part.seller.client, part_id, status="shipped")
        assert shipped.status_code == 200, shipped.text
        assert shipped.json()["transfer"]["status"] == "sent"
        assert [t["amount"] for t in transfers_to(live, part)] == [1425]
        # A refunded order is not fulfilled, and its canceled transfer is never due.
        assert fulfil(whole.seller.client, whole_id, status="shipped").status_code == 409
        assert transfers_to(live, whole) == []
        assert order_json(whole, whole_id)["transfer"]["status"] == "canceled"
        flow = money(part.owner.client, part_id)
        assert (flow["sentToStore"], flow["commission"], flow["storeBalance"]) == (
            "15.00",
            "0.75",
            "14.25",
        )
        assert stripe_balance(live, account) == 1425 == entry_sum(live, part_id, "store")
        assert entry_sum(live, whole_id, "store") == 0
        for oid in (part_id, whole_id):
            assert_books(live, oid)

        # Once sent, the rest is a reversal of exactly what is left of the transfer.
        advance_clock(live, 3 * DAY)
        seen = preview(part.owner.client, part_id)
        assert moves(seen) == ("15.00", "-14.25", "-0.75", "14.25", "0.00")
        assert refund(part.owner.client, part_id, "sent-rest").status_code == 201
        assert stripe_balance(live, account) == 0 == entry_sum(live, part_id, "store")
        assert order_json(part, part_id)["paymentStatus"] == "refunded"
        assert_books(live, part_id)
        assert order_json(paid, paid_id)["paymentStatus"] == "paid"
        assert [t["amount_reversed"] for t in transfers_to(live, paid)] == [0]


def _refused(admin: httpx.Client, refund_id: int) -> list[dict[str, Any]]:
    listed = admin.get("/api/admin/refunds/refused-reversals")
    assert listed.status_code == 200, listed.text
    return [r for r in listed.json()["data"] if r["id"] == refund_id]


def test_a_refused_reversal_is_shown_to_the_admin_and_made_once_by_reconcile(
    live: LiveServer, cli: Cli
) -> None:
    with (
        onboarded_team(live, name="Sumac") as a,
        onboarded_team(live, name="Carob") as b,
        anonymous(live) as buyer,
        platform_admin(live) as admin,
    ):
        account = keep_funds(live, b)
        (_, b_id), _ = cart_of(live, buyer, (a, "20.00"), (b, "10.00"))
        # Refunded while the store's money is still pending: the buyer's refund is made,
        # Stripe refuses the reversal of the store's transfer (its balance does not cover it).
        made = refund(b.owner.client, b_id, "early", amount="4.00")
        assert made.status_code == 201, made.text
        row = made.json()
        assert row["stripeReversalId"] is None and "refused" in row["error"]
        transfer_id = order_json(b, b_id)["transfer"]["stripeTransferId"]
        assert sdk(live).v1.transfers.retrieve(transfer_id).amount_reversed == 0
        [shown] = _refused(admin.client, row["id"])
        assert (shown["storeId"], shown["reversalRefusals"]) == (b.id, 1)
        assert shown["transferReversed"] == "4.00" and shown["error"] == row["error"]
        assert b.owner.client.get("/api/admin/refunds/refused-reversals").status_code == 403

        advance_clock(live, 3 * DAY)  # the store's funds become available
        done = cli("reconcile")
        assert done.returncode == 0, done.stderr
        assert "refund reversal made" in done.stdout
        assert sdk(live).v1.transfers.retrieve(transfer_id).amount_reversed == 380
        [after] = [r for r in money(b.owner.client, b_id)["refunds"] if r["id"] == row["id"]]
        assert after["stripeReversalId"].startswith("trr_") and after["error"] is None
        assert _refused(admin.client, row["id"]) == []
        assert stripe_balance(live, account) == 570 == entry_sum(live, b_id, "store")
        assert_books(live, b_id)

        # Again, and the webhooks of the reversal: nothing more is reversed or booked.
        before = entries(live, b_id)
        assert cli("reconcile").returncode == 0
        flush(live)
        assert sdk(live).v1.transfers.retrieve(transfer_id).amount_reversed == 380
        assert len(sdk(live).v1.transfers.reversals.list(transfer_id).data) == 1
        assert entries(live, b_id) == before
