"""Delivering events: `deliver_pending_webhooks` claims due deliveries of enabled endpoints,
POSTs each signed (Standard Webhooks) outside any transaction, logs the attempt, and settles
the delivery: 2xx is delivered; anything else is retried with exponential backoff until
WEBHOOK_MAX_ATTEMPTS, and counts towards disabling the endpoint after
WEBHOOK_DISABLE_AFTER_FAILURES failures in a row (its owner gets an email).

Like the mail sender, a plain idempotent function: started after a commit that wrote
deliveries, run by `souq reconcile` and `souq notifications send`, and by the job queue later.

Receivers must expect duplicates (a crash between the receiver's answer and our record of it
sends the delivery again, with the same `webhook-id`) and any order (each delivery retries on
its own schedule): dedupe on `webhook-id` and compare the object's state, not arrival order.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.models import User
from souq.config import Settings
from souq.db import unit_of_work, utcnow
from souq.integrations import addresses, sealing, signing
from souq.integrations.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from souq.notifications import service as notifications
from souq.outbox import OutboxStatus, claim, reclaimed, settle

log = logging.getLogger(__name__)

BATCH = 50
SNIPPET = 500
USER_AGENT = "Souq-Webhooks/1"


@dataclass(frozen=True)
class Request:
    delivery_id: int
    endpoint_id: int
    token: str
    url: str
    body: bytes
    secrets: list[str]
    message_id: str
    # Set when the request cannot be signed (the secret cannot be unsealed): why.
    unsigned: str | None = None


@dataclass(frozen=True)
class Result:
    status_code: int | None = None
    latency_ms: int | None = None
    snippet: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300

    @property
    def failure(self) -> str | None:
        if self.ok:
            return None
        return self.error or f"HTTP {self.status_code}"


@dataclass
class WebhookRun:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    disabled_endpoints: list[int] = field(default_factory=list)


def _request(
    settings: Settings, delivery: WebhookDelivery, endpoint: WebhookEndpoint, event: WebhookEvent
) -> Request:
    assert delivery.claim_token is not None
    sealed = [endpoint.secret_sealed]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_sealed and expires is not None and expires > utcnow():
        sealed.append(endpoint.previous_secret_sealed)
    unsigned = None
    try:
        keys = [sealing.unseal(settings, s) for s in sealed]
    except sealing.SecretUnreadable as exc:
        keys, unsigned = [], str(exc)
    body = json.dumps(event.payload, separators=(",", ":"), sort_keys=True).encode()
    return Request(
        delivery.id,
        endpoint.id,
        delivery.claim_token,
        endpoint.url,
        body,
        keys,
        event.public_id,
        unsigned,
    )


async def send(request: Request, settings: Settings) -> Result:
    """One POST to the addresses the URL's host resolves to now, each checked first; the next
    address only if the previous one could not be connected to."""
    if request.unsigned is not None:
        return Result(error=request.unsigned)
    try:
        target = await addresses.pin(request.url, settings.webhooks_may_reach_private)
    except addresses.Refused as exc:
        return Result(error=f"refused: {exc}")
    headers = signing.headers(request.secrets, request.message_id, int(time.time()), request.body)
    headers["user-agent"] = USER_AGENT
    headers["host"] = target.host_header
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
        ) as client:
            for number, address in enumerate(target.addresses, 1):
                try:
                    response = await client.post(
                        target.url_at(address),
                        content=request.body,
                        headers=headers,
                        extensions={"sni_hostname": target.host},
                    )
                    break
                except httpx.ConnectError:
                    if number == len(target.addresses):
                        raise
    except httpx.HTTPError as exc:
        latency = int((time.monotonic() - started) * 1000)
        return Result(latency_ms=latency, error=f"{type(exc).__name__}: {exc}"[:SNIPPET])
    latency = int((time.monotonic() - started) * 1000)
    return Result(response.status_code, latency, response.text[:SNIPPET])


async def _claim(
    factory: async_sessionmaker[AsyncSession], settings: Settings, limit: int
) -> list[Request]:
    async with unit_of_work(factory) as session:
        enabled = select(WebhookEndpoint.id).where(WebhookEndpoint.enabled)
        batch = await claim(
            session, WebhookDelivery, limit, WebhookDelivery.endpoint_id.in_(enabled)
        )
        requests = []
        for delivery in batch:
            endpoint = await session.get_one(WebhookEndpoint, delivery.endpoint_id)
            event = await session.get_one(WebhookEvent, delivery.event_id)
            requests.append(_request(settings, delivery, endpoint, event))
        return requests


async def _record(
    factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    request: Request,
    result: Result,
    run: WebhookRun,
) -> None:
    async with unit_of_work(factory) as session:
        # The endpoint first, then the delivery: the order deleting an endpoint locks them in.
        endpoint = (
            await session.execute(
                select(WebhookEndpoint)
                .where(WebhookEndpoint.id == request.endpoint_id)
                .with_for_update(key_share=True)
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        delivery = await reclaimed(session, WebhookDelivery, request.delivery_id, request.token)
        if endpoint is None or delivery is None:
            # Deleted with its endpoint, or the lease ran out and another sender took it.
            return
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                endpoint_id=endpoint.id,
                status_code=result.status_code,
                latency_ms=result.latency_ms,
                response_snippet=result.snippet,
                error=result.error[:SNIPPET] if result.error else None,
                attempted_at=utcnow(),
            )
        )
        failure = result.failure
        settle(
            delivery,
            failure,
            max_attempts=settings.webhook_max_attempts,
            base_seconds=settings.outbox_retry_base_seconds,
        )
        if failure is None:
            delivery.delivered_at = utcnow()
            endpoint.consecutive_failures = 0
            run.delivered += 1
            return
        if delivery.status == OutboxStatus.failed:
            run.failed += 1
        else:
            run.retrying += 1
        endpoint.consecutive_failures += 1
        if (
            endpoint.enabled
            and endpoint.consecutive_failures >= settings.webhook_disable_after_failures
        ):
            await _disable(session, endpoint, failure)
            run.disabled_endpoints.append(endpoint.id)


async def _disable(session: AsyncSession, endpoint: WebhookEndpoint, last_error: str) -> None:
    now = utcnow()
    endpoint.enabled = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = (
        f"disabled after {endpoint.consecutive_failures} failed attempts in a row"
    )
    log.warning("webhook endpoint %s disabled: %s", endpoint.id, last_error)
    await session.flush()
    recipients: list[notifications.Recipient] = []
    if endpoint.created_by_user_id is not None:
        creator = (
            await session.execute(select(User.email).where(User.id == endpoint.created_by_user_id))
        ).scalar_one_or_none()
        if creator is not None:
            recipients.append(notifications.Recipient(creator, endpoint.created_by_user_id))
    if not recipients and endpoint.store_id is not None:
        recipients = await notifications.store_managers(session, endpoint.store_id)
    await notifications.notify(
        session,
        "webhook_endpoint_disabled",
        f"webhook-endpoint-{endpoint.id}-disabled-{int(now.timestamp())}",
        recipients,
        endpoint=endpoint,
        last_error=last_error,
    )


async def deliver_pending_webhooks(
    factory: async_sessionmaker[AsyncSession], settings: Settings, *, limit: int = BATCH
) -> WebhookRun:
    """Deliver every due delivery of an enabled endpoint, `limit` at a time, until none is left."""
    run = WebhookRun()
    while True:
        requests = await _claim(factory, settings, limit)
        if not requests:
            return run
        for request in requests:
            result = await send(request, settings)
            await _record(factory, settings, request, result, run)
