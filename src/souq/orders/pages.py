"""Buyer and seller pages: the shop (buy a listing through Stripe Checkout) and a store's orders."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from souq.auth.deps import CSRF_FORM_FIELD, OptionalUser, csrf_token
from souq.deps import SessionDep, SettingsDep
from souq.listings.models import Listing
from souq.middleware import client_address
from souq.orders import service
from souq.orders.models import PaymentStatus
from souq.payments import checkout
from souq.payments.deps import StripeDep
from souq.stores.models import Store
from souq.web.pages import PageRoute, templates

router = APIRouter(include_in_schema=False, route_class=PageRoute)


@router.get("/shop", response_class=HTMLResponse)
async def shop(
    request: Request,
    user: OptionalUser,
    session: SessionDep,
    store_id: Annotated[int | None, Query(alias="storeId", gt=0)] = None,
) -> Response:
    """The catalogue, with a Buy button per listing."""
    query = (
        select(Listing, Store)
        .join(Store, Store.id == Listing.store_id)
        .where(Listing.active.is_(True))
        .order_by(Store.name, Listing.id)
        .limit(200)
    )
    if store_id is not None:
        query = query.where(Store.id == store_id)
    rows = [row.tuple() for row in await session.execute(query)]
    return templates.TemplateResponse(
        request,
        "orders/shop.html",
        {
            "rows": rows,
            "user": user,
            "csrf_field": CSRF_FORM_FIELD,
            "csrf_token": csrf_token(request),
            "error": request.query_params.get("error"),
        },
    )


@router.post("/shop/buy")
async def buy(
    request: Request,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
    stripe: StripeDep,
    listing_id: Annotated[int, Form(gt=0)],
    quantity: Annotated[int, Form(ge=1)] = 1,
    email: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    """Buy one listing: the same checkout as the API, then off to Stripe's page."""
    if user is None:
        from souq.auth.deps import verify_form_csrf

        await verify_form_csrf(request)
    listing = await session.get(Listing, listing_id)
    if listing is None:
        return RedirectResponse("/shop?error=That+listing+does+not+exist", status_code=303)
    store_id, currency = listing.store_id, listing.currency
    await session.commit()
    started = await checkout.start_checkout(
        request.app.state.sessionmaker,
        stripe,
        settings,
        store_id=store_id,
        currency=currency,
        lines=[checkout.CartLine(listing_id, quantity)],
        customer_email=email.strip() or (user.email if user else ""),
        user=user,
        client_address=client_address(request),
    )
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
