"""Counters in the database for throttling (failed logins, checkout creation), shared by every
worker process. A counter counts hits in a fixed window that starts at its first hit; a caller
may also block its key until a given time."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Integer, String, case, delete, literal, null, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from souq.db import Base, UTCDateTime, utcnow
from souq.errors import TooManyRequests, wait_text


class Throttle(Base):
    """Hits of one key (`login:…`, `checkout-addr:…`) within its window, and until when the
    key is blocked, if it is."""

    __tablename__ = "throttle"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


def seconds_until(moment: datetime, now: datetime) -> int:
    """Whole seconds from `now` until `moment`, rounded up, so waiting that long is enough."""
    return max(1, math.ceil((moment - now).total_seconds()))


async def blocked_for(session: AsyncSession, keys: Sequence[str]) -> int | None:
    """How many seconds the most blocked of `keys` stays blocked, or None if none is."""
    now = utcnow()
    result = await session.execute(
        select(Throttle.blocked_until).where(
            Throttle.key.in_(list(keys)), Throttle.blocked_until > now
        )
    )
    until = [moment for moment in result.scalars() if moment is not None]
    return seconds_until(max(until), now) if until else None


async def hit(session: AsyncSession, key: str, window: timedelta) -> Throttle:
    """Count one hit of `key`, starting a new window if the last one is over; returns the row,
    locked for this transaction, for the caller to block it if it must."""
    now = utcnow()
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # Create the row if missing without racing a concurrent hit, then lock and count.
    await session.execute(
        insert(Throttle)
        .values(key=key, hits=0, window_started_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    row = (
        await session.execute(
            select(Throttle)
            .where(Throttle.key == key)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    if now - row.window_started_at >= window:
        row.hits = 0
        row.window_started_at = now
        if row.blocked_until is not None and row.blocked_until <= now:
            row.blocked_until = None
    row.hits += 1
    await session.flush()
    return row


async def consume(
    session: AsyncSession,
    limits: Sequence[tuple[str, int]],
    *,
    window: timedelta,
    what: str,
    code: str,
) -> None:
    """Count a hit of each `(key, limit)` and refuse it (429, Retry-After = the rest of the
    window) once more than `limit` hits fall in one window of a key (the first such key in
    `limits` is named). One statement for all keys: an upsert that starts a new window where
    the last one is over, exactly as `hit` does, and returns the counts."""
    now = utcnow()
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    over = Throttle.window_started_at <= literal(now - window, UTCDateTime())
    statement = (
        insert(Throttle)
        .values([{"key": key, "hits": 1, "window_started_at": now} for key, _ in limits])
        .on_conflict_do_update(
            index_elements=["key"],
            set_={
                "hits": case((over, 1), else_=Throttle.hits + 1),
                "window_started_at": case(
                    (over, literal(now, UTCDateTime())), else_=Throttle.window_started_at
                ),
                "blocked_until": case(
                    (over & (Throttle.blocked_until <= literal(now, UTCDateTime())), null()),
                    else_=Throttle.blocked_until,
                ),
            },
        )
        .returning(Throttle.key, Throttle.hits, Throttle.window_started_at)
    )
    counted = {key: (hits, started) for key, hits, started in await session.execute(statement)}
    for key, limit in limits:
        hits, started = counted[key]
        if hits > limit:
            wait = seconds_until(started + window, utcnow())
            raise TooManyRequests(
                f"too many {what}; try again in {wait_text(wait)}", code=code, retry_after=wait
            )


async def clear(session: AsyncSession, key: str) -> None:
    await session.execute(delete(Throttle).where(Throttle.key == key))
