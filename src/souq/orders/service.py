"""Order state: the transitions every payment path applies, and reading orders."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import and_, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from souq.auth.models import User
from souq.db import utcnow
from souq.errors import NotFound
from souq.listings.models import Listing
from souq.orders.models import Order, OrderPayment, PaymentStatus
from souq.stores.models import StoreMember
from souq.stores.service import READ_ORDERS, require_store_role

log = logging.getLogger(__name__)

OPEN = PaymentStatus.pending


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


async def _return_stock(session: AsyncSession, order: Order) -> None:
    for item in sorted(order.items, key=lambda i: i.listing_id):
        await session.execute(
            update(Listing)
            .where(Listing.id == item.listing_id, Listing.stock.is_not(None))
            .values(stock=Listing.stock + item.quantity)
            .execution_options(synchronize_session=False)
        )


async def _retake_stock(session: AsyncSession, order: Order) -> None:
    """A payment arrived for an order whose stock was already released: take it back, never
    below zero (an oversell is logged for the store to resolve)."""
    for item in sorted(order.items, key=lambda i: i.listing_id):
        await session.execute(
            update(Listing)
            .where(Listing.id == item.listing_id, Listing.stock.is_not(None))
            .values(
                stock=case((Listing.stock >= item.quantity, Listing.stock - item.quantity), else_=0)
            )
            .execution_options(synchronize_session=False)
        )


async def close_unpaid(session: AsyncSession, order: Order, status: PaymentStatus) -> bool:
    """pending → failed or canceled, releasing the order's stock exactly once (the order row
    is locked and only a pending order releases)."""
    if order.payment_status != OPEN:
        return False
    order.payment_status = status
    await _return_stock(session, order)
    await session.flush()
    log.info("order %s %s; stock released", order.id, status.value)
    return True


async def mark_paid(session: AsyncSession, order: Order, payment: OrderPayment) -> bool:
    """→ paid with its one payment row. A second call finds the row and changes nothing."""
    if order.payment is not None or order.payment_status in (
        PaymentStatus.paid,
        PaymentStatus.refunded,
        PaymentStatus.partially_refunded,
    ):
        return False
    if order.payment_status != OPEN:
        log.warning(
            "order %s was %s but Stripe took its payment: marking it paid",
            order.id,
            order.payment_status.value,
        )
        await _retake_stock(session, order)
    order.payment_status = PaymentStatus.paid
    order.paid_at = utcnow()
    order.payment = payment
    session.add(payment)
    await session.flush()
    log.info("order %s paid: %s %s", order.id, payment.amount, payment.currency)
    return True


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
