from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, Enum, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from souq.db import Base, UTCDateTime, utcnow


class StoreRole(enum.StrEnum):
    owner = "owner"
    admin = "admin"
    seller = "seller"


class Store(Base):
    __tablename__ = "store"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(220), unique=True)
    country: Mapped[str] = mapped_column(String(2), default="US")
    default_currency: Mapped[str] = mapped_column(String(3), default="usd")
    stripe_account_id: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    stripe_onboarding_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    stripe_charges_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    stripe_payouts_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    stripe_requirements_due: Mapped[list[str]] = mapped_column(JSON, default=list)
    stripe_disabled_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The `created` time of the newest account.updated applied, so older events never win.
    stripe_account_synced_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stripe_deauthorized_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The store's commission, set by a platform admin; NULL: the platform's PLATFORM_FEE_BPS.
    platform_fee_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Per currency (lower-case code → minor units): a fixed amount added to each order's
    # commission, and the least commission an order pays.
    commission_fixed: Mapped[dict[str, int]] = mapped_column(
        JSON, default=dict, server_default="{}"
    )
    commission_minimum: Mapped[dict[str, int]] = mapped_column(
        JSON, default=dict, server_default="{}"
    )
    # When the store's share of a cart's payment is transferred ("on_payment" or
    # "on_fulfilment"), set by a platform admin; NULL: the platform's TRANSFER_TIMING.
    transfer_timing: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StoreMember(Base):
    __tablename__ = "store_member"
    __table_args__ = (UniqueConstraint("store_id", "user_id", name="uq_store_member_store_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("store.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    role: Mapped[StoreRole] = mapped_column(
        Enum(StoreRole, name="store_role", native_enum=False, length=20)
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StoreInvitation(Base):
    """An offer of a role in a store, made to an email address; the person with that address
    becomes a member only by accepting it. One open invitation per store and address."""

    __tablename__ = "store_invitation"
    __table_args__ = (
        UniqueConstraint("store_id", "email", name="uq_store_invitation_store_email"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("store.id", ondelete="CASCADE"), index=True)
    # Lower-cased: invitations are matched to accounts case-insensitively.
    email: Mapped[str] = mapped_column(String(320), index=True)
    role: Mapped[StoreRole] = mapped_column(
        Enum(StoreRole, name="store_role", native_enum=False, length=20)
    )
    invited_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
