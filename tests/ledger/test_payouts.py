"""Every cent traced to the store's bank: the sandbox pays a connected account's available
balance out (its daily schedule, on its own clock), Souq reads what the payout paid out and
links each order's money to it, in the money view, the statement and the terminal."""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.carts.test_holds import paid_cart
from tests.helpers import anonymous
from tests.ledger.money_helpers import entry_sum, money, paid_order, refund, stripe_balance
from tests.payments.stripe_helpers import (
    advance_clock,
    deliver,
    flush,
    listing,
    onboarded_team,
    payments_status,
    sdk,
)
from tests.servers import Cli, LiveServer

DAY = 86_400


def _statement(client: Any, store_id: int) -> dict[str, Any]:
    response = client.get(f"/api/stores/{store_id}/statements")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_payout_links_every_order_to_it_and_the_sums_match(live: LiveServer, cli: Cli) -> None:
    with (
        onboarded_team(live, name="Bank Bound") as team,
        onboarded_team(live, name="Other Cart Store") as other,
        anonymous(live) as buyer,
    ):
        account = payments_status(team)["stripeAccountId"]
        first = paid_order(live, team, price="19.99")
        second = paid_order(live, team, price="5.00", quantity=1)
        # Part of the first is refunded: a reversal and a commission refund on the account.
        assert refund(team.owner.client, first.id, "part", amount="10.00").status_code == 201
        # A split cart: this store's share arrives by a transfer of its own.
        cart = paid_cart(live, buyer, listing(team, price="8.00"), listing(other, price="3.00"))
        split_id = next(o["orderId"] for o in cart["orders"] if o["storeId"] == team.id)
        orders = (first.id, second.id, split_id)
        owed = {oid: entry_sum(live, oid, "store") for oid in orders}
        assert stripe_balance(live, account) == sum(owed.values())

        advance_clock(live, 3 * DAY)  # available, and paid out by the daily schedule
        flush(live)
        [payout] = sdk(live).v1.payouts.list(options={"stripe_account": account}).data
        assert payout.amount == sum(owed.values())
        for oid in orders:
            flow = money(team.owner.client, oid)
            assert [p["stripePayoutId"] for p in flow["payouts"]] == [payout.id]
            assert flow["payouts"][0]["status"] == "in_transit"
            assert flow["paidOut"] == flow["payouts"][0]["amount"]
            assert flow["storeBalance"] == "0.00"
        assert stripe_balance(live, account) == 0

        advance_clock(live, DAY)  # the payout reaches the bank
        flush(live)
        shares = {}
        for oid in orders:
            flow = money(team.owner.client, oid)
            [line] = flow["payouts"]
            assert line["status"] == "paid" and line["arrivalDate"] is not None
            shares[oid] = round(float(line["amount"]) * 100)
        assert shares == owed  # each order's share, to the cent
        assert sum(shares.values()) == payout.amount
        # The payout's events again change nothing.
        before = live.scalar("SELECT count(*) FROM ledger_entry WHERE kind = 'payout'")
        events = sdk(live).v1.events.list(
            params={"limit": 100}, options={"stripe_account": account}
        )
        replayed = [e.to_dict() for e in events.data if e.type.startswith("payout.")]
        assert {e["type"] for e in replayed} == {"payout.created", "payout.paid"}
        for event in reversed(replayed):
            assert deliver(live, event, connect=True).status_code == 200
        flush(live)
        assert live.scalar("SELECT count(*) FROM ledger_entry WHERE kind = 'payout'") == before

        statement = _statement(team.owner.client, team.id)
        [line] = [p for p in statement["payouts"] if p["stripePayoutId"] == payout.id]
        assert (line["orders"], line["fromOrders"], line["unattributed"]) == (
            3,
            payout.amount,
            0,
        )
        assert (line["amount"], line["status"]) == (payout.amount, "paid")
        assert sum(r["payouts"] for r in statement["data"]) == payout.amount
        # The other store's statement shows its own payout (its cart share), never this one.
        theirs = _statement(other.owner.client, other.id)["payouts"]
        assert [(p["orders"], p["fromOrders"]) for p in theirs] == [(1, 300 - 15)]
        assert payout.id not in [p["stripePayoutId"] for p in theirs]
        # The statement page lists the same payout: arrival day, amount, status, orders.
        page = team.owner.client.get(f"/dashboard/statements?storeId={team.id}")
        assert page.status_code == 200, page.text
        row = page.text.split(f'<tr data-payout="{payout.id}">')[1].split("</tr>")[0]
        arrival = line["arrivalDate"]
        cells = [c.split("</td>")[0] for c in row.split("<td")[1:]]
        assert cells == [
            f">{arrival}",
            f' class="num">${payout.amount / 100:.2f}',
            ' data-status="paid">paid',
            ' class="num">3',
        ]
        their_page = other.owner.client.get(f"/dashboard/statements?storeId={other.id}").text
        assert payout.id not in their_page
        assert their_page.count("<tr data-payout=") == 1

        shown = cli("report", "statement", str(team.id))
        assert shown.returncode == 0, shown.stderr
        assert payout.id in shown.stdout
        as_csv = cli("report", "statement", str(team.id), "--csv")
        assert as_csv.returncode == 0, as_csv.stderr
        blocks = as_csv.stdout.strip().split("\n\n")
        payouts_csv = list(csv.DictReader(io.StringIO(blocks[-1])))
        assert [(p["stripe_payout_id"], int(p["from_orders"])) for p in payouts_csv] == [
            (payout.id, payout.amount)
        ]
