"""A payout that does not reach the store's bank, made as Stripe's test mode makes one (the
account's bank account is one of Stripe's failing test numbers): the orders it carried are no
longer paid out, their money is back on the store's balance, the store and platform admins are
told, and the next payout (after the store gives a working bank account) carries it again,
whatever order the `payout.*` events arrive in."""

from __future__ import annotations

from typing import Any

from tests.ledger.money_helpers import assert_invariant, entry_sum, money, paid_order
from tests.ledger.money_helpers import stripe_balance as balance_at_stripe
from tests.notifications.support import messages
from tests.payments.stripe_helpers import (
    advance_clock,
    control,
    deliver,
    flush,
    onboarded_team,
    platform_admin,
    sdk,
)
from tests.servers import LiveServer

DAY = 86_400


def _cents(amount: str) -> int:
    return round(float(amount) * 100)


def _payout_events(live: LiveServer, account: str) -> list[dict[str, Any]]:
    found = sdk(live).v1.events.list(params={"limit": 100}, options={"stripe_account": account})
    return [e.to_dict() for e in found.data if e.type.startswith("payout.")]


def _counts(live: LiveServer, store_id: int, payout_id: str) -> tuple[int, int, int]:
    return (
        live.scalar(
            "SELECT count(*) FROM ledger_entry WHERE kind LIKE 'payout%' AND store_id = :s",
            s=store_id,
        ),
        len(_told(live, payout_id)),
        live.scalar("SELECT count(*) FROM store_payout WHERE store_id = :s", s=store_id),
    )


def _told(live: LiveServer, payout_id: str) -> list[dict[str, Any]]:
    found = messages(live, kind="payout_failed")
    return [m for m in found if m["key"].startswith(f"payout-{payout_id}-failed/")]


def test_a_failed_payout_puts_the_money_back_and_the_next_one_carries_it(
    live: LiveServer,
) -> None:
    with onboarded_team(live, name="Closed Bank") as team, platform_admin(live) as admin:
        first = paid_order(live, team, price="12.34")
        account = first.account_id
        control(live, f"/accounts/{account}/bank_account", {"account_number": "000111111113"})
        second = paid_order(live, team, price="5.00", quantity=1)
        orders = (first.id, second.id)
        owed = {oid: entry_sum(live, oid, "store") for oid in orders}
        advance_clock(live, 3 * DAY)  # available and paid out: in transit to a closed account
        flush(live)
        [payout] = sdk(live).v1.payouts.list(options={"stripe_account": account}).data
        assert payout.amount == sum(owed.values())
        assert all(money(team.owner.client, oid)["paidOut"] != "0.00" for oid in orders)

        advance_clock(live, DAY)  # the bank refuses it
        flush(live)
        failed = sdk(live).v1.payouts.retrieve(payout.id, options={"stripe_account": account})
        assert (failed.status, failed.failure_code) == ("failed", "account_closed")
        for oid in orders:
            flow = money(team.owner.client, oid)
            [line] = flow["payouts"]
            assert (line["stripePayoutId"], line["status"]) == (payout.id, "failed")
            assert line["failureCode"] == "account_closed" and line["failureMessage"]
            assert _cents(line["amount"]) == owed[oid]  # what it took, now given back
            assert flow["paidOut"] == "0.00"
            assert _cents(flow["storeBalance"]) == owed[oid]
            assert_invariant(live, oid)
        assert balance_at_stripe(live, account) == sum(owed.values())
        told = {m["to_email"] for m in _told(live, payout.id)}
        assert {team.owner.email, admin.email} <= told
        assert (
            live.scalar(
                "SELECT count(*) FROM webhook_event WHERE type = 'payout.failed' AND key = :k",
                k=f"payout-{payout.id}-failed",
            )
            == 1
        )

        # Platform admins list failed payouts; a store's owner may not.
        listed = admin.client.get(f"/api/admin/payouts?status=failed&storeId={team.id}")
        assert listed.status_code == 200, listed.text
        [row] = listed.json()["data"]
        assert (row["stripePayoutId"], row["amount"], row["failureCode"]) == (
            payout.id,
            payout.amount,
            "account_closed",
        )
        paid = admin.client.get(f"/api/admin/payouts?status=paid&storeId={team.id}")
        assert paid.json()["data"] == []
        assert team.owner.client.get("/api/admin/payouts").status_code == 403
        assert admin.client.get("/api/admin/payouts?status=lost").status_code == 422
        statement = team.owner.client.get(f"/api/stores/{team.id}/statements").json()
        [shown] = statement["payouts"]
        assert (shown["status"], shown["failureCode"]) == ("failed", "account_closed")
        assert sum(r["payouts"] for r in statement["data"]) == 0

        # Every payout event again, the failure first: nothing is booked or told twice.
        before = _counts(live, team.id, payout.id)
        for event in _payout_events(live, account) * 2:
            assert deliver(live, event, connect=True).status_code == 200
        assert _counts(live, team.id, payout.id) == before
        _retry_carries_the_money(live, team, account, payout.id, owed)


def _retry_carries_the_money(
    live: LiveServer, team: Any, account: str, failed_id: str, owed: dict[int, int]
) -> None:
    """A working bank account: the next payout takes the money back, to the same orders."""
    control(live, f"/accounts/{account}/bank_account", {"account_number": "000123456789"})
    advance_clock(live, 60)
    [retry] = (
        sdk(live)
        .v1.payouts.list(params={"status": "in_transit"}, options={"stripe_account": account})
        .data
    )
    assert retry.amount == sum(owed.values())
    created = [e for e in _payout_events(live, account) if e["data"]["object"]["id"] == retry.id]
    assert deliver(live, created[0], connect=True).status_code == 200
    flush(live)
    advance_clock(live, DAY)
    flush(live)
    for oid, amount in owed.items():
        flow = money(team.owner.client, oid)
        assert [(p["stripePayoutId"], p["status"]) for p in flow["payouts"]] == [
            (failed_id, "failed"),
            (retry.id, "paid"),
        ]
        assert _cents(flow["paidOut"]) == amount
        assert flow["storeBalance"] == "0.00"
        assert_invariant(live, oid)
    assert balance_at_stripe(live, account) == 0
    statement = team.owner.client.get(f"/api/stores/{team.id}/statements").json()
    lines = {p["stripePayoutId"]: p for p in statement["payouts"]}
    assert (lines[retry.id]["fromOrders"], lines[retry.id]["unattributed"]) == (retry.amount, 0)
    assert sum(r["payouts"] for r in statement["data"]) == retry.amount


def test_the_next_payout_heard_before_the_failure_is_traced_all_the_same(
    live: LiveServer,
) -> None:
    with onboarded_team(live, name="Late News") as team:
        order = paid_order(live, team, price="7.00", quantity=1)
        account = order.account_id
        owed = entry_sum(live, order.id, "store")
        control(live, f"/accounts/{account}/bank_account", {"account_number": "000111111116"})
        advance_clock(live, 3 * DAY)
        advance_clock(live, DAY)  # created and failed; Souq has heard of neither yet
        control(live, f"/accounts/{account}/bank_account", {"account_number": "000123456789"})
        advance_clock(live, 60)
        events = _payout_events(live, account)  # newest first: the retry's created comes first
        assert [e["type"] for e in events] == ["payout.created", "payout.failed", "payout.created"]
        for event in events:  # the new payout, then the failure, then the failed one's creation
            assert deliver(live, event, connect=True).status_code == 200
        flush(live)
        failed_id, retry_id = events[1]["data"]["object"]["id"], events[0]["data"]["object"]["id"]
        flow = money(team.owner.client, order.id)
        assert [(p["stripePayoutId"], p["status"]) for p in flow["payouts"]] == [
            (failed_id, "failed"),
            (retry_id, "in_transit"),
        ]
        assert (_cents(flow["paidOut"]), flow["storeBalance"]) == (owed, "0.00")
        assert_invariant(live, order.id)
        unexplained = live.scalar(
            "SELECT unattributed FROM store_payout WHERE stripe_payout_id = :p", p=retry_id
        )
        assert unexplained == 0
