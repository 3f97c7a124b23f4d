"""The seller's money pages: an order's detail (the waterfall of its ledger entries, marking it
shipped, refunds with a preview of who pays what, its disputes and their evidence), a store's
disputes, and its statement (a chart of sales, fees and net, the table, its payouts, a CSV). Each
calls the service the JSON API calls, with the same checks of the caller's store role."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from souq.auth.deps import CurrentUser
from souq.auth.models import User
from souq.db import unit_of_work
from souq.deps import SessionDep, SessionFactoryDep, SettingsDep
from souq.errors import InvalidInput, NotFound, SouqError
from souq.ledger import disputes, reports
from souq.ledger import evidence as answers
from souq.ledger import refunds as refund_service
from souq.ledger import service as ledger
from souq.orders import service as orders
from souq.orders.models import FulfilmentStatus, Order
from souq.payments import transfers
from souq.payments.checkout_requests import check_key
from souq.payments.deps import CallerDep, StripeDep
from souq.stores.models import StoreMember, StoreRole
from souq.stores.service import MANAGE_STORE, READ_ORDERS, get_store, require_store_role
from souq.web.charts import Chart, Series, bar_chart
from souq.web.pages import PAGE_DEPENDENCIES, PageRoute, form_day, render

router = APIRouter(include_in_schema=False, route_class=PageRoute, dependencies=PAGE_DEPENDENCIES)

MAX_ID = 2**31 - 1
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID)]
StoreIdQuery = Annotated[int, Query(alias="storeId", gt=0, le=MAX_ID)]
Reason = Literal["", "duplicate", "fraudulent", "requested_by_customer"]
REASONS = [
    ("", "No reason given"),
    ("requested_by_customer", "Requested by the buyer"),
    ("duplicate", "Duplicate payment"),
    ("fraudulent", "Fraudulent payment"),
]


async def _seller_order(session: AsyncSession, order_id: int, user: User) -> Order:
    """The order, for its store's members and platform admins (as `GET /api/orders/{id}/money`
    is); anyone else, its buyer included, finds no such page."""
    order = await orders.get_order_for(session, order_id, user)
    if not await orders.sees_the_split(session, order, user):
        raise NotFound("order not found")
    return order


async def _role(session: AsyncSession, store_id: int, user: User) -> StoreRole | None:
    return (
        await session.execute(
            select(StoreMember.role).where(
                StoreMember.store_id == store_id, StoreMember.user_id == user.id
            )
        )
    ).scalar_one_or_none()


async def render_order(
    request: Request,
    session: AsyncSession,
    order_id: int,
    user: User,
    *,
    error: SouqError | None = None,
    preview: refund_service.Preview | None = None,
    refund_form: dict[str, Any] | None = None,
    evidence: dict[int, str] | None = None,
) -> Response:
    """The seller's page of one order; after a refused form, the form again with what was
    typed and the reason beside the field."""
    order = await _seller_order(session, order_id, user)
    role = await _role(session, order.store_id, user)
    entries = list(await ledger.entries_of(session, order.id))
    _, refund_rows, _ = await refund_service.list_refunds(session, order.id, user)
    order_disputes = await answers.list_disputes(session, order.id, user)
    return render(
        request,
        "ledger/order.html",
        error=error,
        order=order,
        store=await get_store(session, order.store_id),
        flow=ledger.waterfall(order.currency, entries),
        entries=entries,
        refunds=refund_rows,
        disputes=order_disputes,
        open_disputes=disputes.OPEN,
        can_fulfil=role is not None,
        can_refund=user.is_platform_admin or role in MANAGE_STORE,
        refundable=order.payment_status in refund_service.REFUNDABLE,
        fulfillable=order.payment_status in orders.FULFILLABLE,
        preview=preview,
        refund_form=refund_form or {"amount": "", "reason": "", "restock": False},
        reasons=REASONS,
        evidence=evidence or {},
        # A one-time key per rendered refund form: a double submit makes one refund.
        idempotency_key=secrets.token_urlsafe(24),
    )


@router.get("/dashboard/orders/{order_id}", response_class=HTMLResponse)
async def order_page(
    request: Request, order_id: ObjectId, user: CurrentUser, session: SessionDep
) -> Response:
    """An order as its store sees it: the money waterfall, shipping, refunds and disputes."""
    return await render_order(request, session, order_id, user)


async def _again(
    request: Request,
    factory: SessionFactoryDep,
    order_id: int,
    user: User | None,
    exc: SouqError,
    **forms: Any,
) -> Response:
    """A refused form of the order page: the page again with the reason (services refuse
    before they write, so nothing changed). Who may not see the order gets the error page."""
    if exc.status_code >= 500 or exc.status_code in (401, 403, 404) or user is None:
        raise exc
    async with unit_of_work(factory) as session:
        page = await render_order(request, session, order_id, user, error=exc, **forms)
    return page


@router.post("/dashboard/orders/{order_id}/fulfilment", response_class=HTMLResponse)
async def mark_fulfilled(
    request: Request,
    order_id: ObjectId,
    user: CallerDep,
    factory: SessionFactoryDep,
    stripe: StripeDep,
    status: Annotated[FulfilmentStatus, Form()] = FulfilmentStatus.shipped,
    carrier: Annotated[str, Form(max_length=100)] = "",
    tracking_number: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Mark the order shipped (or delivered) with its carrier and tracking number."""
    try:
        await transfers.fulfil(
            factory,
            stripe,
            order_id,
            user,
            status,
            carrier.strip() or None,
            tracking_number.strip() or None,
        )
    except SouqError as exc:
        return await _again(request, factory, order_id, user, exc)
    return RedirectResponse(f"/dashboard/orders/{order_id}#fulfilment", status_code=303)


def _refund_form(amount: str, reason: str, restock: str | None) -> dict[str, Any]:
    return {"amount": amount, "reason": reason, "restock": restock is not None}


def _amount(amount: str) -> str | None:
    """The amount field: empty means all that is left."""
    text = amount.strip()
    if text and not re.fullmatch(r"[0-9]{1,12}([.][0-9]{1,3})?", text):
        message = 'an amount such as "12.50", or empty for all that is left'
        raise InvalidInput(f"amount: {message}", details=[{"field": "amount", "message": message}])
    return text or None


def _amount_error(exc: SouqError) -> SouqError:
    """The services name a bad amount in their message; the page shows it beside the field."""
    if exc.details is None and exc.code in ("invalid_amount", "refund_exceeds_payment"):
        exc.details = [{"field": "amount", "message": exc.message.removeprefix("amount: ")}]
    return exc


@router.post("/dashboard/orders/{order_id}/refunds/preview", response_class=HTMLResponse)
async def preview_refund(
    request: Request,
    order_id: ObjectId,
    user: CallerDep,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    stripe: StripeDep,
    amount: Annotated[str, Form(max_length=32)] = "",
    reason: Annotated[Reason, Form()] = "",
    restock: Annotated[str | None, Form(max_length=10)] = None,
) -> Response:
    """What the refund would move now, and a button to make it."""
    form = _refund_form(amount, reason, restock)
    try:
        preview = await refund_service.preview_refund(
            factory, stripe, settings, order_id, user, _amount(amount)
        )
    except SouqError as exc:
        return await _again(request, factory, order_id, user, _amount_error(exc), refund_form=form)
    assert user is not None
    async with unit_of_work(factory) as session:
        return await render_order(
            request, session, order_id, user, preview=preview, refund_form=form
        )


@router.post("/dashboard/orders/{order_id}/refunds", response_class=HTMLResponse)
async def create_refund(
    request: Request,
    order_id: ObjectId,
    user: CallerDep,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    stripe: StripeDep,
    idempotency_key: Annotated[str, Form(max_length=255)] = "",
    amount: Annotated[str, Form(max_length=32)] = "",
    reason: Annotated[Reason, Form()] = "",
    restock: Annotated[str | None, Form(max_length=10)] = None,
) -> Response:
    """Make the refund previewed; the form's one-time key makes a double submit one refund."""
    form = _refund_form(amount, reason, restock)
    try:
        ask = refund_service.RefundAsk(
            amount=_amount(amount), reason=reason or None, restock=form["restock"]
        )
        await refund_service.create_refund(
            factory, stripe, settings, order_id, user, ask, check_key(idempotency_key)
        )
    except SouqError as exc:
        return await _again(request, factory, order_id, user, _amount_error(exc), refund_form=form)
    return RedirectResponse(f"/dashboard/orders/{order_id}#refunds", status_code=303)


@router.post(
    "/dashboard/orders/{order_id}/disputes/{dispute_id}/evidence", response_class=HTMLResponse
)
async def submit_evidence(
    request: Request,
    order_id: ObjectId,
    dispute_id: ObjectId,
    user: CallerDep,
    factory: SessionFactoryDep,
    stripe: StripeDep,
    text: Annotated[str, Form(max_length=disputes.EVIDENCE_MAX)] = "",
) -> Response:
    """Answer a dispute: Souq adds the order's facts and submits the evidence to Stripe."""
    try:
        if not text.strip():
            message = "say what happened: the buyer's order, delivery, your conversation"
            raise InvalidInput(
                f"evidence: {message}",
                details=[{"field": f"evidence-{dispute_id}", "message": message}],
            )
        await answers.submit_evidence(factory, stripe, order_id, dispute_id, user, text)
    except SouqError as exc:
        return await _again(request, factory, order_id, user, exc, evidence={dispute_id: text})
    return RedirectResponse(f"/dashboard/orders/{order_id}#disputes", status_code=303)


@router.get("/dashboard/disputes", response_class=HTMLResponse)
async def store_disputes(
    request: Request, store_id: StoreIdQuery, user: CurrentUser, session: SessionDep
) -> Response:
    """A store's disputes, those waiting for an answer first with their deadline."""
    rows = await answers.list_store_disputes(session, store_id, user)
    return render(
        request,
        "ledger/disputes.html",
        store=await get_store(session, store_id),
        disputes=rows,
        open_disputes=disputes.OPEN,
    )


async def _statement(
    session: AsyncSession, user: User, store_id: int, start: str, end: str
) -> tuple[list[reports.StatementRow], list[reports.PayoutLine]]:
    return await reports.statement(
        session, user, store_id, start=form_day("from", start), end=form_day("to", end)
    )


def _charts(rows: Sequence[reports.StatementRow]) -> list[tuple[str, Chart]]:
    """One chart per currency: each day's sales, fees (commission kept) and net."""
    charts = []
    for currency in sorted({row.currency for row in rows}):
        mine = [row for row in rows if row.currency == currency]
        series = [
            Series("Sales", [row.gross for row in mine]),
            Series("Fees", [row.commission - row.commission_returned for row in mine]),
            Series("Net", [row.net for row in mine]),
        ]
        title = f"Sales, fees and net per day in {currency.upper()}"
        charts.append((currency, bar_chart(title, currency, [row.day for row in mine], series)))
    return charts


FromQuery = Annotated[str, Query(alias="from", max_length=10)]
ToQuery = Annotated[str, Query(alias="to", max_length=10)]


@router.get("/dashboard/statements", response_class=HTMLResponse)
async def statements(
    request: Request,
    store_id: StoreIdQuery,
    user: CurrentUser,
    session: SessionDep,
    start: FromQuery = "",
    end: ToQuery = "",
) -> Response:
    """A store's statement: a chart of sales, fees and net per day, the table, the payouts to
    the store's bank in the period (the orders each carried), the CSV."""
    store, _ = await require_store_role(session, store_id, user, READ_ORDERS)
    try:
        rows, payouts = await _statement(session, user, store_id, start, end)
    except InvalidInput as exc:
        return render(
            request,
            "ledger/statements.html",
            error=exc,
            store=store,
            rows=[],
            payouts=[],
            currency_charts=[],
            start=start,
            end=end,
        )
    return render(
        request,
        "ledger/statements.html",
        store=store,
        rows=rows,
        payouts=payouts,
        currency_charts=_charts(rows),
        start=start,
        end=end,
    )


@router.get("/dashboard/statements/csv")
async def statements_csv(
    store_id: StoreIdQuery,
    user: CurrentUser,
    session: SessionDep,
    start: FromQuery = "",
    end: ToQuery = "",
) -> Response:
    """The statement as a CSV file (the same rows as `GET /api/stores/{id}/statements`)."""
    rows, _ = await _statement(session, user, store_id, start, end)
    return Response(
        reports.to_csv(rows, reports.StatementRow),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="statement-{store_id}.csv"'},
    )
