from __future__ import annotations

from datetime import datetime

from pydantic import Field

from souq.config import TransferTiming
from souq.schemas import EMAIL_PATTERN, NAME_PATTERN, ApiInput, ApiModel, CountryCode, CurrencyCode
from souq.stores.models import StoreRole

COUNTRY_DOC = "ISO 3166 two-letter code of a country Stripe supports accounts in."
CURRENCY_DOC = "ISO 4217, lower or upper case."


class StoreCreate(ApiInput):
    name: str = Field(max_length=200, pattern=NAME_PATTERN, examples=["Cedar Crafts"])
    country: CountryCode = Field(default="US", description=COUNTRY_DOC)
    default_currency: CurrencyCode = Field(default="usd", description=CURRENCY_DOC)


class StoreUpdate(ApiInput):
    name: str | None = Field(default=None, max_length=200, pattern=NAME_PATTERN)
    country: CountryCode | None = Field(default=None, description=COUNTRY_DOC)
    default_currency: CurrencyCode | None = Field(default=None, description=CURRENCY_DOC)


class StoreOut(ApiModel):
    id: int
    name: str
    slug: str
    country: str
    default_currency: str
    stripe_account_id: str | None
    stripe_onboarding_complete: bool
    stripe_charges_enabled: bool
    stripe_payouts_enabled: bool
    created_at: datetime


class MyStoreOut(StoreOut):
    role: StoreRole = Field(description="The caller's role in this store.")


class InvitationInput(ApiInput):
    email: str = Field(max_length=320, pattern=EMAIL_PATTERN, examples=["grace@example.com"])
    role: StoreRole


class InvitationOut(ApiModel):
    id: int
    store_id: int
    email: str
    role: StoreRole
    created_at: datetime
    expires_at: datetime


class MyInvitationOut(InvitationOut):
    store_name: str


class MemberUpdate(ApiInput):
    role: StoreRole


class MemberOut(ApiModel):
    user_id: int
    email: str
    name: str
    role: StoreRole


AMOUNTS_DOC = (
    'Currency code → amount as a decimal string in that currency (e.g. {"usd": "0.30"}); '
    "replaces the whole map; null or {} removes it."
)


class CommissionUpdate(ApiInput):
    """Fields left out stay as they are."""

    bps: int | None = Field(
        default=None,
        ge=0,
        le=10_000,
        description="Commission in basis points of each order's subtotal; null: the platform's "
        "PLATFORM_FEE_BPS.",
    )
    fixed: dict[str, str] | None = Field(
        default=None, max_length=200, description="Added to each order's commission. " + AMOUNTS_DOC
    )
    minimum: dict[str, str] | None = Field(
        default=None, max_length=200, description="The least commission of an order. " + AMOUNTS_DOC
    )
    transfer_timing: TransferTiming | None = Field(
        default=None,
        description="When the store's share of a paid order is transferred: on_payment, or "
        "on_fulfilment (held until the seller marks the order fulfilled, or "
        "TRANSFER_RELEASE_DAYS after the payment); null: the platform's TRANSFER_TIMING.",
    )


class CommissionOut(ApiModel):
    """A store's commission rule as the next order will be charged it."""

    store_id: int
    bps: int | None = Field(description="The store's own rate; null: the platform's.")
    effective_bps: int
    fixed: dict[str, str]
    minimum: dict[str, str]
    buyer_fee_bps: int = Field(description="The platform's service fee charged to buyers.")
    transfer_timing: TransferTiming | None = Field(
        description="The store's own; null: the platform's."
    )
    effective_transfer_timing: TransferTiming
