"""Rows that something outside the database must act on, later and exactly once per row: mail
messages and webhook deliveries. Both are written in the transaction of the change that causes
them, then claimed, sent outside any transaction, and settled (sent, retried later, failed).

A claim is one conditional UPDATE (`status` still claimable), after a `SELECT … FOR UPDATE SKIP
LOCKED` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already serialises it. A claim holds for a
lease: a sender that crashed mid-send leaves `sending` rows that are claimable again once their
lease is over, so a crash delays a row but never loses it.
"""

from __future__ import annotations

import enum
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Enum, Integer, String, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from souq.db import UTCDateTime, utcnow

# How long a claimed row is left to its sender before another may take it again.
CLAIM_LEASE = timedelta(minutes=5)
BACKOFF_CAP = timedelta(hours=6)
LAST_ERROR_LENGTH = 1000


class OutboxStatus(enum.StrEnum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    # Gave up after the last attempt: shown to a platform admin, who may retry it.
    failed = "failed"
    # No SMTP server is configured: the database outbox is where the message goes.
    kept = "kept"


class Sendable:
    """The columns every outbox row shares (a mixin for the models)."""

    status: Mapped[OutboxStatus] = mapped_column(
        Enum(OutboxStatus, name="outbox_status", native_enum=False, length=20),
        default=OutboxStatus.pending,
        index=True,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claim_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(LAST_ERROR_LENGTH), nullable=True)


def backoff(attempts: int, base_seconds: float) -> timedelta:
    """The wait before attempt `attempts + 1`: base × 2^(attempts − 1), at most BACKOFF_CAP."""
    seconds = base_seconds * 2 ** max(attempts - 1, 0)
    return min(timedelta(seconds=seconds), BACKOFF_CAP)


def claimable(model: Any, now: datetime) -> Any:
    """Rows due now, or claimed by a sender whose lease ran out."""
    return or_(
        and_(model.status == OutboxStatus.pending, model.next_attempt_at <= now),
        and_(model.status == OutboxStatus.sending, model.claimed_until < now),
    )


async def claim(
    session: AsyncSession, model: Any, limit: int, *extra: Any, now: datetime | None = None
) -> list[Any]:
    """Claim up to `limit` due rows of `model` (oldest first) for this sender; `extra` narrows
    the rows. Returns them, marked `sending` with a lease and this claim's token."""
    now = now or utcnow()
    candidates = (
        (
            await session.execute(
                select(model.id)
                .where(claimable(model, now), *extra)
                .order_by(model.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    if not candidates:
        return []
    token = secrets.token_hex(16)
    await session.execute(
        update(model)
        .where(model.id.in_(candidates), claimable(model, now))
        .values(status=OutboxStatus.sending, claimed_until=now + CLAIM_LEASE, claim_token=token)
        .execution_options(synchronize_session=False)
    )
    rows = (
        (
            await session.execute(
                select(model)
                .where(model.claim_token == token)
                .order_by(model.id)
                .execution_options(populate_existing=True)
            )
        )
        .scalars()
        .all()
    )
    return list(rows)


async def reclaimed(session: AsyncSession, model: Any, row_id: int, token: str) -> Any:
    """The claimed row, locked, if this sender's claim on it still holds (None when the lease
    ran out and another sender took it, or the row is gone)."""
    return (
        await session.execute(
            select(model)
            .where(model.id == row_id, model.claim_token == token)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


def settle(row: Any, error: str | None, *, max_attempts: int, base_seconds: float) -> None:
    """Record one attempt on a claimed row: sent, or due again after a backoff, or failed once
    `max_attempts` are used up."""
    row.attempts += 1
    row.claimed_until = None
    row.claim_token = None
    if error is None:
        row.status = OutboxStatus.sent
        row.last_error = None
        return
    row.last_error = error[:LAST_ERROR_LENGTH]
    if row.attempts >= max_attempts:
        row.status = OutboxStatus.failed
    else:
        row.status = OutboxStatus.pending
        row.next_attempt_at = utcnow() + backoff(row.attempts, base_seconds)


def retry_now(row: Any) -> None:
    """Make a settled row due again at once (an admin's retry, a manual redelivery)."""
    row.status = OutboxStatus.pending
    row.next_attempt_at = utcnow()
    row.claimed_until = None
    row.claim_token = None
