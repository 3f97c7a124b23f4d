"""The platform back office's money pages (platform admins only): a store's commission, the
fee report with its chart, failed transfers with Retry, and the Stripe webhook inbox with
Replay. Each calls the service its JSON API route or `souq` command calls."""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.exc import NoResultFound

from souq.auth.deps import CurrentUser
from souq.auth.service import require_platform_admin
from souq.config import Settings
from souq.deps import SessionDep, SessionFactoryDep, SettingsDep
from souq.errors import InvalidInput, NotFound, SouqError
from souq.ledger import reports
from souq.money import format_amount
from souq.payments import tasks, transfers, webhooks
from souq.payments.deps import CallerDep, StripeDep
from souq.payments.models import TransferStatus
from souq.stores import service as stores
from souq.stores.models import Store
from souq.web.charts import Chart, Series, bar_chart
from souq.web.pages import PAGE_DEPENDENCIES, PageRoute, field_errors, form_day, render

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False, route_class=PageRoute, dependencies=PAGE_DEPENDENCIES)

MAX_ID = 2**31 - 1
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID)]
TIMINGS = ("on_payment", "on_fulfilment")
# What the fee report's chart draws, per day (the table beside it shows the same columns).
CHARTED = (
    ("gross_volume", "Gross volume"),
    ("commission_earned", "Commission"),
    ("processing_fees", "Stripe's fees"),
    ("net_margin", "Net margin"),
)


def _amounts_text(amounts: dict[str, int] | None) -> str:
    """A store's per-currency amounts as the form shows them: "usd 0.30, eur 0.25"."""
    return ", ".join(
        f"{code} {format_amount(minor, code)}" for code, minor in sorted((amounts or {}).items())
    )


def _amounts_form(field: str, text: str) -> dict[str, str]:
    """The form's "usd 0.30, eur 0.25" → the API's {"usd": "0.30", "eur": "0.25"}; the service
    checks each code and amount."""
    given: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        pieces = part.split()
        if len(pieces) != 2:
            problem = f'"{part}": write a currency code and an amount, e.g. "usd 0.30"'
            raise InvalidInput(
                f"{field}: {problem}", details=[{"field": field, "message": problem}]
            )
        given[pieces[0]] = pieces[1]
    return given


def _commission_page(
    request: Request,
    store: Store,
    settings: Settings,
    *,
    error: SouqError | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    # Errors name an entry ("fixed.usd"); the form has one field per map.
    errors = {key.split(".")[0]: message for key, message in field_errors(error).items()}
    return render(
        request,
        "backoffice/commission.html",
        error=error,
        field_errors=errors,
        store=store,
        rule=stores.commission_rule(store, settings, store.default_currency),
        timing=stores.transfer_timing(store, settings),
        platform_bps=settings.platform_fee_bps,
        platform_timing=settings.transfer_timing,
        timings=TIMINGS,
        form=form
        or {
            "bps": "" if store.platform_fee_bps is None else str(store.platform_fee_bps),
            "fixed": _amounts_text(store.commission_fixed),
            "minimum": _amounts_text(store.commission_minimum),
            "transfer_timing": store.transfer_timing or "",
        },
    )


@router.get("/admin/stores/{store_id}/commission", response_class=HTMLResponse)
async def commission(
    request: Request,
    store_id: ObjectId,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """A store's commission as its next order is charged it, and the form to change it."""
    require_platform_admin(user)
    return _commission_page(request, await stores.get_store(session, store_id), settings)


@router.post("/admin/stores/{store_id}/commission", response_class=HTMLResponse)
async def set_commission(
    request: Request,
    store_id: ObjectId,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    bps: Annotated[str, Form(max_length=10)] = "",
    fixed: Annotated[str, Form(max_length=2000)] = "",
    minimum: Annotated[str, Form(max_length=2000)] = "",
    transfer_timing: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """The form of PATCH /api/admin/stores/{id}/commission: every field is set (empty: the
    platform's rate, no fixed amount, no minimum, the platform's timing)."""
    require_platform_admin(user)
    form = {"bps": bps, "fixed": fixed, "minimum": minimum, "transfer_timing": transfer_timing}
    try:
        changes: dict[str, Any] = {
            "bps": _bps(bps),
            "fixed": _amounts_form("fixed", fixed),
            "minimum": _amounts_form("minimum", minimum),
            "transfer_timing": _timing(transfer_timing),
        }
        await stores.set_commission(session, store_id, user, changes)
    except SouqError as exc:
        if isinstance(exc, NotFound):
            raise
        # The service may have changed some fields before it refused one: none is kept.
        await session.rollback()
        store = await stores.get_store(session, store_id)
        return _commission_page(request, store, settings, error=exc, form=form)
    return RedirectResponse(f"/admin/stores/{store_id}/commission?saved=1", status_code=303)


def _bps(text: str) -> int | None:
    if not text.strip():
        return None
    if not text.strip().isdigit() or not 0 <= int(text) <= 10_000:
        problem = "a whole number of basis points from 0 to 10000 (100 = 1%), or empty"
        raise InvalidInput(f"bps: {problem}", details=[{"field": "bps", "message": problem}])
    return int(text)


def _timing(text: str) -> str | None:
    if not text:
        return None
    if text not in TIMINGS:
        problem = f"one of {', '.join(TIMINGS)}, or empty for the platform's"
        raise InvalidInput(problem, details=[{"field": "transfer_timing", "message": problem}])
    return text


def _chart(currency: str, days: list[reports.FeeRow]) -> Chart:
    return bar_chart(
        f"Gross, commission, Stripe's fees and net margin per day, {currency.upper()}",
        currency,
        [d.day for d in days],
        [Series(label, [getattr(d, name) for d in days]) for name, label in CHARTED],
    )


@router.get("/admin/reports/fees", response_class=HTMLResponse)
async def fee_report(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    start: Annotated[str, Query(alias="from", max_length=20)] = "",
    end: Annotated[str, Query(alias="to", max_length=20)] = "",
    currency: Annotated[str, Query(max_length=10)] = "",
    store_id: Annotated[str, Query(alias="storeId", max_length=12)] = "",
) -> Response:
    """The fee report of GET /api/admin/reports/fees: a chart per currency of gross,
    commission, fees and net per day, the same numbers in a table, and the CSV."""
    require_platform_admin(user)
    filters = {"from": start, "to": end, "currency": currency, "storeId": store_id}
    context: dict[str, Any] = {
        "filters": filters,
        "stores": await stores.list_stores(session),
        "csv_url": "/api/admin/reports/fees?"
        + urlencode({**{k: v for k, v in filters.items() if v}, "format": "csv"}),
    }
    try:
        if store_id and not (store_id.isdigit() and 1 <= int(store_id) <= MAX_ID):
            raise InvalidInput("storeId: pick a store", details=[{"field": "storeId"}])
        if currency and not re.fullmatch(r"[A-Za-z]{3}", currency):
            problem = "a three-letter code such as usd"
            raise InvalidInput(problem, details=[{"field": "currency", "message": problem}])
        rows = await reports.fee_report(
            session,
            user,
            start=form_day("from", start),
            end=form_day("to", end),
            currency=currency or None,
            store_id=int(store_id) if store_id else None,
        )
    except InvalidInput as exc:
        return render(request, "backoffice/fees.html", error=exc, daily={}, chart_of={}, **context)
    daily = reports.fee_totals_per_day(rows)
    chart_of = {code: _chart(code, days) for code, days in daily.items()}
    return render(request, "backoffice/fees.html", daily=daily, chart_of=chart_of, **context)


@router.get("/admin/transfers", response_class=HTMLResponse)
async def transfer_list(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    state: Annotated[str, Query(alias="status", max_length=20)] = TransferStatus.failed.value,
) -> Response:
    """The stores' transfers of GET /api/admin/transfers (the refused ones unless another
    state, or `all`, is asked for), with a Retry button for those not sent."""
    require_platform_admin(user)
    if state != "all" and state not in TransferStatus.__members__:
        raise InvalidInput("status: one of " + ", ".join(["all", *TransferStatus.__members__]))
    status = None if state == "all" else TransferStatus(state)
    rows = await transfers.list_transfers(session, status=status, limit=100, before=None)
    return render(
        request,
        "backoffice/transfers.html",
        transfers=rows,
        status=status,
        statuses=list(TransferStatus),
        unsent=transfers.UNSENT,
        retried=request.query_params.get("retried"),
    )


@router.post("/admin/transfers/{transfer_id}/retry")
async def retry_transfer(
    transfer_id: ObjectId, user: CallerDep, factory: SessionFactoryDep, stripe: StripeDep
) -> Response:
    """Ask Stripe again now, as `souq reconcile` does (the same idempotency key)."""
    require_platform_admin(user)
    outcome = await transfers.retry_transfer(factory, stripe, transfer_id)
    query = urlencode({"status": outcome.value, "retried": transfer_id})
    return RedirectResponse(f"/admin/transfers?{query}", status_code=303)


@router.get("/admin/events", response_class=HTMLResponse)
async def event_inbox(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    failed: Annotated[bool, Query()] = False,
    replayed: Annotated[str, Query(max_length=255)] = "",
) -> Response:
    """The Stripe webhook inbox, newest first: each event's state, a failed one's error, and
    Replay (what `souq events replay` does)."""
    require_platform_admin(user)
    events = await webhooks.list_events(session, failed=failed, limit=100)
    just_replayed = None
    if replayed:
        found = await webhooks.list_events(session, failed=False, limit=1, event_id=replayed)
        just_replayed = found[0] if found else None
    return render(
        request, "backoffice/events.html", events=events, failed=failed, replayed=just_replayed
    )


@router.post("/admin/events/{event_id}/replay")
async def replay_event(
    event_id: Annotated[str, Path(max_length=255)],
    user: CallerDep,
    factory: SessionFactoryDep,
    stripe: StripeDep,
) -> Response:
    """Run the event's handler again now; a failure is recorded on the event, which the inbox
    shows."""
    require_platform_admin(user)
    try:
        await tasks.replay_event(factory, stripe, event_id)
    except NoResultFound:
        raise NotFound("no such event in the inbox", code="event_not_found") from None
    except Exception as exc:
        # process_event recorded the error on the event; the inbox shows it next.
        log.info("replaying Stripe event %s failed again: %s", event_id, type(exc).__name__)
    return RedirectResponse(
        "/admin/events?" + urlencode({"replayed": event_id}) + "#replayed", status_code=303
    )
