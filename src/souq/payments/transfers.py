"""Sending each store its share of a checkout group's payment: one Stripe Transfer per group
and store, from the group's charge (`source_transaction`), in its `transfer_group`.

`send_transfer` asks Stripe with no transaction open (it reads the row, asks, then records the
answer in a short transaction of its own); it runs after the payment's transaction committed,
in the job `payments.send_group_transfers`, and from `souq reconcile`. The idempotency key
derives from the group, the store and the number of refusals so far, so however often it
runs, and however concurrently, Stripe makes one transfer; a refusal (no transfer made) is
recorded with Stripe's reason and retried by the next reconcile under the next key."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.models import User
from souq.carts.models import CheckoutGroup
from souq.db import unit_of_work, utcnow
from souq.errors import NotFound
from souq.ledger import service as ledger
from souq.ledger.models import Dispute, Refund
from souq.notifications import triggers
from souq.orders import service as orders
from souq.orders.models import FulfilmentStatus, Order, PaymentStatus
from souq.payments.models import StoreTransfer, TransferStatus
from souq.payments.stripe import (
    Charge,
    Movement,
    StripeDataError,
    StripeFailed,
    StripeGateway,
    StripeUnavailable,
)

log = logging.getLogger(__name__)

UNSENT = (TransferStatus.pending, TransferStatus.failed)
# A dispute in any other state is still open: the buyer's complaint is not settled.
DISPUTE_DECIDED = ("won", "lost", "warning_closed", "charge_refunded")


@dataclass(frozen=True)
class _Claim:
    """What a send asks Stripe, taken from the locked row: its key is the row's key then."""

    refusals: int
    params: dict[str, Any]
    idempotency_key: str


async def _lock(session: AsyncSession, transfer_id: int) -> StoreTransfer:
    return (
        await session.execute(
            select(StoreTransfer)
            .where(StoreTransfer.id == transfer_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()


async def send_transfer(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, transfer_id: int
) -> TransferStatus:
    """Ask Stripe for the store's transfer and record the answer: sent, refused (with
    Stripe's reason), or still unsent (no answer). Three steps, so no transaction is open
    while Stripe is asked: read the unsent row and its key; ask Stripe; lock the row and
    record the answer unless another sender recorded this key's answer first (the same key
    gives the same transfer, so concurrent sends make one)."""
    async with unit_of_work(factory) as session:
        transfer = await session.get(StoreTransfer, transfer_id)
        if transfer is None or transfer.status not in UNSENT:
            return TransferStatus.sent if transfer is None else transfer.status
        group = await session.get_one(CheckoutGroup, transfer.checkout_group_id)
        if group.stripe_charge_id is None:
            transfer = await _lock(session, transfer_id)
            transfer.failure_reason = "the payment's charge is not known yet"
            return transfer.status
        claim = _Claim(
            refusals=transfer.refusals,
            idempotency_key=transfer.idempotency_key,
            params={
                "destination": transfer.destination_account_id,
                "amount": transfer.amount,
                "currency": transfer.currency,
                "source_transaction": group.stripe_charge_id,
                "transfer_group": group.transfer_group,
                "metadata": {
                    "orderId": str(transfer.order_id),
                    "storeId": str(transfer.store_id),
                    "checkoutGroupId": str(group.id),
                },
            },
        )
    made: Movement | None = None
    error: StripeUnavailable | StripeFailed | None = None
    try:
        made = await gateway.create_transfer(**claim.params, idempotency_key=claim.idempotency_key)
    except (StripeUnavailable, StripeFailed) as exc:
        error = exc
    async with unit_of_work(factory) as session:
        transfer = await _lock(session, transfer_id)
        if transfer.status not in UNSENT or transfer.refusals != claim.refusals:
            return transfer.status  # this key's answer is recorded already
        transfer.attempts += 1
        if made is not None:
            transfer.status = TransferStatus.sent
            transfer.stripe_transfer_id = made.id
            transfer.failure_reason = None
            transfer.sent_at = utcnow()
            order = await session.get_one(Order, transfer.order_id)
            await ledger.record_group_transfer(session, order, made.id, transfer.amount)
            log.info("order %s: transfer %s sent", transfer.order_id, made.id)
        elif isinstance(error, StripeFailed) and not isinstance(error, StripeDataError):
            transfer.status = TransferStatus.failed
            transfer.refusals += 1
            transfer.failure_reason = f"{error.stripe_code or 'error'}: {error.message}"[:2000]
            log.warning(
                "transfer for order %s refused by Stripe: %s", transfer.order_id, error.stripe_code
            )
            order = await session.get_one(Order, transfer.order_id)
            await triggers.transfer_failed(session, order, transfer)
        else:
            # No answer, or one Souq cannot read: Stripe may have made it; the same key asks again.
            assert error is not None
            transfer.failure_reason = f"no answer from Stripe: {error.message}"
            log.warning("transfer for order %s: Stripe did not answer", transfer.order_id)
        return transfer.status


async def send_group_transfers(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, group_id: int
) -> None:
    """Every unsent transfer of a paid group, each sent after the payment's transaction
    committed (the job `payments.send_group_transfers`, and `souq reconcile`)."""
    async with unit_of_work(factory) as session:
        ids = list(
            (
                await session.execute(
                    select(StoreTransfer.id)
                    .where(StoreTransfer.checkout_group_id == group_id)
                    .where(StoreTransfer.status.in_(UNSENT))
                    .order_by(StoreTransfer.id)
                )
            ).scalars()
        )
    for transfer_id in ids:
        await send_transfer(factory, gateway, transfer_id)


async def unsent_transfer_ids(factory: async_sessionmaker[AsyncSession]) -> list[int]:
    async with unit_of_work(factory) as session:
        query = select(StoreTransfer.id).where(StoreTransfer.status.in_(UNSENT))
        return list((await session.execute(query.order_by(StoreTransfer.id))).scalars())


async def retry_transfer(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, transfer_id: int
) -> TransferStatus:
    """One unsent transfer, again (same idempotency key: a transfer Stripe did make is
    returned, never made twice): `souq reconcile` and the back office's Retry button. A sent
    or held transfer is left as it is (a held one waits for its release)."""
    async with unit_of_work(factory) as session:
        if await session.get(StoreTransfer, transfer_id) is None:
            raise NotFound("transfer not found", code="transfer_not_found")
    return await send_transfer(factory, gateway, transfer_id)


async def why_hold(session: AsyncSession, order: Order, charge: Charge) -> str | None:
    """Why a held transfer must stay held although its time has come, or None: the order is
    not paid (refunded in whole, disputed, or waiting for review; a partial refund already
    took its part off the held amount), it has an open dispute, or Stripe shows a refund or
    dispute on the group's charge that Souq has not booked (a refund made in Stripe's
    dashboard): a platform admin decides those."""
    if order.payment_status not in (PaymentStatus.paid, PaymentStatus.partially_refunded):
        return f"the order is {order.payment_status.value}"
    statuses = set(
        (await session.scalars(select(Dispute.status).where(Dispute.order_id == order.id))).all()
    )
    # Stripe leaves `charge.disputed` true after a dispute is decided, so it only holds the
    # transfer while Souq has not yet booked the dispute it shows.
    if statuses.difference(DISPUTE_DECIDED) or (charge.disputed and not statuses):
        return "the payment is disputed"
    booked = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0))
        .join(Order, Order.id == Refund.order_id)
        .where(
            Order.checkout_group_id == order.checkout_group_id,
            Refund.status.in_(ledger.LIVE_REFUNDS),
        )
    )
    if charge.amount_refunded > int(booked or 0):
        return "the payment was refunded in Stripe (in part or whole) beyond Souq's refunds"
    return None


async def release_transfer(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, transfer_id: int
) -> TransferStatus:
    """Send a held transfer (the order was fulfilled, or its holding time is over), unless
    `why_hold` says it must stay held; then the reason is recorded for the platform admin.
    The group's charge is read from Stripe first, with no transaction open."""
    async with unit_of_work(factory) as session:
        transfer = await session.get(StoreTransfer, transfer_id)
        if transfer is None or transfer.status != TransferStatus.held:
            return TransferStatus.sent if transfer is None else transfer.status
        group = await session.get(CheckoutGroup, transfer.checkout_group_id)
        assert group is not None and group.stripe_charge_id is not None
        charge_id = group.stripe_charge_id
    try:
        charge = await gateway.retrieve_charge(charge_id)
    except (StripeUnavailable, StripeFailed, StripeDataError) as exc:
        # Still held; the hourly job tries again (a fulfilled order's transfer is due at once).
        log.warning("held transfer %s: could not read its charge: %s", transfer_id, exc.message)
        return TransferStatus.held
    async with unit_of_work(factory) as session:
        transfer = await _lock(session, transfer_id)
        if transfer.status != TransferStatus.held:
            return transfer.status  # released meanwhile
        order = await session.get_one(Order, transfer.order_id, populate_existing=True)
        reason = await why_hold(session, order, charge)
        if reason is not None:
            transfer.failure_reason = f"held: {reason}"
            log.info("order %s: transfer stays held (%s)", order.id, reason)
            return transfer.status
        # Released: from here on an unsent transfer like any other (reconcile retries it).
        transfer.status = TransferStatus.pending
    return await send_transfer(factory, gateway, transfer_id)


async def fulfil(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    order_id: int,
    user: User | None,
    status: FulfilmentStatus,
    carrier: str | None,
    tracking_number: str | None,
) -> None:
    """Mark a paid order shipped or delivered (`orders.record_fulfilment`); a store share held
    until fulfilment is then transferred, unless the order is refunded or disputed."""
    async with unit_of_work(factory) as session:
        order = await orders.record_fulfilment(
            session, order_id, user, status, carrier, tracking_number
        )
        held = order.transfer if order.transfer_on_fulfilment else None
        held_id = held.id if held is not None and held.status == TransferStatus.held else None
    if held_id is not None:
        await release_transfer(factory, gateway, held_id)


async def due_held_transfer_ids(
    factory: async_sessionmaker[AsyncSession], release_days: int, now: datetime | None = None
) -> list[int]:
    """Held transfers whose group was paid at least `release_days` ago, or whose order is
    fulfilled (its release found Stripe silent, or the order refunded or disputed then)."""
    cutoff = (now or utcnow()) - timedelta(days=release_days)
    async with unit_of_work(factory) as session:
        query = (
            select(StoreTransfer.id)
            .join(CheckoutGroup, CheckoutGroup.id == StoreTransfer.checkout_group_id)
            .join(Order, Order.id == StoreTransfer.order_id)
            .where(
                StoreTransfer.status == TransferStatus.held,
                or_(CheckoutGroup.paid_at <= cutoff, Order.fulfilment_status.is_not(None)),
            )
        )
        return list((await session.execute(query.order_by(StoreTransfer.id))).scalars())


async def release_due_transfers(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, release_days: int
) -> dict[str, int]:
    """Every held transfer past its holding time, released unless it must stay held: a count
    per outcome (sent, held, pending: no answer from Stripe, failed: refused)."""
    summary: dict[str, int] = {}
    for transfer_id in await due_held_transfer_ids(factory, release_days):
        status = await release_transfer(factory, gateway, transfer_id)
        summary[status.value] = summary.get(status.value, 0) + 1
    return summary


async def list_transfers(
    session: AsyncSession, *, status: TransferStatus | None, limit: int, before: int | None
) -> Sequence[StoreTransfer]:
    query = select(StoreTransfer)
    if status is not None:
        query = query.where(StoreTransfer.status == status)
    if before is not None:
        query = query.where(StoreTransfer.id < before)
    return (
        (await session.execute(query.order_by(StoreTransfer.id.desc()).limit(limit)))
        .scalars()
        .all()
    )
