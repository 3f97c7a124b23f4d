"""The browser pages for accounts: log in, register, log out, and the dashboard of one's stores."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from souq.auth import service
from souq.auth.deps import (
    CSRF_FORM_FIELD,
    OptionalUser,
    check_credentials,
    csrf_token,
    end_session,
    start_session,
    verify_form_csrf,
)
from souq.deps import SessionDep
from souq.errors import SouqError
from souq.stores import service as stores
from souq.web.pages import templates

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
    error: str | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        {
            "csrf_token": csrf_token(request),
            "csrf_field": CSRF_FORM_FIELD,
            "error": error,
            **context,
        },
        status_code=status_code,
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
            error=exc.message,
            status_code=exc.status_code,
            next=_safe_next(next),
            email=email,
        )
    start_session(request, user)
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
        user = await service.create_user(session, email=email, password=password, name=name)
    except SouqError as exc:
        return _form_page(
            request,
            "auth/register.html",
            error=exc.message,
            status_code=exc.status_code,
            email=email,
            name=name,
        )
    start_session(request, user)
    return RedirectResponse("/dashboard", status_code=303)


@router.post("/logout")
async def logout_submit(request: Request) -> Response:
    await verify_form_csrf(request)
    end_session(request)
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
            "csrf_token": csrf_token(request),
            "csrf_field": CSRF_FORM_FIELD,
        },
    )
