from __future__ import annotations

from datetime import datetime

from pydantic import Field

from souq.schemas import ApiInput, ApiModel
from souq.stores.models import StoreRole


class StoreCreate(ApiInput):
    name: str = Field(max_length=200, examples=["Cedar Crafts"])
    country: str = Field(default="US", max_length=2, description="ISO 3166 two-letter code.")
    default_currency: str = Field(default="usd", max_length=3, description="ISO 4217, any case.")


class StoreUpdate(ApiInput):
    name: str | None = Field(default=None, max_length=200)
    country: str | None = Field(default=None, max_length=2)
    default_currency: str | None = Field(default=None, max_length=3)


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


class MemberAdd(ApiInput):
    email: str = Field(max_length=320)
    role: StoreRole


class MemberUpdate(ApiInput):
    role: StoreRole


class MemberOut(ApiModel):
    user_id: int
    email: str
    name: str
    role: StoreRole
