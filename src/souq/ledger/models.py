"""The ledger and the rows of money after the sale: refunds, disputes, a store's loss policy."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from souq.db import Base, UTCDateTime, utcnow


class LedgerEntry(Base):
    """One movement of money for one party, in one currency, caused by one Stripe object.

    Append-only: rows are inserted and never changed. Every movement between two parties is
    two rows that sum to zero, and money leaves the books only to the buyer (a refund, a
    dispute), so an order's entries always sum to what the buyer paid minus what went back.
    The unique (kind, Stripe object, party, order) makes writing an entry twice impossible;
    the order is part of it because one Stripe object can carry several orders' money (a
    split cart's one charge, a store's payout)."""

    __tablename__ = "ledger_entry"
    __table_args__ = (
        UniqueConstraint(
            "kind", "stripe_object_id", "party", "order_id", name="uq_ledger_entry_object"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), nullable=True, index=True
    )
    store_id: Mapped[int] = mapped_column(ForeignKey("store.id"), index=True)
    # store | platform | stripe (the processor: fees Stripe keeps)
    party: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(Integer)  # signed, minor units
    stripe_object_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Refund(Base):
    """A refund of an order: asked for through Souq (with the caller's Idempotency-Key) or
    found in Stripe (made in its dashboard). `status` follows Stripe's refund; `requested`
    means Souq has not heard Stripe's answer yet, and the amount still counts against what
    is left to refund."""

    __tablename__ = "refund"
    __table_args__ = (
        UniqueConstraint("order_id", "idempotency_key", name="uq_refund_order_key"),
        # One Stripe refund of a checkout group's charge made outside Souq is a row per order
        # (each its share); any other is one row.
        UniqueConstraint("stripe_refund_id", "order_id", name="uq_refund_stripe_refund_order"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("store.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    status: Mapped[str] = mapped_column(String(30))
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # What the refund moves besides the buyer's money, as planned by the loss policy.
    commission_refunded: Mapped[int] = mapped_column(Integer, default=0)
    transfer_reversed: Mapped[int] = mapped_column(Integer, default=0)
    fee_recovered: Mapped[int] = mapped_column(Integer, default=0)
    # A split cart's refund while the store's transfer was still held: what it took off the
    # held transfer instead of reversing one (0 otherwise).
    held_reduced: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A split cart's refund of a sent transfer: the reversal of the store's transfer.
    stripe_reversal_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # How often Stripe refused that reversal (the next try takes the next idempotency key).
    reversal_refusals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    restock: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(20), default="souq")  # souq | stripe
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    requested_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), nullable=True
    )
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Dispute(Base):
    """A chargeback on an order's charge, kept in step with Stripe's dispute. A dispute of a
    checkout group's charge is one row per order of the group, each with its share of the
    amount and fee (ledger/group_disputes.py)."""

    __tablename__ = "dispute"
    __table_args__ = (
        UniqueConstraint("stripe_dispute_id", "order_id", name="uq_dispute_stripe_dispute_order"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("store.id"), index=True)
    stripe_dispute_id: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    fee: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(40))
    evidence_due_by: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    evidence_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    evidence_submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The reversal of the store's transfer that recovered the loss, made at most once.
    recovery_reversal_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # What the loss policy takes back from the store, fixed when the recovery fell due (in the
    # transaction that applied the dispute); the job `ledger.recover_dispute` then makes the
    # reversal after the commit, once, by a key from the dispute's id.
    recovery_due: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    recovery_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    recovered_amount: Mapped[int] = mapped_column(Integer, default=0)
    # A split cart's order whose store transfer was not sent yet: what the recovery took off
    # the held transfer instead of reversing it (0 otherwise; back to 0 when given back).
    held_reduced: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The transfer that gave a recovery back when the dispute was won after all.
    return_transfer_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Why the recovery could not be made yet (Stripe needs the store's available balance).
    recovery_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StoreLossPolicy(Base):
    """A platform admin's override of the platform's loss policy for one store; a NULL
    column follows the platform setting."""

    __tablename__ = "store_loss_policy"

    store_id: Mapped[int] = mapped_column(
        ForeignKey("store.id", ondelete="CASCADE"), primary_key=True
    )
    refund_commission: Mapped[str | None] = mapped_column(String(20), nullable=True)
    processing_fee_bearer: Mapped[str | None] = mapped_column(String(20), nullable=True)
    dispute_amount_bearer: Mapped[str | None] = mapped_column(String(20), nullable=True)
    dispute_fee_bearer: Mapped[str | None] = mapped_column(String(20), nullable=True)
    dispute_recovery_on: Mapped[str | None] = mapped_column(String(20), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StorePayout(Base):
    """A connected account's payout to the store's bank, kept in step with Stripe's payout
    (`payout.created/paid/failed`); each order's money in it is a ledger `payout` entry."""

    __tablename__ = "store_payout"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("store.id"), index=True)
    stripe_payout_id: Mapped[str] = mapped_column(String(255), unique=True)
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(30), index=True)
    arrival_date: Mapped[datetime] = mapped_column(UTCDateTime)
    # Money in the payout that no order of Souq's explains (e.g. a top-up, or an adjustment).
    unattributed: Mapped[int] = mapped_column(Integer, default=0)
    # Why Stripe's payout failed (`no_account`, `account_closed`, …; its failure_code).
    failure_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    failure_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
