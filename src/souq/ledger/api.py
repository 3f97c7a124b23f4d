"""Refunds, their preview, and an order's money (the waterfall of its ledger entries)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BeforeValidator

from souq.auth.deps import OptionalUser
from souq.auth.service import require_platform_admin
from souq.carts.schemas import MAX_ID
from souq.deps import SessionDep, SessionFactoryDep, SettingsDep
from souq.errors import Forbidden
from souq.ledger import disputes, evidence, payouts, reports, retries
from souq.ledger import refunds as service
from souq.ledger import service as ledger
from souq.ledger.models import StoreLossPolicy
from souq.ledger.policy import FIELDS, policy_for
from souq.ledger.schemas import (
    AdminPayoutOut,
    AdminPayoutPage,
    BuyerRefundOut,
    DisputeList,
    DisputeOut,
    EvidenceIn,
    FeeReport,
    FeeRowOut,
    LossPolicyIn,
    LossPolicyOut,
    MoneyOut,
    PreviewIn,
    PreviewOut,
    RecoveryOut,
    RefundIn,
    RefundList,
    RefundOut,
    RefusedReversalList,
    RefusedReversalOut,
    Statement,
    StatementPayoutOut,
    StatementRowOut,
    StoreLossPolicyOut,
)
from souq.orders import service as orders
from souq.orders.api import OrderId
from souq.payments.checkout_requests import KEY, check_key
from souq.payments.deps import CallerDep, StripeDep
from souq.schemas import error_responses

router = APIRouter(tags=["refunds"])

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        description="A retry with the same key and body is the same refund; the same key with "
        "another body is a 409. Required: a request without it is a 422",
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
    idempotency_key: IdempotencyKey,
) -> RefundOut:
    """Refund all or part of a paid order (its store's owners and admins, platform admins):
    the store's transfer is reversed and the commission follows the loss policy."""
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
    paid_out = await payouts.payouts_of_order(session, order.id)
    return MoneyOut.of(
        order.id, ledger.waterfall(order.currency, entries), entries, list(rows), paid_out
    )


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
    rows = await evidence.list_disputes(session, order_id, user)
    return DisputeList(data=[DisputeOut.of(d) for d in rows])


@router.get(
    "/api/stores/{store_id}/disputes",
    response_model=DisputeList,
    responses=error_responses(401, 404, 422),
)
async def list_store_disputes(
    store_id: OrderId, user: OptionalUser, session: SessionDep
) -> DisputeList:
    """A store's disputes (its members): those waiting for an answer first, the nearest
    evidence deadline first, then the settled ones, newest first."""
    rows = await evidence.list_store_disputes(session, store_id, user)
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
    row = await evidence.submit_evidence(factory, stripe, order_id, dispute_id, user, body.text)
    return DisputeOut.of(row)


@router.get(
    "/api/admin/disputes/recoveries",
    response_model=DisputeList,
    responses=error_responses(401, 403),
)
async def due_recoveries(user: OptionalUser, session: SessionDep) -> DisputeList:
    """Disputes whose recovery from the store is due and not made yet (platform admins):
    a refused one shows Stripe's reason and how often it was tried."""
    rows = await disputes.list_due_recoveries(session, user)
    return DisputeList(data=[DisputeOut.of(d) for d in rows])


@router.get(
    "/api/admin/refunds/refused-reversals",
    response_model=RefusedReversalList,
    responses=error_responses(401, 403),
)
async def refused_reversals(user: OptionalUser, session: SessionDep) -> RefusedReversalList:
    """Split-cart refunds whose reversal of the store's transfer Stripe refused and that is
    not made yet (platform admins): Stripe's reason and how often it was refused; `souq
    reconcile` and its periodic job try each again."""
    rows = await retries.list_refused_reversals(session, user)
    return RefusedReversalList(data=[RefusedReversalOut.of(r) for r in rows])


@router.post(
    "/api/admin/disputes/{dispute_id}/recover",
    response_model=RecoveryOut,
    responses=error_responses(401, 403, 404, 422, 502, 503),
)
async def retry_recovery(
    dispute_id: DisputeId, user: CallerDep, factory: SessionFactoryDep, stripe: StripeDep
) -> RecoveryOut:
    """Try a dispute's recovery from the store again now (platform admins); the same Stripe
    idempotency key as the last try unless Stripe refused it, so it is never made twice."""
    outcome, row = await disputes.retry_recovery(factory, stripe, user, dispute_id)
    return RecoveryOut(outcome=outcome, dispute=DisputeOut.of(row))


def _iso_day(value: object) -> object:
    """Only a calendar day as the description says (YYYY-MM-DD): pydantic alone would also
    take a number of seconds since 1970 (`to=0`)."""
    if isinstance(value, str) and not ISO_DAY.fullmatch(value):
        raise ValueError("a day as YYYY-MM-DD")
    return value


ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
Day = Annotated[date, BeforeValidator(_iso_day)]
FromQuery = Annotated[Day | None, Query(alias="from", description="First day (UTC), included")]
ToQuery = Annotated[Day | None, Query(alias="to", description="Last day (UTC), included")]
FormatQuery = Annotated[
    Literal["json", "csv"] | None,
    Query(alias="format", description="csv, or send Accept: text/csv"),
]
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}


def _wants_csv(request: Request, format_: str | None) -> bool:
    if format_ is not None:
        return format_ == "csv"
    return "text/csv" in request.headers.get("accept", "")


@router.get(
    "/api/admin/reports/fees",
    response_model=FeeReport,
    responses={**CSV_RESPONSE, **error_responses(401, 403, 422)},
)
async def fee_report(
    request: Request,
    user: OptionalUser,
    session: SessionDep,
    start: FromQuery = None,
    end: ToQuery = None,
    currency: Annotated[str | None, Query(pattern="^[A-Za-z]{3}$")] = None,
    store_id: Annotated[int | None, Query(alias="storeId", ge=1, le=2**31 - 1)] = None,
    format_: FormatQuery = None,
) -> FeeReport | Response:
    """Gross volume, commission, Stripe's fees, refunds, commissions returned, disputes, dispute
    fees and net margin per day, currency and store (platform admins only)."""
    rows = await reports.fee_report(
        session, user, start=start, end=end, currency=currency, store_id=store_id
    )
    if _wants_csv(request, format_):
        return Response(reports.to_csv(rows, reports.FeeRow), media_type="text/csv")
    return FeeReport(data=[FeeRowOut.model_validate(r) for r in rows])


@router.get(
    "/api/stores/{store_id}/statements",
    response_model=Statement,
    responses={**CSV_RESPONSE, **error_responses(401, 404, 422)},
)
async def store_statement(
    store_id: OrderId,
    request: Request,
    user: OptionalUser,
    session: SessionDep,
    start: FromQuery = None,
    end: ToQuery = None,
    format_: FormatQuery = None,
) -> Statement | Response:
    """The store's orders, gross, commission, transfers, reversals, net and payouts per day
    and currency, and its payouts with the orders each paid out (its members)."""
    rows, paid_out = await reports.statement(session, user, store_id, start=start, end=end)
    if _wants_csv(request, format_):
        return Response(reports.to_csv(rows, reports.StatementRow), media_type="text/csv")
    return Statement(
        data=[StatementRowOut.model_validate(r) for r in rows],
        payouts=[StatementPayoutOut.model_validate(p) for p in paid_out],
    )


PayoutStatus = Literal["pending", "in_transit", "paid", "failed", "canceled"]


@router.get(
    "/api/admin/payouts",
    response_model=AdminPayoutPage,
    responses=error_responses(401, 403, 422),
)
async def list_payouts(
    user: OptionalUser,
    session: SessionDep,
    status: Annotated[PayoutStatus | None, Query(description="Only payouts in this state")] = None,
    store_id: Annotated[
        int | None, Query(alias="storeId", ge=1, le=MAX_ID, description="Only this store's")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Cursor: older than this id")
    ] = None,
) -> AdminPayoutPage:
    """Every store's payouts to its bank, newest first (platform admins only); `status=failed`
    lists the ones that did not reach the bank, with Stripe's failure code and message."""
    require_platform_admin(user)
    rows = await payouts.list_payouts(
        session, status=status, store_id=store_id, limit=limit + 1, before=before
    )
    page = list(rows[:limit])
    return AdminPayoutPage(
        data=[AdminPayoutOut.model_validate(p) for p in page],
        has_more=len(rows) > limit,
        next_before=page[-1].id if len(rows) > limit else None,
    )
