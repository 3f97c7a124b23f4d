"""Refunds of destination charges, planned by the loss policy and previewed exactly.

A refund runs as short units of work around the Stripe calls (never waiting on Stripe inside
a transaction): (1) check the caller and read the charge's money from Stripe; (2) under the
order's row lock, bring the books up to date, check the amount against what is left (so
concurrent refunds never exceed what was paid), and insert the refund row (`requested`) with
its plan, keyed by the caller's Idempotency-Key; (3) ask Stripe, with idempotency keys made
from the row's id; (4) read the charge again and book what happened, restocking once.

A refused refund marks the row failed; an unanswered one stays `requested` (its amount still
held) until the same Idempotency-Key is sent again, which replays the same Stripe keys.

Split carts (separate charges and transfers) will plan differently in `_plan` and ask Stripe
differently in `_ask_stripe` (refund the store's part of the platform charge, reverse that
store's transfer, or none while the money is held); the rows, keys and books stay the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.models import User
from souq.auth.service import require_platform_admin
from souq.config import Settings
from souq.db import unit_of_work
from souq.errors import Conflict, InvalidInput, NotFound
from souq.ledger import service as ledger
from souq.ledger.models import Refund, StoreLossPolicy
from souq.ledger.policy import LossPolicy, RefundPlan, plan_refund, policy_for
from souq.ledger.sync import REFUND_KEY, ChargeMoney, apply_charge_money, read_charge_money
from souq.money import MoneyError, format_amount, parse_amount
from souq.orders import service as orders
from souq.orders.models import Order, PaymentStatus
from souq.payments.stripe import StripeFailed, StripeGateway
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


def _charge_of(order: Order) -> str:
    payment = order.payment
    if order.payment_status not in REFUNDABLE or payment is None:
        raise Conflict(
            f"order {order.id} is {order.payment_status.value}: only a paid order can be refunded",
            code="not_refundable",
        )
    if payment.stripe_charge_id is None:
        raise Conflict("the order's charge is not known yet; try again shortly", code="no_charge")
    return payment.stripe_charge_id


async def _read(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    order_id: int,
    user: User | None,
) -> ChargeMoney:
    async with unit_of_work(factory) as session:
        charge_id = _charge_of(await may_refund(session, order_id, user))
    return await read_charge_money(gateway, charge_id)


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
    _charge_of(order)
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
    return Preview(order, state.refundable, plan_refund(state, wanted, policy), policy)


async def preview_refund(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    order_id: int,
    user: User | None,
    amount: str | None,
) -> Preview:
    """Exactly what a refund of `amount` would move now; books what Stripe already did."""
    money = await _read(factory, gateway, order_id, user)
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
    planned = (await _plan(session, settings, order, ask.amount)).plan
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
        restock=ask.restock,
        source="souq",
        idempotency_key=key,
        fingerprint=fingerprint(ask),
        requested_by_user_id=user.id if user else None,
    )
    session.add(row)
    await session.flush()
    log.info("order %s: refund %s of %s requested", order.id, row.id, row.amount)
    return row, False


async def _ask_stripe(gateway: StripeGateway, money: ChargeMoney, row: Refund) -> None:
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
    money = await _read(factory, gateway, order_id, user)
    async with unit_of_work(factory) as session:
        order = await _lock(session, order_id, money)
        row, asked = await _claim(session, settings, order, user, ask, key)
        refund_id = row.id
        done = asked and row.status != "requested"
    if not done:
        try:
            await _ask_stripe(gateway, money, row)
        except StripeFailed as exc:
            async with unit_of_work(factory) as session:
                failed = await session.get(Refund, refund_id)
                assert failed is not None
                failed.status = "failed"
                failed.error = str(exc)[:1000]
            raise
    money = await read_charge_money(gateway, money.charge.id)
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
