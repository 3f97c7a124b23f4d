"""Reading orders: a buyer's own, and a store's for its members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from souq.auth.deps import OptionalUser
from souq.deps import SessionDep
from souq.orders import service
from souq.orders.models import PaymentStatus
from souq.orders.schemas import OrderOut, OrderPage

router = APIRouter(tags=["orders"])


@router.get("/api/orders/{order_id}", response_model=OrderOut)
async def get_order(order_id: int, user: OptionalUser, session: SessionDep) -> OrderOut:
    """One order, for its buyer, members of its store and platform admins."""
    return OrderOut.of(await service.get_order_for(session, order_id, user))


@router.get("/api/stores/{store_id}/orders", response_model=OrderPage)
async def list_store_orders(
    store_id: int,
    user: OptionalUser,
    session: SessionDep,
    status: Annotated[PaymentStatus | None, Query(description="Only orders in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[int | None, Query(description="Cursor: orders older than this id")] = None,
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
