"""Limits on anonymous checkout, so one client cannot tie up a store's stock or flood it with
orders: how many checkouts one address and one buyer email may start in a window, and how many
units of one listing one buyer may hold in unpaid orders at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq import throttle
from souq.config import Settings
from souq.db import unit_of_work
from souq.errors import Conflict
from souq.orders.models import Order, OrderItem, PaymentStatus


@dataclass(frozen=True)
class Buyer:
    """Who is checking out, as far as limits go: any one of these identifies the buyer."""

    email: str
    user_id: int | None
    address: str | None


async def check_checkout_rate(
    factory: async_sessionmaker[AsyncSession], settings: Settings, buyer: Buyer
) -> None:
    """Count this checkout against the buyer's address and email (429 beyond the limits). It
    runs in a unit of work of its own, so an attempt counts even if the checkout then fails."""
    async with unit_of_work(factory) as session:
        await count_checkout(session, settings, buyer)


async def count_checkout(session: AsyncSession, settings: Settings, buyer: Buyer) -> None:
    """`check_checkout_rate` in the caller's unit of work, which must commit before the
    checkout goes on (nothing else that can fail may share it)."""
    window = timedelta(seconds=settings.checkout_rate_window_seconds)
    limits = [("checkout-email:" + buyer.email.strip().lower(), settings.checkout_rate_per_email)]
    if buyer.address:
        limits.append(("checkout-addr:" + buyer.address, settings.checkout_rate_per_address))
    await throttle.consume(
        session,
        [(key[:400], limit) for key, limit in limits],
        window=window,
        what="checkouts started",
        code="checkout_rate_limited",
    )


async def check_holding(
    session: AsyncSession, settings: Settings, buyer: Buyer, quantities: dict[int, int]
) -> None:
    """Refuse (409) a checkout that would let one buyer hold more than
    `checkout_max_held_per_listing` units of a listing in unpaid orders. Call it after the
    stock is reserved: the listing rows are locked then, so concurrent checkouts of the same
    listing are counted one after the other."""
    if not quantities:
        return
    same_buyer = [func.lower(Order.customer_email) == buyer.email.strip().lower()]
    if buyer.user_id is not None:
        same_buyer.append(Order.user_id == buyer.user_id)
    if buyer.address:
        same_buyer.append(Order.client_address == buyer.address)
    result = await session.execute(
        select(OrderItem.listing_id, func.sum(OrderItem.quantity))
        .join(Order, Order.id == OrderItem.order_id)
        .where(
            Order.payment_status == PaymentStatus.pending,
            OrderItem.listing_id.in_(list(quantities)),
            or_(*same_buyer),
        )
        .group_by(OrderItem.listing_id)
    )
    held = {int(listing_id): int(total or 0) for listing_id, total in result.all()}
    cap = settings.checkout_max_held_per_listing
    for listing_id, quantity in sorted(quantities.items()):
        already = held.get(listing_id, 0)
        if already + quantity > cap:
            raise Conflict(
                f"listing {listing_id}: you already hold {already} in unpaid orders, and one "
                f"buyer may hold at most {cap} at once; pay for or cancel those orders first",
                code="hold_limit_reached",
            )
