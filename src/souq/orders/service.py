"""Order state: the transitions every payment path applies, and reading orders."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from souq.auth.models import User
from souq.auth.service import require_platform_admin
from souq.db import utcnow
from souq.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from souq.listings.models import Listing
from souq.notifications import triggers
from souq.orders.models import (
    OPEN_STATES,
    FulfilmentStatus,
    Order,
    OrderPayment,
    PaymentStatus,
)
from souq.stores.models import StoreMember
from souq.stores.service import FULFIL_ORDERS, READ_ORDERS, require_store_role

log = logging.getLogger(__name__)


async def lock_order(session: AsyncSession, order_id: int) -> Order | None:
    """The order, locked for this transaction (PostgreSQL row lock; SQLite's write lock)."""
    return (
        await session.execute(
            select(Order)
            .where(Order.id == order_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def reserve_stock(session: AsyncSession, quantities: dict[int, int]) -> list[int]:
    """Take stock atomically for each listing that counts its stock (the caller leaves out
    unlimited ones); returns the listing ids that had too little. Listings are updated in id
    order so concurrent carts cannot deadlock."""
    short: list[int] = []
    for listing_id in sorted(quantities):
        quantity = quantities[listing_id]
        result = await session.execute(
            update(Listing)
            .where(Listing.id == listing_id, Listing.stock >= quantity)
            .values(stock=Listing.stock - quantity)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            short.append(listing_id)
    return short


async def release_stock(session: AsyncSession, order: Order) -> None:
    """Put the order's items back on the shelf, once: the caller holds the order's row lock
    and `holds_stock` says whether they are still taken."""
    if not order.holds_stock:
        return
    for item in sorted(order.items, key=lambda i: i.listing_id):
        await session.execute(
            update(Listing)
            .where(Listing.id == item.listing_id, Listing.stock.is_not(None))
            .values(stock=Listing.stock + item.quantity)
            .execution_options(synchronize_session=False)
        )
    order.holds_stock = False


async def retake_stock(session: AsyncSession, order: Order) -> bool:
    """Take a released order's items off the shelf again, all or nothing, never below zero;
    False (and nothing taken) when any listing has too little left."""
    if order.holds_stock:
        return True
    quantities: dict[int, int] = {}
    for item in order.items:
        quantities[item.listing_id] = quantities.get(item.listing_id, 0) + item.quantity
    counted = set(
        (
            await session.execute(
                select(Listing.id).where(
                    Listing.id.in_(list(quantities)), Listing.stock.is_not(None)
                )
            )
        ).scalars()
    )
    wanted = {i: q for i, q in quantities.items() if i in counted}
    short = await reserve_stock(session, wanted)
    if short:
        # All or nothing: put back what was taken before a listing came up short.
        for listing_id, quantity in wanted.items():
            if listing_id not in short:
                await session.execute(
                    update(Listing)
                    .where(Listing.id == listing_id)
                    .values(stock=Listing.stock + quantity)
                    .execution_options(synchronize_session=False)
                )
        return False
    order.holds_stock = True
    return True


async def close_unpaid(session: AsyncSession, order: Order, status: PaymentStatus) -> bool:
    """pending or session_unknown → failed or canceled, releasing the order's stock exactly
    once (the order row is locked and only an open order closes)."""
    if order.payment_status not in OPEN_STATES:
        return False
    order.payment_status = status
    await release_stock(session, order)
    await session.flush()
    await triggers.order_closed(session, order)
    log.info("order %s %s; stock released", order.id, status.value)
    return True


async def mark_paid(session: AsyncSession, order: Order, payment: OrderPayment) -> None:
    """Record the payment that pays the order, exactly as asked for (the caller checked), and
    mark the order paid. An order under review stays under review: an admin decides."""
    payment.review_reason = None
    order.payments.append(payment)
    session.add(payment)
    if order.payment_status != PaymentStatus.needs_review:
        order.payment_status = PaymentStatus.paid
        order.paid_at = order.paid_at or utcnow()
    await session.flush()
    if order.payment_status == PaymentStatus.paid:
        await triggers.order_paid(session, order)
    log.info("order %s paid: %s %s", order.id, payment.amount, payment.currency)


async def hold_for_review(
    session: AsyncSession, order: Order, payment: OrderPayment, reason: str
) -> None:
    """Record a payment that is not the one the order asked for, and put the order in front
    of a platform admin. It never counts as a sale; the order keeps whatever stock it held."""
    payment.review_reason = reason[:1000]
    order.payments.append(payment)
    session.add(payment)
    order.payment_status = PaymentStatus.needs_review
    order.review_reason = reason[:1000]
    await session.flush()
    await triggers.order_needs_review(session, order)
    log.warning(
        "order %s needs review: checkout session %s, payment intent %s: %s",
        order.id,
        payment.stripe_checkout_session_id,
        payment.stripe_payment_intent_id,
        reason,
    )


async def get_order_for(session: AsyncSession, order_id: int, user: User | None) -> Order:
    """An order, for its buyer, members of its store and platform admins; 404 for anyone else."""
    order = (await session.execute(select(Order).where(Order.id == order_id))).scalar_one_or_none()
    if order is None or user is None:
        raise NotFound("order not found")
    if user.is_platform_admin or order.user_id == user.id:
        return order
    member = (
        await session.execute(
            select(StoreMember.id).where(
                and_(StoreMember.store_id == order.store_id, StoreMember.user_id == user.id)
            )
        )
    ).scalar_one_or_none()
    if member is None:
        raise NotFound("order not found")
    return order


async def sees_the_split(session: AsyncSession, order: Order, user: User) -> bool:
    """Whether `user` may see how an order's money is split (fees, net, margin): the store's
    members and platform admins do; its buyer sees only what they bought and paid."""
    if user.is_platform_admin:
        return True
    member = await session.execute(
        select(StoreMember.id).where(
            StoreMember.store_id == order.store_id, StoreMember.user_id == user.id
        )
    )
    return member.first() is not None


async def list_store_orders(
    session: AsyncSession,
    store_id: int,
    user: User | None,
    *,
    status: PaymentStatus | None,
    limit: int,
    before: int | None,
) -> Sequence[Order]:
    """A store's orders, newest first, for its members; `before` is the cursor (an order id)."""
    await require_store_role(session, store_id, user, READ_ORDERS)
    query = select(Order).where(Order.store_id == store_id)
    if status is not None:
        query = query.where(Order.payment_status == status)
    if before is not None:
        query = query.where(Order.id < before)
    return (await session.execute(query.order_by(Order.id.desc()).limit(limit))).scalars().all()


async def list_orders(
    session: AsyncSession,
    user: User | None,
    *,
    status: PaymentStatus | None,
    limit: int,
    before: int | None,
) -> Sequence[Order]:
    """Every store's orders, newest first, for platform admins (the review queue is
    `status=needs_review`)."""
    require_platform_admin(user)
    query = select(Order)
    if status is not None:
        query = query.where(Order.payment_status == status)
    if before is not None:
        query = query.where(Order.id < before)
    return (await session.execute(query.order_by(Order.id.desc()).limit(limit))).scalars().all()


Resolution = Literal["paid", "canceled"]


async def resolve_review(
    session: AsyncSession, order_id: int, user: User | None, resolution: Resolution, note: str
) -> Order:
    """A platform admin settles an order under review: `paid` counts its payment as the sale
    (the one payment held, when it has no other) and keeps or takes back its stock; `canceled`
    (after refunding the payments in Stripe) returns its stock. The decision is kept."""
    admin = require_platform_admin(user)
    order = await lock_order(session, order_id)
    if order is None:
        raise NotFound("order not found")
    if order.payment_status != PaymentStatus.needs_review:
        raise Conflict(
            f"order {order.id} is {order.payment_status.value}, not waiting for review",
            code="not_in_review",
        )
    if resolution == "paid":
        if order.payment is None:
            held = [p for p in order.payments if p.review_reason is not None]
            if len(held) != 1:
                raise Conflict(
                    f"order {order.id} has {len(held)} payments held; refund the extra ones in "
                    "Stripe and cancel the order instead",
                    code="ambiguous_payment",
                )
            held[0].review_reason = None
        if not await retake_stock(session, order):
            raise Conflict(
                "not enough stock left to fill this order: restock its listings first",
                code="out_of_stock",
            )
        order.payment_status = PaymentStatus.paid
        order.paid_at = order.paid_at or utcnow()
    else:
        await release_stock(session, order)
        for payment in order.payments:
            if payment.review_reason is None:
                payment.review_reason = "order canceled by a platform admin"
        order.payment_status = PaymentStatus.canceled
    order.review_reason = (
        f"resolved as {resolution} by {admin.email}: {note} (held because: {order.review_reason})"
    )[:1000]
    await session.flush()
    if resolution == "paid":
        await triggers.order_paid(session, order)
    else:
        await triggers.order_closed(session, order)
    log.warning("order %s review resolved as %s by %s", order.id, resolution, admin.email)
    return order


async def list_buyer_orders(session: AsyncSession, user: User, *, limit: int) -> Sequence[Order]:
    """The orders `user` placed while logged in, newest first."""
    query = select(Order).where(Order.user_id == user.id).order_by(Order.id.desc()).limit(limit)
    return (await session.execute(query)).scalars().all()


def parse_quantity(text: str, field: str = "quantity") -> int:
    """A quantity typed in a form: a whole number of at least 1; a 422 naming the field."""
    text = text.strip()
    if not text.isdigit() or int(text) < 1:
        message = "a whole number, at least 1"
        raise InvalidInput(f"{field}: {message}", details=[{"field": field, "message": message}])
    return int(text)


FULFILLABLE = (PaymentStatus.paid, PaymentStatus.partially_refunded)


async def record_fulfilment(
    session: AsyncSession,
    order_id: int,
    user: User | None,
    status: FulfilmentStatus,
    carrier: str | None,
    tracking_number: str | None,
) -> Order:
    """A member of the order's store (owner, admin or seller) marks it shipped or delivered.
    It may be marked again (shipped, then delivered; a corrected tracking number), never back
    from delivered to shipped. Carrier and tracking number left out stay as they were."""
    if user is None:
        raise NotAuthenticated("log in, or send an API token as 'Authorization: Bearer <token>'")
    order = await lock_order(session, order_id)
    if order is None:
        raise NotFound("order not found")
    await require_store_role(session, order.store_id, user, FULFIL_ORDERS)
    if order.payment_status not in FULFILLABLE:
        raise Conflict(
            f"only a paid order can be fulfilled; this one is {order.payment_status.value}",
            code="order_not_paid",
        )
    if order.fulfilment_status == FulfilmentStatus.delivered and status != order.fulfilment_status:
        raise Conflict("the order is already marked delivered", code="already_delivered")
    order.fulfilment_status = status
    if carrier is not None:
        order.fulfilment_carrier = carrier
    if tracking_number is not None:
        order.fulfilment_tracking_number = tracking_number
    order.fulfilled_at = order.fulfilled_at or utcnow()
    await session.flush()
    await triggers.order_fulfilled(session, order)
    return order
