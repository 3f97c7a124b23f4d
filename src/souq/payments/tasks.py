"""The payments jobs: processing recorded Stripe events, finding the ones that were never
delivered, and the periodic recovery of orders and accounts. Each is idempotent."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.db import unit_of_work, utcnow
from souq.jobs import DeferSql, JobContext, task
from souq.payments import reconcile, sweep, transfers, webhooks
from souq.payments.handlers import HANDLERS
from souq.payments.models import StripeEvent
from souq.payments.stripe import StripeGateway
from souq.payments.webhooks import EVENT_ATTEMPTS

log = logging.getLogger(__name__)

# An unprocessed event younger than this may still have its job waiting in the queue.
REQUEUE_AFTER = timedelta(minutes=1)


def event_lock(stripe_event_id: str) -> str:
    return f"stripe-event-{stripe_event_id}"


@task("payments.process_stripe_event", max_attempts=EVENT_ATTEMPTS)
async def process_stripe_event(ctx: JobContext, *, event_id: str) -> None:
    await webhooks.process_event(ctx.factory, ctx.gateway, HANDLERS, event_id)


async def replay_event(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, stripe_event_id: str
) -> webhooks.Outcome:
    """Run an event's handler again now, processed or not (handlers are idempotent): `souq
    events replay` and the back office's Replay button. Raises NoResultFound for an event not
    in the inbox, and the handler's error when it fails again (recorded on the event)."""
    return await webhooks.process_event(factory, gateway, HANDLERS, stripe_event_id, force=True)


async def enqueue_event(stripe_event_id: str) -> None:
    """Queue the processing of a recorded event (one waiting job per event)."""
    await process_stripe_event.defer(lock=event_lock(stripe_event_id), event_id=stripe_event_id)


def enqueue_event_sql(stripe_event_id: str, when: str) -> DeferSql | None:
    """`enqueue_event` as SQL for the statement that records the event (webhooks.receive)."""
    return process_stripe_event.defer_sql(
        lock=event_lock(stripe_event_id), when=when, event_id=stripe_event_id
    )


@task("payments.requeue_stripe_events", every_seconds=60)
async def requeue_stripe_events(ctx: JobContext) -> None:
    """Events recorded but never processed, with tries left, whose job was lost (a process
    died between recording and queueing)."""
    await _requeue(ctx, REQUEUE_AFTER)


@task("payments.resume_stripe_events", at_start=True)
async def resume_stripe_events(ctx: JobContext) -> None:
    """At the start of a process that runs jobs in-process (SQLite): whatever the inbox holds
    unprocessed was left by a process that died, as this one's queue is new and empty."""
    await _requeue(ctx, timedelta(0))


async def _requeue(ctx: JobContext, min_age: timedelta) -> None:
    async with unit_of_work(ctx.factory) as session:
        ids = (
            await session.execute(
                select(StripeEvent.stripe_event_id)
                .where(
                    StripeEvent.processed_at.is_(None),
                    StripeEvent.attempts < EVENT_ATTEMPTS,
                    StripeEvent.received_at <= utcnow() - min_age,
                )
                .order_by(StripeEvent.id)
            )
        ).scalars()
        pending = list(ids)
    for stripe_event_id in pending:
        await enqueue_event(stripe_event_id)
    if pending:
        log.info("%s unprocessed Stripe event(s) queued again", len(pending))


@task("payments.sweep_missed_events", every_seconds=300)
async def sweep_missed_events(ctx: JobContext) -> None:
    found = await sweep.sweep(ctx.factory, ctx.gateway, ctx.settings)
    for stripe_event_id in found:
        await enqueue_event(stripe_event_id)


@task("payments.reconcile_orders", every_seconds=900)
async def reconcile_orders(ctx: JobContext) -> None:
    summary = await reconcile.reconcile_orders(ctx.factory, ctx.gateway, ctx.settings)
    if summary:
        log.info("reconcile: %s", dict(summary))


@task("payments.sync_accounts", every_seconds=3600)
async def sync_accounts(ctx: JobContext) -> None:
    changed = await reconcile.sync_accounts(ctx.factory, ctx.gateway)
    if changed:
        log.info("account sync: %s store(s) changed", len(changed))


@task("payments.send_group_transfers")
async def send_group_transfers(ctx: JobContext, *, group_id: int) -> None:
    """A paid group's store transfers, after the transaction that paid it committed; what
    this job cannot send `souq reconcile` (every 15 minutes) sends."""
    await transfers.send_group_transfers(ctx.factory, ctx.gateway, group_id)


def transfers_lock(group_id: int) -> str:
    return f"checkout-group-{group_id}-transfers"


@task("payments.release_held_transfers", every_seconds=3600)
async def release_held_transfers(ctx: JobContext) -> None:
    """Held store transfers whose holding time (TRANSFER_RELEASE_DAYS after the payment) is
    over: sent, unless the order is refunded or disputed."""
    summary = await transfers.release_due_transfers(
        ctx.factory, ctx.gateway, ctx.settings.transfer_release_days
    )
    if summary:
        log.info("held transfers due: %s", summary)
