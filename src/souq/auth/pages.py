"""The browser pages for accounts: log in, register, log out, and the dashboard of one's stores."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from souq.auth.deps import (
    CSRF_FORM_FIELD,
    OptionalUser,
    check_credentials,
    csrf_token,
    end_session,
    register_user,
    start_session,
    verify_form_csrf,
)
from souq.deps import SessionDep
from souq.errors import SouqError
from souq.stores import service as stores
from souq.web.pages import error_page, templates

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    # Only local paths: an open redirect after login would be a phishing aid.
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/dashboard"


def _form_page(
    request: Request,
    template: str,
    *,
    error: SouqError | None = None,
    **context: Any,
) -> HTMLResponse:
    headers = None
    if error is not None and error.retry_after is not None:
        headers = {"Retry-After": str(error.retry_after)}
    return templates.TemplateResponse(
        request,
        template,
        {
            "csrf_token": csrf_token(request),
            "csrf_field": CSRF_FORM_FIELD,
            "error": error.message if error else None,
            **context,
        },
        status_code=error.status_code if error else 200,
        headers=headers,
    )


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, user: OptionalUser, next: str | None = None) -> Response:
    if user is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _form_page(request, "auth/login.html", next=_safe_next(next), email="")


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
        return _form_page(
            request,
            "auth/login.html",
            error=exc,
            next=_safe_next(next),
            email=email,
        )
    await start_session(request, session, user)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.get("/register", response_class=HTMLResponse)
async def register_page(request: Request) -> Response:
    return _form_page(request, "auth/register.html", email="", name="")


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
        return _form_page(
            request,
            "auth/register.html",
            error=exc,
            email=email,
            name=name,
        )
    await start_session(request, session, user)
    return RedirectResponse("/dashboard", status_code=303)


@router.post("/logout")
async def logout_submit(request: Request, session: SessionDep) -> Response:
    await verify_form_csrf(request)
    await end_session(request, session)
    return RedirectResponse("/", status_code=303)


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(request: Request, user: OptionalUser, session: SessionDep) -> Response:
    if user is None:
        return RedirectResponse("/login?next=" + quote("/dashboard"), status_code=303)
    my_stores = await stores.list_user_stores(session, user)
    return templates.TemplateResponse(
        request,
        "auth/dashboard.html",
        {
            "user": user,
            "stores": my_stores,
            "invitations": await stores.list_my_invitations(session, user),
            "csrf_token": csrf_token(request),
            "csrf_field": CSRF_FORM_FIELD,
        },
    )


@router.post("/dashboard/invitations/{invitation_id}/{action}")
async def answer_invitation(
    request: Request,
    user: OptionalUser,
    session: SessionDep,
    invitation_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    action: Literal["accept", "decline"],
) -> Response:
    """Join or decline from the dashboard: the same service as the API."""
    if user is None:
        return RedirectResponse("/login?next=" + quote("/dashboard"), status_code=303)
    try:
        await verify_form_csrf(request)
        if action == "accept":
            await stores.accept_invitation(session, user, invitation_id)
        else:
            await stores.decline_invitation(session, user, invitation_id)
    except SouqError as exc:
        return error_page(request, exc)
    return RedirectResponse("/dashboard", status_code=303)
