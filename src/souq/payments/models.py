from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Integer, String, Text, UniqueConstraint
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


class TransferStatus(enum.StrEnum):
    # Waiting for Stripe: to be sent (again) by the payment's handler or `souq reconcile`.
    pending = "pending"
    # Stripe refused it (e.g. the account cannot receive transfers): retried by reconcile.
    failed = "failed"
    sent = "sent"
    # The store's transfer timing is on_fulfilment: kept on the platform until the seller
    # marks the order fulfilled or TRANSFER_RELEASE_DAYS pass; never released while the
    # order is refunded or disputed (`transfers.release_transfer`).
    held = "held"
    # Never sent: the order was refunded in full while its store's money was held.
    canceled = "canceled"


class StoreTransfer(Base):
    """A store's share of a checkout group's payment: one row per order (so per group and
    store), one Stripe transfer with key `checkout-group-{g}-store-{s}-transfer-{refusals}`,
    so no store is ever paid twice however often it is retried."""

    __tablename__ = "store_transfer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    checkout_group_id: Mapped[int] = mapped_column(
        ForeignKey("checkout_group.id", ondelete="CASCADE"), index=True
    )
    store_id: Mapped[int] = mapped_column(ForeignKey("store.id"), index=True)
    destination_account_id: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[TransferStatus] = mapped_column(
        Enum(TransferStatus, name="transfer_status", native_enum=False, length=20),
        default=TransferStatus.pending,
        index=True,
    )
    stripe_transfer_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Stripe's reason for the last refusal (its code and message), for the platform admin.
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # How many times Stripe refused it. A refusal means no transfer was made, and Stripe
    # replays a key's first answer (errors included) for 24 hours, so the retry after a
    # refusal uses the next key; a call that got no answer is retried with the same key.
    refusals: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def idempotency_key(self) -> str:
        return (
            f"checkout-group-{self.checkout_group_id}-store-{self.store_id}-transfer-"
            f"{self.refusals}"
        )


class StripeEventCursor(Base):
    """How far the missed-event sweep has read Stripe's event list, per account ("platform"
    or a connected account's id): events created before `created` were all seen."""

    __tablename__ = "stripe_event_cursor"

    account: Mapped[str] = mapped_column(String(255), primary_key=True)
    created: Mapped[int] = mapped_column(Integer)
    swept_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
