from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from souq.db import Base, UTCDateTime, utcnow


class StripeEvent(Base):
    """The webhook inbox: every verified Stripe event, stored once by its id."""

    __tablename__ = "stripe_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stripe_event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(100), index=True)
    account: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set when the event was acknowledged without effect, and why (an object Stripe does not
    # know, one that is not Souq's, a type Souq does not handle).
    ignored_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class CheckoutRequest(Base):
    """An `Idempotency-Key` a caller sent with a checkout: the same key and body give the same
    order and URL, however often and however concurrently they are sent, until it expires."""

    __tablename__ = "checkout_request"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_checkout_request_scope_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "user:{id}" for a logged-in caller; "guest" for everyone else, whose key is then
    # bound to the body it was first sent with.
    scope: Mapped[str] = mapped_column(String(50))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), nullable=True
    )
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class StripeEventCursor(Base):
    """How far the missed-event sweep has read Stripe's event list, per account ("platform"
    or a connected account's id): events created before `created` were all seen."""

    __tablename__ = "stripe_event_cursor"

    account: Mapped[str] = mapped_column(String(255), primary_key=True)
    created: Mapped[int] = mapped_column(Integer)
    swept_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
