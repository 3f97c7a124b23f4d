"""Bring an order's refunds and ledger in step with its charge at Stripe.

Read everything first (the charge, its refunds, its transfer's reversals, its application
fee's refunds; for a split cart's order, the group's charge and that store's own transfer's
reversals), outside any transaction; then `apply_charge_money` in one short unit of work
under the order's row lock. Applying is idempotent and order-independent: each Stripe object
is booked once (ledger.post) and a refund row is found by its Stripe id or by the Souq id in
its metadata, so duplicated, shuffled and dashboard-made refunds all end in the same books.

A split cart's one charge pays several orders: each order takes the refunds Souq made for it
(its id in their metadata) and its share of those made in Stripe's dashboard, which name no
order: the group's refund handler shares them among the orders first (ledger/group_refunds.py),
one row per order, and each order then books its own rows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.carts.models import CheckoutGroup
from souq.db import unit_of_work
from souq.ledger import service as ledger
from souq.ledger.models import Refund
from souq.ledger.service import PLATFORM, STORE
from souq.notifications import triggers
from souq.orders import service as orders
from souq.orders.models import Order, OrderPayment, PaymentStatus
from souq.payments.models import StoreTransfer, TransferStatus
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


async def read_group_money(
    gateway: StripeGateway, charge_id: str, transfer_id: str | None
) -> ChargeMoney:
    """A split cart's order: the group's charge and its refunds, the store's transfer's
    reversals (once it was sent)."""
    charge = await gateway.retrieve_charge(charge_id)
    refunds = await gateway.list_refunds(charge.id)
    reversals = await gateway.list_transfer_reversals(transfer_id) if transfer_id else []
    return ChargeMoney(charge, refunds, reversals, [])


async def read_group_charge(
    gateway: StripeGateway, charge_id: str, group_transfers: Mapping[int, str | None]
) -> dict[int, ChargeMoney]:
    """Every order of a group: the charge and its refunds read once, each store's reversals."""
    charge = await gateway.retrieve_charge(charge_id)
    refunds = await gateway.list_refunds(charge.id)
    return {
        order_id: ChargeMoney(
            charge,
            refunds,
            await gateway.list_transfer_reversals(transfer_id) if transfer_id else [],
            [],
        )
        for order_id, transfer_id in group_transfers.items()
    }


def _souq_id(metadata: Mapping[str, str], key: str) -> int | None:
    raw = metadata.get(key, "")
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


async def _refund_row(session: AsyncSession, order: Order, refund: StripeRefund) -> Refund:
    row = (
        await session.execute(
            select(Refund).where(Refund.stripe_refund_id == refund.id, Refund.order_id == order.id)
        )
    ).scalar_one_or_none()
    souq_id = _souq_id(refund.metadata, REFUND_KEY)
    if row is None and souq_id is not None:
        row = (
            await session.execute(
                select(Refund).where(Refund.id == souq_id, Refund.order_id == order.id)
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
    if order.checkout_group_id is None or row.source != "stripe":
        row.amount = refund.amount  # a cart's refund made outside Souq keeps its order's share
    return row


async def apply_charge_money(session: AsyncSession, order: Order, money: ChargeMoney) -> None:
    """Book what Stripe says happened to the order's charge (the caller locked the order)."""
    if order.checkout_group_id is not None:
        await apply_group_money(session, order, money)
        return
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
    await _refunds_booked(session, order, money.refunds)


async def _refunds_booked(
    session: AsyncSession, order: Order, refunds: Sequence[StripeRefund]
) -> None:
    await session.flush()
    await update_refund_status(session, order)
    for refund in refunds:
        if refund.status == "succeeded":
            row = await _refund_row(session, order, refund)
            await triggers.refund_succeeded(session, order, row)


def _is_for(order: Order, refund: StripeRefund, known: set[str | None]) -> bool:
    return refund.id in known or _souq_id(refund.metadata, "order_id") == order.id


async def apply_group_money(session: AsyncSession, order: Order, money: ChargeMoney) -> None:
    """A split cart's order: its share of the group's charge, the refunds Souq made for it,
    the reversals of its store's transfer, and what is left of a transfer still held."""
    group = await session.get(CheckoutGroup, order.checkout_group_id)
    if group is None or group.stripe_charge_id != money.charge.id:
        return
    await ledger.record_group_sale(session, order, money.charge)
    known = set(
        (
            await session.execute(
                select(Refund.stripe_refund_id).where(
                    Refund.order_id == order.id, Refund.stripe_refund_id.is_not(None)
                )
            )
        ).scalars()
    )
    mine = [refund for refund in money.refunds if _is_for(order, refund, known)]
    for refund in mine:
        row = await _refund_row(session, order, refund)
        await ledger.post(session, order, "refund", refund.id, {PLATFORM: -row.amount})
        if refund.status in RETURNED:
            await ledger.post(session, order, "refund_failure", refund.id, {PLATFORM: row.amount})
    for reversal in money.reversals:
        await _book_group_reversal(session, order, reversal)
    await session.flush()
    transfer = await lock_transfer(session, order.id)
    if transfer is not None:
        await settle_held(session, order, transfer)
    await _refunds_booked(session, order, mine)


async def _book_group_reversal(session: AsyncSession, order: Order, reversal: Movement) -> None:
    """A reversal of the store's transfer: a refund's (booked as the gross share reversed and
    the commission given back, as its row planned), a dispute's recovery, or one made outside
    Souq (all of it taken from the store)."""
    refund_id = _souq_id(reversal.metadata, REFUND_KEY)
    row = None if refund_id is None else await session.get(Refund, refund_id)
    if row is None or row.order_id != order.id:
        kind = "dispute_recovery" if DISPUTE_KEY in reversal.metadata else "transfer_reversal"
        await ledger.post(
            session, order, kind, reversal.id, ledger.between(STORE, PLATFORM, reversal.amount)
        )
        return
    row.stripe_reversal_id = reversal.id
    if row.error is not None and "reversal" in row.error:
        row.error = None
    gross = reversal.amount + row.commission_refunded
    await ledger.post(
        session, order, "transfer_reversal", reversal.id, ledger.between(STORE, PLATFORM, gross)
    )
    await ledger.post(
        session,
        order,
        "commission_refund",
        reversal.id,
        ledger.between(PLATFORM, STORE, row.commission_refunded),
    )


async def lock_transfer(session: AsyncSession, order_id: int) -> StoreTransfer | None:
    return (
        await session.execute(
            select(StoreTransfer)
            .where(StoreTransfer.order_id == order_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


def never_asked(transfer: StoreTransfer) -> bool:
    """Whether Stripe was never asked for the transfer under its current key, so its amount
    may still change: held (or canceled) ones, refused ones (the next try takes a new key),
    and pending ones not tried yet. A pending one that was tried may have been made."""
    if transfer.status in (TransferStatus.held, TransferStatus.canceled, TransferStatus.failed):
        return True
    return transfer.status == TransferStatus.pending and transfer.attempts == 0


async def settle_held(session: AsyncSession, order: Order, transfer: StoreTransfer) -> None:
    """A transfer not sent yet carries the store's share less what its refunds and lost
    disputes took off it (so it is never released for money the buyer got back); nothing
    left: canceled, never sent (and back to held or pending, should a refund fail). The
    transfer row is locked by the caller."""
    if not never_asked(transfer):
        return
    taken = sum(r.held_reduced for r in await ledger.live_refunds(session, order.id))
    taken += await ledger.held_by_disputes(session, order.id)
    transfer.amount = max(0, order.total_amount - order.platform_fee_amount - taken)
    if transfer.amount == 0:
        transfer.status = TransferStatus.canceled
    elif transfer.status == TransferStatus.canceled:
        held = order.transfer_on_fulfilment
        transfer.status = TransferStatus.held if held else TransferStatus.pending
    await session.flush()


def paid_amount(order: Order) -> int:
    """What the buyer paid for the order: its payment, or its share of its group's charge."""
    if order.checkout_group_id is not None:
        return order.total_amount
    return order.payment.amount if order.payment is not None else 0


async def update_refund_status(session: AsyncSession, order: Order) -> None:
    """paid → partially_refunded → refunded as refunds add up (and back, when one fails)."""
    paid = paid_amount(order)
    if paid == 0 or order.payment_status not in REFUNDABLE_STATES:
        return
    refunded = await ledger.live_refunded(session, order.id)
    if refunded <= 0:
        order.payment_status = PaymentStatus.paid
    elif refunded >= paid:
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
        group_transfers = await transfers_of_group_charge(session, charge_id)
    if group_transfers is not None:
        return await _on_group_refund(gateway, charge_id, group_transfers)
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


async def transfers_of_group_charge(
    session: AsyncSession, charge_id: str
) -> dict[int, str | None] | None:
    """The orders a checkout group's charge pays, each with its store's Stripe transfer (None
    while not sent); None when the charge is no group's."""
    group_id = await session.scalar(
        select(CheckoutGroup.id).where(CheckoutGroup.stripe_charge_id == charge_id)
    )
    if group_id is None:
        return None
    rows = await session.execute(
        select(Order.id, StoreTransfer.stripe_transfer_id)
        .outerjoin(StoreTransfer, StoreTransfer.order_id == Order.id)
        .where(Order.checkout_group_id == group_id)
        .order_by(Order.id)
    )
    return dict(rows.tuples().all())


async def _on_group_refund(
    gateway: StripeGateway, charge_id: str, group_transfers: dict[int, str | None]
) -> Apply | Ignored:
    """A group's charge: read it and its refunds once, each store's reversals, then book
    every order of the group, locked in id order, after sharing the refunds made outside
    Souq among them."""
    reads = await read_or_ignore(
        read_group_charge(gateway, charge_id, group_transfers), f"charge {charge_id}"
    )
    if isinstance(reads, Ignored):
        return reads

    async def apply(session: AsyncSession) -> Ignored | None:
        # Imported here: sharing plans like the refunds service, which imports this module.
        from souq.ledger.group_refunds import share_outside_refunds

        locked = [await orders.lock_order(session, order_id) for order_id in reads]
        group_orders = [order for order in locked if order is not None]
        refunds = next(iter(reads.values())).refunds if reads else []
        await share_outside_refunds(session, gateway.settings, group_orders, refunds)
        for order in group_orders:
            if order.payment_status in REFUNDABLE_STATES:
                await apply_charge_money(session, order, reads[order.id])
        return None

    return apply
