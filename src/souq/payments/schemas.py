from __future__ import annotations

from pydantic import ConfigDict, EmailStr, Field

from souq.payments.onboarding import NextAction
from souq.payments.webhooks import OutcomeStatus
from souq.schemas import ApiInput, ApiModel

MAX_ID = 2**31 - 1  # ids are 32-bit integers on every engine


class StoreRef(ApiInput):
    store_id: int = Field(strict=True, gt=0, le=MAX_ID, description="The store's id")


class ConnectedAccount(ApiModel):
    stripe_account_id: str


class LinkOut(ApiModel):
    url: str


class NextStepOut(ApiModel):
    action: NextAction
    label: str
    explanation: str


class PaymentsStatusOut(ApiModel):
    store_id: int
    has_account: bool
    stripe_account_id: str | None
    onboarding_complete: bool
    charges_enabled: bool
    payouts_enabled: bool
    requirements_due: list[str]
    disabled_reason: str | None
    disconnected: bool
    next_step: NextStepOut


class WebhookAck(ApiModel):
    received: bool = True
    event_id: str
    status: OutcomeStatus
    reason: str | None = Field(default=None, description="Why an ignored event was ignored")


class CheckoutModel(ApiInput):
    # Anything else a client sends (a price, a fee, a total) is ignored: what is charged comes
    # only from the database.
    model_config = ConfigDict(extra="ignore")


class CheckoutItemIn(CheckoutModel):
    listing_id: int = Field(strict=True, gt=0, le=MAX_ID)
    quantity: int = Field(
        strict=True, description="A whole number from 1 to the configured maximum"
    )


class CheckoutIn(CheckoutModel):
    store_id: int = Field(strict=True, gt=0, le=MAX_ID)
    currency: str = Field(min_length=3, max_length=3, description="ISO 4217, either case")
    items: list[CheckoutItemIn] = Field(max_length=1000)
    customer_email: EmailStr | None = Field(
        default=None, description="Required for guests; defaults to the logged-in buyer's email"
    )


class CheckoutOut(ApiModel):
    url: str
    order_id: int
