"""The cart's JSON routes: anyone may have a cart (a guest's lives in the session cookie)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import select

from souq.auth.deps import OptionalUser
from souq.auth.service import require_platform_admin
from souq.carts import service
from souq.carts.models import Cart, CartCheckout
from souq.carts.schemas import (
    MAX_ID,
    CartCheckoutIn,
    CartCheckoutOut,
    CartItemIn,
    CartLineOut,
    CartOrderOut,
    CartOut,
    CartProblem,
    CartQuantityIn,
    CartStoreOut,
    CartTotalOut,
)
from souq.config import Settings
from souq.db import unit_of_work
from souq.deps import SessionDep, SessionFactoryDep, SettingsDep
from souq.errors import NotAuthenticated
from souq.middleware import client_address
from souq.money import format_amount
from souq.orders.models import Order
from souq.orders.schemas import TransferOut
from souq.payments import transfers
from souq.payments.deps import CallerDep, StripeDep
from souq.payments.models import TransferStatus
from souq.schemas import ApiModel, error_responses

router = APIRouter(tags=["cart"])

ListingId = Annotated[int, Path(alias="listingId", ge=1, le=MAX_ID)]


async def _cart_out(session: SessionDep, settings: Settings, cart: Cart | None) -> CartOut:
    judged = await service.view(session, cart)
    items: list[CartLineOut] = []
    for line in judged.lines:
        c = line.item.seen_currency
        problem = (
            CartProblem(
                field=f"items.{line.item.listing_id}", code=line.problem[0], message=line.problem[1]
            )
            if line.problem
            else None
        )
        items.append(
            CartLineOut(
                listing_id=line.item.listing_id,
                store_id=line.listing.store_id if line.listing else None,
                title=line.listing.name if line.listing else None,
                quantity=line.item.quantity,
                currency=c,
                unit_price=format_amount(line.item.seen_unit_price, c),
                current_unit_price=format_amount(line.listing.price_amount, line.listing.currency)
                if line.listing
                else None,
                line_total=format_amount(line.item.seen_unit_price * line.item.quantity, c),
                problem=problem,
            )
        )
    summary = service.summarize(judged, settings)
    return CartOut(
        items=items,
        stores=[
            CartStoreOut(
                store_id=part.store.id,
                store_name=part.store.name,
                currency=part.currency,
                subtotal=format_amount(part.subtotal, part.currency),
                buyer_fee=format_amount(part.buyer_fee, part.currency),
            )
            for part in summary.stores
        ],
        totals=[
            CartTotalOut(
                currency=t.currency,
                subtotal=format_amount(t.subtotal, t.currency),
                buyer_fee=format_amount(t.buyer_fee, t.currency),
                total=format_amount(t.total, t.currency),
            )
            for t in summary.totals
        ],
        problems=[CartProblem.model_validate(p) for p in judged.problems],
    )


@router.get("/api/cart", responses=error_responses(401))
async def get_cart(
    request: Request, user: OptionalUser, session: SessionDep, settings: SettingsDep
) -> CartOut:
    """The caller's cart: items with the price seen and the price now, each store's subtotal,
    the totals per currency, and what checkout would refuse."""
    cart = await service.load_cart(session, settings, request.session, user, create=False)
    return await _cart_out(session, settings, cart)


@router.post("/api/cart/items", responses=error_responses(401, 403, 404, 409, 422))
async def add_cart_item(
    body: CartItemIn,
    request: Request,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
) -> CartOut:
    """Add a listing (or more of it) at its current price."""
    cart = await service.load_cart(session, settings, request.session, user, create=True)
    assert cart is not None
    await service.add_item(session, settings, cart, body.listing_id, body.quantity)
    return await _cart_out(session, settings, cart)


@router.patch("/api/cart/items/{listingId}", responses=error_responses(401, 403, 404, 409, 422))
async def update_cart_item(
    listing_id: ListingId,
    body: CartQuantityIn,
    request: Request,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
) -> CartOut:
    """Set an item's quantity; its current price becomes the price seen (accepting a change)."""
    cart = await service.load_cart(session, settings, request.session, user, create=False)
    await service.set_quantity(session, settings, cart, listing_id, body.quantity)
    return await _cart_out(session, settings, cart)


@router.delete("/api/cart/items/{listingId}", responses=error_responses(401, 403, 404))
async def remove_cart_item(
    listing_id: ListingId,
    request: Request,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
) -> CartOut:
    """Take an item out of the cart."""
    cart = await service.load_cart(session, settings, request.session, user, create=False)
    await service.remove_item(session, cart, listing_id)
    return await _cart_out(session, settings, cart)


@router.post(
    "/api/cart/checkout",
    responses=error_responses(401, 403, 404, 409, 422, 429, 502, 503),
)
async def checkout_cart(
    body: CartCheckoutIn,
    request: Request,
    user: CallerDep,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    stripe: StripeDep,
) -> CartCheckoutOut:
    """Check the cart out: one order per store, paid once (a checkout group) when there are
    several stores, or each in turn under CHECKOUT_SPLIT_MODE=per_store (`url` is the first
    to pay; each order has its own). 409 `cart_changed` lists every item that changed since
    it was added. A second request while the first is being made (a double click) gets the
    same checkout."""
    email = body.customer_email or (user.email if user else None)
    if email is None:
        raise NotAuthenticated(
            "customerEmail is required to check out as a guest (or log in)", code="email_required"
        )
    started = await service.checkout_cart(
        factory,
        stripe,
        settings,
        request.session,
        user=user,
        customer_email=email,
        client_address=client_address(request),
    )
    pages = dict(started.pages)
    async with unit_of_work(factory) as session:
        made = (await session.execute(select(Order).where(Order.id.in_(list(pages))))).scalars()
        by_id = {o.id: o for o in made}
        orders = [
            CartOrderOut(
                order_id=o.id,
                store_id=o.store_id,
                total=format_amount(o.total_amount, o.currency),
                url=pages[o.id],
            )
            for o in (by_id[order_id] for order_id, _ in started.pages)
        ]
        split_mode = (await session.get_one(CartCheckout, started.checkout_id)).split_mode
    return CartCheckoutOut(
        checkout_group_id=started.group_id, url=started.url, split_mode=split_mode, orders=orders
    )


class AdminTransferOut(TransferOut):
    id: int
    order_id: int
    store_id: int
    checkout_group_id: int
    destination_account_id: str


class AdminTransferPage(ApiModel):
    data: list[AdminTransferOut]
    has_more: bool
    next_before: int | None


@router.get(
    "/api/admin/transfers",
    response_model=AdminTransferPage,
    responses=error_responses(401, 403, 422),
    tags=["orders"],
)
async def list_transfers(
    user: OptionalUser,
    session: SessionDep,
    status: Annotated[
        TransferStatus | None, Query(description="Only transfers in this state")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Cursor: older than this id")
    ] = None,
) -> AdminTransferPage:
    """Every store's transfer out of a checkout group's payment, newest first (platform admins
    only); `status=failed` lists the sellers whose money Stripe refused to send, with its
    reason (`souq reconcile` retries them)."""
    require_platform_admin(user)
    rows = await transfers.list_transfers(session, status=status, limit=limit + 1, before=before)
    page = list(rows[:limit])
    return AdminTransferPage(
        data=[
            AdminTransferOut(
                **TransferOut.of(t).model_dump(),
                id=t.id,
                order_id=t.order_id,
                store_id=t.store_id,
                checkout_group_id=t.checkout_group_id,
                destination_account_id=t.destination_account_id,
            )
            for t in page
        ],
        has_more=len(rows) > limit,
        next_before=page[-1].id if len(rows) > limit else None,
    )
