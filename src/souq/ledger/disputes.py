"""Disputes of an order's charge: kept in step with Stripe, booked in the ledger, answered
with evidence through Souq, and the store's share recovered once when the policy says so.

With destination charges Stripe debits the platform and leaves the transfer alone; what Souq
takes back from the store follows the loss policy, by one reversal of the store's transfer
(idempotency key from the dispute's id, and the reversal's id kept on the dispute row, under
the order's row lock), made when the dispute is lost or, if the policy says so, as soon as
the funds are withdrawn.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.models import User
from souq.config import Settings
from souq.db import unit_of_work, utcnow
from souq.errors import Conflict, NotFound
from souq.ledger import service as ledger
from souq.ledger.models import Dispute
from souq.ledger.policy import dispute_recovery
from souq.ledger.refunds import may_refund, store_policy
from souq.ledger.service import PLATFORM, STORE, STRIPE
from souq.ledger.sync import (
    DISPUTE_KEY,
    apply_charge_money,
    order_of_charge,
    read_charge_money,
)
from souq.notifications import triggers
from souq.orders import service as orders
from souq.orders.models import Order
from souq.payments.stripe import Dispute as StripeDispute
from souq.payments.stripe import Event, StripeFailed, StripeGateway
from souq.payments.webhooks import Apply, Ignored, read_or_ignore
from souq.stores.service import READ_ORDERS, require_store_role

log = logging.getLogger(__name__)

OPEN = ("warning_needs_response", "needs_response")
EVIDENCE_MAX = 20_000


def _when(timestamp: int | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


async def apply_dispute(session: AsyncSession, order: Order, dispute: StripeDispute) -> Dispute:
    """The dispute row and its ledger entries, as Stripe has them now (order locked)."""
    row = (
        await session.execute(select(Dispute).where(Dispute.stripe_dispute_id == dispute.id))
    ).scalar_one_or_none()
    if row is None:
        row = Dispute(
            order_id=order.id,
            store_id=order.store_id,
            stripe_dispute_id=dispute.id,
            currency=dispute.currency,
        )
        session.add(row)
        log.warning("order %s disputed: %s (%s)", order.id, dispute.id, dispute.reason)
    row.amount = dispute.amount
    row.reason = dispute.reason
    row.status = dispute.status
    row.evidence_due_by = _when(dispute.evidence_due_by)
    row.fee = sum(t.fee for t in dispute.balance_transactions)
    row.updated_at = utcnow()
    for txn in dispute.balance_transactions:
        if txn.amount < 0:
            await ledger.post(session, order, "dispute", txn.id, {PLATFORM: txn.amount})
        elif txn.amount > 0:
            await ledger.post(session, order, "dispute_reinstated", txn.id, {PLATFORM: txn.amount})
        if txn.fee:
            await ledger.post(
                session, order, "dispute_fee", txn.id, ledger.between(PLATFORM, STRIPE, txn.fee)
            )
    await session.flush()
    await triggers.dispute_opened(session, order, row)
    return row


async def recover(
    session: AsyncSession,
    gateway: StripeGateway,
    settings: Settings,
    order: Order,
    row: Dispute,
) -> None:
    """Take the store's share of a lost (or, by policy, withdrawn) dispute back, once."""
    if row.recovery_reversal_id is not None:
        if row.status == "won" and row.return_transfer_id is None:
            await _give_back(session, gateway, order, row)
            await session.flush()
        return
    policy = await store_policy(session, settings, order.store_id)
    withdrawn = row.status not in ("won", "warning_closed") and any(
        e.kind == "dispute" for e in await ledger.entries_of(session, order.id)
    )
    due = row.status == "lost" or (policy.dispute_recovery_on == "funds_withdrawn" and withdrawn)
    transfer = next(
        (e for e in await ledger.entries_of(session, order.id) if e.kind == "transfer"), None
    )
    if not due or transfer is None:
        return
    state = await ledger.charge_state(session, order)
    amount = dispute_recovery(policy, state, amount=row.amount, fee=row.fee)
    if amount <= 0:
        return
    try:
        reversal = await gateway.reverse_transfer(
            transfer.stripe_object_id,
            amount=amount,
            metadata={DISPUTE_KEY: row.stripe_dispute_id, "order_id": str(order.id)},
            idempotency_key=f"souq-dispute-{row.stripe_dispute_id}-recovery",
        )
    except StripeFailed as exc:
        # The store's available balance may not cover it yet: the error is kept on the row,
        # and the dispute's next event tries again.
        row.recovery_error = str(exc)[:1000]
        log.warning("dispute %s: recovery from the store failed: %s", row.stripe_dispute_id, exc)
        return
    row.recovery_reversal_id = reversal.id
    row.recovered_amount = reversal.amount
    row.recovery_error = None
    await ledger.post(
        session,
        order,
        "dispute_recovery",
        reversal.id,
        ledger.between(STORE, PLATFORM, reversal.amount),
    )
    await session.flush()
    log.warning(
        "dispute %s: %s recovered from store %s", row.stripe_dispute_id, amount, order.store_id
    )


async def _give_back(
    session: AsyncSession, gateway: StripeGateway, order: Order, row: Dispute
) -> None:
    """A dispute recovered from the store when its funds were withdrawn, then won: the
    store gets its share back, by one transfer from the charge."""
    payment = order.payment
    if payment is None or payment.stripe_charge_id is None or not order.destination_account_id:
        return
    transfer = await gateway.create_transfer(
        destination=order.destination_account_id,
        amount=row.recovered_amount,
        currency=order.currency,
        source_transaction=payment.stripe_charge_id,
        metadata={DISPUTE_KEY: row.stripe_dispute_id, "order_id": str(order.id)},
        idempotency_key=f"souq-dispute-{row.stripe_dispute_id}-return",
    )
    row.return_transfer_id = transfer.id
    await ledger.post(
        session,
        order,
        "dispute_return",
        transfer.id,
        ledger.between(PLATFORM, STORE, transfer.amount),
    )


async def settle(
    session: AsyncSession, gateway: StripeGateway, dispute: StripeDispute
) -> Ignored | None:
    if dispute.charge_id is None:
        return Ignored(f"dispute {dispute.id} names no charge")
    order = await order_of_charge(session, dispute.charge_id)
    if isinstance(order, Ignored):
        return order
    row = await apply_dispute(session, order, dispute)
    await recover(session, gateway, gateway.settings, order, row)
    return None


async def on_dispute(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, event: Event
) -> Apply | Ignored:
    """charge.dispute.*: the dispute is re-read (no transaction open), so any order of events
    ends the same; applying it may reverse the store's transfer, a Stripe call made inside the
    short transaction with an idempotency key, so a replay after a rollback changes nothing."""
    dispute = await read_or_ignore(
        gateway.retrieve_dispute(event.object_id), f"dispute {event.object_id}"
    )
    if isinstance(dispute, Ignored):
        return dispute

    async def apply(session: AsyncSession) -> Ignored | None:
        return await settle(session, gateway, dispute)

    return apply


def evidence_of(order: Order, text: str) -> dict[str, str]:
    """Stripe's evidence fields from the store's answer and the order's own facts."""
    items = "; ".join(f"{i.quantity} × {i.title}" for i in order.items)
    paid = order.paid_at.date().isoformat() if order.paid_at else "unknown"
    return {
        "uncategorized_text": text,
        "customer_email_address": order.customer_email,
        "product_description": f"Order {order.id} paid on {paid}: {items}"[:20_000],
    }


async def submit_evidence(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    order_id: int,
    dispute_id: int,
    user: User | None,
    text: str,
) -> Dispute:
    """The store answers a dispute: Souq assembles the evidence and submits it to Stripe."""
    async with unit_of_work(factory) as session:
        order = await may_refund(session, order_id, user)
        row = await session.get(Dispute, dispute_id)
        if row is None or row.order_id != order.id:
            raise NotFound("dispute not found")
        if row.status not in OPEN:
            raise Conflict(
                f"the dispute is {row.status}: it takes no evidence", code="dispute_closed"
            )
        evidence = evidence_of(order, text)
        stripe_id = row.stripe_dispute_id
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    dispute = await gateway.submit_dispute_evidence(
        stripe_id, evidence, idempotency_key=f"souq-dispute-{stripe_id}-evidence-{digest}"
    )
    async with unit_of_work(factory) as session:
        await settle(session, gateway, dispute)
        row = await session.get(Dispute, dispute_id)
        assert row is not None
        row.evidence_text = text
        row.evidence_submitted_at = utcnow()
        return row


async def list_disputes(
    session: AsyncSession, order_id: int, user: User | None
) -> Sequence[Dispute]:
    order = await orders.get_order_for(session, order_id, user)
    assert user is not None
    if not await orders.sees_the_split(session, order, user):
        raise NotFound("order not found")
    return (
        (
            await session.execute(
                select(Dispute).where(Dispute.order_id == order.id).order_by(Dispute.id)
            )
        )
        .scalars()
        .all()
    )


async def list_store_disputes(
    session: AsyncSession, store_id: int, user: User | None
) -> Sequence[Dispute]:
    """A store's disputes for its members: those still waiting for an answer first, the
    nearest deadline first, then the settled ones, newest first."""
    await require_store_role(session, store_id, user, READ_ORDERS)
    rows = (
        (
            await session.execute(
                select(Dispute).where(Dispute.store_id == store_id).order_by(Dispute.id.desc())
            )
        )
        .scalars()
        .all()
    )
    waiting = sorted(
        (d for d in rows if d.status in OPEN),
        key=lambda d: (d.evidence_due_by is None, d.evidence_due_by or d.created_at),
    )
    return waiting + [d for d in rows if d.status not in OPEN]


async def catch_up(session: AsyncSession, gateway: StripeGateway, order: Order) -> None:
    """Refunds and disputes Stripe announced before the order was paid in Souq's books (their
    events found no paid order then): read them now, once the payment is recorded. The
    order is locked by the caller."""
    payment = order.payment
    if payment is None or payment.stripe_charge_id is None:
        return
    charge_id = payment.stripe_charge_id
    if await gateway.list_refunds(charge_id):
        await apply_charge_money(session, order, await read_charge_money(gateway, charge_id))
    for dispute in await gateway.list_disputes(charge_id):
        row = await apply_dispute(session, order, dispute)
        await recover(session, gateway, gateway.settings, order, row)
