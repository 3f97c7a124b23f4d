"""The storefront (home with search and filters, a store's page, a listing's page) and the
seller's listing forms (create, edit, stock, deactivate)."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from souq.auth.deps import CurrentUser, OptionalUser
from souq.auth.models import User
from souq.deps import SessionDep
from souq.errors import InvalidInput, NotFound, SouqError
from souq.listings import service
from souq.listings.models import Listing
from souq.listings.schemas import STOCK_MAX
from souq.money import MoneyError, format_amount, normalize_currency
from souq.schemas import currency_input
from souq.stores import service as stores
from souq.stores.service import MANAGE_LISTINGS, READ_STORE, require_store_role
from souq.web.pages import PAGE_DEPENDENCIES, PageRoute, render

router = APIRouter(include_in_schema=False, route_class=PageRoute, dependencies=PAGE_DEPENDENCIES)

MAX_ID = 2**31 - 1
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _currency_filter(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return normalize_currency(text)
    except MoneyError:
        return None


@router.get("/", response_class=HTMLResponse)
async def home(
    request: Request,
    session: SessionDep,
    q: Annotated[str, Query(max_length=200)] = "",
    store: Annotated[str, Query(max_length=10)] = "",
    currency: Annotated[str, Query(max_length=3)] = "",
    page: Annotated[int, Query(ge=1, le=1000)] = 1,
) -> Response:
    """The storefront: listings of every store that can take payments, searchable, filtered
    by store and currency, a page at a time."""
    # "All stores" sends an empty store: only a store id filters.
    store_id = int(store) if store.isdigit() and 0 < int(store) <= MAX_ID else None
    found = await service.search_catalogue(
        session, text=q, store_id=store_id, currency=_currency_filter(currency), page=page
    )
    return render(
        request,
        "listings/home.html",
        found=found,
        q=q,
        store_id=store_id,
        currency=(currency or "").lower(),
        stores=await stores.list_stores(session),
        currencies=await service.catalogue_currencies(session),
    )


@router.get("/stores/{store_id}", response_class=HTMLResponse)
async def store_page(
    request: Request,
    store_id: ObjectId,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=1000)] = 1,
) -> Response:
    """A store's public page: its listings."""
    store = await stores.get_store(session, store_id)
    found = await service.search_catalogue(session, store_id=store.id, page=page)
    return render(request, "listings/store.html", store=store, found=found)


def stock_state(listing: Listing, can_pay: bool) -> str:
    """What a buyer is told about a listing's availability."""
    if not listing.active:
        return "unavailable"
    if listing.stock == 0:
        return "sold_out"
    if not can_pay:
        return "unavailable"
    if listing.stock is None:
        return "in_stock"
    return "low_stock" if listing.stock <= 5 else "in_stock"


async def render_listing(
    request: Request,
    session: AsyncSession,
    listing_id: int,
    user: User | None,
    *,
    error: SouqError | None = None,
    email: str = "",
    quantity: str = "1",
) -> Response:
    """A listing's page with its buy form (again, with what was typed, after a refusal)."""
    listing = await service.get_listing(session, listing_id)
    if not listing.active:
        if user is None:
            raise NotFound("listing not found")
        await service.require_listing_role(session, listing_id, user, READ_STORE)
    store = await stores.get_store(session, listing.store_id)
    return render(
        request,
        "listings/listing.html",
        error=error,
        listing=listing,
        store=store,
        state=stock_state(listing, store.stripe_charges_enabled),
        email=email,
        quantity=quantity,
        # A one-time key per rendered form: a double submit lands on one order.
        idempotency_key=secrets.token_urlsafe(24),
    )


@router.get("/listings/{listing_id}", response_class=HTMLResponse)
async def listing_page(
    request: Request, listing_id: ObjectId, user: OptionalUser, session: SessionDep
) -> Response:
    """A listing: price, description, stock state, and the buy form."""
    return await render_listing(request, session, listing_id, user)


def _stock(text: str) -> int | None:
    """The stock field: empty means unlimited."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) > STOCK_MAX:
        message = f"a whole number from 0 to {STOCK_MAX}, or empty for unlimited"
        raise InvalidInput(f"stock: {message}", details=[{"field": "stock", "message": message}])
    return int(text)


def _listing_form(
    request: Request,
    *,
    store_id: int,
    listing: Listing | None,
    values: dict[str, str],
    error: SouqError | None = None,
) -> Response:
    return render(
        request, "listings/form.html", error=error, store_id=store_id, listing=listing, form=values
    )


@router.get("/dashboard/stores/{store_id}/listings/new", response_class=HTMLResponse)
async def new_listing(
    request: Request, store_id: ObjectId, user: CurrentUser, session: SessionDep
) -> Response:
    store, _ = await require_store_role(session, store_id, user, MANAGE_LISTINGS)
    values = {"name": "", "description": "", "price": "", "currency": store.default_currency}
    return _listing_form(request, store_id=store.id, listing=None, values={**values, "stock": ""})


@dataclass(frozen=True)
class ListingForm:
    """The listing form's fields, as typed (shown again as they are when refused)."""

    name: str
    description: str
    price: str
    currency: str
    stock: str


async def listing_form(
    name: Annotated[str, Form(max_length=200)] = "",
    description: Annotated[str, Form(max_length=20_000)] = "",
    price: Annotated[str, Form(max_length=32)] = "",
    currency: Annotated[str, Form(max_length=3)] = "",
    stock: Annotated[str, Form(max_length=12)] = "",
) -> ListingForm:
    return ListingForm(name, description, price, currency, stock)


ListingFormDep = Annotated[ListingForm, Depends(listing_form)]


@router.post("/dashboard/stores/{store_id}/listings", response_class=HTMLResponse)
async def create_listing(
    request: Request,
    store_id: ObjectId,
    user: CurrentUser,
    session: SessionDep,
    form: ListingFormDep,
) -> Response:
    """Add a listing (any member); a refused one shows the form again with what was typed."""
    store, _ = await require_store_role(session, store_id, user, MANAGE_LISTINGS)
    try:
        code = currency_input(form.currency)
        await service.create_listing(
            session,
            store=store,
            name=form.name,
            description=form.description,
            price_amount=service.parse_price(form.price, code),
            currency=code,
            stock=_stock(form.stock),
        )
    except SouqError as exc:
        return _listing_form(
            request, store_id=store.id, listing=None, values=asdict(form), error=exc
        )
    return RedirectResponse(f"/dashboard/stores/{store.id}#listings", status_code=303)


@router.get("/dashboard/listings/{listing_id}/edit", response_class=HTMLResponse)
async def edit_listing(
    request: Request, listing_id: ObjectId, user: CurrentUser, session: SessionDep
) -> Response:
    listing = await service.require_listing_role(session, listing_id, user, MANAGE_LISTINGS)
    values = {
        "name": listing.name,
        "description": listing.description,
        "price": format_amount(listing.price_amount, listing.currency),
        "currency": listing.currency,
        "stock": "" if listing.stock is None else str(listing.stock),
    }
    return _listing_form(request, store_id=listing.store_id, listing=listing, values=values)


@router.post("/dashboard/listings/{listing_id}/edit", response_class=HTMLResponse)
async def update_listing(
    request: Request,
    listing_id: ObjectId,
    user: CurrentUser,
    session: SessionDep,
    form: ListingFormDep,
) -> Response:
    """Change a listing's name, description, price, currency and stock."""
    listing = await service.require_listing_role(session, listing_id, user, MANAGE_LISTINGS)
    try:
        async with session.begin_nested():
            changes = service.ListingChanges(
                name=form.name,
                description=form.description,
                price=form.price,
                currency=form.currency,
                stock=_stock(form.stock),
                stock_set=True,
            )
            await service.update_listing(session, listing, changes)
    except SouqError as exc:
        await session.refresh(listing)
        return _listing_form(
            request, store_id=listing.store_id, listing=listing, values=asdict(form), error=exc
        )
    return RedirectResponse(f"/dashboard/stores/{listing.store_id}#listings", status_code=303)


@router.post("/dashboard/listings/{listing_id}/{action}")
async def set_active(
    listing_id: ObjectId,
    action: Annotated[str, Path(pattern="^(deactivate|activate)$")],
    user: CurrentUser,
    session: SessionDep,
) -> Response:
    """Take a listing off the shop (orders keep it), or put it back."""
    listing = await service.require_listing_role(session, listing_id, user, MANAGE_LISTINGS)
    changes = service.ListingChanges(active=action == "activate")
    await service.update_listing(session, listing, changes)
    return RedirectResponse(f"/dashboard/stores/{listing.store_id}#listings", status_code=303)
