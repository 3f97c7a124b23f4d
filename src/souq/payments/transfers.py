"""Sending each store its share of a checkout group's payment: one Stripe Transfer per group
and store, from the group's charge (`source_transaction`), in its `transfer_group`.

`send_transfer` is a plain service function (it flushes, never commits) called from the
payment's webhook handler and from `souq reconcile`, so a background job can call it later.
The idempotency key derives from the group, the store and the number of refusals so far, so
however often it runs, and however concurrently, Stripe makes one transfer; a refusal (no
transfer made) is recorded with Stripe's reason and retried by the next reconcile under the
next key."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.carts.models import CheckoutGroup
from souq.db import unit_of_work, utcnow
from souq.errors import NotFound
from souq.ledger.models import Dispute
from souq.notifications import triggers
from souq.orders.models import Order, PaymentStatus
from souq.payments.models import StoreTransfer, TransferStatus
from souq.payments.stripe import (
    Charge,
    StripeDataError,
    StripeFailed,
    StripeGateway,
    StripeUnavailable,
)

log = logging.getLogger(__name__)

UNSENT = (TransferStatus.pending, TransferStatus.failed)
# A dispute in any other state is still open: the buyer's complaint is not settled.
DISPUTE_DECIDED = ("won", "lost", "warning_closed", "charge_refunded")


async def send_transfer(
    session: AsyncSession, gateway: StripeGateway, transfer: StoreTransfer, group: CheckoutGroup
) -> TransferStatus:
    """Ask Stripe for the store's transfer (the caller holds the transfer row's lock) and
    record the answer: sent, refused (with Stripe's reason), or still pending (no answer)."""
    if transfer.status == TransferStatus.sent:
        return transfer.status
    if group.stripe_charge_id is None:
        transfer.failure_reason = "the payment's charge is not known yet"
        return transfer.status
    transfer.attempts += 1
    try:
        made = await gateway.create_transfer(
            destination=transfer.destination_account_id,
            amount=transfer.amount,
            currency=transfer.currency,
            source_transaction=group.stripe_charge_id,
            transfer_group=group.transfer_group,
            metadata={
                "orderId": str(transfer.order_id),
                "storeId": str(transfer.store_id),
                "checkoutGroupId": str(group.id),
            },
            idempotency_key=transfer.idempotency_key,
        )
    except StripeUnavailable as exc:
        transfer.failure_reason = f"no answer from Stripe: {exc.message}"
        log.warning("transfer for order %s: Stripe did not answer", transfer.order_id)
    except StripeFailed as exc:
        transfer.status = TransferStatus.failed
        transfer.refusals += 1
        transfer.failure_reason = f"{exc.stripe_code or 'error'}: {exc.message}"[:2000]
        log.warning(
            "transfer for order %s refused by Stripe: %s", transfer.order_id, exc.stripe_code
        )
        order = await session.get_one(Order, transfer.order_id)
        await triggers.transfer_failed(session, order, transfer)
    else:
        transfer.status = TransferStatus.sent
        transfer.stripe_transfer_id = made.id
        transfer.failure_reason = None
        transfer.sent_at = utcnow()
        log.info("order %s: transfer %s sent", transfer.order_id, made.id)
    await session.flush()
    return transfer.status


async def send_group_transfers(
    session: AsyncSession, gateway: StripeGateway, group: CheckoutGroup
) -> None:
    """Every unsent transfer of a paid group, each under its row lock."""
    rows = (
        await session.execute(
            select(StoreTransfer)
            .where(StoreTransfer.checkout_group_id == group.id)
            .where(StoreTransfer.status.in_(UNSENT))
            .order_by(StoreTransfer.id)
            .with_for_update()
        )
    ).scalars()
    for transfer in rows:
        await send_transfer(session, gateway, transfer, group)


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
        transfer = (
            await session.execute(
                select(StoreTransfer).where(StoreTransfer.id == transfer_id).with_for_update()
            )
        ).scalar_one_or_none()
        if transfer is None:
            raise NotFound("transfer not found", code="transfer_not_found")
        if transfer.status not in UNSENT:
            return transfer.status
        group = await session.get(CheckoutGroup, transfer.checkout_group_id)
        assert group is not None
        return await send_transfer(session, gateway, transfer, group)


async def why_hold(session: AsyncSession, order: Order, charge: Charge) -> str | None:
    """Why a held transfer must stay held although its time has come, or None: the order is
    not simply paid (refunded in part or whole, or waiting for review), it has an open
    dispute, or Stripe shows a refund or dispute on the group's charge that Souq has not
    booked (a refund made in Stripe's dashboard): a platform admin decides those."""
    if order.payment_status != PaymentStatus.paid:
        return f"the order is {order.payment_status.value}"
    open_dispute = await session.scalar(
        select(Dispute.id)
        .where(Dispute.order_id == order.id, Dispute.status.not_in(DISPUTE_DECIDED))
        .limit(1)
    )
    if open_dispute is not None or charge.disputed:
        return "the payment is disputed"
    if charge.amount_refunded:
        return "the payment was refunded in Stripe (in part or whole)"
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
        transfer = (
            await session.execute(
                select(StoreTransfer)
                .where(StoreTransfer.id == transfer_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one()
        if transfer.status != TransferStatus.held:
            return transfer.status  # released meanwhile
        order = await session.get(Order, transfer.order_id, populate_existing=True)
        group = await session.get(CheckoutGroup, transfer.checkout_group_id)
        assert order is not None and group is not None
        reason = await why_hold(session, order, charge)
        if reason is not None:
            transfer.failure_reason = f"held: {reason}"
            log.info("order %s: transfer stays held (%s)", order.id, reason)
            return transfer.status
        transfer.status = TransferStatus.pending
        return await send_transfer(session, gateway, transfer, group)


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
