"""Endpoints (who may manage which), events and their fan-out to deliveries, the delivery log
and redelivery.

Adding an event type is one entry in EVENT_TYPES and one call in the transaction that makes the
change, after it is flushed:

    await service.emit(session, "order.refunded", f"order-{order.id}-refund-{refund.id}",
                       store_id=order.store_id, data=OrderOut.of(order).model_dump(mode="json"))
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from souq.auth.models import User
from souq.config import Settings
from souq.db import utcnow
from souq.errors import Forbidden, InvalidInput, NotAuthenticated, NotFound
from souq.integrations import addresses, sealing
from souq.integrations.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from souq.integrations.signing import new_secret
from souq.notifications.service import after_commit_start_senders
from souq.outbox import OutboxStatus, retry_now
from souq.stores.models import StoreRole
from souq.stores.service import require_store_role

# Every type an endpoint can subscribe to.
EVENT_TYPES: dict[str, str] = {
    "order.created": "an order was placed and is waiting for payment",
    "order.paid": "an order was paid",
    "order.failed": "an order's payment failed",
    "order.canceled": "an order was canceled or its checkout expired unpaid",
    "order.refunded": "a refund of an order went through",
    "order.disputed": "a payment of the order was disputed",
    "order.fulfilled": "the seller marked an order shipped or delivered (carrier, tracking number)",
    "transfer.failed": "Stripe refused a transfer to a store",
    "payout.failed": "a store's payout did not reach its bank; the money is back on its balance",
    "store.payments_status_changed": "a store's charges, payouts or requirements changed",
}
# Store endpoints are for a store's owners; platform endpoints for platform admins.
ENDPOINT_MANAGERS = frozenset({StoreRole.owner})
# How long a rotated-out secret still signs, beside the new one.
ROTATION_OVERLAP = timedelta(hours=24)


def check_events(events: Sequence[str]) -> list[str]:
    unknown = sorted(set(events) - EVENT_TYPES.keys())
    if unknown:
        raise InvalidInput(
            f"unknown event types: {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}",
            code="unknown_event_type",
        )
    if not events:
        raise InvalidInput("subscribe to at least one event type", code="no_event_types")
    return sorted(set(events))


async def emit(
    session: AsyncSession, type_: str, key: str, *, store_id: int | None, data: dict[str, Any]
) -> int | None:
    """Record an event once (by `key`) and a delivery for every enabled endpoint that wants it
    (the store's own and the platform's): the event's id, or None when the key was already
    recorded. The insert returns the id, and only the endpoints' ids and types are read."""
    assert type_ in EVENT_TYPES, type_
    now = utcnow()
    public_id = "evt_" + uuid.uuid4().hex
    payload = {"id": public_id, "type": type_, "timestamp": now.isoformat(), "data": data}
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    event_id: int | None = await session.scalar(
        insert(WebhookEvent)
        .values(
            public_id=public_id,
            key=key[:200],
            type=type_,
            store_id=store_id,
            payload=payload,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(WebhookEvent.id)
    )
    if event_id is None:
        return None
    scope: ColumnElement[bool] = WebhookEndpoint.store_id.is_(None)
    if store_id is not None:
        scope = or_(scope, WebhookEndpoint.store_id == store_id)
    endpoints = await session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events).where(WebhookEndpoint.enabled, scope)
    )
    wanted = [endpoint_id for endpoint_id, events in endpoints if type_ in events]
    for endpoint_id in wanted:
        session.add(
            WebhookDelivery(
                event_id=event_id,
                endpoint_id=endpoint_id,
                status=OutboxStatus.pending,
                attempts=0,
                next_attempt_at=now,
            )
        )
    await session.flush()
    if wanted:
        after_commit_start_senders(session)
    return event_id


def _require_user(user: User | None) -> User:
    if user is None:
        raise NotAuthenticated("log in, or send an API token as 'Authorization: Bearer <token>'")
    return user


async def _require_scope(session: AsyncSession, store_id: int | None, user: User | None) -> User:
    """Platform endpoints: platform admins; a store's: its owners (others: 404, as for every
    store route)."""
    user = _require_user(user)
    if store_id is None:
        if not user.is_platform_admin:
            raise Forbidden(
                "only platform admins manage platform webhook endpoints; a store owner "
                "registers one for their store with storeId",
                code="platform_admin_only",
            )
        return user
    await require_store_role(session, store_id, user, ENDPOINT_MANAGERS)
    return user


async def get_endpoint(
    session: AsyncSession, endpoint_id: int, user: User | None, *, lock: bool = False
) -> WebhookEndpoint:
    user = _require_user(user)
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if lock:
        query = query.with_for_update()
    endpoint = (await session.execute(query)).scalar_one_or_none()
    # A platform endpoint is not even there for anyone but platform admins; a store's answers
    # as the store's routes do (404 outside the store, 403 for its members who are not owners).
    if endpoint is None or (endpoint.store_id is None and not user.is_platform_admin):
        raise NotFound("webhook endpoint not found")
    await _require_scope(session, endpoint.store_id, user)
    return endpoint


async def create_endpoint(
    session: AsyncSession,
    settings: Settings,
    user: User | None,
    *,
    url: str,
    events: Sequence[str],
    store_id: int | None,
    description: str,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint: it and its plain secret, which the caller shows once."""
    user = await _require_scope(session, store_id, user)
    events = check_events(events)
    url = await addresses.check_url(url, settings.webhooks_may_reach_private)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        store_id=store_id,
        created_by_user_id=user.id,
        url=url,
        description=description,
        events=events,
        secret_sealed=sealing.seal(settings, secret),
        enabled=True,
        consecutive_failures=0,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def list_endpoints(
    session: AsyncSession, user: User | None, store_id: int | None
) -> Sequence[WebhookEndpoint]:
    await _require_scope(session, store_id, user)
    scope = (
        WebhookEndpoint.store_id.is_(None)
        if store_id is None
        else WebhookEndpoint.store_id == store_id
    )
    query = select(WebhookEndpoint).where(scope).order_by(WebhookEndpoint.id)
    return (await session.execute(query)).scalars().all()


async def update_endpoint(
    session: AsyncSession,
    settings: Settings,
    endpoint_id: int,
    user: User | None,
    changes: dict[str, Any],
) -> WebhookEndpoint:
    """Change the URL, events, description, or enable/disable. Enabling again clears the
    failure count (what it missed stays failed: redeliver it)."""
    endpoint = await get_endpoint(session, endpoint_id, user, lock=True)
    if "url" in changes:
        endpoint.url = await addresses.check_url(
            changes["url"], settings.webhooks_may_reach_private
        )
    if "events" in changes:
        endpoint.events = check_events(changes["events"])
    if "description" in changes:
        endpoint.description = changes["description"]
    if "enabled" in changes and changes["enabled"] != endpoint.enabled:
        endpoint.enabled = changes["enabled"]
        if endpoint.enabled:
            endpoint.consecutive_failures = 0
            endpoint.disabled_reason = None
            endpoint.disabled_at = None
        else:
            endpoint.disabled_reason = "disabled by its owner"
            endpoint.disabled_at = utcnow()
    await session.flush()
    return endpoint


async def rotate_secret(
    session: AsyncSession, settings: Settings, endpoint_id: int, user: User | None
) -> tuple[WebhookEndpoint, str]:
    """A new secret (returned plain, to be shown once); the old one keeps signing beside it for
    ROTATION_OVERLAP, so a receiver can switch without missing a delivery."""
    endpoint = await get_endpoint(session, endpoint_id, user, lock=True)
    secret = new_secret()
    endpoint.previous_secret_sealed = endpoint.secret_sealed
    endpoint.previous_secret_expires_at = utcnow() + ROTATION_OVERLAP
    endpoint.secret_sealed = sealing.seal(settings, secret)
    await session.flush()
    return endpoint, secret


async def delete_endpoint(session: AsyncSession, endpoint_id: int, user: User | None) -> None:
    endpoint = await get_endpoint(session, endpoint_id, user, lock=True)
    await session.delete(endpoint)
    await session.flush()


async def deliveries(
    session: AsyncSession, endpoint_id: int, user: User | None, *, limit: int, before: int | None
) -> list[tuple[WebhookDelivery, WebhookEvent, list[WebhookAttempt]]]:
    """The endpoint's delivery log, newest first, with every attempt of each."""
    await get_endpoint(session, endpoint_id, user)
    query = (
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
    )
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    rows = (await session.execute(query.order_by(WebhookDelivery.id.desc()).limit(limit))).all()
    ids = [delivery.id for delivery, _ in rows]
    attempts: dict[int, list[WebhookAttempt]] = {i: [] for i in ids}
    if ids:
        for attempt in (
            await session.execute(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id.in_(ids))
                .order_by(WebhookAttempt.id)
            )
        ).scalars():
            attempts[attempt.delivery_id].append(attempt)
    return [(delivery, event, attempts[delivery.id]) for delivery, event in rows]


async def redeliver(
    session: AsyncSession, endpoint_id: int, delivery_id: int, user: User | None
) -> WebhookDelivery:
    """Send a delivery again now (same event, same webhook-id), whatever its state."""
    await get_endpoint(session, endpoint_id, user)
    delivery = (
        await session.execute(
            select(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if delivery is None:
        raise NotFound("delivery not found")
    retry_now(delivery)
    await session.flush()
    after_commit_start_senders(session)
    return delivery
