"""Listings: what a store sells, priced in integer minor units of one currency."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from souq.auth.models import User
from souq.errors import Conflict, InvalidInput, NotFound
from souq.listings.models import Listing
from souq.listings.prices import fits, fits_any
from souq.listings.schemas import STOCK_MAX, ListingFields
from souq.money import MAX_AMOUNT, MoneyError, format_amount, parse_amount
from souq.orders.models import OrderItem
from souq.schemas import clean_name, currency_input
from souq.stores.models import Store, StoreRole
from souq.stores.service import require_store_role

DESCRIPTION_MAX_LENGTH = 20_000


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details=[{"field": field, "message": message}])


def parse_price(price: str, currency: str) -> int:
    """A decimal string in the currency's exponent → minor units; a 422 names what is wrong."""
    try:
        amount = parse_amount(price, currency)
    except MoneyError as exc:
        raise _invalid("price", str(exc)) from None
    if amount <= 0:
        raise _invalid("price", "must be greater than zero")
    if amount > MAX_AMOUNT:
        limit = format_amount(MAX_AMOUNT, currency)
        raise _invalid("price", f"may be at most {limit} {currency.upper()}")
    return amount


def _clean_description(description: str) -> str:
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise _invalid("description", f"at most {DESCRIPTION_MAX_LENGTH} characters")
    return description.strip()


def _clean_stock(stock: int | None) -> int | None:
    if stock is not None and (type(stock) is not int or not 0 <= stock <= STOCK_MAX):
        raise _invalid("stock", f"must be between 0 and {STOCK_MAX}, or null for unlimited")
    return stock


async def create_listing(
    session: AsyncSession,
    *,
    store: Store,
    name: str,
    description: str,
    price_amount: int,
    currency: str,
    stock: int | None,
) -> Listing:
    """A new, active listing. `price_amount` is in minor units of `currency`."""
    currency = currency_input(currency)
    if not 0 < price_amount <= MAX_AMOUNT:
        raise _invalid("price", f"must be between 1 and {MAX_AMOUNT} minor units")
    listing = Listing(
        store_id=store.id,
        name=clean_name(name),
        description=_clean_description(description),
        price_amount=price_amount,
        currency=currency,
        stock=_clean_stock(stock),
        active=True,
    )
    session.add(listing)
    await session.flush()
    return listing


@dataclass(frozen=True)
class ListingChanges:
    """A partial update; UNSET fields are left as they are (stock=None means unlimited)."""

    name: str | None = None
    description: str | None = None
    price: str | None = None
    currency: str | None = None
    stock: int | None = None
    stock_set: bool = False
    active: bool | None = None


async def update_listing(
    session: AsyncSession, listing: Listing, changes: ListingChanges
) -> Listing:
    """Apply a partial update. A currency comes with a price in it, since the same minor
    units mean different amounts in different currencies; a price alone is read in the
    listing's currency."""
    if changes.name is not None:
        listing.name = clean_name(changes.name)
    if changes.description is not None:
        listing.description = _clean_description(changes.description)
    currency = listing.currency
    if changes.currency is not None:
        currency = currency_input(changes.currency)
        if changes.price is None:
            raise _invalid("price", "give the price in the currency when sending a currency")
    elif (
        changes.price is not None and not fits(changes.price, currency) and fits_any(changes.price)
    ):
        # A well-formed price whose decimals the listing's own currency does not have: the
        # request is fine on its face and conflicts with the listing's state.
        raise Conflict(
            f"price: {changes.price!r} has more decimals than the listing's currency "
            f"({currency.upper()}) has; send the currency with the price to change both",
            code="price_does_not_fit_currency",
        )
    if changes.price is not None:
        listing.price_amount = parse_price(changes.price, currency)
    listing.currency = currency
    if changes.stock_set:
        listing.stock = _clean_stock(changes.stock)
    if changes.active is not None:
        listing.active = changes.active
    await session.flush()
    return listing


async def get_listing(session: AsyncSession, listing_id: int) -> Listing:
    listing = await session.get(Listing, listing_id)
    if listing is None:
        raise NotFound("listing not found")
    return listing


async def require_listing_role(
    session: AsyncSession, listing_id: int, user: User | None, roles: Collection[StoreRole]
) -> Listing:
    """The listing, if the caller holds one of `roles` in its store. A listing of a store the
    caller is not a member of answers exactly as a missing listing does, so its id reveals
    neither that it exists nor which store it belongs to."""
    listing = await get_listing(session, listing_id)
    try:
        await require_store_role(session, listing.store_id, user, roles)
    except NotFound:
        raise NotFound("listing not found") from None
    return listing


async def has_orders(session: AsyncSession, listing: Listing) -> bool:
    result = await session.execute(select(exists().where(OrderItem.listing_id == listing.id)))
    return bool(result.scalar())


async def delete_listing(session: AsyncSession, listing: Listing) -> bool:
    """Delete a listing, or only deactivate it when orders refer to it (their history must
    stay intact). Returns True when it was deleted."""
    if not await has_orders(session, listing):
        try:
            async with session.begin_nested():
                await session.delete(listing)
                await session.flush()
            return True
        except IntegrityError:
            # An order for it was placed concurrently: fall back to deactivating.
            await session.refresh(listing)
    listing.active = False
    await session.flush()
    return False


SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


def _active_page(
    query: SelectT, *, store_id: int | None, after_id: int | None, limit: int
) -> SelectT:
    """A keyset page of active listings, newest first, with one row more than `limit` (there is
    a next page when it comes): it reads down the primary key (or `ix_listing_store_id_id` for
    one store) from the cursor, however many listings there are."""
    query = query.where(Listing.active.is_(True))
    if store_id is not None:
        query = query.where(Listing.store_id == store_id)
    if after_id is not None:
        query = query.where(Listing.id < after_id)
    return query.order_by(Listing.id.desc()).limit(limit + 1)


async def list_catalogue(
    session: AsyncSession, *, store_id: int | None, after_id: int | None, limit: int
) -> tuple[list[ListingFields], int | None]:
    """One page of active listings, newest first, and the cursor of the next page (if any).
    Rows of the listing's columns, not ORM objects: a public read changes nothing, so it skips
    the identity map and per-object state."""
    columns = select(*Listing.__table__.columns)
    query = _active_page(columns, store_id=store_id, after_id=after_id, limit=limit)
    rows: list[ListingFields] = list((await session.execute(query)).all())
    return rows[:limit], rows[limit - 1].id if len(rows) > limit else None


SHOP_PAGE = 100


async def shop_catalogue(
    session: AsyncSession, *, store_id: int | None, after_id: int | None = None
) -> tuple[list[tuple[Listing, Store]], int | None]:
    """The shop page: active listings with their store, newest first, `SHOP_PAGE` at a time,
    and the cursor of the next page (if any)."""
    query = _active_page(
        select(Listing, Store).join(Store, Store.id == Listing.store_id),
        store_id=store_id,
        after_id=after_id,
        limit=SHOP_PAGE,
    )
    rows = [(listing, store) for listing, store in (await session.execute(query)).tuples()]
    return rows[:SHOP_PAGE], rows[SHOP_PAGE - 1][0].id if len(rows) > SHOP_PAGE else None


@dataclass(frozen=True)
class CataloguePage:
    rows: list[tuple[Listing, Store]]
    page: int
    has_more: bool


async def search_catalogue(
    session: AsyncSession,
    *,
    text: str = "",
    store_id: int | None = None,
    currency: str | None = None,
    page: int = 1,
    per_page: int = 12,
) -> CataloguePage:
    """The storefront: active listings of stores that can take payments, newest first, whose
    name or description contains `text` (case-insensitive), optionally of one store or
    currency; page `page` (from 1) of `per_page`."""
    query = (
        select(Listing, Store)
        .join(Store, Store.id == Listing.store_id)
        .where(Listing.active.is_(True), Store.stripe_charges_enabled.is_(True))
    )
    text = text.strip()
    if text:
        query = query.where(
            Listing.name.icontains(text, autoescape=True)
            | Listing.description.icontains(text, autoescape=True)
        )
    if store_id is not None:
        query = query.where(Store.id == store_id)
    if currency:
        query = query.where(Listing.currency == currency.lower())
    query = query.order_by(Listing.id.desc()).offset((page - 1) * per_page).limit(per_page + 1)
    rows = [(listing, store) for listing, store in (await session.execute(query)).tuples()]
    return CataloguePage(rows=rows[:per_page], page=page, has_more=len(rows) > per_page)


async def catalogue_currencies(session: AsyncSession) -> list[str]:
    """The currencies active listings are priced in (the storefront's currency filter)."""
    query = select(Listing.currency).where(Listing.active.is_(True)).distinct()
    return sorted((await session.execute(query)).scalars())


async def store_listings(session: AsyncSession, store_id: int) -> list[Listing]:
    """All of a store's listings, inactive ones too (for its members), newest first."""
    query = select(Listing).where(Listing.store_id == store_id).order_by(Listing.id.desc())
    return list((await session.execute(query)).scalars())
