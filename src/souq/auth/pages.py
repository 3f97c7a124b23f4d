"""The browser pages for accounts: log in, register, log out (here or everywhere), API tokens,
and the dashboard of one's stores."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from souq.auth import service
from souq.auth.deps import (
    CurrentAuthentication,
    CurrentUser,
    OptionalUser,
    check_credentials,
    end_session,
    register_user,
    start_session,
    verify_form_csrf,
)
from souq.deps import SessionDep
from souq.errors import InvalidInput, SouqError
from souq.stores import service as stores
from souq.web.pages import PAGE_DEPENDENCIES, PageRoute, render

router = APIRouter(include_in_schema=False, route_class=PageRoute, dependencies=PAGE_DEPENDENCIES)

TOKEN_DAYS_MAX = 3650


def _safe_next(target: str | None) -> str:
    # Only local paths: an open redirect after login would be a phishing aid.
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/dashboard"


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, user: OptionalUser, next: str | None = None) -> Response:
    if user is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "auth/login.html", next=_safe_next(next), email="")


@router.post("/login", response_class=HTMLResponse)
async def login_submit(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    try:
        await verify_form_csrf(request)
        user = await check_credentials(request, session, email=email, password=password)
    except SouqError as exc:
        return render(request, "auth/login.html", error=exc, next=_safe_next(next), email=email)
    await start_session(request, session, user)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.get("/register", response_class=HTMLResponse)
async def register_page(request: Request) -> Response:
    return render(request, "auth/register.html", email="", name="")


@router.post("/register", response_class=HTMLResponse)
async def register_submit(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        await verify_form_csrf(request)
        user = await register_user(request, session, email=email, password=password, name=name)
    except SouqError as exc:
        return render(request, "auth/register.html", error=exc, email=email, name=name)
    await start_session(request, session, user)
    return RedirectResponse("/dashboard", status_code=303)


@router.post("/logout")
async def logout_submit(request: Request, session: SessionDep) -> Response:
    await verify_form_csrf(request)
    await end_session(request, session)
    return RedirectResponse("/", status_code=303)


@router.post("/account/logout-everywhere")
async def logout_everywhere(
    request: Request, session: SessionDep, auth: CurrentAuthentication
) -> Response:
    """Ends every browser session of the account, this one included (as the API does)."""
    await service.end_user_sessions(session, auth.user)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


async def _account_page(
    request: Request,
    session: SessionDep,
    auth: CurrentAuthentication,
    *,
    error: SouqError | None = None,
    new_token: str | None = None,
    token_name: str = "",
    expires_in_days: str = "",
) -> Response:
    return render(
        request,
        "auth/account.html",
        error=error,
        tokens=await service.list_api_tokens(session, auth.user),
        new_token=new_token,
        token_name=token_name,
        expires_in_days=expires_in_days,
    )


@router.get("/account", response_class=HTMLResponse)
async def account(request: Request, session: SessionDep, auth: CurrentAuthentication) -> Response:
    """Who you are, log out everywhere, and your API tokens."""
    return await _account_page(request, session, auth)


def _token_days(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= TOKEN_DAYS_MAX:
        message = f"a whole number of days from 1 to {TOKEN_DAYS_MAX}, or empty for never"
        raise InvalidInput(
            f"expires_in_days: {message}",
            details=[{"field": "expires_in_days", "message": message}],
        )
    return int(text)


@router.post("/account/tokens", response_class=HTMLResponse)
async def create_token(
    request: Request,
    session: SessionDep,
    auth: CurrentAuthentication,
    name: Annotated[str, Form(max_length=100)] = "",
    expires_in_days: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """A new API token, shown once on the page that answers."""
    try:
        days = _token_days(expires_in_days)
    except SouqError as exc:
        return await _account_page(
            request, session, auth, error=exc, token_name=name, expires_in_days=expires_in_days
        )
    token, _row = await service.create_api_token(
        session, user=auth.user, name=name, expires_in_days=days
    )
    return await _account_page(request, session, auth, new_token=token)


@router.post("/account/tokens/{token_id}/revoke")
async def revoke_token(
    session: SessionDep,
    user: CurrentUser,
    token_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
) -> Response:
    await service.revoke_api_token_by_id(session, user, token_id)
    return RedirectResponse("/account", status_code=303)


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """My stores, the invitations waiting for me, and a form to open a store."""
    return render(
        request,
        "auth/dashboard.html",
        stores=await stores.list_user_stores(session, user),
        invitations=await stores.list_my_invitations(session, user),
        store_name="",
        country="US",
        default_currency="usd",
    )


@router.post("/dashboard/invitations/{invitation_id}/{action}")
async def answer_invitation(
    user: CurrentUser,
    session: SessionDep,
    invitation_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    action: Literal["accept", "decline"],
) -> Response:
    """Join or decline from the dashboard: the same service as the API."""
    if action == "accept":
        await stores.accept_invitation(session, user, invitation_id)
    else:
        await stores.decline_invitation(session, user, invitation_id)
    return RedirectResponse("/dashboard", status_code=303)
