"""Reading orders: a buyer's own, a store's for its members, every store's for platform admins
(who also settle the orders held for review)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from souq.auth.deps import OptionalUser
from souq.deps import SessionDep
from souq.orders import service
from souq.orders.models import PaymentStatus
from souq.orders.schemas import AdminOrderOut, AdminOrderPage, OrderOut, OrderPage, ResolveIn
from souq.schemas import error_responses

router = APIRouter(tags=["orders"])


@router.get("/api/orders/{order_id}", response_model=OrderOut, responses=error_responses(401, 404))
async def get_order(order_id: int, user: OptionalUser, session: SessionDep) -> OrderOut:
    """One order, for its buyer, members of its store and platform admins."""
    return OrderOut.of(await service.get_order_for(session, order_id, user))


@router.get(
    "/api/stores/{store_id}/orders",
    response_model=OrderPage,
    responses=error_responses(401, 404, 422),
)
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


@router.get(
    "/api/admin/orders",
    response_model=AdminOrderPage,
    responses=error_responses(401, 403, 422),
)
async def list_all_orders(
    user: OptionalUser,
    session: SessionDep,
    status: Annotated[
        PaymentStatus | None, Query(description="e.g. needs_review: the orders to act on")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[int | None, Query(description="Cursor: orders older than this id")] = None,
) -> AdminOrderPage:
    """Every store's orders, newest first, with why each held one needs review (platform
    admins only)."""
    orders = await service.list_orders(session, user, status=status, limit=limit + 1, before=before)
    page = list(orders[:limit])
    has_more = len(orders) > limit
    return AdminOrderPage(
        data=[AdminOrderOut.of(order) for order in page],
        has_more=has_more,
        next_before=page[-1].id if has_more else None,
    )


@router.post(
    "/api/admin/orders/{order_id}/resolve",
    response_model=AdminOrderOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def resolve_order(
    order_id: int, body: ResolveIn, user: OptionalUser, session: SessionDep
) -> AdminOrderOut:
    """Settle an order held for review: count its payment as the sale, or cancel it after
    refunding in Stripe (platform admins only)."""
    order = await service.resolve_review(session, order_id, user, body.resolution, body.note)
    return AdminOrderOut.of(order)
