from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, Enum, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from souq.db import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from souq.payments.models import StoreTransfer


class PaymentStatus(enum.StrEnum):
    """Where an order stands. `pending` and `session_unknown` hold the order's stock; so do
    `paid` and, until a platform admin resolves it, `needs_review` when it held stock before."""

    pending = "pending"
    # Creating the Checkout Session timed out or failed on Stripe's side: Stripe may have made
    # it. The stock stays held until `souq reconcile` learns the session (same idempotency key)
    # and expires it, or finds it paid.
    session_unknown = "session_unknown"
    paid = "paid"
    # A payment arrived that is not exactly the one the order asked for (amount, currency,
    # fee, destination, another session, or its stock was gone): recorded, never a normal
    # sale, and listed for a platform admin to resolve.
    needs_review = "needs_review"
    failed = "failed"
    canceled = "canceled"
    refunded = "refunded"
    partially_refunded = "partially_refunded"
    # A chargeback is open on the order's payment (or was lost: the buyer's bank took the
    # money back, so the order never returns to paid). A won or warning-closed dispute puts the
    # order back to paid / partially_refunded, as its refunds say.
    disputed = "disputed"


class FulfilmentStatus(enum.StrEnum):
    shipped = "shipped"
    delivered = "delivered"


# States a checkout can still move out of by itself (its session may still be paid or expire).
OPEN_STATES = (PaymentStatus.pending, PaymentStatus.session_unknown)
# Closed without a payment; their stock went back to the shelf.
CLOSED_UNPAID = (PaymentStatus.failed, PaymentStatus.canceled)


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Indexed by ix_orders_store_id_id (souq/models.py), whose leading column it is.
    store_id: Mapped[int] = mapped_column(ForeignKey("store.id"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), nullable=True, index=True
    )
    customer_email: Mapped[str] = mapped_column(String(320))
    # Where the checkout came from, for the per-buyer holding limit (payments/limits.py).
    client_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_amount: Mapped[int] = mapped_column(Integer)
    total_amount: Mapped[int] = mapped_column(Integer)
    # The application fee: the store's commission plus the buyer's service fee.
    platform_fee_amount: Mapped[int] = mapped_column(Integer)
    # The fee rule that priced this order, as values copied when it was made (never a
    # reference to a rule that may change): basis points, the fixed amount and the minimum in
    # the order's minor units, and the buyer's service fee. NULL on orders made before rules
    # were recorded (their fee was the store's or the platform's bps of the total).
    commission_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    commission_fixed_amount: Mapped[int | None] = mapped_column(Integer, nullable=True)
    commission_minimum_amount: Mapped[int | None] = mapped_column(Integer, nullable=True)
    buyer_fee_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Charged to the buyer on top of the subtotal (total = subtotal + buyer fee); the store's
    # commission is platform_fee_amount - buyer_fee_amount.
    buyer_fee_amount: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    payment_status: Mapped[PaymentStatus] = mapped_column(
        Enum(PaymentStatus, name="payment_status", native_enum=False, length=30),
        default=PaymentStatus.pending,
        index=True,
    )
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(
        String(255), unique=True, nullable=True
    )
    # The connected account the order pays, as it was when the order was made: a payment to
    # any other destination is not this order's payment.
    destination_account_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The checkout group whose one payment pays this order with the other stores' orders of
    # the same cart (NULL: the order has its own destination-charge Checkout Session).
    checkout_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkout_group.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # The cart checkout that made the order with its other stores' orders (NULL: checked out
    # alone); under CHECKOUT_SPLIT_MODE=per_store its success page leads to the next one.
    cart_checkout_id: Mapped[int | None] = mapped_column(
        ForeignKey("cart_checkout.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # Whether the order's items are taken off the shelf right now; every reservation and
    # release flips it under the order's row lock, so stock moves exactly once either way.
    holds_stock: Mapped[bool] = mapped_column(Boolean, default=True)
    # Why the order needs a platform admin (set with needs_review), and what they decided.
    review_reason: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    # When the success page last asked Stripe about this order: at most one read per
    # CHECKOUT_STATUS_POLL_SECONDS per order, however often the page is loaded.
    stripe_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Whether the store's share waits for fulfilment (its transfer timing when the order was
    # made: on_fulfilment), so a later change of the timing never moves a sale already made.
    transfer_on_fulfilment: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    # What the seller said about delivery (`POST /api/orders/{id}/fulfilment`): shipped or
    # delivered, the carrier and tracking number, and when it was first marked.
    fulfilment_status: Mapped[FulfilmentStatus | None] = mapped_column(
        Enum(FulfilmentStatus, name="fulfilment_status", native_enum=False, length=20),
        nullable=True,
    )
    fulfilment_carrier: Mapped[str | None] = mapped_column(String(100), nullable=True)
    fulfilment_tracking_number: Mapped[str | None] = mapped_column(String(100), nullable=True)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", order_by="OrderItem.id", lazy="selectin"
    )
    payments: Mapped[list[OrderPayment]] = relationship(
        back_populates="order", order_by="OrderPayment.id", lazy="selectin"
    )
    # A checkout group's order: the store's share of the group's payment, once it is paid.
    transfer: Mapped[StoreTransfer | None] = relationship(
        "StoreTransfer", lazy="selectin", viewonly=True, uselist=False
    )

    @property
    def commission_amount(self) -> int:
        """What the store pays the platform for this sale."""
        return self.platform_fee_amount - self.buyer_fee_amount

    @property
    def payment(self) -> OrderPayment | None:
        """The payment that pays this order (at most one); others wait for review."""
        return next((p for p in self.payments if p.review_reason is None), None)


class OrderItem(Base):
    __tablename__ = "order_item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listing.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    line_subtotal: Mapped[int] = mapped_column(Integer)
    line_total: Mapped[int] = mapped_column(Integer)

    order: Mapped[Order] = relationship(back_populates="items")


class OrderPayment(Base):
    """Money Stripe took for an order, one row per Checkout Session (the unique session id is
    what makes a duplicate webhook harmless). At most one row per order counts as its payment
    (review_reason NULL, a partial unique index); any other is held for a platform admin."""

    __tablename__ = "order_payment"
    __table_args__ = (
        Index(
            "uq_order_payment_counted",
            "order_id",
            unique=True,
            sqlite_where=text("review_reason IS NULL"),
            postgresql_where=text("review_reason IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    stripe_checkout_session_id: Mapped[str] = mapped_column(String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    platform_fee_amount: Mapped[int] = mapped_column(Integer)
    stripe_fee_amount: Mapped[int | None] = mapped_column(Integer, nullable=True)
    net_amount_to_store: Mapped[int] = mapped_column(Integer)
    review_reason: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    order: Mapped[Order] = relationship(back_populates="payments")


# Order.transfer names StoreTransfer: its module must be imported wherever orders are, or the
# mappers cannot be configured (a process that never imported payments, like `souq demo`).
import souq.payments.models  # noqa: E402, F401
