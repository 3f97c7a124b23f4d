from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import ConfigDict, Field, StrictBool

from souq.listings.prices import currency_kinds, price_pattern
from souq.money import format_amount
from souq.schemas import (
    NAME_PATTERN,
    WHOLE_NUMBER,
    ApiInput,
    ApiModel,
    CurrencyCode,
    any_case_pattern,
    document_storable_text,
)

STOCK_MAX = 1_000_000_000
# A whole number of units; true or "5" are refused rather than read as 1 or 5.
Stock = Annotated[int, Field(ge=0, le=STOCK_MAX), WHOLE_NUMBER]

PRICE_DOC = 'A decimal string in the currency\'s own exponent: "19.99" USD, "500" JPY, "1.250" KWD.'


def _price_by_currency(schema: dict[str, Any], *, update: bool) -> None:
    """State in the schema that a price's decimals follow its currency: one alternative per
    kind of currency (decimals and step), naming its currencies and the prices that fit. On an
    update, a price without a currency is read in the listing's own currency."""
    document_storable_text(schema)
    price = schema["properties"]["price"]
    price.pop("pattern", None)
    price_ref = price.get("anyOf", [price])[0] if update else price
    price_ref["pattern"] = "|".join(price_pattern(*kind) for kind in currency_kinds())
    alternatives: list[dict[str, Any]] = []
    if update:
        alternatives.append({"properties": {"currency": {"type": "null"}}})
    for kind, codes in currency_kinds().items():
        fitting: dict[str, Any] = {"type": "string", "pattern": price_pattern(*kind)}
        alternatives.append(
            {
                "required": ["currency", "price"] if update else ["currency"],
                "properties": {
                    "currency": {"type": "string", "pattern": any_case_pattern(codes)},
                    "price": fitting,
                },
            }
        )
    schema["anyOf"] = alternatives


class ListingCreate(ApiInput):
    model_config = ConfigDict(
        json_schema_extra=lambda schema, _: _price_by_currency(schema, update=False)
    )

    name: str = Field(max_length=200, pattern=NAME_PATTERN, examples=["Olive wood bowl"])
    description: str = Field(default="", max_length=20_000)
    price: str = Field(max_length=32, description=PRICE_DOC, examples=["19.99"])
    currency: CurrencyCode = Field(description="ISO 4217, lower or upper case.", examples=["usd"])
    stock: Stock | None = Field(default=None, description="null (the default) means unlimited.")


class ListingUpdate(ApiInput):
    model_config = ConfigDict(
        json_schema_extra=lambda schema, _: _price_by_currency(schema, update=True)
    )

    name: str | None = Field(default=None, max_length=200, pattern=NAME_PATTERN)
    description: str | None = Field(default=None, max_length=20_000)
    price: str | None = Field(default=None, max_length=32, description=PRICE_DOC)
    currency: CurrencyCode | None = Field(
        default=None, description="Sent with a price in it (the price is read in it)."
    )
    stock: Stock | None = Field(default=None, description="null means unlimited.")
    active: StrictBool | None = None


class ListingFields(Protocol):
    """What a listing's JSON is made of: a `Listing`, or a row of its columns (the catalogue
    reads rows, not ORM objects)."""

    @property
    def id(self) -> int: ...
    @property
    def store_id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def price_amount(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def stock(self) -> int | None: ...
    @property
    def active(self) -> bool: ...
    @property
    def created_at(self) -> datetime: ...


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
    def of(cls, listing: ListingFields) -> ListingOut:
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
