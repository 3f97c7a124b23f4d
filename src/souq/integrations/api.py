"""Webhook endpoints for integrators: register (the secret is shown once), list, update,
disable, rotate the secret, delete; the delivery log and redelivery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from souq.auth.deps import OptionalUser
from souq.deps import SessionDep, SettingsDep
from souq.integrations import service
from souq.integrations.schemas import (
    MAX_ID,
    DeliveryOut,
    DeliveryPage,
    EndpointIn,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
)
from souq.orders.api import BeforeQuery, LimitQuery, page_of
from souq.schemas import error_responses

router = APIRouter(tags=["webhook endpoints"])

EndpointId = Annotated[int, Path(ge=1, le=MAX_ID)]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID)]
StoreQuery = Annotated[
    int | None,
    Query(alias="storeId", ge=1, le=MAX_ID, description="A store's endpoints; omit: platform"),
]


@router.post(
    "/api/webhook-endpoints",
    status_code=201,
    response_model=EndpointWithSecret,
    responses=error_responses(401, 403, 404, 422),
)
async def create_endpoint(
    body: EndpointIn, user: OptionalUser, session: SessionDep, settings: SettingsDep
) -> EndpointWithSecret:
    """Register an endpoint for some event types; the answer holds its signing secret, which
    is never shown again (rotate it if it is lost)."""
    endpoint, secret = await service.create_endpoint(
        session,
        settings,
        user,
        url=body.url,
        events=body.events,
        store_id=body.store_id,
        description=body.description,
    )
    return EndpointWithSecret.shown(endpoint, secret)


@router.get("/api/webhook-endpoints", responses=error_responses(401, 403, 404))
async def list_endpoints(
    user: OptionalUser, session: SessionDep, store_id: StoreQuery = None
) -> list[EndpointOut]:
    """The platform's endpoints (platform admins), or a store's (`storeId`, its owners)."""
    return [EndpointOut.of(e) for e in await service.list_endpoints(session, user, store_id)]


@router.get("/api/webhook-endpoints/{endpoint_id}", responses=error_responses(401, 404))
async def get_endpoint(
    endpoint_id: EndpointId, user: OptionalUser, session: SessionDep
) -> EndpointOut:
    """One endpoint (without its secret)."""
    return EndpointOut.of(await service.get_endpoint(session, endpoint_id, user))


@router.patch("/api/webhook-endpoints/{endpoint_id}", responses=error_responses(401, 404, 422))
async def update_endpoint(
    endpoint_id: EndpointId,
    body: EndpointUpdate,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
) -> EndpointOut:
    """Change the URL, the event types or the description; `enabled: false` stops deliveries,
    `enabled: true` resumes them and clears the failure count."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True, by_alias=False)
    endpoint = await service.update_endpoint(session, settings, endpoint_id, user, changes)
    return EndpointOut.of(endpoint)


@router.post(
    "/api/webhook-endpoints/{endpoint_id}/rotate-secret",
    response_model=EndpointWithSecret,
    responses=error_responses(401, 404),
)
async def rotate_secret(
    endpoint_id: EndpointId, user: OptionalUser, session: SessionDep, settings: SettingsDep
) -> EndpointWithSecret:
    """A new signing secret, shown once; for 24 hours deliveries carry signatures by both."""
    endpoint, secret = await service.rotate_secret(session, settings, endpoint_id, user)
    return EndpointWithSecret.shown(endpoint, secret)


@router.delete(
    "/api/webhook-endpoints/{endpoint_id}", status_code=204, responses=error_responses(401, 404)
)
async def delete_endpoint(
    endpoint_id: EndpointId, user: OptionalUser, session: SessionDep
) -> Response:
    """Delete the endpoint and its delivery log."""
    await service.delete_endpoint(session, endpoint_id, user)
    return Response(status_code=204)


@router.get(
    "/api/webhook-endpoints/{endpoint_id}/deliveries",
    response_model=DeliveryPage,
    responses=error_responses(401, 404),
)
async def list_deliveries(
    endpoint_id: EndpointId,
    user: OptionalUser,
    session: SessionDep,
    limit: LimitQuery = 20,
    before: BeforeQuery = None,
) -> DeliveryPage:
    """The delivery log, newest first: each delivery's state and every attempt (status code,
    latency, the start of the response)."""
    rows = await service.deliveries(session, endpoint_id, user, limit=limit + 1, before=before)
    page, next_before = page_of([row[0] for row in rows], limit)
    return DeliveryPage(
        data=[DeliveryOut.of(*row) for row in rows[: len(page)]],
        has_more=next_before is not None,
        next_before=next_before,
    )


@router.post(
    "/api/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    status_code=202,
    responses=error_responses(401, 404),
)
async def redeliver(
    endpoint_id: EndpointId, delivery_id: DeliveryId, user: OptionalUser, session: SessionDep
) -> DeliveryOut:
    """Send a delivery again now, with the same webhook-id (receivers dedupe on it)."""
    await service.redeliver(session, endpoint_id, delivery_id, user)
    rows = await service.deliveries(session, endpoint_id, user, limit=1, before=delivery_id + 1)
    return DeliveryOut.of(*rows[0])
