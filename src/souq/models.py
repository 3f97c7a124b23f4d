"""Every table, imported in one place for Alembic and the test fixtures."""

from souq.auth.models import ApiToken, User, UserSession
from souq.db import Base
from souq.listings.models import Listing
from souq.orders.models import Order, OrderItem, OrderPayment, PaymentStatus
from souq.payments.models import StripeEvent
from souq.stores.models import Store, StoreInvitation, StoreMember, StoreRole
from souq.throttle import Throttle

__all__ = [
    "ApiToken", "Base", "Listing", "Order", "OrderItem", "OrderPayment", "PaymentStatus",
    "Store", "StoreInvitation", "StoreMember", "StoreRole", "StripeEvent", "Throttle", "User",
    "UserSession",
]  # fmt: skip
