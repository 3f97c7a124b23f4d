"""Recovery for what webhooks and checkout requests left open: re-read Stripe and apply the same
transitions the webhooks apply. Every step is idempotent, so running it twice changes nothing
more, and Stripe is never waited on inside a transaction.

The rules, per order:
- pending: brought to its Checkout Session's state (paid, canceled, failed, or still open).
- pending without a session id (a crash right after Stripe answered), once older than the
  in-flight age: the create is replayed with the order's idempotency key, which returns the
  session Stripe made; then as pending.
- session_unknown (Stripe never answered the create): the create is replayed with the same key
  to learn the session; an open one is expired (the buyer never got its page) and the order
  fails with its stock released once; a paid one pays the order with its stock intact.
- paid without a counted payment row: the row is recorded from the session.
- failed or canceled with a session, created within the last CLOSED_RECHECK: if Stripe says
  the session was paid, the payment is recorded; the order is paid if its stock can be taken
  back, else it goes to needs_review (stock never goes below zero).

Then the checkout groups and their unsent store transfers, the due dispute recoveries, and the
split-cart refunds whose transfer reversal Stripe refused: each tried once more per run, with
the key after its last refusal, so a reversal is made once however often this runs.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.config import Settings
from souq.db import unit_of_work, utcnow
from souq.ledger import disputes, retries
from souq.orders import service as orders
from souq.orders.models import CLOSED_UNPAID, Order, OrderPayment, PaymentStatus
from souq.payments import checkout, groups, onboarding, transfers
from souq.payments.stripe import StripeFailed, StripeGateway, StripeUnavailable
from souq.stores.models import Store

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
# An order without a session id this young may still be in the middle of its checkout request.
IN_FLIGHT = timedelta(minutes=2)
# Closed orders are re-checked this long: a session lives at most 24 hours and Stripe retries
# a webhook for three days, so a payment missed for longer is not coming back by itself.
CLOSED_RECHECK = timedelta(days=7)


async def orders_to_reconcile(
    factory: async_sessionmaker[AsyncSession], *, closed_recheck: timedelta = CLOSED_RECHECK
) -> list[int]:
    """Every order the rules above apply to, oldest first."""
    counted = exists().where(
        OrderPayment.order_id == Order.id, OrderPayment.review_reason.is_(None)
    )
    async with unit_of_work(factory) as session:
        ids = (
            await session.execute(
                select(Order.id)
                # A checkout group's orders follow their group's session (groups.py).
                .where(Order.checkout_group_id.is_(None))
                .where(
                    or_(
                        Order.payment_status.in_(
                            [PaymentStatus.pending, PaymentStatus.session_unknown]
                        ),
                        and_(Order.payment_status == PaymentStatus.paid, ~counted),
                        and_(
                            Order.payment_status.in_(CLOSED_UNPAID),
                            Order.stripe_checkout_session_id.is_not(None),
                            Order.created_at >= utcnow() - closed_recheck,
                        ),
                    )
                )
                .order_by(Order.id)
            )
        ).scalars()
        return list(ids)


async def _replay_create(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    order_id: int,
) -> str | None:
    """Ask Stripe for the order's session again with the order's own idempotency key: the
    session it made, if it made one, never a second. None when the order failed instead."""
    async with unit_of_work(factory) as session:
        order = await orders.lock_order(session, order_id)
        assert order is not None
        store = await session.get(Store, order.store_id)
        if store is None or not store.stripe_account_id:
            # Disconnected since: the session cannot be asked for again. A payment that
            # did happen still arrives by webhook and is recorded.
            await orders.close_unpaid(session, order, PaymentStatus.failed)
            return None
        params = checkout.session_params(settings, order, store)
    try:
        found = await gateway.create_checkout_session(
            params, idempotency_key=checkout.checkout_key(order_id)
        )
    except StripeFailed:
        async with unit_of_work(factory) as session:
            order = await orders.lock_order(session, order_id)
            if order is not None:
                await orders.close_unpaid(session, order, PaymentStatus.failed)
        return None
    return found.id


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
        had_payment = order.payment is not None
    unknown = before == PaymentStatus.session_unknown
    if unknown or session_id is None:
        if not unknown and utcnow() - created_at < in_flight:
            return "too_recent"
        session_id = await _replay_create(factory, gateway, settings, order_id)
        if session_id is None:
            return "failed"
        if unknown:
            # Nobody was given this session's page: close it, unless it was paid after all.
            with contextlib.suppress(StripeFailed):
                await gateway.expire_checkout_session(session_id)
    updated = await checkout.sync_checkout_session(factory, gateway, session_id)
    after = updated.payment_status if updated is not None else before
    if after != before:
        return after.value
    if updated is not None and updated.payment is not None and not had_payment:
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
    await _reconcile_groups(factory, gateway, settings, summary)
    for outcome, count in (await disputes.make_due_recoveries(factory, gateway)).items():
        summary[f"dispute recovery {outcome}"] += count
    for outcome, count in (await retries.retry_refused_reversals(factory, gateway)).items():
        summary[f"refund reversal {outcome}"] += count
    return summary


async def _reconcile_groups(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    summary: Counter[str],
) -> None:
    """Open checkout groups to their session's state, then every store transfer not sent
    yet (pending, or refused before: the same idempotency key, so never twice)."""
    for group_id in await groups.groups_to_reconcile(factory):
        try:
            summary[
                f"group {await groups.reconcile_group(factory, gateway, settings, group_id)}"
            ] += 1
        except StripeUnavailable:
            summary["stripe_unavailable"] += 1
        except Exception:
            log.exception("checkout group %s could not be reconciled", group_id)
            summary["error"] += 1
    for transfer_id in await transfers.unsent_transfer_ids(factory):
        status = await transfers.retry_transfer(factory, gateway, transfer_id)
        summary[f"transfer {status.value}"] += 1


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
        if progress:
            progress(1)
        try:
            async with unit_of_work(factory) as session:
                account_id = (
                    await session.execute(
                        select(Store.stripe_account_id).where(Store.id == store_id)
                    )
                ).scalar_one_or_none()
            if not account_id:
                continue
            # Read with no transaction open, then apply to the locked store if it still has
            # that account (it may have been disconnected meanwhile).
            account = await gateway.retrieve_account(account_id)
            async with unit_of_work(factory) as session:
                store = (
                    await session.execute(
                        select(Store).where(Store.id == store_id).with_for_update()
                    )
                ).scalar_one()
                if store.stripe_account_id == account_id:
                    changes = await onboarding.apply_account(session, store, account)
                    if changes:
                        changed[store_id] = changes
        except StripeFailed as exc:
            log.warning("store %s: could not read its account: %s", store_id, exc.message)
            changed[store_id] = [f"error: {exc.message}"]
    return changed
