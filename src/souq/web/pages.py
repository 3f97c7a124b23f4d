"""Shared page plumbing: the templates and the home page."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from souq.errors import NotAuthenticated, SouqError
from souq.money import display

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["money"] = lambda minor, currency: display(int(minor), str(currency))

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "home.html", {})


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
    return templates.TemplateResponse(
        request, "error.html", {"error": exc}, status_code=exc.status_code
    )
