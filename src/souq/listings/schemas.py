from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StrictInt

from souq.listings.models import Listing
from souq.money import format_amount
from souq.schemas import NAME_PATTERN, ApiInput, ApiModel, CurrencyCode

STOCK_MAX = 1_000_000_000
# A whole number of units; true or "5" are refused rather than read as 1 or 5.
Stock = Annotated[StrictInt, Field(ge=0, le=STOCK_MAX)]

PRICE_DOC = 'A decimal string in the currency\'s own exponent: "19.99" USD, "500" JPY, "1.250" KWD.'


class ListingCreate(ApiInput):
    name: str = Field(max_length=200, pattern=NAME_PATTERN, examples=["Olive wood bowl"])
    description: str = Field(default="", max_length=20_000)
    price: str = Field(max_length=32, description=PRICE_DOC, examples=["19.99"])
    currency: CurrencyCode = Field(description="ISO 4217, lower or upper case.", examples=["usd"])
    stock: Stock | None = Field(default=None, description="null (the default) means unlimited.")


class ListingUpdate(ApiInput):
    name: str | None = Field(default=None, max_length=200, pattern=NAME_PATTERN)
    description: str | None = Field(default=None, max_length=20_000)
    price: str | None = Field(default=None, max_length=32, description=PRICE_DOC)
    currency: CurrencyCode | None = Field(
        default=None, description="Changing it requires a price as well."
    )
    stock: Stock | None = Field(default=None, description="null means unlimited.")
    active: bool | None = None


class ListingOut(ApiModel):
    id: int
    store_id: int
    name: str
    description: str
    price: str = Field(description=PRICE_DOC)
    currency: str
    stock: int | None
    active: bool
    created_at: datetime

    @classmethod
    def of(cls, listing: Listing) -> ListingOut:
        return cls(
            id=listing.id,
            store_id=listing.store_id,
            name=listing.name,
            description=listing.description,
            price=format_amount(listing.price_amount, listing.currency),
            currency=listing.currency,
            stock=listing.stock,
            active=listing.active,
            created_at=listing.created_at,
        )


class ListingPage(ApiModel):
    items: list[ListingOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class ListingDeleted(ApiModel):
    id: int
    outcome: Literal["deleted", "deactivated"] = Field(
        description="deactivated when orders refer to the listing, which keeps their history."
    )
