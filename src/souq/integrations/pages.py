"""The platform's outgoing webhook endpoints in the back office (platform admins): register
one (its secret shown once), disable or enable, rotate the secret, delete, and each one's
deliveries with Redeliver. The same service functions as /api/webhook-endpoints."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from souq.auth.deps import CurrentUser
from souq.auth.models import User
from souq.auth.service import require_platform_admin
from souq.deps import SessionDep, SettingsDep
from souq.errors import InvalidInput, SouqError
from souq.integrations import service
from souq.integrations.models import WebhookEndpoint
from souq.integrations.schemas import MAX_ID, URL_PATTERN
from souq.web.pages import PAGE_DEPENDENCIES, PageRoute, render

router = APIRouter(include_in_schema=False, route_class=PageRoute, dependencies=PAGE_DEPENDENCIES)

EndpointId = Annotated[int, Path(ge=1, le=MAX_ID)]
LIST = "/admin/webhook-endpoints"
_URL = re.compile(URL_PATTERN)


async def _list_page(
    request: Request,
    session: SessionDep,
    user: User,
    *,
    error: SouqError | None = None,
    form: Mapping[str, object] | None = None,
    created: tuple[WebhookEndpoint, str] | None = None,
) -> Response:
    return render(
        request,
        "integrations/endpoints.html",
        error=error,
        endpoints=await service.list_endpoints(session, user, None),
        event_types=service.EVENT_TYPES,
        form=form or {"url": "", "description": "", "events": []},
        created=created,
    )


@router.get(LIST, response_class=HTMLResponse)
async def endpoints(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """The platform's endpoints (every store's events) and the form to register one."""
    require_platform_admin(user)
    return await _list_page(request, session, user)


@router.post(LIST, response_class=HTMLResponse)
async def create_endpoint(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    url: Annotated[str, Form(max_length=2000)] = "",
    description: Annotated[str, Form(max_length=200)] = "",
    events: Annotated[list[str] | None, Form(max_length=20)] = None,
) -> Response:
    """Register an endpoint; the page answering shows its secret, this once."""
    require_platform_admin(user)
    chosen = events or []
    try:
        if not _URL.match(url):
            problem = "an http(s) URL, e.g. https://example.com/souq-events"
            raise InvalidInput(problem, details=[{"field": "url", "message": problem}])
        created = await service.create_endpoint(
            session,
            settings,
            user,
            url=url,
            events=chosen,
            store_id=None,
            description=description,
        )
    except SouqError as exc:
        form = {"url": url, "description": description, "events": chosen}
        return await _list_page(request, session, user, error=exc, form=form)
    return await _list_page(request, session, user, created=created)


@router.get(LIST + "/{endpoint_id}", response_class=HTMLResponse)
async def endpoint_detail(
    request: Request, endpoint_id: EndpointId, user: CurrentUser, session: SessionDep
) -> Response:
    """An endpoint and its newest 50 deliveries, each with every attempt."""
    require_platform_admin(user)
    return render(
        request,
        "integrations/endpoint.html",
        endpoint=await service.get_endpoint(session, endpoint_id, user),
        deliveries=await service.deliveries(session, endpoint_id, user, limit=50, before=None),
        rotated=None,
    )


@router.post(LIST + "/{endpoint_id}/enabled")
async def set_enabled(
    endpoint_id: EndpointId,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    enabled: Annotated[bool, Form()],
) -> Response:
    """Disable (deliveries stop) or enable again (the failure count starts over)."""
    require_platform_admin(user)
    await service.update_endpoint(session, settings, endpoint_id, user, {"enabled": enabled})
    return RedirectResponse(f"{LIST}/{endpoint_id}", status_code=303)


@router.post(LIST + "/{endpoint_id}/rotate-secret", response_class=HTMLResponse)
async def rotate_secret(
    request: Request,
    endpoint_id: EndpointId,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """A new secret, shown on the page answering, this once."""
    require_platform_admin(user)
    endpoint, secret = await service.rotate_secret(session, settings, endpoint_id, user)
    return render(
        request,
        "integrations/endpoint.html",
        endpoint=endpoint,
        deliveries=await service.deliveries(session, endpoint_id, user, limit=50, before=None),
        rotated=secret,
    )


@router.post(LIST + "/{endpoint_id}/delete")
async def delete_endpoint(
    endpoint_id: EndpointId, user: CurrentUser, session: SessionDep
) -> Response:
    """Delete the endpoint and its delivery log."""
    require_platform_admin(user)
    await service.delete_endpoint(session, endpoint_id, user)
    return RedirectResponse(LIST, status_code=303)


@router.post(LIST + "/{endpoint_id}/deliveries/{delivery_id}/redeliver")
async def redeliver(
    endpoint_id: EndpointId,
    delivery_id: EndpointId,
    user: CurrentUser,
    session: SessionDep,
) -> Response:
    """Send the delivery again now, with the same webhook-id."""
    require_platform_admin(user)
    await service.redeliver(session, endpoint_id, delivery_id, user)
    return RedirectResponse(f"{LIST}/{endpoint_id}#delivery-{delivery_id}", status_code=303)
