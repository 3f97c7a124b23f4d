from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, EmailStr, Field

from souq.payments.onboarding import NextAction
from souq.payments.webhooks import OutcomeStatus
from souq.schemas import WHOLE_NUMBER, ApiInput, ApiModel, CurrencyCode

MAX_ID = 2**31 - 1  # ids are 32-bit integers on every engine
Id = Annotated[int, Field(gt=0, le=MAX_ID), WHOLE_NUMBER]


class StoreRef(ApiInput):
    store_id: Id = Field(description="The store's id")


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
    listing_id: Id
    quantity: Annotated[int, WHOLE_NUMBER] = Field(
        description="A whole number from 1 to the configured maximum"
    )


class CheckoutIn(CheckoutModel):
    store_id: Id
    currency: CurrencyCode = Field(description="ISO 4217, lower or upper case")
    # Documented, and enforced by checkout with its own error code (empty_cart).
    items: list[CheckoutItemIn] = Field(max_length=1000, json_schema_extra={"minItems": 1})
    customer_email: EmailStr | None = Field(
        default=None, description="Required for guests; defaults to the logged-in buyer's email"
    )


class CheckoutOut(ApiModel):
    url: str
    order_id: int


class CurrencyBalanceOut(ApiModel):
    currency: str
    held: str = Field(description="Kept by the platform until the orders are fulfilled.")
    waiting: str = Field(
        description="Due to the store but not sent yet (Stripe refused or did not answer; "
        "retried by reconcile)."
    )
    released: str = Field(description="Sent to the store's Stripe account.")
    paid_out: str | None = Field(
        description="Paid by Stripe from the store's account to its bank; null when Stripe "
        "could not be asked just now."
    )


class StoreBalanceOut(ApiModel):
    store_id: int
    currencies: list[CurrencyBalanceOut]
    paid_out_known: bool
