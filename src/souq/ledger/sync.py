"""Bring an order's refunds and ledger in step with its charge at Stripe.

Read everything first (the charge, its refunds, its transfer's reversals, its application
fee's refunds), outside any transaction; then `apply_charge_money` in one short unit of work
under the order's row lock. Applying is idempotent and order-independent: each Stripe object
is booked once (ledger.post) and a refund row is found by its Stripe id or by the Souq id in
its metadata, so duplicated, shuffled and dashboard-made refunds all end in the same books.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.db import unit_of_work
from souq.ledger import service as ledger
from souq.ledger.models import Refund
from souq.ledger.service import PLATFORM, STORE
from souq.notifications import triggers
from souq.orders import service as orders
from souq.orders.models import Order, OrderPayment, PaymentStatus
from souq.payments.stripe import Charge, Event, Movement, StripeGateway
from souq.payments.stripe import Refund as StripeRefund
from souq.payments.webhooks import Apply, Ignored, read_or_ignore

log = logging.getLogger(__name__)

# Souq's own id on the refunds and reversals it asks Stripe for.
REFUND_KEY = "souq_refund_id"
DISPUTE_KEY = "souq_dispute_id"
# Refunds whose money came back to the platform.
RETURNED = ("failed", "canceled")
# An order in these states follows its refunds.
REFUNDABLE_STATES = (
    PaymentStatus.paid,
    PaymentStatus.partially_refunded,
    PaymentStatus.refunded,
)


@dataclass(frozen=True)
class ChargeMoney:
    charge: Charge
    refunds: list[StripeRefund]
    reversals: list[Movement]
    fee_refunds: list[Movement]


async def read_charge_money(gateway: StripeGateway, charge_id: str) -> ChargeMoney:
    charge = await gateway.retrieve_charge(charge_id)
    refunds = await gateway.list_refunds(charge.id)
    reversals = (
        await gateway.list_transfer_reversals(charge.transfer_id) if charge.transfer_id else []
    )
    fee_refunds = (
        await gateway.list_application_fee_refunds(charge.application_fee_id)
        if charge.application_fee_id
        else []
    )
    return ChargeMoney(charge, refunds, reversals, fee_refunds)


async def _refund_row(session: AsyncSession, order: Order, refund: StripeRefund) -> Refund:
    row = (
        await session.execute(select(Refund).where(Refund.stripe_refund_id == refund.id))
    ).scalar_one_or_none()
    souq_id = refund.metadata.get(REFUND_KEY, "")
    if row is None and souq_id.isdigit() and len(souq_id) < 10:
        row = (
            await session.execute(
                select(Refund).where(Refund.id == int(souq_id), Refund.order_id == order.id)
            )
        ).scalar_one_or_none()
    if row is None:
        # Made outside Souq (Stripe's dashboard, the API with the platform's key).
        row = Refund(
            order_id=order.id,
            store_id=order.store_id,
            currency=refund.currency,
            amount=refund.amount,
            status=refund.status,
            source="stripe",
        )
        session.add(row)
        log.warning("order %s: refund %s was made outside Souq", order.id, refund.id)
    row.stripe_refund_id = refund.id
    row.status = refund.status
    row.amount = refund.amount
    return row


async def apply_charge_money(session: AsyncSession, order: Order, money: ChargeMoney) -> None:
    """Book what Stripe says happened to the order's charge (the caller locked the order)."""
    payment = order.payment
    if payment is None or payment.stripe_charge_id not in (None, money.charge.id):
        return
    await ledger.record_sale(session, order, payment, money.charge)
    reversal_of = {m.id: m.amount for m in money.reversals}
    for refund in money.refunds:
        row = await _refund_row(session, order, refund)
        if refund.transfer_reversal_id in reversal_of:
            row.transfer_reversed = reversal_of[refund.transfer_reversal_id]
        await ledger.post(session, order, "refund", refund.id, {PLATFORM: -refund.amount})
        if refund.status in RETURNED:
            await ledger.post(
                session, order, "refund_failure", refund.id, {PLATFORM: refund.amount}
            )
    for reversal in money.reversals:
        kind = "dispute_recovery" if DISPUTE_KEY in reversal.metadata else "transfer_reversal"
        await ledger.post(
            session, order, kind, reversal.id, ledger.between(STORE, PLATFORM, reversal.amount)
        )
    for fee_refund in money.fee_refunds:
        await ledger.post(
            session,
            order,
            "commission_refund",
            fee_refund.id,
            ledger.between(PLATFORM, STORE, fee_refund.amount),
        )
    await session.flush()
    await update_refund_status(session, order)
    for refund in money.refunds:
        if refund.status == "succeeded":
            row = await _refund_row(session, order, refund)
            await triggers.refund_succeeded(session, order, row)


async def update_refund_status(session: AsyncSession, order: Order) -> None:
    """paid → partially_refunded → refunded as refunds add up (and back, when one fails)."""
    payment = order.payment
    if payment is None or order.payment_status not in REFUNDABLE_STATES:
        return
    refunded = await ledger.live_refunded(session, order.id)
    if refunded <= 0:
        order.payment_status = PaymentStatus.paid
    elif refunded >= payment.amount:
        order.payment_status = PaymentStatus.refunded
    else:
        order.payment_status = PaymentStatus.partially_refunded
    await session.flush()


async def payment_for_charge(session: AsyncSession, charge_id: str) -> OrderPayment | None:
    return (
        await session.execute(
            select(OrderPayment).where(
                OrderPayment.stripe_charge_id == charge_id, OrderPayment.review_reason.is_(None)
            )
        )
    ).scalar_one_or_none()


async def order_of_charge(session: AsyncSession, charge_id: str) -> Order | Ignored:
    """The paid order a charge pays, locked; or why there is none."""
    payment = await payment_for_charge(session, charge_id)
    if payment is None:
        return Ignored(f"no paid order of ours for charge {charge_id}")
    order = await orders.lock_order(session, payment.order_id)
    return Ignored(f"order {payment.order_id} is gone") if order is None else order


async def on_refund(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, event: Event
) -> Apply | Ignored:
    """charge.refunded (the charge), refund.created/updated/failed and charge.refund.updated
    (the refund): whichever arrives, in whatever order, the charge's whole money is re-read
    (with no transaction open), then booked on its order in one short transaction."""
    if event.object.get("object") == "charge":
        charge_id: object = event.object_id
    else:
        charge_id = event.object.get("charge")
    if not isinstance(charge_id, str) or not charge_id:
        return Ignored(f"{event.type} {event.object_id} names no charge")
    async with unit_of_work(factory) as session:
        known = await payment_for_charge(session, charge_id) is not None
    if not known:
        return Ignored(f"no paid order of ours for charge {charge_id}")
    money = await read_or_ignore(read_charge_money(gateway, charge_id), f"charge {charge_id}")
    if isinstance(money, Ignored):
        return money

    async def apply(session: AsyncSession) -> Ignored | None:
        order = await order_of_charge(session, charge_id)
        if isinstance(order, Ignored):
            return order
        await apply_charge_money(session, order, money)
        return None

    return apply
