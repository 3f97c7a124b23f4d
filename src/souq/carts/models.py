"""Carts (a guest's, by a key in the signed session cookie, or a user's) and checkout groups:
one payment on the platform's account for the orders of several stores, split by transfers."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from souq.db import Base, UTCDateTime, utcnow


class Cart(Base):
    __tablename__ = "cart"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # A user's one cart; NULL for a guest's.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), unique=True, nullable=True
    )
    # A guest's cart: SHA-256 of the random key kept in the browser's signed session cookie.
    key_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    items: Mapped[list[CartItem]] = relationship(
        back_populates="cart", order_by="CartItem.id", lazy="selectin", cascade="all, delete-orphan"
    )


class CartItem(Base):
    """A listing in a cart, with the price the buyer saw when adding it: a price changed since
    is reported at checkout, never silently charged."""

    __tablename__ = "cart_item"
    __table_args__ = (UniqueConstraint("cart_id", "listing_id", name="uq_cart_item_cart_listing"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cart_id: Mapped[int] = mapped_column(ForeignKey("cart.id", ondelete="CASCADE"), index=True)
    listing_id: Mapped[int] = mapped_column(
        ForeignKey("listing.id", ondelete="CASCADE"), index=True
    )
    quantity: Mapped[int] = mapped_column(Integer)
    seen_unit_price: Mapped[int] = mapped_column(Integer)
    seen_currency: Mapped[str] = mapped_column(String(3))

    cart: Mapped[Cart] = relationship(back_populates="items")


class GroupStatus(enum.StrEnum):
    pending = "pending"
    # Creating the Checkout Session got no answer: `souq reconcile` learns it (same key).
    session_unknown = "session_unknown"
    paid = "paid"
    # Paid, but not the payment asked for (amount, currency): its orders wait for an admin.
    needs_review = "needs_review"
    failed = "failed"
    canceled = "canceled"


class CheckoutGroup(Base):
    """One Checkout Session on the platform's account paying one order per store; its
    `transfer_group` is `checkout-group-{id}`."""

    __tablename__ = "checkout_group"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), nullable=True, index=True
    )
    customer_email: Mapped[str] = mapped_column(String(320))
    currency: Mapped[str] = mapped_column(String(3))
    total_amount: Mapped[int] = mapped_column(Integer)
    status: Mapped[GroupStatus] = mapped_column(
        Enum(GroupStatus, name="checkout_group_status", native_enum=False, length=30),
        default=GroupStatus.pending,
        index=True,
    )
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(
        String(255), unique=True, nullable=True
    )
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The charge every store's transfer takes its money from (`source_transaction`).
    stripe_charge_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    review_reason: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def transfer_group(self) -> str:
        return f"checkout-group-{self.id}"


class CartCheckoutStatus(enum.StrEnum):
    # Orders and payment pages are being made: a second checkout of the same cart waits
    # for this one and gets its answer (a double click makes one checkout).
    started = "started"
    ready = "ready"
    failed = "failed"


class CartCheckout(Base):
    """One checkout of a cart: its orders (`orders.cart_checkout_id`), the group paying them
    at once (single_payment, several stores) and the page that pays each. Under per_store each
    order has its own page, and a paid one's success page leads to the next."""

    __tablename__ = "cart_checkout"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cart_id: Mapped[int | None] = mapped_column(
        ForeignKey("cart.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # CHECKOUT_SPLIT_MODE when the checkout was made: single_payment or per_store.
    split_mode: Mapped[str] = mapped_column(String(20))
    status: Mapped[CartCheckoutStatus] = mapped_column(
        Enum(CartCheckoutStatus, name="cart_checkout_status", native_enum=False, length=20),
        default=CartCheckoutStatus.started,
    )
    checkout_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkout_group.id", ondelete="SET NULL"), nullable=True
    )
    # [[order id, the page that pays it], …], the first to pay first (set when ready).
    pages: Mapped[list[list[Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
