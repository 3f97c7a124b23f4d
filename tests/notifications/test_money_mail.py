"""What money after the sale tells whom: refunds, disputes (and the reminder before their
evidence deadline), refused transfers and Stripe events whose processing gave up. Real flows
through the sandbox over HTTP; duplicated webhooks tell nobody twice."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from souq.db import engine_for, session_factory
from souq.jobs import JobContext
from souq.ledger.models import Dispute
from souq.ledger.tasks import remind_disputes
from souq.payments.stripe import StripeGateway
from souq.payments.webhooks import EVENT_ATTEMPTS
from tests.carts.test_cart import order_json, refused_transfer_checkout
from tests.helpers import StoreTeam, anonymous
from tests.integrations.test_webhooks import register, verified
from tests.ledger.money_helpers import paid_order, refund
from tests.notifications.support import buy, messages, receiver, wait_until
from tests.payments.stripe_helpers import (
    clear_faults,
    completed_event,
    deliver,
    flush,
    onboarded_team,
    platform_admin,
    sdk,
    set_faults,
)
from tests.servers import LiveServer

DISPUTE_CARD = "4000000000000259"


def _to(live: LiveServer, kind: str) -> list[str]:
    return sorted(m["to_email"] for m in messages(live, kind=kind))


def _events(live: LiveServer, type_: str, store_id: int) -> list[dict[str, Any]]:
    rows = live.rows(
        "SELECT key, payload FROM webhook_event WHERE type = :t AND store_id = :s ORDER BY id",
        t=type_,
        s=store_id,
    )
    return [
        {"key": row.key, "payload": json.loads(row.payload)}
        if isinstance(row.payload, str)
        else {"key": row.key, "payload": row.payload}
        for row in rows
    ]


def _managers(team: StoreTeam) -> list[str]:
    return sorted([team.owner.email, team.admin.email])


def test_a_refund_tells_the_buyer_the_managers_and_endpoints_once(live: LiveServer) -> None:
    with onboarded_team(live) as team, receiver() as hooks:
        endpoint = register(team, hooks.url, ["order.refunded"])
        paid = paid_order(live, team)
        buyer = live.scalar("SELECT customer_email FROM orders WHERE id = :i", i=paid.id)
        set_faults(live, webhook_duplicate_rate=1, webhook_shuffle=True)
        try:
            made = refund(team.owner.client, paid.id, "notify-1", amount="10.00")
            assert made.status_code in (200, 201), made.text
            # One more refund made in Stripe's dashboard, told the same way.
            charge = live.scalar(
                "SELECT stripe_charge_id FROM order_payment WHERE order_id = :i", i=paid.id
            )
            sdk(live).v1.refunds.create(params={"charge": charge, "amount": 500})
            flush(live)
            flush(live)
        finally:
            clear_faults(live)

        refunds = live.rows(
            "SELECT id, stripe_refund_id FROM refund WHERE order_id = :i ORDER BY id", i=paid.id
        )
        assert len(refunds) == 2
        buyer_mail = messages(live, kind="order_refunded_buyer", to_email=buyer)
        mine = [m for m in buyer_mail if any(r.stripe_refund_id in m["key"] for r in refunds)]
        assert sorted(m["subject"] for m in mine) == [
            f"A refund of $10.00 for order #{paid.id}",
            f"A refund of $5.00 for order #{paid.id}",
        ]
        store_mail = [
            m
            for m in messages(live, kind="store_order_refunded")
            if any(r.stripe_refund_id in m["key"] for r in refunds)
        ]
        assert sorted(m["to_email"] for m in store_mail) == sorted(_managers(team) * 2)
        assert team.seller.email not in {m["to_email"] for m in store_mail}
        events = _events(live, "order.refunded", team.id)
        assert sorted(e["payload"]["data"]["refund"]["amount"] for e in events) == [
            "10.00",
            "5.00",
        ]
        assert {e["payload"]["data"]["id"] for e in events} == {paid.id}
        # The senders' job delivers each event once to the store's endpoint.
        got = wait_until(lambda: len(hooks.events("order.refunded")) >= 2 and hooks.events())
        assert len(got) == 2
        assert {verified(endpoint["secret"], r)["data"]["refund"]["amount"] for r in got} == {
            "10.00",
            "5.00",
        }


def _disputed(live: LiveServer, team: StoreTeam) -> tuple[int, dict[str, Any]]:
    paid = paid_order(live, team, card=DISPUTE_CARD)
    [dispute] = team.owner.client.get(f"/api/orders/{paid.id}/disputes").json()["data"]
    return paid.id, dispute


def _remind(live: LiveServer) -> int:
    async def run() -> int:
        engine = engine_for(live.settings)
        try:
            ctx = JobContext(live.settings, session_factory(engine), StripeGateway(live.settings))
            return await remind_disputes(ctx)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_a_dispute_tells_the_managers_with_its_deadline_and_reminds_them_once(
    live: LiveServer,
) -> None:
    with onboarded_team(live) as team:
        set_faults(live, webhook_duplicate_rate=1, webhook_shuffle=True)
        try:
            order_id, dispute = _disputed(live, team)
            flush(live)
        finally:
            clear_faults(live)
        key = f"dispute-{dispute['stripeDisputeId']}-opened"
        told = [m for m in messages(live, kind="store_order_disputed") if key in m["key"]]
        assert sorted(m["to_email"] for m in told) == _managers(team)
        assert told[0]["subject"] == f"Order #{order_id} is disputed: $39.98"
        due = datetime.fromisoformat(dispute["evidenceDueBy"]).astimezone(UTC)
        body = live.scalar(
            "SELECT text_body FROM mail_message WHERE key = :k",
            k=f"{key}-store/u{team.owner.id}",
        )
        assert due.strftime("%Y-%m-%d %H:%M UTC") in body
        [event] = _events(live, "order.disputed", team.id)
        assert event["payload"]["data"]["dispute"]["stripeDisputeId"] == dispute["stripeDisputeId"]

        reminder = f"dispute-{dispute['stripeDisputeId']}-evidence-due"

        def reminded() -> list[str]:
            return sorted(
                m["to_email"]
                for m in messages(live, kind="store_dispute_evidence_due")
                if reminder in m["key"]
            )

        # A week ahead: no reminder yet.
        assert due - datetime.now(UTC) > timedelta(hours=48)
        _remind(live)
        assert reminded() == []
        # A day before the deadline: one reminder per manager, however often the job runs.
        soon = datetime.now(UTC) + timedelta(hours=24)
        with live.db.begin() as conn:
            conn.execute(
                sa.update(Dispute).where(Dispute.id == dispute["id"]).values(evidence_due_by=soon)
            )
        _remind(live)
        _remind(live)
        assert reminded() == _managers(team)
        # Answered: no reminder for it any more (the key also stops a second one).
        answered = team.owner.client.post(
            f"/api/orders/{order_id}/disputes/{dispute['id']}/evidence",
            json={"text": "winning_evidence"},
        )
        assert answered.status_code == 200, answered.text
        _remind(live)
        assert reminded() == _managers(team)


def test_a_refused_transfer_tells_the_managers_and_platform_admins_once(
    live: LiveServer,
) -> None:
    with (
        onboarded_team(live, name="Fine") as a,
        onboarded_team(live, name="Restricted") as b,
        anonymous(live) as buyer,
        platform_admin(live) as admin,
    ):
        set_faults(live, webhook_duplicate_rate=1, webhook_shuffle=True)
        try:
            body, _ = refused_transfer_checkout(live, a, b, buyer)
            flush(live)
            flush(live)
        finally:
            clear_faults(live)
        order_b = order_json(b, body["orders"][1]["orderId"])
        assert order_b["transfer"]["status"] == "failed"
        transfer_id = live.scalar(
            "SELECT id FROM store_transfer WHERE order_id = :i", i=order_b["id"]
        )
        key = f"transfer-{transfer_id}-failed-1"
        told = [m for m in messages(live, kind="transfer_failed") if m["key"].startswith(key)]
        recipients = [m["to_email"] for m in told]
        # Every platform admin is told (the shared server may have others than ours), once.
        assert {*_managers(b), admin.email} <= set(recipients)
        assert len(recipients) == len(set(recipients))
        assert not set(_managers(a)) & set(recipients)
        assert told[0]["subject"] == (
            f"The transfer to Restricted for order #{order_b['id']} failed"
        )
        [event] = _events(live, "transfer.failed", b.id)
        assert event["payload"]["data"]["orderId"] == order_b["id"]
        assert "insufficient_capabilities_for_transfer" in event["payload"]["data"]["failureReason"]
        assert _events(live, "transfer.failed", a.id) == []


def test_a_stripe_event_that_gives_up_tells_platform_admins_once(live: LiveServer) -> None:
    with onboarded_team(live) as team, platform_admin(live) as admin:
        buyer = "giveup-" + team.owner.email
        order_id = buy(live, team, buyer)
        session_id = live.scalar(
            "SELECT stripe_checkout_session_id FROM orders WHERE id = :i", i=order_id
        )
        event = completed_event(live, session_id)
        event_id = event["id"] + "_gives_up"
        key = f"stripe-event-{event_id}-failed"

        def told() -> list[dict[str, Any]]:
            return [m for m in messages(live, kind="admin_stripe_event_failed") if key in m["key"]]

        # Stripe answers every call with an error: the handler's read fails, try after try.
        set_faults(live, api_error_rate=1)
        try:
            assert deliver(live, {**event, "id": event_id}).status_code == 200
            assert (
                live.scalar(
                    "SELECT attempts FROM stripe_event WHERE stripe_event_id = :i", i=event_id
                )
                >= 1
            )
            assert told() == []
            # As if the earlier tries had failed too: the next is the last.
            with live.db.begin() as conn:
                conn.execute(
                    sa.text("UPDATE stripe_event SET attempts = :a WHERE stripe_event_id = :i"),
                    {"a": EVENT_ATTEMPTS - 1, "i": event_id},
                )
            wait_until(told, timeout=30, what="the admins' email")
            # Any later failed try (a replay) tells nobody again.
            wait_until(
                lambda: (
                    live.scalar(
                        "SELECT attempts FROM stripe_event WHERE stripe_event_id = :i", i=event_id
                    )
                    > EVENT_ATTEMPTS
                ),
                timeout=30,
                what="another failed try",
            )
        finally:
            clear_faults(live)
        got = told()
        assert admin.email in [m["to_email"] for m in got]
        assert len({m["to_email"] for m in got}) == len(got)
        assert got[0]["subject"] == f"Processing Stripe event {event_id} failed"
