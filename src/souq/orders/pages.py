"""Buyer and seller pages: buying (from the shop or a listing's page, through Stripe Checkout),
a buyer's orders, an order's page, a store's orders, and the back office's review queue."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.deps import CurrentUser
from souq.auth.models import User
from souq.config import Settings
from souq.db import unit_of_work
from souq.deps import SessionDep, SessionFactoryDep, SettingsDep
from souq.errors import InvalidInput, SouqError
from souq.ledger import refunds
from souq.listings import service as listings
from souq.listings.cache import catalogue_cache
from souq.listings.models import Listing
from souq.listings.pages import render_listing
from souq.middleware import client_address
from souq.orders import service
from souq.orders.models import PaymentStatus
from souq.payments import checkout, checkout_requests
from souq.payments.deps import CallerDep, StripeDep
from souq.payments.stripe import StripeGateway
from souq.stores.models import Store
from souq.stores.service import get_store
from souq.web.pages import (
    PAGE_DEPENDENCIES,
    AnonymousPage,
    PageRoute,
    is_anonymous,
    render,
    render_anonymous,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute, dependencies=PAGE_DEPENDENCIES)

MAX_ID = 2**31 - 1
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID)]
Factory = SessionFactoryDep


def _render_shop(
    request: Request,
    page: tuple[list[tuple[Listing, Store]], int | None],
    *,
    store_id: int | None = None,
    error: SouqError | None = None,
) -> Response:
    rows, next_after = page
    return render(
        request,
        "orders/shop.html",
        error=error,
        rows=rows,
        next_after=next_after,
        store_id=store_id,
        # A one-time key per rendered form: a double submit lands on one order.
        idempotency_key=secrets.token_urlsafe(24),
    )


@router.get("/shop", response_class=HTMLResponse)
async def shop(
    request: Request,
    factory: Factory,
    store_id: Annotated[int | None, Query(alias="storeId", gt=0, le=MAX_ID)] = None,
    after: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None,
) -> Response:
    """The catalogue as one table, newest first, with a Buy button per listing; `after` is the
    cursor of the next page. Every visitor who is not logged in gets the same page but for
    their CSRF token and the forms' one-time keys, so it is rendered once (listings/cache.py)."""

    async def read() -> tuple[list[tuple[Listing, Store]], int | None]:
        async with factory() as session:
            return await listings.shop_catalogue(session, store_id=store_id, after_id=after)

    if not is_anonymous(request):
        return _render_shop(request, await read(), store_id=store_id)

    async def load() -> tuple[AnonymousPage, int]:
        rows, next_after = await read()
        page = render_anonymous(
            request, "orders/shop.html", rows=rows, next_after=next_after, store_id=store_id
        )
        return page, page.size

    page = await catalogue_cache(request).get(("shop", store_id, after), load)
    return page.response(request)


@dataclass(frozen=True)
class Purchase:
    """What buying needs besides the form: who buys, and where the checkout goes."""

    request: Request
    factory: async_sessionmaker[AsyncSession]
    stripe: StripeGateway
    settings: Settings
    user: User | None

    async def start(
        self, *, listing_id: int, quantity: int, email: str, idempotency_key: str | None
    ) -> str:
        """Buy one listing: the same checkout as the API; the URL of Stripe's page."""
        async with unit_of_work(self.factory) as session:
            listing = await listings.get_listing(session, listing_id)
        started = await checkout_requests.checkout(
            self.factory,
            self.stripe,
            self.settings,
            key=idempotency_key or None,
            user=self.user,
            store_id=listing.store_id,
            currency=listing.currency,
            lines=[checkout.CartLine(listing_id, quantity)],
            customer_email=email,
            client_address=client_address(self.request),
        )
        return started.url


async def purchase(
    request: Request, user: CallerDep, factory: Factory, settings: SettingsDep, stripe: StripeDep
) -> Purchase:
    return Purchase(request, factory, stripe, settings, user)


PurchaseDep = Annotated[Purchase, Depends(purchase)]


@router.post("/shop/buy")
async def buy(
    request: Request,
    buying: PurchaseDep,
    listing_id: Annotated[int, Form(gt=0)],
    quantity: Annotated[int, Form(ge=1)] = 1,
    email: Annotated[str, Form(max_length=320)] = "",
    idempotency_key: Annotated[str | None, Form(max_length=255)] = None,
) -> Response:
    """Buy from the shop's table, then off to Stripe's page. A refused purchase (no email,
    sold out, …) shows the shop again with what to fix."""
    try:
        url = await buying.start(
            listing_id=listing_id, quantity=quantity, email=email, idempotency_key=idempotency_key
        )
    except SouqError as exc:
        if exc.status_code >= 500:
            raise
        async with unit_of_work(buying.factory) as session:
            page = await listings.shop_catalogue(session, store_id=None)
        return _render_shop(request, page, error=exc)
    return RedirectResponse(url, status_code=303)


@router.post("/listings/{listing_id}/buy")
async def buy_listing(
    request: Request,
    listing_id: ObjectId,
    buying: PurchaseDep,
    quantity: Annotated[str, Form(max_length=12)] = "1",
    email: Annotated[str, Form(max_length=320)] = "",
    idempotency_key: Annotated[str | None, Form(max_length=255)] = None,
) -> Response:
    """Buy from a listing's page; a refusal shows the page again with what was typed."""
    try:
        url = await buying.start(
            listing_id=listing_id,
            quantity=service.parse_quantity(quantity),
            email=email,
            idempotency_key=idempotency_key,
        )
    except SouqError as exc:
        if exc.status_code >= 500:
            raise
        async with unit_of_work(buying.factory) as session:
            return await render_listing(
                request, session, listing_id, buying.user, error=exc, email=email, quantity=quantity
            )
    return RedirectResponse(url, status_code=303)


@router.get("/orders", response_class=HTMLResponse)
async def my_orders(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """The orders the logged-in buyer placed, newest first."""
    orders = await service.list_buyer_orders(session, user, limit=100)
    return render(request, "orders/my_orders.html", orders=orders)


@router.get("/orders/{order_id}", response_class=HTMLResponse)
async def order_page(
    request: Request, order_id: ObjectId, user: CurrentUser, session: SessionDep
) -> Response:
    """One order: what was bought, its state, shipping and refunds; the store's members and
    platform admins also see the platform fee, Stripe's fee and the store's net."""
    order, order_refunds, split = await refunds.list_refunds(session, order_id, user)
    return render(
        request,
        "orders/order.html",
        order=order,
        store=await get_store(session, order.store_id),
        split=split,
        refunds=order_refunds,
    )


@router.get("/dashboard/orders", response_class=HTMLResponse)
async def store_orders(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    store_id: Annotated[int, Query(alias="storeId", gt=0)],
    status: Annotated[PaymentStatus | None, Query()] = None,
) -> Response:
    """A store's orders with the platform fee, Stripe's fee and the store's net."""
    orders = await service.list_store_orders(
        session, store_id, user, status=status, limit=100, before=None
    )
    return render(
        request,
        "orders/store_orders.html",
        store=await get_store(session, store_id),
        orders=orders,
        status=status,
        statuses=list(PaymentStatus),
    )


@router.get("/admin/orders", response_class=HTMLResponse)
async def admin_orders(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    status: Annotated[PaymentStatus | None, Query()] = None,
) -> Response:
    """Every store's orders (platform admins); `status=needs_review` is the queue to act on."""
    orders = await service.list_orders(session, user, status=status, limit=100, before=None)
    return render(
        request,
        "orders/admin_orders.html",
        orders=orders,
        status=status,
        statuses=list(PaymentStatus),
    )


@router.post("/admin/orders/{order_id}/resolve")
async def resolve_order(
    order_id: ObjectId,
    user: CurrentUser,
    session: SessionDep,
    resolution: Annotated[service.Resolution, Form()],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Settle an order held for review (platform admins); the note says why, for the record."""
    if not note.strip():
        raise InvalidInput("note: say why, for the record", details=[{"field": "note"}])
    await service.resolve_review(session, order_id, user, resolution, note)
    return RedirectResponse("/admin/orders?status=needs_review", status_code=303)
