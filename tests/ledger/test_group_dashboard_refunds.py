"""A refund made in Stripe's dashboard (directly on the sandbox's API) on a cart's one charge:
shared among the cart's orders once, the shares adding up to the refund exactly, each store's
part moved as Souq's own split refunds move it (its sent transfer reversed, or its held one
lowered); duplicated and shuffled events, Souq's own refunds in between and reconcile run twice
at once book nothing twice."""

from __future__ import annotations

from typing import Any

from tests.carts.test_cart import order_json
from tests.carts.test_holds import hold, transfers_to
from tests.helpers import anonymous
from tests.ledger.money_helpers import assert_invariant, entry_sum, money, refund, stripe_balance
from tests.ledger.test_group_disputes import twice_at_once
from tests.ledger.test_split_refunds import cart_of, keep_funds, replay_refund_events
from tests.payments.stripe_helpers import (
    advance_clock,
    flush,
    onboarded_team,
    sdk,
    wait_for,
)
from tests.servers import LiveServer, cli_for

DAY = 86_400


def rows_of(live: LiveServer, refund_id: str) -> list[tuple[Any, ...]]:
    found = live.rows(
        "SELECT order_id, amount, source, transfer_reversed, commission_refunded, held_reduced, "
        "stripe_reversal_id FROM refund WHERE stripe_refund_id = :id ORDER BY order_id",
        id=refund_id,
    )
    return [tuple(r) for r in found]


def test_a_dashboard_refund_of_a_cart_is_shared_and_moved_once(live: LiveServer) -> None:
    with (
        onboarded_team(live, name="Sent Early") as a,
        onboarded_team(live, name="Held Back") as b,
        onboarded_team(live, name="Sent Too") as c,
        anonymous(live) as buyer,
    ):
        hold(live, b)
        accounts = {team.id: keep_funds(live, team) for team in (a, b, c)}
        (a_id, b_id, c_id), charge_id = cart_of(
            live, buyer, (a, "20.00"), (b, "10.00"), (c, "13.33")
        )
        advance_clock(live, 3 * DAY)  # the stores' funds become available for reversals

        made = sdk(live).v1.refunds.create(params={"charge": charge_id, "amount": 1000})
        flush(live)
        # Pro rata to what each order has left, the cents left over to the largest orders.
        shares = rows_of(live, made.id)
        assert [(oid, amount, source) for oid, amount, source, *_ in shares] == [
            (a_id, 462, "stripe"),
            (b_id, 230, "stripe"),
            (c_id, 308, "stripe"),
        ]
        # The held store's part comes off its held transfer; nothing is reversed from it.
        _, _, _, reversed_b, commission_b, held_b, reversal_b = shares[1]
        assert (held_b, reversal_b) == (reversed_b - commission_b, None)
        transfer = order_json(b, b_id)["transfer"]
        assert (transfer["status"], transfer["amount"]) == ("held", f"{(950 - held_b) / 100:.2f}")

        # The sent ones: their store's part reversed from their transfer, by a job, once.
        wait_for("the reversals", lambda: all(r[6] for r in rows_of(live, made.id)[::2]))
        flush(live)
        settled = rows_of(live, made.id)
        before = {oid: money(team.owner.client, oid) for team, oid in ((a, a_id), (c, c_id))}
        replay_refund_events(live, charge_id)
        again = refund(a.owner.client, a_id, "souq-own", amount="1.00")
        assert again.status_code == 201, again.text
        replay_refund_events(live, charge_id)
        twice_at_once(cli_for(live), "reconcile")
        flush(live)
        assert rows_of(live, made.id) == settled
        for team, oid, row in ((a, a_id, settled[0]), (c, c_id, settled[2])):
            [sent] = transfers_to(live, team)
            reversals = sdk(live).v1.transfers.reversals.list(sent["id"]).data
            ours = [r.amount for r in reversals if r.to_dict()["metadata"].get("souq_refund_id")]
            part = row[3] - row[4]
            assert part in ours and ours.count(part) == 1
            assert stripe_balance(live, accounts[team.id]) == entry_sum(live, oid, "store")
        flow = money(c.owner.client, c_id)
        assert flow == before[c_id]
        assert flow["refunded"] == "3.08"
        for team, oid in ((a, a_id), (b, b_id), (c, c_id)):
            assert order_json(team, oid)["paymentStatus"] == "partially_refunded"
            assert_invariant(live, oid)
        assert sum(r[1] for r in rows_of(live, made.id)) == 1000
        assert live.scalar("SELECT count(*) FROM refund WHERE order_id = :id", id=a_id) == 2
        assert live.scalar("SELECT count(*) FROM refund WHERE order_id = :id", id=c_id) == 1
