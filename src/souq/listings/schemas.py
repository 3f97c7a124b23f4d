from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from souq.listings.models import Listing
from souq.money import format_amount
from souq.schemas import ApiInput, ApiModel

PRICE_DOC = 'A decimal string in the currency\'s own exponent: "19.99" USD, "500" JPY, "1.250" KWD.'


class ListingCreate(ApiInput):
    name: str = Field(max_length=200, examples=["Olive wood bowl"])
    description: str = Field(default="", max_length=20_000)
    price: str = Field(max_length=32, description=PRICE_DOC, examples=["19.99"])
    currency: str = Field(max_length=3, description="ISO 4217, any case.", examples=["usd"])
    stock: int | None = Field(default=None, description="null (the default) means unlimited.")


class ListingUpdate(ApiInput):
    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=20_000)
    price: str | None = Field(default=None, max_length=32, description=PRICE_DOC)
    currency: str | None = Field(
        default=None, max_length=3, description="Changing it requires a price as well."
    )
    stock: int | None = Field(default=None, description="null means unlimited.")
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
