"""Shared page plumbing: the templates (with the header's who-is-logged-in), form rendering with
inline errors, the route class that turns errors into pages, and the health check."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.deps import (
    CSRF_FORM_FIELD,
    SESSION_KEY,
    Authentication,
    authenticate_request,
    csrf_token,
)
from souq.db import unit_of_work
from souq.errors import InvalidInput, NotAuthenticated, SouqError
from souq.money import display


def _page_context(request: Request) -> dict[str, Any]:
    """What every page's layout needs: who is logged in (for the header's links) and the CSRF
    field every form carries."""
    auth: Authentication | None = getattr(request.state, "authentication", None)
    return {
        "current_user": auth.user if auth is not None else None,
        "csrf_field": CSRF_FORM_FIELD,
        "csrf_token": csrf_token(request),
    }


templates = Jinja2Templates(
    directory=Path(__file__).parent / "templates", context_processors=[_page_context]
)
templates.env.filters["money"] = lambda minor, currency: display(int(minor), str(currency))

router = APIRouter(include_in_schema=False)


async def identify(request: Request) -> None:
    """Who is asking, in a unit of work of its own (pages that call Stripe hold no transaction
    open across the call); the answer is kept on the request for the route and the header. A
    visitor with no credential at all costs no database work."""
    if "authorization" not in request.headers and not request.session.get(SESSION_KEY):
        return
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with unit_of_work(factory) as session:
        await authenticate_request(request, session)


# Page routers resolve the caller first, so the header knows who is logged in on every page.
PAGE_DEPENDENCIES = [Depends(identify)]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def field_errors(error: SouqError | None) -> dict[str, str]:
    """An error's per-field messages (InvalidInput's details), to show beside each input."""
    if error is None or not error.details:
        return {}
    return {
        str(detail.get("field", "")): str(detail.get("message", ""))
        for detail in error.details
        if detail.get("field")
    }


ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def form_day(name: str, text: str) -> date | None:
    """A form's day as the API takes it (YYYY-MM-DD), or None when left empty; anything else
    is refused beside the field."""
    text = text.strip()
    if not text:
        return None
    try:
        if not ISO_DAY.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        problem = "a day as YYYY-MM-DD"
        raise InvalidInput(
            f"{name}: {problem}", details=[{"field": name, "message": problem}]
        ) from None


def render(
    request: Request,
    template: str,
    *,
    error: SouqError | None = None,
    status_code: int | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page; with `error`, the same form again with the message on top, each field's own
    message beside it, and the values the visitor typed (passed in `context`)."""
    headers = None
    if error is not None and error.retry_after is not None:
        headers = {"Retry-After": str(error.retry_after)}
    return templates.TemplateResponse(
        request,
        template,
        {
            "error": error.message if error else None,
            "field_errors": field_errors(error),
            **context,
        },
        status_code=status_code or (error.status_code if error else 200),
        headers=headers,
    )


# Stand-ins for what differs between two anonymous visitors of a cached page: random per
# process, so a listing's text cannot carry one.
_SLOT = secrets.token_hex(16)
CSRF_SLOT = f"csrf{_SLOT}"
KEY_SLOT = f"key{_SLOT}"
_SLOTS = re.compile(f"({CSRF_SLOT}|{KEY_SLOT})")


@dataclass(frozen=True)
class AnonymousPage:
    """A page rendered once for every visitor who is not logged in: the bytes between the
    places where each visitor's CSRF token and a fresh one-time form key go."""

    parts: tuple[bytes, ...]
    slots: tuple[str, ...]

    @property
    def size(self) -> int:
        return sum(map(len, self.parts))

    def response(self, request: Request) -> HTMLResponse:
        """This visitor's copy: their session's CSRF token (made now if they have none, as
        rendering it would), and a new one-time key per rendered form."""
        values = {
            CSRF_SLOT: csrf_token(request).encode(),
            KEY_SLOT: secrets.token_urlsafe(24).encode(),
        }
        body = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            body += (values[slot], part)
        return HTMLResponse(b"".join(body))


def render_anonymous(request: Request, template: str, **context: Any) -> AnonymousPage:
    """`template` as `render` shows it to a visitor who is not logged in, with no error; the
    context's `idempotency_key` and the CSRF token are left as slots for `AnonymousPage`."""
    html = templates.get_template(template).render(
        {
            "request": request,
            "error": None,
            "field_errors": {},
            "current_user": None,
            "csrf_field": CSRF_FORM_FIELD,
            "csrf_token": CSRF_SLOT,
            **context,
            "idempotency_key": KEY_SLOT,
        }
    )
    pieces = _SLOTS.split(html)
    return AnonymousPage(
        parts=tuple(piece.encode() for piece in pieces[::2]), slots=tuple(pieces[1::2])
    )


def is_anonymous(request: Request) -> bool:
    """Whether `identify` found no one: the page is the one every anonymous visitor gets."""
    return getattr(request.state, "authentication", None) is None


class PageRoute(APIRoute):
    """A route that answers HTML: a SouqError becomes the login page or an error page (after
    the request's unit of work rolled back), never JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except SouqError as exc:
                return error_page(request, exc)

        return guarded


def login_redirect(request: Request) -> RedirectResponse:
    """Send a visitor who is not logged in to the login page, and back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)


def error_page(request: Request, exc: SouqError) -> Response:
    """Errors on HTML pages: the login page for anonymous visitors, else a page that says why."""
    if isinstance(exc, NotAuthenticated):
        return login_redirect(request)
    return render(request, "error.html", status_code=exc.status_code, failure=exc)
