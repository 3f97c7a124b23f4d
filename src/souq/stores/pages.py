"""The seller's store pages: open a store, its overview (members, invitations, listings), and
the back office's list of every store with its payout status."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from souq.auth.deps import CurrentUser
from souq.auth.service import require_platform_admin
from souq.db import unit_of_work
from souq.deps import SessionDep, SessionFactoryDep, SettingsDep
from souq.errors import NotAuthenticated, SouqError
from souq.listings import service as listings
from souq.payments import balances, onboarding
from souq.payments.deps import CallerDep, StripeDep
from souq.stores import service
from souq.stores.models import StoreRole
from souq.web.pages import PAGE_DEPENDENCIES, PageRoute, render

router = APIRouter(include_in_schema=False, route_class=PageRoute, dependencies=PAGE_DEPENDENCIES)

MAX_ID = 2**31 - 1
StoreId = Annotated[int, Path(ge=1, le=MAX_ID)]
UserId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.post("/dashboard/stores", response_class=HTMLResponse)
async def create_store(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    name: Annotated[str, Form(max_length=200)] = "",
    country: Annotated[str, Form(max_length=2)] = "",
    default_currency: Annotated[str, Form(alias="defaultCurrency", max_length=3)] = "",
) -> Response:
    """Open a store (its creator is its owner); a refused one shows the form again."""
    try:
        store = await service.create_store(
            session, owner=user, name=name, country=country, default_currency=default_currency
        )
    except SouqError as exc:
        return render(
            request,
            "auth/dashboard.html",
            error=exc,
            stores=await service.list_user_stores(session, user),
            invitations=await service.list_my_invitations(session, user),
            store_name=name,
            country=country,
            default_currency=default_currency,
        )
    return RedirectResponse(f"/dashboard/stores/{store.id}", status_code=303)


async def _store_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    store_id: int,
    *,
    error: SouqError | None = None,
    invite_email: str = "",
    invite_role: str = "seller",
    money: balances.StoreBalance | None = None,
) -> Response:
    store, me = await service.require_store_role(session, store_id, user, service.READ_STORE)
    manages = me.role in service.MANAGE_STORE
    return render(
        request,
        "stores/store.html",
        error=error,
        store=store,
        me=me,
        manages=manages,
        members=await service.list_members(session, store),
        invitations=await service.list_invitations(session, store) if manages else [],
        listings=await listings.store_listings(session, store.id),
        step=onboarding.next_step(store),
        roles=list(StoreRole),
        invite_email=invite_email,
        invite_role=invite_role,
        money=money,
    )


@router.get("/dashboard/stores/{store_id}", response_class=HTMLResponse)
async def store_overview(
    request: Request,
    store_id: StoreId,
    user: CallerDep,
    factory: SessionFactoryDep,
    stripe: StripeDep,
) -> Response:
    """A store's members, invitations and listings, its payments' next step, and its money
    (held, waiting, released, paid out: Stripe is read before the page's transaction)."""
    if user is None:
        raise NotAuthenticated("log in to see your stores")
    money = await balances.store_balance(factory, stripe, store_id, user)
    async with unit_of_work(factory) as session:
        return await _store_page(request, session, user, store_id, money=money)


@router.post("/dashboard/stores/{store_id}/invitations", response_class=HTMLResponse)
async def invite(
    request: Request,
    store_id: StoreId,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=320)] = "",
    role: Annotated[str, Form(max_length=20)] = "seller",
) -> Response:
    store, actor = await service.require_store_role(session, store_id, user, service.MANAGE_STORE)
    try:
        await service.invite_member(
            session,
            store=store,
            actor=actor,
            email=email,
            role=service.parse_role(role),
            ttl=timedelta(days=settings.store_invitation_ttl_days),
        )
    except SouqError as exc:
        return await _store_page(
            request, session, user, store_id, error=exc, invite_email=email, invite_role=role
        )
    return RedirectResponse(f"/dashboard/stores/{store_id}#invitations", status_code=303)


@router.post("/dashboard/stores/{store_id}/invitations/{invitation_id}/withdraw")
async def withdraw_invitation(
    store_id: StoreId, invitation_id: StoreId, user: CurrentUser, session: SessionDep
) -> Response:
    store, actor = await service.require_store_role(session, store_id, user, service.MANAGE_STORE)
    await service.withdraw_invitation(
        session, store=store, actor=actor, invitation_id=invitation_id
    )
    return RedirectResponse(f"/dashboard/stores/{store_id}#invitations", status_code=303)


@router.post("/dashboard/stores/{store_id}/members/{user_id}/role")
async def change_role(
    store_id: StoreId,
    user_id: UserId,
    user: CurrentUser,
    session: SessionDep,
    role: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    store, actor = await service.require_store_role(session, store_id, user, service.MANAGE_STORE)
    await service.change_member_role(
        session, store=store, actor=actor, user_id=user_id, role=service.parse_role(role)
    )
    return RedirectResponse(f"/dashboard/stores/{store_id}#members", status_code=303)


@router.post("/dashboard/stores/{store_id}/members/{user_id}/remove")
async def remove_member(
    store_id: StoreId, user_id: UserId, user: CurrentUser, session: SessionDep
) -> Response:
    """Remove a member (owner or admin), or leave the store (yourself)."""
    await service.remove_or_leave(session, store_id, user, user_id)
    target = "/dashboard" if user_id == user.id else f"/dashboard/stores/{store_id}#members"
    return RedirectResponse(target, status_code=303)


@router.get("/admin", response_class=HTMLResponse)
async def back_office(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """The platform back office: every store with its payout status and what Stripe still
    needs (platform admins only)."""
    require_platform_admin(user)
    rows = [(store, onboarding.next_step(store)) for store in await service.list_stores(session)]
    return render(request, "stores/admin.html", rows=rows)
