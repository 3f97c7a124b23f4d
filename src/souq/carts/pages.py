"""The cart's pages: the cart grouped by store (subtotals, the buyer's fee, the total per
currency), adding from a listing or store page, changing or removing an item, and checking
out to Stripe's page. Guests' forms are checked against the session's CSRF token as logged-in
users' are."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from souq.auth.deps import OptionalUser, verify_form_csrf
from souq.auth.models import User
from souq.carts import service
from souq.carts.schemas import MAX_ID
from souq.config import Settings
from souq.db import unit_of_work
from souq.deps import SessionDep, SessionFactoryDep, SettingsDep
from souq.errors import SouqError
from souq.middleware import client_address
from souq.orders.service import parse_quantity
from souq.payments.checkout_requests import buyer_email
from souq.payments.deps import CallerDep, StripeDep
from souq.web.pages import PAGE_DEPENDENCIES, PageRoute, render

router = APIRouter(include_in_schema=False, route_class=PageRoute, dependencies=PAGE_DEPENDENCIES)

ListingId = Annotated[int, Path(ge=1, le=MAX_ID)]


async def _guest_csrf(request: Request, user: User | None) -> None:
    # A logged-in browser's token was checked with its session; a guest's is checked here.
    if user is None:
        await verify_form_csrf(request)


async def render_cart(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    user: User | None,
    *,
    error: SouqError | None = None,
    error_field: str | None = None,
    email: str = "",
) -> Response:
    """The cart (again, with the refusal and what was typed, after a refused checkout); an
    error about one item (`error_field`) is also shown beside it."""
    cart = await service.load_cart(session, settings, request.session, user, create=False)
    summary = service.summarize(await service.view(session, cart), settings)
    problems = {p["field"]: p["message"] for p in summary.judged.problems}
    if error is not None and error.details:
        problems.update(
            {str(d["field"]): str(d["message"]) for d in error.details if "message" in d}
        )
    elif error is not None and error_field is not None:
        problems[error_field] = error.message
    return render(
        request,
        "carts/cart.html",
        error=error,
        summary=summary,
        problems=problems,
        email=email,
        max_quantity=settings.checkout_max_quantity,
    )


@router.get("/cart", response_class=HTMLResponse)
async def cart_page(
    request: Request, user: OptionalUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """The cart: each store's items and subtotal, the buyer's fee, the total per currency."""
    return await render_cart(request, session, settings, user)


@router.post("/cart/items", response_class=HTMLResponse)
async def add_to_cart(
    request: Request,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
    listing_id: Annotated[int, Form(ge=1, le=MAX_ID)],
    quantity: Annotated[str, Form(max_length=12)] = "1",
) -> Response:
    """Add a listing from its page or its store's page, then show the cart (with the reason
    beside the item, when it cannot be added)."""
    await _guest_csrf(request, user)
    try:
        # Checked before the cart is made or touched: a refusal writes nothing.
        count = parse_quantity(quantity, f"items.{listing_id}")
        cart = await service.load_cart(session, settings, request.session, user, create=True)
        assert cart is not None
        await service.add_item(session, settings, cart, listing_id, count)
    except SouqError as exc:
        return await _refused(request, session, settings, user, exc, listing_id)
    return RedirectResponse("/cart", status_code=303)


async def _refused(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    user: User | None,
    exc: SouqError,
    listing_id: int,
) -> Response:
    """A refused change of the cart: the cart again, the reason on top and beside the item.
    The service refuses before it writes, so nothing changed."""
    if exc.status_code >= 500 or exc.status_code in (401, 403):
        raise exc
    return await render_cart(
        request, session, settings, user, error=exc, error_field=f"items.{listing_id}"
    )


@router.post("/cart/items/{listing_id}", response_class=HTMLResponse)
async def change_quantity(
    request: Request,
    listing_id: ListingId,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
    quantity: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """Set an item's quantity (which also accepts a changed price)."""
    await _guest_csrf(request, user)
    try:
        count = parse_quantity(quantity, f"items.{listing_id}")
        cart = await service.load_cart(session, settings, request.session, user, create=False)
        await service.set_quantity(session, settings, cart, listing_id, count)
    except SouqError as exc:
        return await _refused(request, session, settings, user, exc, listing_id)
    return RedirectResponse("/cart", status_code=303)


@router.post("/cart/items/{listing_id}/remove", response_class=HTMLResponse)
async def remove_from_cart(
    request: Request,
    listing_id: ListingId,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    await _guest_csrf(request, user)
    cart = await service.load_cart(session, settings, request.session, user, create=False)
    await service.remove_item(session, cart, listing_id)
    return RedirectResponse("/cart", status_code=303)


@router.post("/cart/checkout", response_class=HTMLResponse)
async def checkout_cart(
    request: Request,
    user: CallerDep,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    stripe: StripeDep,
    email: Annotated[str, Form(alias="customerEmail", max_length=320)] = "",
) -> Response:
    """Pay for the cart on Stripe's page: one store's order, or every store's at once. A
    refusal (a changed item, a missing email) shows the cart again with each problem beside
    its item."""
    try:
        await _guest_csrf(request, user)
        started = await service.checkout_cart(
            factory,
            stripe,
            settings,
            request.session,
            user=user,
            customer_email=buyer_email(email, user),
            client_address=client_address(request),
        )
    except SouqError as exc:
        if exc.status_code >= 500:
            raise
        async with unit_of_work(factory) as session:
            return await render_cart(request, session, settings, user, error=exc, email=email)
    return RedirectResponse(started.url, status_code=303)
