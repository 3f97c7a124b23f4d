"""Refunds of destination charges, planned by the loss policy and previewed exactly.

A refund runs as short units of work around the Stripe calls (never waiting on Stripe inside
a transaction): (1) check the caller and read the charge's money from Stripe; (2) under the
order's row lock, bring the books up to date, check the amount against what is left (so
concurrent refunds never exceed what was paid), and insert the refund row (`requested`) with
its plan, keyed by the caller's Idempotency-Key; (3) ask Stripe, with idempotency keys made
from the row's id; (4) read the charge again and book what happened, restocking once.

A refused refund marks the row failed; an unanswered one stays `requested` (its amount still
held) until the same Idempotency-Key is sent again, which replays the same Stripe keys.

A split cart's order (separate charges and transfers) is planned as a destination charge of its
total (`ledger.group_charge_state`), then what the store gives back is moved its own way
(`split_plan`): once its transfer was sent, by a reversal of that transfer (never more than is
left of it; the platform bears the rest); while it is held (or refused, or never tried), by
taking the amount off the held transfer, so it is never released for refunded money. The
refund itself is a refund of that part of the group's charge, on the platform's account.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.models import User
from souq.auth.service import require_platform_admin
from souq.carts.models import CheckoutGroup
from souq.config import Settings
from souq.db import unit_of_work
from souq.errors import Conflict, InvalidInput, NotFound
from souq.ledger import service as ledger
from souq.ledger.models import Refund, StoreLossPolicy
from souq.ledger.policy import LossPolicy, RefundPlan, plan_refund, policy_for
from souq.ledger.sync import (
    REFUND_KEY,
    ChargeMoney,
    apply_charge_money,
    lock_transfer,
    never_asked,
    read_charge_money,
    read_group_money,
    settle_held,
)
from souq.money import MoneyError, format_amount, parse_amount
from souq.orders import service as orders
from souq.orders.models import Order, PaymentStatus
from souq.payments.stripe import StripeFailed, StripeGateway, StripeUnavailable
from souq.stores.service import MANAGE_STORE, require_store_role

log = logging.getLogger(__name__)

REFUNDABLE = (PaymentStatus.paid, PaymentStatus.partially_refunded)


@dataclass(frozen=True)
class RefundAsk:
    amount: str | None  # in the order's currency ("12.50"); None: all that is left
    reason: str | None
    restock: bool


@dataclass(frozen=True)
class Preview:
    order: Order
    refundable: int
    plan: RefundPlan
    policy: LossPolicy
    # What Stripe's reversal of the store's transfer moves (a destination charge's
    # reverse_transfer, or a split cart's reversal of a sent transfer)...
    stripe_reversal: int
    # ...or, for a split cart's transfer not sent yet, what comes off it instead.
    held_reduced: int = 0


@dataclass(frozen=True)
class Source:
    """The charge a refund takes money from and, for a split cart's order, its store's
    transfer (None while not sent)."""

    charge_id: str
    group_transfer_id: str | None = None
    split: bool = False


async def may_refund(session: AsyncSession, order_id: int, user: User | None) -> Order:
    """The order, if `user` may refund it: its store's owners and admins, platform admins.
    Anyone else: 404 (401 anonymous), or 403 for a store member of another role."""
    order = await session.get(Order, order_id)
    if order is None:
        if user is None:
            require_platform_admin(user)  # 401
        raise NotFound("order not found")
    if user is None or not user.is_platform_admin:
        await require_store_role(session, order.store_id, user, MANAGE_STORE)
    return order


async def store_policy(session: AsyncSession, settings: Settings, store_id: int) -> LossPolicy:
    return policy_for(settings, await session.get(StoreLossPolicy, store_id))


def _refundable(order: Order) -> None:
    if order.payment_status not in REFUNDABLE:
        raise Conflict(
            f"order {order.id} is {order.payment_status.value}: only a paid order can be refunded",
            code="not_refundable",
        )


def _unknown_charge() -> Conflict:
    return Conflict("the order's charge is not known yet; try again shortly", code="no_charge")


async def _source(session: AsyncSession, order: Order) -> Source:
    _refundable(order)
    return await _charge_source(session, order)


async def _charge_source(session: AsyncSession, order: Order) -> Source:
    if order.checkout_group_id is not None:
        group = await session.get(CheckoutGroup, order.checkout_group_id)
        if group is None or group.stripe_charge_id is None:
            raise _unknown_charge()
        transfer = order.transfer
        sent = transfer.stripe_transfer_id if transfer is not None else None
        return Source(group.stripe_charge_id, sent, split=True)
    payment = order.payment
    if payment is None:
        raise _unknown_charge()
    if payment.stripe_charge_id is None:
        raise _unknown_charge()
    return Source(payment.stripe_charge_id)


async def read_money(gateway: StripeGateway, source: Source) -> ChargeMoney:
    if source.split:
        return await read_group_money(gateway, source.charge_id, source.group_transfer_id)
    return await read_charge_money(gateway, source.charge_id)


async def _read(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    order_id: int,
    user: User | None,
) -> tuple[Source, ChargeMoney]:
    async with unit_of_work(factory) as session:
        source = await _source(session, await may_refund(session, order_id, user))
    return source, await read_money(gateway, source)


async def _lock(session: AsyncSession, order_id: int, money: ChargeMoney) -> Order:
    order = await orders.lock_order(session, order_id)
    if order is None:
        raise NotFound("order not found")
    await apply_charge_money(session, order, money)
    return order


def _minor(order: Order, amount: str) -> int:
    try:
        minor = parse_amount(amount, order.currency)
    except MoneyError as exc:
        raise InvalidInput(f"amount: {exc}", code="invalid_amount") from None
    if minor <= 0:
        raise InvalidInput("amount: must be greater than zero", code="invalid_amount")
    return minor


async def _plan(
    session: AsyncSession, settings: Settings, order: Order, amount: str | None
) -> Preview:
    await _source(session, order)
    state = await ledger.charge_state(session, order)
    if state.refundable <= 0:
        raise Conflict(f"order {order.id} is refunded in full", code="not_refundable")
    wanted = state.refundable if amount is None else _minor(order, amount)
    if wanted > state.refundable:
        left = format_amount(state.refundable, order.currency)
        raise InvalidInput(
            f"amount: at most {left} {order.currency.upper()} is left to refund",
            code="refund_exceeds_payment",
        )
    policy = await store_policy(session, settings, order.store_id)
    plan = plan_refund(state, wanted, policy)
    if order.checkout_group_id is not None:
        return await split_plan(session, order, state.refundable, plan, policy)
    return Preview(order, state.refundable, plan, policy, stripe_reversal=plan.transfer_reversal)


async def split_plan(
    session: AsyncSession, order: Order, refundable: int, plan: RefundPlan, policy: LossPolicy
) -> Preview:
    """A split cart's plan: what the store gives back (the share of the transfer less the
    commission returned) comes off its held transfer, or is reversed from its sent one,
    never more than either has left; what it cannot cover the platform bears, as commission
    given back. The order and its transfer row are locked by the caller."""
    wanted = plan.transfer_reversal - plan.commission_refund
    transfer = await lock_transfer(session, order.id)
    if transfer is None:
        back = held = 0
    elif never_asked(transfer):
        back = held = min(wanted, transfer.amount)
    elif transfer.stripe_transfer_id is None:
        raise Conflict(
            "the store's transfer is being sent; try the refund again shortly",
            code="transfer_in_flight",
        )
    else:
        back = min(wanted, transfer.amount - await reversed_so_far(session, order))
        held = 0
    plan = replace(
        plan,
        commission_refund=plan.transfer_reversal - back,
        refund_application_fee=False,
    )
    return Preview(order, refundable, plan, policy, stripe_reversal=back - held, held_reduced=held)


async def reversed_so_far(session: AsyncSession, order: Order) -> int:
    """What was (or is being) reversed from a sent split-cart transfer: the reversals its
    live refunds planned, and any other reversal booked (a dispute's recovery; not what a
    dispute took off the transfer before it was sent, booked with the transfer's id)."""
    refunds = await ledger.live_refunds(session, order.id)
    by_refunds = sum(
        r.transfer_reversed - r.commission_refunded for r in refunds if r.held_reduced == 0
    )
    sent = order.transfer.stripe_transfer_id if order.transfer is not None else None
    others = -sum(
        e.amount
        for e in await ledger.entries_of(session, order.id)
        if e.party == ledger.STORE and e.kind == "dispute_recovery" and e.stripe_object_id != sent
    )
    return by_refunds + others


async def preview_refund(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    order_id: int,
    user: User | None,
    amount: str | None,
) -> Preview:
    """Exactly what a refund of `amount` would move now; books what Stripe already did."""
    _, money = await _read(factory, gateway, order_id, user)
    async with unit_of_work(factory) as session:
        order = await _lock(session, order_id, money)
        return await _plan(session, settings, order, amount)


def fingerprint(ask: RefundAsk) -> str:
    body = {"amount": ask.amount, "reason": ask.reason, "restock": ask.restock}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


async def _claim(
    session: AsyncSession,
    settings: Settings,
    order: Order,
    user: User | None,
    ask: RefundAsk,
    key: str,
) -> tuple[Refund, bool]:
    """The refund row for this key: the earlier one (True: already asked), or a new one."""
    earlier = (
        await session.execute(
            select(Refund).where(Refund.order_id == order.id, Refund.idempotency_key == key)
        )
    ).scalar_one_or_none()
    if earlier is not None:
        if earlier.fingerprint != fingerprint(ask):
            raise Conflict(
                "this Idempotency-Key was used for another refund of this order",
                code="idempotency_key_reused",
            )
        return earlier, True
    preview = await _plan(session, settings, order, ask.amount)
    planned = preview.plan
    row = Refund(
        order_id=order.id,
        store_id=order.store_id,
        currency=order.currency,
        amount=planned.amount,
        reason=ask.reason,
        status="requested",
        commission_refunded=planned.commission_refund,
        transfer_reversed=planned.transfer_reversal,
        fee_recovered=planned.fee_recovered,
        held_reduced=preview.held_reduced,
        restock=ask.restock,
        source="souq",
        idempotency_key=key,
        fingerprint=fingerprint(ask),
        requested_by_user_id=user.id if user else None,
    )
    session.add(row)
    await session.flush()
    if preview.held_reduced:
        transfer = await lock_transfer(session, order.id)
        assert transfer is not None
        await settle_held(session, order, transfer)
    log.info("order %s: refund %s of %s requested", order.id, row.id, row.amount)
    return row, False


async def _ask_stripe(
    gateway: StripeGateway, source: Source, money: ChargeMoney, row: Refund
) -> str | None:
    """Ask Stripe for the refund; a reversal Stripe refused after the refund was made is
    returned as the problem (the refund stands)."""
    if source.split:
        return await _ask_stripe_split(gateway, source, row)
    await _ask_destination(gateway, money, row)
    return None


def reversal_due(row: Refund, source: Source) -> int:
    """What a split cart's refund reverses from the store's sent transfer (0: nothing)."""
    if not source.split or row.held_reduced or row.status in ("failed", "canceled"):
        return 0
    return row.transfer_reversed - row.commission_refunded


def _reversal_missing(row: Refund, source: Source) -> bool:
    return reversal_due(row, source) > 0 and row.stripe_reversal_id is None


async def _ask_stripe_split(gateway: StripeGateway, source: Source, row: Refund) -> str | None:
    """A split cart's refund: the store's part of the group's charge refunded from the
    platform's balance, then its transfer reversed by what the plan says. The buyer's refund
    comes first; a reversal Stripe refuses (the store's available balance may not cover it
    yet) is kept on the row as its error, for a retry (`retry_reversal`: the same
    Idempotency-Key again, or `souq reconcile` and its periodic job)."""
    metadata = {REFUND_KEY: str(row.id), "order_id": str(row.order_id)}
    await gateway.create_refund(
        charge_id=source.charge_id,
        amount=row.amount,
        reverse_transfer=False,
        refund_application_fee=False,
        reason=row.reason,
        metadata=metadata,
        idempotency_key=f"souq-refund-{row.id}",
    )
    return await _reverse(gateway, source, row)


async def _reverse(gateway: StripeGateway, source: Source, row: Refund) -> str | None:
    """The split-cart refund's reversal of the store's sent transfer, if it is still to be
    made: Stripe's refusal (its message) or None."""
    if not _reversal_missing(row, source) or source.group_transfer_id is None:
        return None
    try:
        await gateway.reverse_transfer(
            source.group_transfer_id,
            amount=reversal_due(row, source),
            metadata={REFUND_KEY: str(row.id), "order_id": str(row.order_id)},
            # Stripe replays a refusal for the same key: the retry after one takes the next.
            idempotency_key=f"souq-refund-{row.id}-reversal-{row.reversal_refusals}",
        )
    except StripeUnavailable:
        raise
    except StripeFailed as exc:
        log.warning("refund %s: the reversal was refused: %s", row.id, exc.stripe_code)
        return exc.message
    return None


async def _refused(
    factory: async_sessionmaker[AsyncSession], refund_id: int, refusals: int, problem: str
) -> None:
    """Keep Stripe's refusal of the reversal on the row; the next try takes the next key
    (counted once, even when two tries with the same key were refused together)."""
    async with unit_of_work(factory) as session:
        refused = await session.get(Refund, refund_id, with_for_update=True)
        assert refused is not None
        if refused.reversal_refusals == refusals:
            refused.reversal_refusals += 1
            refused.error = f"the store's transfer reversal was refused: {problem}"[:1000]


async def _ask_destination(gateway: StripeGateway, money: ChargeMoney, row: Refund) -> None:
    """The destination charge's refund: the transfer reversed pro rata, and the commission
    given back by Stripe's pro-rata rule or, when the store bears part of the processing fee,
    by an application fee refund of the planned amount."""
    metadata = {REFUND_KEY: str(row.id), "order_id": str(row.order_id)}
    by_stripe = row.commission_refunded > 0 and row.fee_recovered == 0
    await gateway.create_refund(
        charge_id=money.charge.id,
        amount=row.amount,
        reverse_transfer=money.charge.transfer_id is not None,
        refund_application_fee=by_stripe,
        reason=row.reason,
        metadata=metadata,
        idempotency_key=f"souq-refund-{row.id}",
    )
    fee_id = money.charge.application_fee_id
    if not by_stripe and row.commission_refunded > 0 and fee_id is not None:
        await gateway.refund_application_fee(
            fee_id,
            amount=row.commission_refunded,
            metadata=metadata,
            idempotency_key=f"souq-refund-{row.id}-commission",
        )


async def create_refund(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    order_id: int,
    user: User | None,
    ask: RefundAsk,
    key: str,
) -> Refund:
    """Refund (part of) a paid order, once per Idempotency-Key."""
    source, money = await _read(factory, gateway, order_id, user)
    async with unit_of_work(factory) as session:
        order = await _lock(session, order_id, money)
        row, asked = await _claim(session, settings, order, user, ask, key)
        # The transfer may have been sent since the read: the row lock says now.
        source = await _source(session, order) if source.split else source
        refund_id = row.id
        done = asked and row.status != "requested" and not _reversal_missing(row, source)
    if not done:
        try:
            problem = await _ask_stripe(gateway, source, money, row)
        except StripeFailed as exc:
            async with unit_of_work(factory) as session:
                failed = await session.get(Refund, refund_id)
                assert failed is not None
                failed.status = "failed"
                failed.error = str(exc)[:1000]
            raise
        if problem is not None:
            await _refused(factory, refund_id, row.reversal_refusals, problem)
    money = await read_money(gateway, source)
    async with unit_of_work(factory) as session:
        order = await _lock(session, order_id, money)
        refund = await session.get(Refund, refund_id)
        assert refund is not None
        if refund.restock and refund.status not in ("failed", "canceled"):
            await orders.release_stock(session, order)
        return refund


async def list_refunds(
    session: AsyncSession, order_id: int, user: User | None
) -> tuple[Order, Sequence[Refund], bool]:
    """An order's refunds for its buyer, its store's members and platform admins; whether
    the caller sees the split (fees, reversals)."""
    order = await orders.get_order_for(session, order_id, user)
    assert user is not None
    rows = (
        (
            await session.execute(
                select(Refund).where(Refund.order_id == order.id).order_by(Refund.id)
            )
        )
        .scalars()
        .all()
    )
    return order, rows, await orders.sees_the_split(session, order, user)


async def retry_reversal(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, refund_id: int
) -> str:
    """Try a refused reversal once more, with the key after the last refusal (so two
    concurrent tries make one reversal), and book it: `made`, `refused` or `done` (nothing
    left to reverse)."""
    async with unit_of_work(factory) as session:
        row = await session.get(Refund, refund_id)
        order = None if row is None else await session.get(Order, row.order_id)
        if row is None or order is None or order.checkout_group_id is None:
            return "done"
        source = await _charge_source(session, order)
        if not _reversal_missing(row, source) or source.group_transfer_id is None:
            return "done"
    problem = await _reverse(gateway, source, row)
    if problem is not None:
        await _refused(factory, refund_id, row.reversal_refusals, problem)
        return "refused"
    money = await read_money(gateway, source)
    async with unit_of_work(factory) as session:
        await _lock(session, row.order_id, money)
    log.info("refund %s: the store's transfer reversal was made on a retry", refund_id)
    return "made"
