"""The webhook inbox: verify with the SDK, store once by event id, handle idempotently.

A delivery is recorded in its own transaction, then handled in another that locks the inbox row,
so a duplicate delivery, concurrent or late, finds the event already processed. Handlers are
themselves idempotent and order-independent (they lock the row they change and read current
state), because Stripe may also send two events for one change, and pages and `souq reconcile`
apply the same transitions. The table of handlers is given by the caller
(`payments/handlers.py:HANDLERS`), so nothing registers itself by being imported.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.db import unit_of_work, utcnow
from souq.payments.models import StripeEvent
from souq.payments.stripe import Event, StripeGateway


@dataclass(frozen=True)
class Ignored:
    """What a handler returns when the event has nothing of Souq's to change, and why: it is
    acknowledged (2xx), so Stripe stops retrying it, and the reason is kept on the inbox row."""

    reason: str


Handler = Callable[[AsyncSession, StripeGateway, Event], Awaitable[Ignored | None]]
Handlers = Mapping[str, Handler]
OutcomeStatus = Literal["processed", "duplicate", "ignored"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    event_id: str
    status: OutcomeStatus
    reason: str | None = None


async def record_event(factory: async_sessionmaker[AsyncSession], event: Event) -> None:
    """Store a verified event in the inbox unless it is already there."""
    values = {
        "stripe_event_id": event.id,
        "type": event.type,
        "account": event.account,
        "created": event.created,
        "payload": event.payload,
        "received_at": utcnow(),
        "attempts": 0,
    }
    async with unit_of_work(factory) as session:
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(StripeEvent).values(**values)
        await session.execute(statement.on_conflict_do_nothing(index_elements=["stripe_event_id"]))


async def process_event(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    handlers: Handlers,
    stripe_event_id: str,
    *,
    force: bool = False,
) -> Outcome:
    """Run the event's handler once. A failure leaves an unprocessed event unprocessed, with
    the error recorded, and re-raises so the delivery gets a non-2xx answer and Stripe
    retries; an event that was already processed keeps its clean record."""
    try:
        async with unit_of_work(factory) as session:
            row = (
                await session.execute(
                    select(StripeEvent)
                    .where(StripeEvent.stripe_event_id == stripe_event_id)
                    .with_for_update()
                )
            ).scalar_one()
            if row.processed_at is not None and not force:
                return Outcome(stripe_event_id, "duplicate")
            row.attempts += 1
            handler = handlers.get(row.type)
            if handler is None:
                result: Ignored | None = Ignored(f"Souq does not handle {row.type} events")
            else:
                result = await handler(session, gateway, Event.parse(row.payload))
            row.processed_at = utcnow()
            row.last_error = None
            row.ignored_reason = result.reason[:2000] if result else None
            if result is not None:
                log.info("Stripe event %s ignored: %s", stripe_event_id, result.reason)
                return Outcome(stripe_event_id, "ignored", result.reason)
            return Outcome(stripe_event_id, "processed")
    except Exception as exc:
        log.exception("handling Stripe event %s failed", stripe_event_id)
        async with unit_of_work(factory) as session:
            await session.execute(
                update(StripeEvent)
                .where(
                    StripeEvent.stripe_event_id == stripe_event_id,
                    StripeEvent.processed_at.is_(None),
                )
                .values(
                    attempts=StripeEvent.attempts + 1,
                    last_error=f"{type(exc).__name__}: {exc}"[:2000],
                )
            )
        raise


async def receive(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    handlers: Handlers,
    payload: bytes,
    signature: str | None,
    *,
    connect: bool,
) -> Outcome:
    """A webhook delivery: verify (SignatureInvalid or EventInvalid → 400, nothing stored),
    record, handle."""
    event = gateway.verify_event(payload, signature, connect=connect)
    await record_event(factory, event)
    return await process_event(factory, gateway, handlers, event.id)
