"""Recovery for webhooks that never came: re-read Stripe and apply the same transitions the
webhooks apply. Every step is idempotent, so running it twice changes nothing more."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.config import Settings
from souq.db import unit_of_work, utcnow
from souq.orders import service as orders
from souq.orders.models import Order, OrderPayment, PaymentStatus
from souq.payments import checkout, onboarding
from souq.payments.stripe import StripeFailed, StripeGateway, StripeUnavailable
from souq.stores.models import Store

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
# An order without a session id this young may still be in the middle of its checkout request.
IN_FLIGHT = timedelta(minutes=2)


async def orders_to_reconcile(factory: async_sessionmaker[AsyncSession]) -> list[int]:
    """Pending orders, and paid orders that have no payment row."""
    async with unit_of_work(factory) as session:
        ids = (
            await session.execute(
                select(Order.id)
                .outerjoin(OrderPayment, OrderPayment.order_id == Order.id)
                .where(
                    or_(
                        Order.payment_status == PaymentStatus.pending,
                        (Order.payment_status == PaymentStatus.paid) & OrderPayment.id.is_(None),
                    )
                )
                .order_by(Order.id)
            )
        ).scalars()
        return list(ids)


async def reconcile_order(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    order_id: int,
    *,
    in_flight: timedelta = IN_FLIGHT,
) -> str:
    """Bring one order to its Checkout Session's state; returns what happened to it."""
    async with unit_of_work(factory) as session:
        order = await session.get(Order, order_id)
        if order is None:
            return "missing"
        before = order.payment_status
        session_id = order.stripe_checkout_session_id
        created_at = order.created_at
    if session_id is None:
        # The session's id was never saved (a crash right after Stripe answered). Replaying the
        # create with the order's idempotency key returns the same session if Stripe made one.
        if utcnow() - created_at < in_flight:
            return "too_recent"
        async with unit_of_work(factory) as session:
            order = await orders.lock_order(session, order_id)
            assert order is not None
            store = await session.get(Store, order.store_id)
            if store is None or not store.stripe_account_id:
                # Disconnected since: the session cannot be asked for again. A payment that
                # did happen still arrives by webhook and marks the order paid.
                await orders.close_unpaid(session, order, PaymentStatus.failed)
                return "failed"
            params = checkout.session_params(settings, order, store)
        try:
            found = await gateway.create_checkout_session(
                params, idempotency_key=f"order-{order_id}-checkout"
            )
            session_id = str(found["id"])
        except StripeFailed:
            async with unit_of_work(factory) as session:
                order = await orders.lock_order(session, order_id)
                if order is not None:
                    await orders.close_unpaid(session, order, PaymentStatus.failed)
            return "failed"
    async with unit_of_work(factory) as session:
        updated = await checkout.sync_checkout_session(session, gateway, session_id)
        after = updated.payment_status if updated is not None else before
        if after != before:
            return after.value
        if updated is not None and updated.payment is not None and before == PaymentStatus.paid:
            return "payment_recorded"
    return "unchanged"


async def reconcile_orders(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    progress: Progress | None = None,
    *,
    in_flight: timedelta = IN_FLIGHT,
) -> Counter[str]:
    summary: Counter[str] = Counter()
    for order_id in await orders_to_reconcile(factory):
        try:
            outcome = await reconcile_order(
                factory, gateway, settings, order_id, in_flight=in_flight
            )
            summary[outcome] += 1
        except StripeUnavailable:
            log.warning("order %s: Stripe unavailable, left for the next run", order_id)
            summary["stripe_unavailable"] += 1
        except Exception:
            # One order's trouble must not stop the others; it is logged and counted.
            log.exception("order %s could not be reconciled", order_id)
            summary["error"] += 1
        if progress:
            progress(1)
    return summary


async def connected_store_ids(factory: async_sessionmaker[AsyncSession]) -> list[int]:
    async with unit_of_work(factory) as session:
        query = select(Store.id).where(Store.stripe_account_id.is_not(None)).order_by(Store.id)
        return list((await session.execute(query)).scalars())


async def sync_accounts(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    progress: Progress | None = None,
) -> dict[int, list[str]]:
    """Re-read every connected store's account; returns the fields that changed per store."""
    changed: dict[int, list[str]] = {}
    for store_id in await connected_store_ids(factory):
        try:
            async with unit_of_work(factory) as session:
                store = (
                    await session.execute(
                        select(Store).where(Store.id == store_id).with_for_update()
                    )
                ).scalar_one()
                changes = await onboarding.refresh_from_stripe(session, gateway, store)
                if changes:
                    changed[store_id] = changes
        except StripeFailed as exc:
            log.warning("store %s: could not read its account: %s", store_id, exc.message)
            changed[store_id] = [f"error: {exc.message}"]
        if progress:
            progress(1)
    return changed
