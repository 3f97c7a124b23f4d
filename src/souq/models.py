"""Every table, imported in one place for Alembic and the test fixtures."""

from sqlalchemy import Index, func

from souq.auth.models import ApiToken, User, UserSession
from souq.carts.models import Cart, CartItem, CheckoutGroup
from souq.db import Base
from souq.integrations.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from souq.ledger.models import Dispute, LedgerEntry, Refund, StoreLossPolicy
from souq.listings.models import Listing
from souq.notifications.models import MailMessage, NotificationPreference
from souq.orders.models import Order, OrderItem, OrderPayment, PaymentStatus
from souq.payments.models import StoreTransfer, StripeEvent
from souq.stores.models import Store, StoreInvitation, StoreMember, StoreRole
from souq.throttle import Throttle

# Indexes that exist for particular read paths (migration 0004), declared with the metadata so
# the schema Alembic compares against includes them: a store's catalogue page, a store's
# orders newest first (with or without a status), and a payment found by its PaymentIntent
# (the charge.* webhooks).
QUERY_INDEXES = (
    Index("ix_listing_store_id_id", Listing.store_id, Listing.id),
    Index("ix_orders_store_id_id", Order.store_id, Order.id),
    Index("ix_orders_store_id_payment_status_id", Order.store_id, Order.payment_status, Order.id),
    Index("ix_order_payment_stripe_payment_intent_id", OrderPayment.stripe_payment_intent_id),
    # A buyer's orders by email or by address (migration 0013): the hold limit counts the
    # unpaid ones under the listing's lock on every checkout (`payments/limits.py`). Not partial
    # on the status: a prepared statement's generic plan could not prove a partial predicate.
    Index("ix_orders_customer_email_lower", func.lower(Order.customer_email)),
    Index("ix_orders_client_address", Order.client_address),
)

__all__ = [
    "QUERY_INDEXES", "ApiToken", "Base", "Cart", "CartItem", "CheckoutGroup", "Dispute",
    "LedgerEntry", "Listing", "MailMessage", "NotificationPreference", "Order", "OrderItem",
    "OrderPayment", "PaymentStatus", "Refund", "Store", "StoreInvitation", "StoreLossPolicy",
    "StoreMember", "StoreRole", "StoreTransfer", "StripeEvent", "Throttle", "User",
    "UserSession", "WebhookAttempt", "WebhookDelivery", "WebhookEndpoint", "WebhookEvent",
]  # fmt: skip
