"""The outbox page: what every person was told, for platform admins."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from souq.auth.deps import OptionalUser
from souq.auth.service import require_platform_admin
from souq.deps import SessionDep
from souq.notifications import service
from souq.web.pages import PAGE_DEPENDENCIES, PageRoute, render

router = APIRouter(include_in_schema=False, route_class=PageRoute, dependencies=PAGE_DEPENDENCIES)


@router.get("/admin/outbox", response_class=HTMLResponse)
async def outbox_page(request: Request, user: OptionalUser, session: SessionDep) -> Response:
    """The newest 100 emails with both parts (the HTML part in a sandboxed frame)."""
    require_platform_admin(user)
    messages = await service.outbox(session, status=None, limit=100, before=None)
    return render(request, "mail/outbox.html", messages=messages)
