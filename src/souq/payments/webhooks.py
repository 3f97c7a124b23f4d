"""The webhook inbox: verify with the SDK, store once by event id, handle idempotently.

A delivery is recorded in its own transaction, then handled in another that locks the inbox row,
so a duplicate delivery, concurrent or late, finds the event already processed. Handlers are
themselves idempotent and order-independent (they lock the row they change and read current
state), because Stripe may also send two events for one change, and pages and `souq reconcile`
apply the same transitions.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.db import unit_of_work, utcnow
from souq.payments.models import StripeEvent
from souq.payments.stripe import StripeGateway

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, StripeGateway, dict[str, Any]], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


def handles(*event_types: str) -> Callable[[Handler], Handler]:
    """Register a handler for Stripe event types (one handler per type)."""

    def register(handler: Handler) -> Handler:
        for event_type in event_types:
            if event_type in HANDLERS:
                raise RuntimeError(f"two handlers for {event_type}")
            HANDLERS[event_type] = handler
        return handler

    return register


@dataclass(frozen=True)
class Outcome:
    event_id: str
    status: str  # "processed" | "duplicate" | "ignored"


async def record_event(factory: async_sessionmaker[AsyncSession], event: dict[str, Any]) -> None:
    """Store a verified event in the inbox unless it is already there."""
    values = {
        "stripe_event_id": event["id"],
        "type": str(event.get("type", "")),
        "account": event.get("account"),
        "created": int(event.get("created") or 0),
        "payload": event,
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
    stripe_event_id: str,
    *,
    force: bool = False,
) -> Outcome:
    """Run the event's handler once. A failure leaves the event unprocessed, with the error
    recorded, and re-raises so the delivery gets a non-2xx answer and Stripe retries."""
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
            handler = HANDLERS.get(row.type)
            if handler is not None:
                await handler(session, gateway, row.payload)
            row.processed_at = utcnow()
            row.last_error = None
            return Outcome(stripe_event_id, "processed" if handler else "ignored")
    except Exception as exc:
        log.exception("handling Stripe event %s failed", stripe_event_id)
        async with unit_of_work(factory) as session:
            row = (
                await session.execute(
                    select(StripeEvent).where(StripeEvent.stripe_event_id == stripe_event_id)
                )
            ).scalar_one()
            row.attempts += 1
            row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        raise


async def receive(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    payload: bytes,
    signature: str | None,
    *,
    connect: bool,
) -> Outcome:
    """A webhook delivery: verify (SignatureInvalid → 400, nothing stored), record, handle."""
    event = gateway.verify_event(payload, signature, connect=connect)
    await record_event(factory, event)
    return await process_event(factory, gateway, event["id"])
