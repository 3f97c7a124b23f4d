"""Disputes of an order's charge: kept in step with Stripe, booked in the ledger, answered
with evidence through Souq, and the store's share recovered once when the policy says so.

With destination charges Stripe debits the platform and leaves the transfer alone; what Souq
takes back from the store follows the loss policy, by one reversal of the store's transfer
(idempotency key from the dispute's id, and the reversal's id kept on the dispute row, under
the order's row lock), made when the dispute is lost or, if the policy says so, as soon as
the funds are withdrawn. Applying a dispute (in the webhook's transaction) only fixes the amount
on the row; the reversal is made after the commit by the job `ledger.recover_dispute`, and a
refused one is tried again by the periodic `ledger.recover_disputes`, `souq reconcile` and
`souq disputes recover`.

An order with an open dispute is `disputed`; a won one goes back to what its refunds say, a
lost one stays `disputed` (`follow_status`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.models import User
from souq.auth.service import require_platform_admin
from souq.carts.models import CheckoutGroup
from souq.config import Settings
from souq.db import unit_of_work, utcnow
from souq.errors import NotFound
from souq.jobs import defer_after_commit
from souq.ledger import service as ledger
from souq.ledger.models import Dispute
from souq.ledger.policy import dispute_recovery
from souq.ledger.refunds import store_policy
from souq.ledger.retries import try_each
from souq.ledger.service import PLATFORM, STORE, STRIPE
from souq.ledger.sync import (
    DISPUTE_KEY,
    REFUNDABLE_STATES,
    ChargeMoney,
    apply_charge_money,
    order_of_charge,
    read_charge_money,
    update_refund_status,
)
from souq.notifications import triggers
from souq.orders import service as orders
from souq.orders.models import Order, PaymentStatus
from souq.payments.stripe import Charge, Event, StripeFailed, StripeGateway, StripeUnavailable
from souq.payments.stripe import Dispute as StripeDispute
from souq.payments.webhooks import Apply, Ignored, read_or_ignore

log = logging.getLogger(__name__)

OPEN = ("warning_needs_response", "needs_response")
EVIDENCE_MAX = 20_000


def _when(timestamp: int | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


# An order's share of an amount of its charge's dispute: all of it, or (an order of a checkout
# group) its pro-rata share (ledger/group_disputes.py).
Share = Callable[[int], int]


def whole(amount: int) -> int:
    return amount


async def apply_dispute(
    session: AsyncSession, order: Order, dispute: StripeDispute, share: Share = whole
) -> Dispute:
    """The dispute row and its ledger entries (the order's `share` of each amount), as Stripe
    has them now (order locked)."""
    row = (
        await session.execute(
            select(Dispute).where(
                Dispute.stripe_dispute_id == dispute.id, Dispute.order_id == order.id
            )
        )
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
    row.amount = share(dispute.amount)
    row.reason = dispute.reason
    row.status = dispute.status
    row.evidence_due_by = _when(dispute.evidence_due_by)
    row.fee = sum(share(t.fee) for t in dispute.balance_transactions)
    row.updated_at = utcnow()
    for txn in dispute.balance_transactions:
        amount, fee = share(txn.amount), share(txn.fee)
        if amount < 0:
            await ledger.post(session, order, "dispute", txn.id, {PLATFORM: amount})
        elif amount > 0:
            await ledger.post(session, order, "dispute_reinstated", txn.id, {PLATFORM: amount})
        if fee:
            await ledger.post(
                session, order, "dispute_fee", txn.id, ledger.between(PLATFORM, STRIPE, fee)
            )
    await session.flush()
    await triggers.dispute_opened(session, order, row)
    return row


# A dispute in one of these states is decided (or was never one the buyer's bank pursues).
DECIDED = ("won", "lost", "warning_closed", "charge_refunded")
# Decided in the platform's favour: the order goes back to what its refunds say.
CLEARED = ("won", "warning_closed", "charge_refunded")


async def follow_status(session: AsyncSession, order: Order) -> None:
    """An order with an open dispute is `disputed`; when none is open any more it stays
    disputed if one was lost (the buyer's bank took the money back for good), and otherwise
    goes back to paid / partially_refunded / refunded as its refunds say."""
    statuses = set(
        (
            await session.execute(select(Dispute.status).where(Dispute.order_id == order.id))
        ).scalars()
    )
    if order.payment_status not in (*REFUNDABLE_STATES, PaymentStatus.disputed):
        return
    if statuses - set(DECIDED) or "lost" in statuses:
        order.payment_status = PaymentStatus.disputed
    elif order.payment_status == PaymentStatus.disputed:
        order.payment_status = PaymentStatus.paid
        await update_refund_status(session, order)
    await session.flush()


async def plan_recovery(
    session: AsyncSession, settings: Settings, order: Order, row: Dispute
) -> bool:
    """Fix what a lost (or, by policy, withdrawn) dispute takes back from the store, once, on
    the row (`recovery_due`); True when a Stripe call is due: that recovery not made yet, or
    a recovery to give back because the dispute was won after all. The call itself is the
    job `ledger.recover_dispute`, after the commit (`make_recovery`)."""
    if row.recovery_reversal_id is not None:
        return row.status == "won" and row.return_transfer_id is None
    if row.recovery_due > 0:
        return True
    entries = await ledger.entries_of(session, order.id)
    if not any(e.kind == "transfer" for e in entries):
        return False
    row.recovery_due = await recovery_wanted(session, settings, order, row)
    await session.flush()
    return row.recovery_due > 0


async def recovery_wanted(
    session: AsyncSession, settings: Settings, order: Order, row: Dispute
) -> int:
    """What the loss policy takes back from the store for this dispute now: nothing until it
    is lost (or its funds withdrawn, if the policy says so)."""
    policy = await store_policy(session, settings, order.store_id)
    entries = await ledger.entries_of(session, order.id)
    withdrawn = row.status not in CLEARED and any(e.kind == "dispute" for e in entries)
    due = row.status == "lost" or (policy.dispute_recovery_on == "funds_withdrawn" and withdrawn)
    if not due:
        return 0
    state = await ledger.charge_state(session, order)
    return dispute_recovery(policy, state, amount=row.amount, fee=row.fee)


def _key_base(row: Dispute, order: Order) -> str:
    # One dispute of a group's charge recovers from several stores: a key per order.
    base = f"souq-dispute-{row.stripe_dispute_id}"
    return base if order.checkout_group_id is None else f"{base}-order-{order.id}"


def recovery_key(row: Dispute, order: Order) -> str:
    """The recovery's Stripe idempotency key; a refusal is replayed for the same key, so the
    try after a recorded refusal takes the next one."""
    key = f"{_key_base(row, order)}-recovery"
    return key if row.recovery_attempts == 0 else f"{key}-{row.recovery_attempts}"


@dataclass(frozen=True)
class RecoveryCall:
    """The Stripe call a dispute's recovery needs, read in a short transaction."""

    dispute_id: int
    order_id: int
    stripe_dispute_id: str
    attempts: int
    give_back: bool
    amount: int
    key: str
    transfer_id: str | None  # the store's transfer to reverse
    charge_id: str | None  # the charge a give-back transfer is made from
    destination: str | None
    currency: str


async def _recovery_call(session: AsyncSession, dispute_id: int) -> RecoveryCall | None:
    row = await session.get(Dispute, dispute_id)
    order = None if row is None else await session.get(Order, row.order_id)
    if row is None or order is None:
        return None
    give_back = row.recovery_reversal_id is not None
    if give_back and (row.status != "won" or row.return_transfer_id is not None):
        return None
    if not give_back and (row.recovery_due <= 0 or row.status in CLEARED):
        return None  # won before the recovery was made: nothing to take
    transfer = next(
        (e for e in await ledger.entries_of(session, order.id) if e.kind == "transfer"), None
    )
    payment = order.payment
    charge_id = payment.stripe_charge_id if payment else await _group_charge(session, order)
    return RecoveryCall(
        dispute_id=row.id,
        order_id=order.id,
        stripe_dispute_id=row.stripe_dispute_id,
        attempts=row.recovery_attempts,
        give_back=give_back,
        amount=row.recovered_amount if give_back else row.recovery_due,
        key=f"{_key_base(row, order)}-return" if give_back else recovery_key(row, order),
        transfer_id=transfer.stripe_object_id if transfer else None,
        charge_id=charge_id,
        destination=order.destination_account_id,
        currency=order.currency,
    )


async def _group_charge(session: AsyncSession, order: Order) -> str | None:
    if order.checkout_group_id is None:
        return None
    group = await session.get(CheckoutGroup, order.checkout_group_id)
    return None if group is None else group.stripe_charge_id


async def make_recovery(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, dispute_id: int
) -> str:
    """The Stripe call a dispute's recovery needs, made outside any transaction and booked
    in a short one, exactly once (the idempotency key, and the reversal's or transfer's id
    kept on the row under the order's lock). Stripe refusing it (the store's available
    balance may not cover it yet) is recorded on the row for the platform admin and tried
    again by the periodic job or `souq disputes recover`; no answer is retried with the
    same key. Answers what happened: recovered, returned, refused, or nothing."""
    async with unit_of_work(factory) as session:
        call = await _recovery_call(session, dispute_id)
    if call is None or (call.give_back and (call.charge_id is None or call.destination is None)):
        return "nothing"
    if not call.give_back and call.transfer_id is None:
        return "nothing"
    metadata = {DISPUTE_KEY: call.stripe_dispute_id, "order_id": str(call.order_id)}
    try:
        if call.give_back:
            assert call.charge_id is not None and call.destination is not None
            made = await gateway.create_transfer(
                destination=call.destination,
                amount=call.amount,
                currency=call.currency,
                source_transaction=call.charge_id,
                metadata=metadata,
                idempotency_key=call.key,
            )
        else:
            assert call.transfer_id is not None
            made = await gateway.reverse_transfer(
                call.transfer_id, amount=call.amount, metadata=metadata, idempotency_key=call.key
            )
    except StripeUnavailable:
        raise
    except StripeFailed as exc:
        await _record_refusal(factory, call, exc)
        return "refused"
    async with unit_of_work(factory) as session:
        order = await orders.lock_order(session, call.order_id)
        row = await session.get(Dispute, call.dispute_id, populate_existing=True)
        assert order is not None and row is not None
        if call.give_back:
            await _book_return(session, order, row, made.id, made.amount)
            return "returned"
        await _book_recovery(session, order, row, made.id, made.amount)
    return "recovered"


async def _book_recovery(
    session: AsyncSession, order: Order, row: Dispute, reversal_id: str, amount: int
) -> None:
    if row.recovery_reversal_id is None:
        row.recovery_reversal_id = reversal_id
        row.recovered_amount = amount
        row.recovery_error = None
        log.warning(
            "dispute %s: %s recovered from store %s", row.stripe_dispute_id, amount, order.store_id
        )
    await ledger.post(
        session, order, "dispute_recovery", reversal_id, ledger.between(STORE, PLATFORM, amount)
    )
    await session.flush()


async def _book_return(
    session: AsyncSession, order: Order, row: Dispute, transfer_id: str, amount: int
) -> None:
    """A dispute recovered from the store when its funds were withdrawn, then won: the
    store's share went back by one transfer from the charge."""
    row.return_transfer_id = row.return_transfer_id or transfer_id
    await ledger.post(
        session, order, "dispute_return", transfer_id, ledger.between(PLATFORM, STORE, amount)
    )
    await session.flush()


async def _record_refusal(
    factory: async_sessionmaker[AsyncSession], call: RecoveryCall, exc: StripeFailed
) -> None:
    """Kept on the row; the count moves only if no other try moved it meanwhile, so two
    tries never use two keys for one refusal."""
    log.warning("dispute %s: recovery refused by Stripe: %s", call.stripe_dispute_id, exc)
    async with unit_of_work(factory) as session:
        await orders.lock_order(session, call.order_id)
        row = await session.get(Dispute, call.dispute_id, populate_existing=True)
        if row is None or row.recovery_attempts != call.attempts:
            return
        if call.give_back or row.recovery_reversal_id is None:
            row.recovery_error = str(exc)[:1000]
            row.recovery_attempts += 1


async def due_recoveries(factory: async_sessionmaker[AsyncSession]) -> list[int]:
    """Disputes whose recovery (or give-back) is due and not made: what the periodic job,
    reconcile and `souq disputes recover` try again."""
    async with unit_of_work(factory) as session:
        query = select(Dispute.id).where(_due_recovery())
        return list((await session.execute(query.order_by(Dispute.id))).scalars())


def _due_recovery() -> ColumnElement[bool]:
    return or_(
        and_(
            Dispute.recovery_due > 0,
            Dispute.recovery_reversal_id.is_(None),
            Dispute.status.not_in(CLEARED),
        ),
        and_(
            Dispute.recovery_reversal_id.is_not(None),
            Dispute.status == "won",
            Dispute.return_transfer_id.is_(None),
        ),
    )


async def list_due_recoveries(session: AsyncSession, user: User | None) -> Sequence[Dispute]:
    """Disputes whose recovery is due and not made (refused ones show Stripe's reason), for
    platform admins."""
    require_platform_admin(user)
    query = select(Dispute).where(_due_recovery())
    return (await session.execute(query.order_by(Dispute.id))).scalars().all()


async def retry_recovery(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    user: User | None,
    dispute_id: int,
) -> tuple[str, Dispute]:
    """A platform admin tries a dispute's recovery again now."""
    async with unit_of_work(factory) as session:
        require_platform_admin(user)
        if await session.get(Dispute, dispute_id) is None:
            raise NotFound("dispute not found")
    outcome = await make_recovery(factory, gateway, dispute_id)
    async with unit_of_work(factory) as session:
        return outcome, await session.get_one(Dispute, dispute_id)


async def make_due_recoveries(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway
) -> dict[str, int]:
    """Every due recovery, tried once: a count per outcome."""
    return await try_each(
        await due_recoveries(factory), lambda i: make_recovery(factory, gateway, i)
    )


def recover_after_commit(session: AsyncSession, row: Dispute) -> None:
    # Imported here: the ledger's tasks module imports this one.
    from souq.ledger.tasks import recover_dispute

    defer_after_commit(
        session, recover_dispute, lock=f"dispute-{row.id}-recovery", dispute_id=row.id
    )


async def settle(
    session: AsyncSession, settings: Settings, dispute: StripeDispute
) -> Ignored | None:
    """Apply a dispute read from Stripe to its order (locked here): the row, its entries,
    the order's status, and the recovery it calls for, queued for after the commit."""
    if dispute.charge_id is None:
        return Ignored(f"dispute {dispute.id} names no charge")
    # Imported here: a group's disputes build on this module.
    from souq.ledger.group_disputes import group_of_charge, settle_group

    group = await group_of_charge(session, dispute.charge_id)
    if group is not None:
        await settle_group(session, settings, group, dispute)
        return None
    order = await order_of_charge(session, dispute.charge_id)
    if isinstance(order, Ignored):
        return order
    await _settle_on(session, settings, order, dispute)
    return None


async def _settle_on(
    session: AsyncSession, settings: Settings, order: Order, dispute: StripeDispute
) -> None:
    row = await apply_dispute(session, order, dispute)
    await follow_status(session, order)
    if await plan_recovery(session, settings, order, row):
        recover_after_commit(session, row)


async def on_dispute(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, event: Event
) -> Apply | Ignored:
    """charge.dispute.*: the dispute is re-read (no transaction open), so any order of events
    ends the same; applying it writes no Stripe object: a recovery it calls for is fixed on the
    row and made by a job after the commit."""
    dispute = await read_or_ignore(
        gateway.retrieve_dispute(event.object_id), f"dispute {event.object_id}"
    )
    if isinstance(dispute, Ignored):
        return dispute

    async def apply(session: AsyncSession) -> Ignored | None:
        return await settle(session, gateway.settings, dispute)

    return apply


@dataclass(frozen=True)
class AfterPayment:
    """Refunds and disputes Stripe has on a charge when its payment is first applied."""

    money: ChargeMoney | None
    disputes: list[StripeDispute]


async def read_after_payment(gateway: StripeGateway, charge: Charge | None) -> AfterPayment | None:
    """Read (with no transaction open) the refunds and disputes a just-paid charge shows, and
    only when it shows some: the charge's own `amount_refunded` and `disputed` say so."""
    if charge is None or not (charge.amount_refunded or charge.disputed):
        return None
    money = await read_charge_money(gateway, charge.id) if charge.amount_refunded else None
    found = await gateway.list_disputes(charge.id) if charge.disputed else []
    return AfterPayment(money, found)


async def catch_up(
    session: AsyncSession, settings: Settings, order: Order, after: AfterPayment | None
) -> None:
    """Refunds and disputes Stripe announced before the order was paid in Souq's books (their
    events found no paid order then), as read before the transaction. The order is locked by
    the caller."""
    payment = order.payment
    if after is None or payment is None or payment.stripe_charge_id is None:
        return
    if after.money is not None and after.money.charge.id == payment.stripe_charge_id:
        await apply_charge_money(session, order, after.money)
    for dispute in after.disputes:
        if dispute.charge_id == payment.stripe_charge_id:
            await _settle_on(session, settings, order, dispute)
