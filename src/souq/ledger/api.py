"""Refunds, their preview, and an order's money (the waterfall of its ledger entries)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from souq.auth.deps import OptionalUser
from souq.deps import SessionDep, SessionFactoryDep, SettingsDep
from souq.errors import Forbidden, InvalidInput
from souq.ledger import disputes
from souq.ledger import refunds as service
from souq.ledger import service as ledger
from souq.ledger.models import StoreLossPolicy
from souq.ledger.policy import FIELDS, policy_for
from souq.ledger.schemas import (
    BuyerRefundOut,
    DisputeList,
    DisputeOut,
    EvidenceIn,
    LossPolicyIn,
    LossPolicyOut,
    MoneyOut,
    PreviewIn,
    PreviewOut,
    RefundIn,
    RefundList,
    RefundOut,
    StoreLossPolicyOut,
)
from souq.orders import service as orders
from souq.orders.api import OrderId
from souq.payments.checkout_requests import KEY, check_key
from souq.payments.deps import CallerDep, StripeDep
from souq.schemas import error_responses

router = APIRouter(tags=["refunds"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        description="Required: a retry with the same key and body is the same refund; the "
        "same key with another body is a 409",
        json_schema_extra={"pattern": f"^{KEY.pattern}$"},
    ),
]


@router.post(
    "/api/orders/{order_id}/refunds",
    response_model=RefundOut,
    status_code=201,
    responses=error_responses(401, 403, 404, 409, 422, 502, 503),
)
async def create_refund(
    order_id: OrderId,
    body: RefundIn,
    user: CallerDep,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    stripe: StripeDep,
    idempotency_key: IdempotencyKey = None,
) -> RefundOut:
    """Refund all or part of a paid order (its store's owners and admins, platform admins):
    the store's transfer is reversed and the commission follows the loss policy."""
    if idempotency_key is None:
        raise InvalidInput("send an Idempotency-Key header", code="idempotency_key_required")
    ask = service.RefundAsk(amount=body.amount, reason=body.reason, restock=body.restock)
    refund = await service.create_refund(
        factory, stripe, settings, order_id, user, ask, check_key(idempotency_key)
    )
    return RefundOut.of(refund)


@router.post(
    "/api/orders/{order_id}/refunds/preview",
    response_model=PreviewOut,
    responses=error_responses(401, 403, 404, 409, 422, 502, 503),
)
async def preview_refund(
    order_id: OrderId,
    body: PreviewIn,
    user: CallerDep,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    stripe: StripeDep,
) -> PreviewOut:
    """Exactly what a refund would move now: buyer, store, platform, fees."""
    preview = await service.preview_refund(factory, stripe, settings, order_id, user, body.amount)
    return PreviewOut.of(preview)


@router.get(
    "/api/orders/{order_id}/refunds",
    response_model=RefundList,
    responses=error_responses(401, 404, 422),
)
async def list_refunds(order_id: OrderId, user: OptionalUser, session: SessionDep) -> RefundList:
    """An order's refunds: its buyer sees amounts and states, its store and platform admins
    also what each moved."""
    _, rows, split = await service.list_refunds(session, order_id, user)
    if split:
        return RefundList(data=[RefundOut.of(r) for r in rows])
    return RefundList(data=[BuyerRefundOut.of(r) for r in rows])


@router.get(
    "/api/orders/{order_id}/money",
    response_model=MoneyOut,
    responses=error_responses(401, 403, 404, 422),
)
async def order_money(order_id: OrderId, user: OptionalUser, session: SessionDep) -> MoneyOut:
    """The order's waterfall from its ledger entries (its store's members, platform admins)."""
    order = await orders.get_order_for(session, order_id, user)
    assert user is not None
    if not await orders.sees_the_split(session, order, user):
        raise Forbidden("only the store and platform admins see how an order's money is split")
    entries = list(await ledger.entries_of(session, order.id))
    _, rows, _ = await service.list_refunds(session, order.id, user)
    return MoneyOut.of(order.id, ledger.waterfall(order.currency, entries), entries, list(rows))


def _policy_out(
    settings: SettingsDep, store_id: int, row: StoreLossPolicy | None
) -> StoreLossPolicyOut:
    overrides = LossPolicyIn.model_validate(
        {name: getattr(row, name) if row else None for name in FIELDS}
    )
    return StoreLossPolicyOut(
        store_id=store_id,
        effective=LossPolicyOut.of(policy_for(settings, row)),
        overrides=overrides,
    )


@router.get(
    "/api/stores/{store_id}/loss-policy",
    response_model=StoreLossPolicyOut,
    responses=error_responses(401, 404, 422),
)
async def get_loss_policy(
    store_id: OrderId, user: OptionalUser, session: SessionDep, settings: SettingsDep
) -> StoreLossPolicyOut:
    """Who bears which loss for this store (its members, platform admins)."""
    row = await ledger.read_store_policy(session, user, store_id)
    return _policy_out(settings, store_id, row)


@router.put(
    "/api/admin/stores/{store_id}/loss-policy",
    response_model=StoreLossPolicyOut,
    responses=error_responses(401, 403, 404, 422),
)
async def put_loss_policy(
    store_id: OrderId,
    body: LossPolicyIn,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
) -> StoreLossPolicyOut:
    """Override the platform's loss policy for one store (platform admins only)."""
    row = await ledger.set_store_policy(session, user, store_id, body.model_dump(by_alias=False))
    return _policy_out(settings, store_id, row)


DisputeId = OrderId


@router.get(
    "/api/orders/{order_id}/disputes",
    response_model=DisputeList,
    responses=error_responses(401, 404, 422),
)
async def list_disputes(order_id: OrderId, user: OptionalUser, session: SessionDep) -> DisputeList:
    """An order's disputes (its store's members, platform admins)."""
    rows = await disputes.list_disputes(session, order_id, user)
    return DisputeList(data=[DisputeOut.of(d) for d in rows])


@router.post(
    "/api/orders/{order_id}/disputes/{dispute_id}/evidence",
    response_model=DisputeOut,
    responses=error_responses(401, 403, 404, 409, 422, 502, 503),
)
async def submit_evidence(
    order_id: OrderId,
    dispute_id: DisputeId,
    body: EvidenceIn,
    user: CallerDep,
    factory: SessionFactoryDep,
    stripe: StripeDep,
) -> DisputeOut:
    """Answer a dispute (the store's owners and admins, platform admins): Souq adds the
    order's facts and submits the evidence to Stripe."""
    row = await disputes.submit_evidence(factory, stripe, order_id, dispute_id, user, body.text)
    return DisputeOut.of(row)
