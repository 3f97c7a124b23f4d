"""Disputes of a cart's one charge across stores (separate charges and transfers): the dispute
booked on every order of the cart, each with its share; what a lost dispute takes back made
once per store (a reversal of a sent transfer, or a held transfer lowered); a won one gives it
back; the webhooks duplicated and shuffled and the recovery run twice at once change nothing."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from souq.db import engine_for, session_factory
from souq.ledger.evidence import submit_staged
from souq.ledger.models import Dispute
from souq.payments.stripe import StripeGateway
from tests.carts.test_cart import add, checkout, order_json
from tests.carts.test_holds import fulfil, hold, transfers_to
from tests.helpers import StoreTeam, anonymous
from tests.ledger.money_helpers import assert_invariant, entry_sum, money, stripe_balance
from tests.ledger.test_split_refunds import keep_funds
from tests.payments.stripe_helpers import (
    advance_clock,
    deliver,
    flush,
    listing,
    onboarded_team,
    pay,
    platform_admin,
    sdk,
    wait_for,
)
from tests.servers import Cli, LiveServer, cli_for

DISPUTE_CARD = "4000000000000259"
DAY = 86_400


def disputed_cart(
    live: LiveServer, buyer: httpx.Client, *parts: tuple[StoreTeam, str]
) -> tuple[list[int], str]:
    """One listing of each store at its price, paid in one cart with the card the buyer's
    bank disputes: the orders, the Stripe dispute."""
    for team, price in parts:
        add(buyer, listing(team, price=price))
    started = checkout(buyer)
    assert started.status_code == 200, started.text
    assert pay(live, started.json()["url"], card=DISPUTE_CARD).status_code == 200
    flush(live)
    order_ids = [o["orderId"] for o in started.json()["orders"]]
    found = {d["orderId"]: d for d in disputes_of(parts[0][0], order_ids[0])}
    return order_ids, found[order_ids[0]]["stripeDisputeId"]


def disputes_of(team: StoreTeam, order_id: int) -> list[dict[str, Any]]:
    listed = team.owner.client.get(f"/api/orders/{order_id}/disputes")
    assert listed.status_code == 200, listed.text
    rows: list[dict[str, Any]] = listed.json()["data"]
    return rows


def dispute_of(team: StoreTeam, order_id: int) -> dict[str, Any]:
    [row] = disputes_of(team, order_id)
    return row


def recovery_entries(live: LiveServer, order_id: int) -> list[tuple[Any, ...]]:
    rows = live.rows(
        "SELECT kind, amount FROM ledger_entry WHERE order_id = :id AND party = 'store' "
        "AND kind IN ('dispute_recovery', 'dispute_return') ORDER BY id",
        id=order_id,
    )
    return [tuple(r) for r in rows]


def replay_dispute_events(live: LiveServer, dispute_id: str) -> None:
    """Every event of the dispute delivered again, newest first."""
    found = [e.to_dict() for e in sdk(live).v1.events.list(params={"limit": 100}).data]
    wanted = [
        e
        for e in found
        if e["type"].startswith("charge.dispute.") and e["data"]["object"]["id"] == dispute_id
    ]
    assert len(wanted) >= 2
    for event in wanted:
        assert deliver(live, event).status_code == 200
    flush(live)


def twice_at_once(cli: Cli, *args: str) -> None:
    done: list[int] = []
    runs = [threading.Thread(target=lambda: done.append(cli(*args).returncode)) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert done == [0, 0]


def test_a_lost_cart_dispute_is_shared_and_recovered_once_per_store(live: LiveServer) -> None:
    with (
        onboarded_team(live, name="Anise") as a,
        onboarded_team(live, name="Basil") as b,
        onboarded_team(live, name="Cumin") as c,
        anonymous(live) as buyer,
    ):
        hold(live, b)
        accounts = {team.id: keep_funds(live, team) for team in (a, b, c)}
        (a_id, b_id, c_id), dispute_id = disputed_cart(
            live, buyer, (a, "20.00"), (b, "10.00"), (c, "13.33")
        )
        rows = {oid: dispute_of(t, oid) for t, oid in ((a, a_id), (b, b_id), (c, c_id))}
        # The amount is each order's total; Stripe's 15.00 fee is shared pro rata, the cent
        # left over going to the largest order, so the shares add up to the fee exactly.
        assert [(r["amount"], r["fee"]) for r in rows.values()] == [
            ("20.00", "6.93"),
            ("10.00", "3.46"),
            ("13.33", "4.61"),
        ]
        assert {r["stripeDisputeId"] for r in rows.values()} == {dispute_id}
        for team, oid in ((a, a_id), (b, b_id), (c, c_id)):
            assert order_json(team, oid)["paymentStatus"] == "disputed"
            listed = team.seller.client.get(f"/api/stores/{team.id}/disputes").json()["data"]
            assert [r["orderId"] for r in listed] == [oid]
            assert_invariant(live, oid)
        flow = money(a.owner.client, a_id)
        assert (flow["disputed"], flow["disputeFees"], flow["netPaid"]) == ("20.00", "6.93", "0.00")
        # Each store's managers were told once, about their own order.
        for team in (a, b, c):
            told = live.scalar(
                "SELECT count(*) FROM mail_message WHERE kind = 'store_order_disputed' "
                "AND to_email = :email",
                email=team.owner.email,
            )
            assert told == 1

        # The buyer's bank decides against the platform while the money is still pending:
        # Stripe refuses the reversals; the held store's transfer is lowered at once.
        sdk(live).v1.disputes.close(dispute_id)
        flush(live)
        b_row = dispute_of(b, b_id)
        assert (b_row["status"], b_row["heldTransferReduced"]) == ("lost", "9.50")
        transfer = order_json(b, b_id)["transfer"]
        assert (transfer["status"], transfer["amount"]) == ("canceled", "0.00")
        assert transfers_to(live, b) == []

        advance_clock(live, 3 * DAY)  # the stores' funds become available
        replay_dispute_events(live, dispute_id)
        twice_at_once(cli_for(live), "disputes", "recover")
        replay_dispute_events(live, dispute_id)
        flush(live)
        for team, oid in ((a, a_id), (c, c_id)):
            [sent] = transfers_to(live, team)
            # The store gives back all it netted from the order: reversed once.
            assert sent["amount_reversed"] == sent["amount"]
            assert len(sdk(live).v1.transfers.reversals.list(sent["id"]).data) == 1
            assert recovery_entries(live, oid) == [("dispute_recovery", -sent["amount"])]
            assert (
                dispute_of(team, oid)["recoveredFromStore"]
                == money(team.owner.client, oid)["reversedFromStore"]
            )
            assert stripe_balance(live, accounts[team.id]) == 0 == entry_sum(live, oid, "store")
        for team, oid in ((a, a_id), (b, b_id), (c, c_id)):
            assert order_json(team, oid)["paymentStatus"] == "disputed"
            assert len(disputes_of(team, oid)) == 1
            assert_invariant(live, oid)
        assert entry_sum(live, b_id, "store") == 0


def test_funds_withdrawn_then_won_lowers_the_unsent_transfers_then_restores_them(
    live: LiveServer,
) -> None:
    with (
        onboarded_team(live, name="Sent Store") as a,
        onboarded_team(live, name="Held Store") as b,
        anonymous(live) as buyer,
        platform_admin(live) as admin,
    ):
        hold(live, b)
        for team in (a, b):
            put = admin.client.put(
                f"/api/admin/stores/{team.id}/loss-policy",
                json={"disputeRecoveryOn": "funds_withdrawn"},
            )
            assert put.status_code == 200, put.text
        account = keep_funds(live, a)
        # The funds are withdrawn with the payment: neither store's transfer is sent for the
        # disputed money (the held one is lowered, the other never made), nothing reversed.
        (a_id, b_id), dispute_id = disputed_cart(live, buyer, (a, "30.00"), (b, "10.00"))
        for team, oid, share in ((a, a_id, "28.50"), (b, b_id, "9.50")):
            row = dispute_of(team, oid)
            assert (row["heldTransferReduced"], row["recoveredFromStore"]) == (share, share)
            transfer = order_json(team, oid)["transfer"]
            assert (transfer["status"], transfer["amount"]) == ("canceled", "0.00")
            assert transfers_to(live, team) == []
            assert_invariant(live, oid)

        # Each store answers for its own order: staged at Stripe until both did, then sent.
        first = a.owner.client.post(
            f"/api/orders/{a_id}/disputes/{dispute_of(a, a_id)['id']}/evidence",
            json={"text": "Delivered with a signature."},
        )
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "needs_response"
        staged = sdk(live).v1.disputes.retrieve(dispute_id)
        assert staged.status == "needs_response"
        assert "Delivered with a signature." in (staged.evidence.uncategorized_text or "")
        second = b.owner.client.post(
            f"/api/orders/{b_id}/disputes/{dispute_of(b, b_id)['id']}/evidence",
            json={"text": "Not shipped yet; held."},
        )
        assert second.status_code == 200, second.text
        assert second.json()["status"] == "under_review"
        text = sdk(live).v1.disputes.retrieve(dispute_id).evidence.uncategorized_text or ""
        assert "Sent Store" in text and "Held Store" in text and "held." in text

        # The bank decides for the platform: the amount comes back, and each store's share
        # with it, once, however often the events arrive; the unheld one is sent.
        sdk(live).v1.disputes.update(
            dispute_id, params={"evidence": {"uncategorized_text": "winning_evidence"}}
        )
        flush(live)
        replay_dispute_events(live, dispute_id)
        wait_for("the transfer", lambda: len(transfers_to(live, a)) == 1)
        flush(live)
        assert [t["amount"] for t in transfers_to(live, a)] == [2850]
        assert order_json(a, a_id)["transfer"]["status"] == "sent"
        b_row = dispute_of(b, b_id)
        assert (b_row["status"], b_row["heldTransferReduced"]) == ("won", "0.00")
        transfer = order_json(b, b_id)["transfer"]
        assert (transfer["status"], transfer["amount"]) == ("held", "9.50")
        for team, oid in ((a, a_id), (b, b_id)):
            assert order_json(team, oid)["paymentStatus"] == "paid"
            flow = money(team.owner.client, oid)
            assert flow["netPaid"] == flow["charged"]
            assert recovery_entries(live, oid) == []
            assert_invariant(live, oid)
        assert stripe_balance(live, account) == 2850 == entry_sum(live, a_id, "store")

        # Stripe keeps `charge.disputed` true after the win; the held store's money still goes
        # once the order ships.
        shipped = fulfil(b.owner.client, b_id, status="shipped")
        assert shipped.status_code == 200, shipped.text
        wait_for("the held transfer", lambda: len(transfers_to(live, b)) == 1)
        assert [t["amount"] for t in transfers_to(live, b)] == [950]
        assert order_json(b, b_id)["transfer"]["status"] == "sent"
        assert_invariant(live, b_id)


def _submit_staged(live: LiveServer) -> int:
    """The hourly job's last step, as a worker runs it."""

    async def run() -> int:
        engine = engine_for(live.settings)
        try:
            return await submit_staged(session_factory(engine), StripeGateway(live.settings))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_staged_cart_evidence_is_submitted_a_day_before_the_deadline_if_a_store_is_silent(
    live: LiveServer,
) -> None:
    with (
        onboarded_team(live, name="Answering Store") as a,
        onboarded_team(live, name="Silent Store") as b,
        anonymous(live) as buyer,
    ):
        (a_id, b_id), dispute_id = disputed_cart(live, buyer, (a, "30.00"), (b, "10.00"))
        answered = a.owner.client.post(
            f"/api/orders/{a_id}/disputes/{dispute_of(a, a_id)['id']}/evidence",
            json={"text": "Delivered with a signature."},
        )
        assert answered.status_code == 200, answered.text
        # Days ahead of the deadline the answer stays staged: the silent store may still speak.
        assert _submit_staged(live) == 0
        assert sdk(live).v1.disputes.retrieve(dispute_id).status == "needs_response"

        soon = datetime.now(UTC) + timedelta(hours=12)
        with live.db.begin() as conn:
            conn.execute(
                sa.update(Dispute)
                .where(Dispute.stripe_dispute_id == dispute_id)
                .values(evidence_due_by=soon)
            )
        assert _submit_staged(live) == 1
        submitted = sdk(live).v1.disputes.retrieve(dispute_id)
        assert submitted.status == "under_review"
        text = submitted.evidence.uncategorized_text or ""
        assert "Answering Store" in text and "Delivered with a signature." in text
        assert "Silent Store" not in text
        for team, oid in ((a, a_id), (b, b_id)):
            assert dispute_of(team, oid)["status"] == "under_review"
        # Submitted once: the next runs find nothing to do.
        assert _submit_staged(live) == 0
