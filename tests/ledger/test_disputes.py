"""Disputes from the sandbox's dispute card: booked, answered through Souq, and the store's
share recovered once when lost."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import error_code
from tests.ledger.money_helpers import (
    PaidOrder,
    assert_invariant,
    entry_sum,
    money,
    paid_order,
    stripe_balance,
)
from tests.payments.stripe_helpers import (
    advance_clock,
    flush,
    onboarded_team,
    order,
    platform_admin,
    sdk,
    wait_for,
)
from tests.servers import Cli, LiveServer

DISPUTE_CARD = "4000000000000259"


def _disputed(live: LiveServer, team: Any) -> tuple[PaidOrder, dict[str, Any]]:
    account = team.owner.client.get(f"/api/stores/{team.id}/payments").json()["stripeAccountId"]
    # Manual payouts: the store's funds stay on its balance, where a reversal can reach them.
    sdk(live).v1.accounts.update(
        account, params={"settings": {"payouts": {"schedule": {"interval": "manual"}}}}
    )
    paid = paid_order(live, team, card=DISPUTE_CARD)
    listed = team.owner.client.get(f"/api/orders/{paid.id}/disputes")
    assert listed.status_code == 200, listed.text
    [dispute] = listed.json()["data"]
    return paid, dispute


def _recovered(live: LiveServer, order_id: int) -> int:
    total: int = live.scalar(
        "SELECT coalesce(sum(recovered_amount), 0) FROM dispute WHERE order_id = :id",
        id=order_id,
    )
    return total


def _answer(team: Any, paid: PaidOrder, dispute: dict[str, Any], text: str) -> Any:
    return team.owner.client.post(
        f"/api/orders/{paid.id}/disputes/{dispute['id']}/evidence", json={"text": text}
    )


def test_a_lost_dispute_takes_the_stores_share_back_once(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        paid, dispute = _disputed(live, team)
        assert (dispute["status"], dispute["reason"]) == ("needs_response", "fraudulent")
        assert (dispute["amount"], dispute["fee"]) == ("39.98", "15.00")
        assert dispute["evidenceDueBy"] is not None
        flow = money(team.owner.client, paid.id)
        assert (flow["disputed"], flow["disputeFees"], flow["netPaid"]) == (
            "39.98",
            "15.00",
            "0.00",
        )
        assert flow["storeBalance"] == "37.98"  # nothing recovered before the dispute is lost
        assert_invariant(live, paid.id)
        assert order(live, paid.id)["payment_status"] == "disputed"
        assert team.owner.client.get(f"/api/orders/{paid.id}").json()["paymentStatus"] == (
            "disputed"
        )

        advance_clock(live, 3 * 86400)  # the store's funds become available
        lost = _answer(team, paid, dispute, "losing_evidence")
        assert lost.status_code == 200, lost.text
        assert lost.json()["status"] == "lost"
        # The store gives back what it netted (the commission goes back with it); the
        # platform bears Stripe's dispute fee (the default policy).
        assert lost.json()["recoveredFromStore"] == "37.98"
        flush(live)
        flush(live)
        assert (
            live.scalar(
                "SELECT count(*) FROM ledger_entry WHERE order_id = :id AND kind = "
                "'dispute_recovery' AND party = 'store'",
                id=paid.id,
            )
            == 1
        )
        transfers = sdk(live).v1.transfers.list(params={"destination": paid.account_id}).data
        assert sum(t.amount_reversed for t in transfers) == 3798
        # Lost: the buyer's bank took the money back for good, the order stays disputed.
        assert order(live, paid.id)["payment_status"] == "disputed"
        flow = money(team.owner.client, paid.id)
        assert flow["storeBalance"] == "0.00" and flow["reversedFromStore"] == "37.98"
        assert stripe_balance(live, paid.account_id) == 0 == entry_sum(live, paid.id, "store")
        assert_invariant(live, paid.id)
        again = _answer(team, paid, dispute, "more evidence")
        assert again.status_code == 409 and error_code(again) == "dispute_closed"


def test_a_won_dispute_gives_the_amount_back_and_takes_nothing_from_the_store(
    live: LiveServer,
) -> None:
    with onboarded_team(live) as team:
        paid, dispute = _disputed(live, team)
        assert (
            team.seller.client.post(
                f"/api/orders/{paid.id}/disputes/{dispute['id']}/evidence", json={"text": "x"}
            ).status_code
            == 403
        )
        won = _answer(team, paid, dispute, "winning_evidence")
        assert won.status_code == 200, won.text
        assert (won.json()["status"], won.json()["recoveredFromStore"]) == ("won", "0.00")
        flush(live)
        assert order(live, paid.id)["payment_status"] == "paid"
        flow = money(team.owner.client, paid.id)
        assert (flow["disputeReinstated"], flow["netPaid"]) == ("39.98", "39.98")
        assert flow["storeBalance"] == "37.98"
        assert stripe_balance(live, paid.account_id) == 3798 == entry_sum(live, paid.id, "store")
        assert_invariant(live, paid.id)


def test_funds_withdrawn_then_reinstated_recovers_once_and_gives_it_back_once(
    live: LiveServer,
) -> None:
    with onboarded_team(live) as team, platform_admin(live) as admin:
        policy = {"disputeRecoveryOn": "funds_withdrawn"}
        put = admin.client.put(f"/api/admin/stores/{team.id}/loss-policy", json=policy)
        assert put.status_code == 200, put.text
        account = team.owner.client.get(f"/api/stores/{team.id}/payments").json()["stripeAccountId"]
        sdk(live).v1.accounts.update(
            account, params={"settings": {"payouts": {"schedule": {"interval": "manual"}}}}
        )
        # Paid with the card whose funds are available at once: they cover the reversal.
        earlier = paid_order(live, team, card="4000000000000077")
        paid, dispute = _disputed(live, team)
        # Taken as the funds were withdrawn, by the job queued after the webhook's commit.
        wait_for("the recovery", lambda: _recovered(live, paid.id) == 3798)
        flush(live)
        won = _answer(team, paid, dispute, "winning_evidence")
        assert won.status_code == 200, won.text
        flush(live)
        flush(live)
        kinds = [
            tuple(r)
            for r in live.rows(
                "SELECT kind, amount FROM ledger_entry WHERE order_id = :id AND party = 'store' "
                "AND kind IN ('dispute_recovery', 'dispute_return') ORDER BY id",
                id=paid.id,
            )
        ]
        assert kinds == [("dispute_recovery", -3798), ("dispute_return", 3798)]
        flow = money(team.owner.client, paid.id)
        assert (flow["storeBalance"], flow["netPaid"]) == ("37.98", "39.98")
        total = entry_sum(live, paid.id, "store") + entry_sum(live, earlier.id, "store")
        assert stripe_balance(live, paid.account_id) == total
        assert_invariant(live, paid.id)


@pytest.mark.fresh_server
def test_a_refused_recovery_is_shown_to_the_admin_and_made_once_by_a_retry(
    live: LiveServer, cli: Cli
) -> None:
    with onboarded_team(live) as team, platform_admin(live) as admin:
        paid, dispute = _disputed(live, team)
        # Lost while the store's funds are still pending: Stripe refuses the reversal.
        lost = _answer(team, paid, dispute, "losing_evidence")
        assert lost.status_code == 200, lost.text
        body = lost.json()
        assert (body["recoveredFromStore"], body["recoveryDue"]) == ("0.00", "37.98")
        assert body["recoveryAttempts"] >= 1 and "balance" in body["recoveryError"].lower()
        flush(live)
        due = admin.client.get("/api/admin/disputes/recoveries")
        assert due.status_code == 200, due.text
        [shown] = [d for d in due.json()["data"] if d["id"] == dispute["id"]]
        assert shown["recoveryError"] == body["recoveryError"]
        assert team.owner.client.get("/api/admin/disputes/recoveries").status_code == 403
        assert admin.client.post("/api/admin/disputes/999999/recover").status_code == 404

        advance_clock(live, 3 * 86400)  # the store's funds become available
        retried = admin.client.post(f"/api/admin/disputes/{dispute['id']}/recover")
        assert retried.status_code == 200, retried.text
        assert retried.json()["outcome"] == "recovered"
        assert retried.json()["dispute"]["recoveredFromStore"] == "37.98"
        assert retried.json()["dispute"]["recoveryError"] is None
        # Nothing is due any more: the command, the admin and the job make nothing twice.
        done = cli("disputes", "recover")
        assert done.returncode == 0, done.stderr
        again = admin.client.post(f"/api/admin/disputes/{dispute['id']}/recover")
        assert again.json()["outcome"] == "nothing"
        due = admin.client.get("/api/admin/disputes/recoveries").json()["data"]
        assert dispute["id"] not in [d["id"] for d in due]
        transfers = sdk(live).v1.transfers.list(params={"destination": paid.account_id}).data
        assert sum(t.amount_reversed for t in transfers) == 3798
        assert stripe_balance(live, paid.account_id) == 0 == entry_sum(live, paid.id, "store")
        assert_invariant(live, paid.id)


def test_a_stores_disputes_list_the_unanswered_first(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        answered, first = _disputed(live, team)
        waiting, _ = _disputed(live, team)
        assert _answer(team, answered, first, "winning_evidence").status_code == 200
        listed = team.seller.client.get(f"/api/stores/{team.id}/disputes")
        assert listed.status_code == 200, listed.text
        rows = listed.json()["data"]
        assert [(r["orderId"], r["status"]) for r in rows] == [
            (waiting.id, "needs_response"),
            (answered.id, "won"),
        ]
        assert rows[0]["evidenceDueBy"] is not None
        # Another store's member sees none of them.
        with onboarded_team(live, name="Elsewhere") as other:
            assert other.owner.client.get(f"/api/stores/{team.id}/disputes").status_code == 404
