"""Every table, imported in one place for Alembic and the test fixtures."""

from souq.auth.models import ApiToken, LoginThrottle, User
from souq.db import Base
from souq.listings.models import Listing
from souq.orders.models import Order, OrderItem, OrderPayment, PaymentStatus
from souq.payments.models import StripeEvent
from souq.stores.models import Store, StoreMember, StoreRole

__all__ = [
    "ApiToken", "Base", "Listing", "LoginThrottle", "Order", "OrderItem", "OrderPayment",
    "PaymentStatus", "Store", "StoreMember", "StoreRole", "StripeEvent", "User",
]  # fmt: skip
