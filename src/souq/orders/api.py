"""Reading orders: a buyer's own, a store's for its members, every store's for platform admins
(who also settle the orders held for review)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Protocol, TypeVar

from fastapi import APIRouter, Path, Query

from souq.auth.deps import OptionalUser
from souq.db import unit_of_work
from souq.deps import SessionDep, SessionFactoryDep
from souq.orders import service
from souq.orders.models import PaymentStatus
from souq.orders.schemas import (
    AdminOrderOut,
    AdminOrderPage,
    BuyerOrderOut,
    FulfilmentIn,
    OrderOut,
    OrderPage,
    ResolveIn,
)
from souq.payments import transfers
from souq.payments.deps import CallerDep, StripeDep
from souq.schemas import error_responses

router = APIRouter(tags=["orders"])

MAX_ID = 2**31 - 1  # ids are 32-bit integers on every engine
OrderId = Annotated[int, Path(ge=1, le=MAX_ID)]
StatusQuery = Annotated[PaymentStatus | None, Query(description="Only orders in this state")]
LimitQuery = Annotated[int, Query(ge=1, le=100)]
BeforeQuery = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="Cursor: orders older than this id")
]


class HasId(Protocol):
    id: int


Row = TypeVar("Row", bound=HasId)


def page_of(rows: Sequence[Row], limit: int) -> tuple[list[Row], int | None]:
    """The first `limit` of the `limit + 1` rows fetched (newest first), and the next page's
    cursor."""
    page = list(rows[:limit])
    return page, page[-1].id if len(rows) > limit else None


@router.get("/api/orders/{order_id}", responses=error_responses(401, 404))
async def get_order(
    order_id: OrderId, user: OptionalUser, session: SessionDep
) -> OrderOut | BuyerOrderOut:
    """One order: its buyer sees what was bought and paid; members of its store and platform
    admins also see the platform fee, Stripe's fee and the store's net."""
    order = await service.get_order_for(session, order_id, user)
    assert user is not None  # get_order_for shows orders to logged-in users only
    if await service.sees_the_split(session, order, user):
        return OrderOut.of(order)
    return BuyerOrderOut.of(order)


@router.get(
    "/api/stores/{store_id}/orders",
    response_model=OrderPage,
    responses=error_responses(401, 404, 422),
)
async def list_store_orders(
    store_id: OrderId,
    user: OptionalUser,
    session: SessionDep,
    status: StatusQuery = None,
    limit: LimitQuery = 20,
    before: BeforeQuery = None,
) -> OrderPage:
    """A store's orders, newest first (members only), with fee and net per order."""
    orders = await service.list_store_orders(
        session, store_id, user, status=status, limit=limit + 1, before=before
    )
    page, next_before = page_of(orders, limit)
    return OrderPage(
        data=[OrderOut.of(order) for order in page],
        has_more=next_before is not None,
        next_before=next_before,
    )


@router.get(
    "/api/admin/orders",
    response_model=AdminOrderPage,
    responses=error_responses(401, 403, 422),
)
async def list_all_orders(
    user: OptionalUser,
    session: SessionDep,
    status: StatusQuery = None,
    limit: LimitQuery = 20,
    before: BeforeQuery = None,
) -> AdminOrderPage:
    """Every store's orders, newest first, with why each held one needs review (platform
    admins only); `status=needs_review` is the queue to act on."""
    orders = await service.list_orders(session, user, status=status, limit=limit + 1, before=before)
    page, next_before = page_of(orders, limit)
    return AdminOrderPage(
        data=[AdminOrderOut.of(order) for order in page],
        has_more=next_before is not None,
        next_before=next_before,
    )


@router.post(
    "/api/admin/orders/{order_id}/resolve",
    response_model=AdminOrderOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def resolve_order(
    order_id: OrderId, body: ResolveIn, user: OptionalUser, session: SessionDep
) -> AdminOrderOut:
    """Settle an order held for review: count its payment as the sale, or cancel it after
    refunding in Stripe (platform admins only)."""
    order = await service.resolve_review(session, order_id, user, body.resolution, body.note)
    return AdminOrderOut.of(order)


@router.post(
    "/api/orders/{order_id}/fulfilment",
    response_model=OrderOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def fulfil_order(
    order_id: OrderId,
    body: FulfilmentIn,
    user: CallerDep,
    factory: SessionFactoryDep,
    stripe: StripeDep,
) -> OrderOut:
    """Mark a paid order shipped or delivered, with its carrier and tracking number (the
    store's owners, admins and sellers). A store share held until fulfilment is then
    transferred, unless the order is refunded or disputed."""
    await transfers.fulfil(
        factory, stripe, order_id, user, body.status, body.carrier, body.tracking_number
    )
    async with unit_of_work(factory) as session:
        return OrderOut.of(await service.get_order_for(session, order_id, user))
