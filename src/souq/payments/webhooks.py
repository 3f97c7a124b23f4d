"""The webhook inbox, and the work queue it feeds.

A delivery is verified, recorded once by event id (a duplicate is ignored) and acknowledged:
the request never calls Stripe. Recording defers the job `payments.process_stripe_event`
(payments/tasks.py), which runs the event's handler in two steps: the handler reads what it
needs from Stripe with no transaction open, then its apply step runs in one short transaction
that locks the inbox row (a duplicate job finds the event processed) and the rows it changes.
Handlers are idempotent and order-independent, because Stripe may also send two events for one
change, and pages and `souq reconcile` apply the same transitions. The table of handlers is given
by the caller (`payments/handlers.py:HANDLERS`), so nothing registers itself by being imported.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Container, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from sqlalchemy import TextClause, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from souq.db import unit_of_work, utcnow
from souq.jobs import DeferSql
from souq.notifications import triggers
from souq.payments.models import StripeEvent
from souq.payments.stripe import Event, StripeFailed, StripeGateway


@dataclass(frozen=True)
class Ignored:
    """What a handler returns when the event has nothing of Souq's to change, and why: it is
    acknowledged (2xx), so Stripe stops retrying it, and the reason is kept on the inbox row."""

    reason: str


# A handler's second step: applied inside the transaction that marks the event processed.
Apply = Callable[[AsyncSession], Awaitable[Ignored | None]]
# A handler's first step: reads Stripe (and, in short transactions of its own, the database)
# and returns what to apply, or that the event is ignored.
Handler = Callable[
    [async_sessionmaker[AsyncSession], StripeGateway, Event], Awaitable[Apply | Ignored]
]
Handlers = Mapping[str, Handler]
OutcomeStatus = Literal["received", "processed", "duplicate", "ignored"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Tries of an event's processing (its job's attempts); after the last, platform admins are told.
EVENT_ATTEMPTS = 8


async def read_or_ignore(read: Awaitable[T], what: str) -> T | Ignored:
    """A handler's Stripe read: an object Stripe does not know makes the event ignored."""
    try:
        return await read
    except StripeFailed as exc:
        if exc.is_missing:
            return Ignored(f"Stripe does not know {what}")
        raise


@dataclass(frozen=True)
class Outcome:
    event_id: str
    status: OutcomeStatus
    reason: str | None = None


def _engine(factory: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    engine: AsyncEngine = factory.kw["bind"]
    return engine


def unhandled(event_type: str) -> Ignored:
    return Ignored(f"Souq does not handle {event_type} events")


async def record_event(
    factory: async_sessionmaker[AsyncSession], event: Event, *, ignored: Ignored | None = None
) -> bool:
    """Store a verified event in the inbox unless it is already there. True when the event
    still waits to be processed (new, or recorded earlier and not processed yet). An event
    recorded as `ignored` is stored already processed, with the reason."""
    now = utcnow()
    values = {
        "stripe_event_id": event.id,
        "type": event.type,
        "account": event.account,
        "created": event.created,
        "payload": event.payload,
        "received_at": now,
        "attempts": 0,
    }
    if ignored is not None:
        values |= {"processed_at": now, "ignored_reason": ignored.reason[:2000]}
    async with unit_of_work(factory) as session:
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(StripeEvent).values(**values)
        inserted = await session.execute(
            statement.on_conflict_do_nothing(index_elements=["stripe_event_id"]).returning(
                StripeEvent.id
            )
        )
        if inserted.first() is not None:
            return ignored is None
        processed = await session.execute(
            select(StripeEvent.processed_at).where(StripeEvent.stripe_event_id == event.id)
        )
        return processed.scalar_one_or_none() is None


async def process_event(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    handlers: Handlers,
    stripe_event_id: str,
    *,
    force: bool = False,
) -> Outcome:
    """Run the event's handler once. A failure leaves an unprocessed event unprocessed, with
    the error recorded, and re-raises so the job is retried; an event that was already
    processed keeps its clean record. Raises NoResultFound for an event not in the inbox."""
    # One indexed read, no ORM session: the job carries only the id (its payload is here).
    async with _engine(factory).connect() as connection:
        row = (
            await connection.execute(
                select(StripeEvent.type, StripeEvent.payload, StripeEvent.processed_at).where(
                    StripeEvent.stripe_event_id == stripe_event_id
                )
            )
        ).one()
    if row.processed_at is not None and not force:
        return Outcome(stripe_event_id, "duplicate")
    try:
        handler = handlers.get(row.type)
        prepared: Apply | Ignored = (
            unhandled(row.type)
            if handler is None
            else await handler(factory, gateway, Event.parse(row.payload))
        )
        return await _apply(factory, stripe_event_id, prepared, force=force)
    except Exception as exc:
        log.exception("handling Stripe event %s failed", stripe_event_id)
        await _record_failure(factory, stripe_event_id, exc)
        raise


async def _apply(
    factory: async_sessionmaker[AsyncSession],
    stripe_event_id: str,
    prepared: Apply | Ignored,
    *,
    force: bool,
) -> Outcome:
    """The handler's apply step and the inbox row marked processed, in one transaction that
    holds the inbox row's lock (a concurrent duplicate job waits, then finds it processed)."""
    by_id = StripeEvent.stripe_event_id == stripe_event_id
    async with unit_of_work(factory) as session:
        locked = (
            await session.execute(select(StripeEvent.processed_at).where(by_id).with_for_update())
        ).one()
        if locked.processed_at is not None and not force:
            return Outcome(stripe_event_id, "duplicate")
        result = prepared if isinstance(prepared, Ignored) else await prepared(session)
        await session.execute(
            update(StripeEvent)
            .where(by_id)
            .values(
                attempts=StripeEvent.attempts + 1,
                processed_at=utcnow(),
                last_error=None,
                ignored_reason=result.reason[:2000] if result else None,
            )
            .execution_options(synchronize_session=False)
        )
    if result is not None:
        log.info("Stripe event %s ignored: %s", stripe_event_id, result.reason)
        return Outcome(stripe_event_id, "ignored", result.reason)
    return Outcome(stripe_event_id, "processed")


async def _record_failure(
    factory: async_sessionmaker[AsyncSession], stripe_event_id: str, exc: Exception
) -> None:
    """The error on a still-unprocessed event; after its last try, platform admins are told."""
    async with unit_of_work(factory) as session:
        failed = (
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
                .returning(StripeEvent)
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if failed is not None and failed.attempts >= EVENT_ATTEMPTS:
            # Its last try: the job gives up and nothing re-queues it.
            await triggers.stripe_event_failed(session, failed)


async def list_events(
    session: AsyncSession, *, failed: bool, limit: int, event_id: str | None = None
) -> list[StripeEvent]:
    """The inbox, newest first; `failed`: only the events not processed yet (their last
    error says why), which `souq events replay` and the back office run again."""
    query = select(StripeEvent).order_by(StripeEvent.id.desc()).limit(limit)
    if failed:
        query = query.where(StripeEvent.processed_at.is_(None))
    if event_id is not None:
        query = query.where(StripeEvent.stripe_event_id == event_id)
    return list((await session.execute(query)).scalars())


Enqueue = Callable[[str], Awaitable[None]]
# An event's queueing as SQL for the statement that records it (`payments.tasks`): given the
# event id and the SQL condition under which to queue it, or None where the queue is not in
# the database.
EnqueueSql = Callable[[str, str], DeferSql | None]

# One statement on PostgreSQL: record the event (a duplicate does nothing) and queue its job
# when it was recorded now or is still unprocessed. The body is stored as Stripe signed it.
_RECORD_AND_QUEUE = """
WITH recorded AS (
    INSERT INTO stripe_event
        (stripe_event_id, type, account, created, payload, received_at, attempts)
    VALUES (:event_id, :type, :account, :created, CAST(:payload AS json), :received_at, 0)
    ON CONFLICT (stripe_event_id) DO NOTHING
    RETURNING id
),
earlier AS (
    SELECT processed_at IS NULL AS waiting FROM stripe_event WHERE stripe_event_id = :event_id
),
queued AS ({queue})
SELECT EXISTS (SELECT FROM recorded) AS recorded,
       COALESCE((SELECT waiting FROM earlier), false) AS waiting,
       (SELECT count(*) FROM queued) AS queued
"""
_QUEUE_WHEN = "EXISTS (SELECT FROM recorded) OR EXISTS (SELECT FROM earlier WHERE waiting)"


@functools.lru_cache(maxsize=8)
def _record_and_queue(queue: str) -> TextClause:
    return text(_RECORD_AND_QUEUE.format(queue=queue)).bindparams(
        bindparam("received_at", type_=StripeEvent.__table__.c.received_at.type)
    )


def _as_text(body: bytes, event: Event) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:  # JSON in another encoding: stored re-encoded
        return json.dumps(event.payload)


async def _record_queued(
    factory: async_sessionmaker[AsyncSession], event: Event, body: bytes, queue: DeferSql
) -> bool:
    """`record_event` and the job's queueing in one statement and one transaction, with no
    ORM session: True when the event was recorded now or waits to be processed.

    Two deliveries of one event at once may both find no job waiting in their snapshots; the
    second's queueing then meets the first's job on procrastinate's queueing lock and its whole
    statement fails. Run again, it finds the row and the job, and queues nothing."""
    for attempt in range(3):
        try:
            async with _engine(factory).begin() as connection:
                row = (
                    await connection.execute(
                        _record_and_queue(queue.select),
                        {
                            "event_id": event.id,
                            "type": event.type,
                            "account": event.account,
                            "created": event.created,
                            "payload": _as_text(body, event),
                            "received_at": utcnow(),
                            **queue.params,
                        },
                    )
                ).one()
            return bool(row.recorded or row.waiting)
        except IntegrityError as exc:
            if attempt == 2 or not _queueing_lock_taken(exc):
                raise
    raise AssertionError("unreachable")


def _queueing_lock_taken(exc: IntegrityError) -> bool:
    diag = getattr(exc.orig, "diag", None)
    return str(getattr(diag, "constraint_name", "")).startswith("procrastinate_jobs_queueing_lock")


async def receive(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    enqueue: Enqueue,
    payload: bytes,
    signature: str | None,
    *,
    connect: bool,
    handled: Container[str],
    enqueue_sql: EnqueueSql | None = None,
) -> Outcome:
    """A webhook delivery: verify (SignatureInvalid or EventInvalid → 400, nothing stored),
    record, queue its processing. Stripe is not called. A type with no handler in `handled`
    (an endpoint subscribed to more than Souq's types) is recorded as ignored in the same
    insert and queues nothing, so it costs one statement. On PostgreSQL recording and queueing
    are one statement (`enqueue_sql`); elsewhere the job is queued after the commit."""
    event = gateway.verify_event(payload, signature, connect=connect)
    ignored = None if event.type in handled else unhandled(event.type)
    queue = enqueue_sql(event.id, _QUEUE_WHEN) if enqueue_sql and ignored is None else None
    if queue is not None:
        waiting = await _record_queued(factory, event, payload, queue)
        return Outcome(event.id, "received" if waiting else "duplicate")
    if not await record_event(factory, event, ignored=ignored):
        if ignored is not None:
            return Outcome(event.id, "ignored", ignored.reason)
        return Outcome(event.id, "duplicate")
    await enqueue(event.id)
    return Outcome(event.id, "received")
