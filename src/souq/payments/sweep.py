"""Missed events are found, not only waited for: Stripe keeps 30 days of events, so a periodic
job reads `GET /v1/events` (the platform's, and each connected account's with Stripe-Account)
after a stored cursor and records every event of a handled type that the inbox has not seen.
An order is repaired even when every delivery of its webhook failed.

The cursor is a `created` timestamp per account, kept in `stripe_event_cursor`. Each run reads
from a little before the cursor (events created in the same second may be listed late) up to
EVENTS_SWEEP_SETTLE_SECONDS ago (younger events are still being delivered); the first run looks
back EVENTS_SWEEP_LOOKBACK_HOURS. Events already in the inbox are skipped, so an overlap costs
one query.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.config import Settings
from souq.db import unit_of_work, utcnow
from souq.payments import webhooks
from souq.payments.handlers import SUBSCRIBED_EVENTS
from souq.payments.models import StripeEvent, StripeEventCursor
from souq.payments.stripe import StripeGateway
from souq.stores.models import Store

log = logging.getLogger(__name__)

PLATFORM = "platform"
OVERLAP_SECONDS = 300


async def _accounts(factory: async_sessionmaker[AsyncSession]) -> list[str | None]:
    """The platform (None), then every connected account a store has."""
    async with unit_of_work(factory) as session:
        ids = await session.execute(
            select(Store.stripe_account_id)
            .where(Store.stripe_account_id.is_not(None))
            .order_by(Store.id)
        )
        return [None, *(account for account in ids.scalars() if account)]


async def sweep_account(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    account: str | None,
) -> list[str]:
    """Record the account's events the inbox lacks; returns their ids, oldest first."""
    key = account or PLATFORM
    async with unit_of_work(factory) as session:
        cursor = await session.get(StripeEventCursor, key)
        since = cursor.created if cursor else None
    now = int(time.time())
    upper = now - settings.events_sweep_settle_seconds
    lower = (
        since - OVERLAP_SECONDS
        if since is not None
        else now - settings.events_sweep_lookback_hours * 3600
    )
    events = await gateway.list_events(
        account=account, created_gte=lower, created_lte=upper, types=SUBSCRIBED_EVENTS
    )
    async with unit_of_work(factory) as session:
        seen = set(
            (
                await session.execute(
                    select(StripeEvent.stripe_event_id).where(
                        StripeEvent.stripe_event_id.in_([e.id for e in events])
                    )
                )
            ).scalars()
        )
    missed = [e for e in reversed(events) if e.id not in seen]
    recorded = [e.id for e in missed if await webhooks.record_event(factory, e)]
    async with unit_of_work(factory) as session:
        cursor = await session.get(StripeEventCursor, key, with_for_update=True)
        if cursor is None:
            session.add(StripeEventCursor(account=key, created=upper, swept_at=utcnow()))
        elif cursor.created < upper:
            cursor.created = upper
            cursor.swept_at = utcnow()
    if recorded:
        log.warning("%s: %s event(s) never delivered, recorded now", key, len(recorded))
    return recorded


async def sweep(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, settings: Settings
) -> list[str]:
    """Every account in turn; one account Stripe cannot list does not stop the others."""
    recorded: list[str] = []
    for account in await _accounts(factory):
        try:
            recorded += await sweep_account(factory, gateway, settings, account)
        except Exception:
            log.exception("sweeping %s's events failed", account or PLATFORM)
    return recorded
