"""Buyer and seller pages: the shop (buy a listing through Stripe Checkout) and a store's orders."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from souq.auth.deps import CSRF_FORM_FIELD, OptionalUser, csrf_token, verify_form_csrf
from souq.auth.models import User
from souq.db import unit_of_work
from souq.deps import SessionDep, SessionFactoryDep, SettingsDep
from souq.errors import SouqError
from souq.listings import service as listings
from souq.listings.models import Listing
from souq.orders import service
from souq.orders.models import PaymentStatus
from souq.payments import checkout, checkout_requests
from souq.payments.deps import CallerDep, StripeDep
from souq.stores.models import Store
from souq.web.pages import PageRoute, templates

router = APIRouter(include_in_schema=False, route_class=PageRoute)


def _render_shop(
    request: Request,
    rows: list[tuple[Listing, Store]],
    user: User | None,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return templates.TemplateResponse(
        request,
        "orders/shop.html",
        {
            "rows": rows,
            "user": user,
            "csrf_field": CSRF_FORM_FIELD,
            "csrf_token": csrf_token(request),
            # A one-time key per rendered form: a double submit lands on one order.
            "idempotency_key": secrets.token_urlsafe(24),
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/shop", response_class=HTMLResponse)
async def shop(
    request: Request,
    user: OptionalUser,
    session: SessionDep,
    store_id: Annotated[int | None, Query(alias="storeId", gt=0)] = None,
) -> Response:
    """The catalogue, with a Buy button per listing."""
    rows = await listings.shop_catalogue(session, store_id=store_id)
    return _render_shop(request, rows, user, error=request.query_params.get("error"))


@router.post("/shop/buy")
async def buy(
    request: Request,
    user: CallerDep,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    stripe: StripeDep,
    listing_id: Annotated[int, Form(gt=0)],
    quantity: Annotated[int, Form(ge=1)] = 1,
    email: Annotated[str, Form(max_length=320)] = "",
    idempotency_key: Annotated[str | None, Form(max_length=255)] = None,
) -> Response:
    """Buy one listing: the same checkout as the API, then off to Stripe's page. A refused
    purchase (no email, sold out, …) shows the shop again with what to fix."""
    if user is None:
        await verify_form_csrf(request)
    try:
        async with unit_of_work(factory) as session:
            listing = await listings.get_listing(session, listing_id)
        started = await checkout_requests.checkout(
            factory,
            stripe,
            settings,
            key=idempotency_key or None,
            user=user,
            store_id=listing.store_id,
            currency=listing.currency,
            lines=[checkout.CartLine(listing_id, quantity)],
            customer_email=email,
        )
    except SouqError as exc:
        if exc.status_code >= 500:
            raise
        async with unit_of_work(factory) as session:
            rows = await listings.shop_catalogue(session, store_id=None)
        return _render_shop(request, rows, user, error=exc.message, status_code=exc.status_code)
    return RedirectResponse(started.url, status_code=303)


@router.get("/dashboard/orders", response_class=HTMLResponse)
async def store_orders(
    request: Request,
    user: OptionalUser,
    session: SessionDep,
    store_id: Annotated[int, Query(alias="storeId", gt=0)],
    status: Annotated[PaymentStatus | None, Query()] = None,
) -> Response:
    """A store's orders with the platform fee, Stripe's fee and the store's net."""
    orders = await service.list_store_orders(
        session, store_id, user, status=status, limit=100, before=None
    )
    store = await session.get(Store, store_id)
    return templates.TemplateResponse(
        request,
        "orders/store_orders.html",
        {"store": store, "orders": orders, "status": status, "statuses": list(PaymentStatus)},
    )
