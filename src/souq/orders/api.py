"""Reading orders: a buyer's own, and a store's for its members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from souq.auth.deps import OptionalUser
from souq.deps import SessionDep
from souq.orders import service
from souq.orders.models import PaymentStatus
from souq.orders.schemas import BuyerOrderOut, OrderOut, OrderPage
from souq.schemas import error_responses

router = APIRouter(tags=["orders"])

MAX_ID = 2**31 - 1  # ids are 32-bit integers on every engine


@router.get("/api/orders/{order_id}", responses=error_responses(401, 404))
async def get_order(
    order_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: OptionalUser, session: SessionDep
) -> OrderOut | BuyerOrderOut:
    """One order: its buyer sees what was bought and paid; members of its store and platform
    admins also see the platform fee, Stripe's fee and the store's net."""
    order = await service.get_order_for(session, order_id, user)
    assert user is not None  # get_order_for shows orders to logged-in users only
    if await service.sees_the_split(session, order, user):
        return OrderOut.of(order)
    return BuyerOrderOut.of(order)


@router.get("/api/stores/{store_id}/orders", responses=error_responses(401, 404))
async def list_store_orders(
    store_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    user: OptionalUser,
    session: SessionDep,
    status: Annotated[PaymentStatus | None, Query(description="Only orders in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Cursor: orders older than this id")
    ] = None,
) -> OrderPage:
    """A store's orders, newest first (members only), with fee and net per order."""
    orders = await service.list_store_orders(
        session, store_id, user, status=status, limit=limit + 1, before=before
    )
    page = list(orders[:limit])
    has_more = len(orders) > limit
    return OrderPage(
        data=[OrderOut.of(order) for order in page],
        has_more=has_more,
        next_before=page[-1].id if has_more else None,
    )
