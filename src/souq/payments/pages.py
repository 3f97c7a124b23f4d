"""The payments pages: the store's payments settings with its one next step, the two pages
Stripe's onboarding returns to, and the buyer's checkout success and cancel pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from souq.auth.deps import OptionalUser
from souq.carts import service as carts
from souq.db import unit_of_work
from souq.deps import SessionDep, SessionFactoryDep, SettingsDep
from souq.errors import NotFound
from souq.payments import checkout, groups, onboarding
from souq.payments.deps import StripeDep
from souq.stores.models import Store
from souq.web.pages import PAGE_DEPENDENCIES, PageRoute, render

router = APIRouter(include_in_schema=False, route_class=PageRoute, dependencies=PAGE_DEPENDENCIES)

StoreIdQuery = Annotated[int, Query(alias="storeId", gt=0)]
MAX_ID = 2**31 - 1


def _render_status(request: Request, store: Store, *, can_manage: bool, title: str) -> Response:
    return render(
        request,
        "payments/settings.html",
        store=store,
        step=onboarding.next_step(store),
        can_manage=can_manage,
        title=title,
    )


@router.get("/dashboard/settings/payments", response_class=HTMLResponse)
async def payments_settings(
    request: Request,
    store_id: StoreIdQuery,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    store, member = await onboarding.payments_status(session, store_id, user)
    can_manage = member.role in onboarding.manager_roles(settings)
    return _render_status(request, store, can_manage=can_manage, title="Payments")


@router.post("/dashboard/settings/payments/onboarding/start")
async def start_onboarding(
    request: Request,
    store_id: StoreIdQuery,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
    stripe: StripeDep,
) -> Response:
    """ "Set up payouts" and "Continue onboarding": the account (created once), then a fresh
    onboarding link."""
    await onboarding.create_account(session, stripe, settings, store_id, user)
    url = await onboarding.account_link(session, stripe, settings, store_id, user)
    return RedirectResponse(url, status_code=303)


@router.post("/dashboard/settings/payments/dashboard-link")
async def open_dashboard(
    request: Request,
    store_id: StoreIdQuery,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
    stripe: StripeDep,
) -> Response:
    url = await onboarding.login_link(session, stripe, settings, store_id, user)
    return RedirectResponse(url, status_code=303)


@router.get("/dashboard/settings/payments/onboarding/refresh")
async def onboarding_refresh(
    request: Request,
    store_id: StoreIdQuery,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
    stripe: StripeDep,
) -> Response:
    """Stripe sends the seller here when a link expired or was already used: a fresh link."""
    url = await onboarding.account_link(session, stripe, settings, store_id, user)
    return RedirectResponse(url, status_code=303)


@router.get("/dashboard/settings/payments/onboarding/success", response_class=HTMLResponse)
async def onboarding_success(
    request: Request,
    store_id: StoreIdQuery,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
    stripe: StripeDep,
) -> Response:
    """The seller left Stripe's onboarding: read the account now rather than wait for the
    webhook, and show what is true."""
    store = await onboarding.sync_store(session, stripe, settings, store_id, user)
    return _render_status(request, store, can_manage=True, title="Back from Stripe")


@router.get("/checkout/success", response_class=HTMLResponse)
async def checkout_success(
    request: Request,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    stripe: StripeDep,
    session_id: Annotated[str, Query(min_length=1, max_length=255)],
) -> Response:
    """The buyer's landing page: the order (or, for a cart of several stores, every store's
    order) as Souq knows it, or, while the payment is still being confirmed, a page that says
    so and refreshes itself."""
    refresh_seconds = max(int(settings.checkout_status_poll_seconds), 2)
    group = await groups.group_status(factory, stripe, settings, session_id)
    if group is not None:
        # A store whose money is held is paid by a group of one, also in a per_store checkout.
        async with unit_of_work(factory) as session:
            first = group.orders[0] if group.orders else None
            next_payment = await carts.next_to_pay(session, first) if first else None
        return render(
            request,
            "checkout/group.html",
            view=group,
            next_payment=next_payment,
            refresh_seconds=refresh_seconds,
        )
    status = await checkout.checkout_status(factory, stripe, settings, session_id)
    async with unit_of_work(factory) as session:
        next_payment = await carts.next_to_pay(session, status.order)
    return render(
        request,
        "checkout/success.html",
        order=status.order,
        store=status.store,
        next_payment=next_payment,
        confirming=status.confirming,
        refresh_seconds=refresh_seconds,
    )


@router.get("/checkout/cancel", response_class=HTMLResponse)
async def checkout_cancel(
    request: Request,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    stripe: StripeDep,
    order_id: Annotated[int | None, Query(alias="orderId", gt=0, le=MAX_ID)] = None,
    group_id: Annotated[int | None, Query(alias="groupId", gt=0, le=MAX_ID)] = None,
    token: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """The buyer backed out of Stripe's page: expire the session, release the stock, and
    offer to try again. Only a link from our own session (signed token) cancels anything."""
    if group_id is not None:
        view = await groups.cancel_group(factory, stripe, settings, group_id, token)
        return render(request, "checkout/group.html", view=view, canceling=True)
    if order_id is None:
        raise NotFound("no such checkout")
    order, store = await checkout.cancel_checkout(factory, stripe, settings, order_id, token)
    return render(request, "checkout/cancel.html", order=order, store=store)
