from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StrictBool, WithJsonSchema

from souq.integrations.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from souq.integrations.service import EVENT_TYPES
from souq.outbox import OutboxStatus
from souq.schemas import ApiInput, ApiModel

MAX_ID = 2**31 - 1
_PORT = r"(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_H = "[0-9A-Fa-f]{1,4}"
_V4 = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}"
# An IPv6 address as Python's ipaddress reads it (RFC 4291 section 2.2 text forms, with an
# IPv4 tail where it may be), so that no address the schema admits is refused by the service.
_IPV6 = (
    f"(?:(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,7}}:|(?:{_H}:){{1,6}}:{_H}"
    f"|(?:{_H}:){{1,5}}(?::{_H}){{1,2}}|(?:{_H}:){{1,4}}(?::{_H}){{1,3}}"
    f"|(?:{_H}:){{1,3}}(?::{_H}){{1,4}}|(?:{_H}:){{1,2}}(?::{_H}){{1,5}}"
    f"|{_H}:(?::{_H}){{1,6}}|:(?:(?::{_H}){{1,7}}|:)"
    f"|(?:{_H}:){{6}}{_V4}|::(?:[Ff]{{4}}(?::0{{1,4}})?:)?{_V4}|(?:{_H}:){{1,4}}:{_V4})"
)
# http(s), a host name, an IPv4 address or a bracketed IPv6 one, an optional port, then
# anything printable. Where the host may be is checked by the service (integrations/addresses).
URL_PATTERN = (
    rf"^[Hh][Tt][Tt][Pp][Ss]?://(?:[A-Za-z0-9.-]+|\[{_IPV6}\])(?::{_PORT})?"
    r"(?:[/?#][^\s\x00]*)?$"
)


def _known_event_type(value: str) -> str:
    if value not in EVENT_TYPES:
        raise ValueError(f"unknown event type; known: {', '.join(EVENT_TYPES)}")
    return value


EventType = Annotated[
    str,
    AfterValidator(_known_event_type),
    WithJsonSchema({"type": "string", "enum": list(EVENT_TYPES)}),
]
EventTypes = list[EventType]


class EndpointIn(ApiInput):
    url: str = Field(max_length=2000, pattern=URL_PATTERN, description="An http(s) URL")
    events: EventTypes = Field(min_length=1, max_length=20)
    store_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="A store you own (its events only); omit for a platform endpoint "
        "(platform admins: every store's events)",
    )
    description: str = Field(default="", max_length=200)


class EndpointUpdate(ApiInput):
    url: str | None = Field(default=None, max_length=2000, pattern=URL_PATTERN)
    events: EventTypes | None = Field(default=None, min_length=1, max_length=20)
    description: str | None = Field(default=None, max_length=200)
    enabled: StrictBool | None = None


class EndpointOut(ApiModel):
    id: int
    store_id: int | None
    url: str
    description: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    consecutive_failures: int
    created_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> EndpointOut:
        return cls.model_validate(endpoint)


class EndpointWithSecret(EndpointOut):
    """Only when the endpoint is made and when its secret is rotated: the secret is not shown
    again."""

    secret: str

    @classmethod
    def shown(cls, endpoint: WebhookEndpoint, secret: str) -> EndpointWithSecret:
        return cls(**EndpointOut.of(endpoint).model_dump(), secret=secret)


class AttemptOut(ApiModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: int | None
    response_snippet: str | None
    error: str | None


class DeliveryOut(ApiModel):
    id: int
    event_id: str
    event_type: str
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    log: list[AttemptOut]
    payload: dict[str, Any]

    @classmethod
    def of(
        cls, delivery: WebhookDelivery, event: WebhookEvent, attempts: list[WebhookAttempt]
    ) -> DeliveryOut:
        return cls(
            id=delivery.id,
            event_id=event.public_id,
            event_type=event.type,
            status=delivery.status,
            attempts=delivery.attempts,
            next_attempt_at=(
                delivery.next_attempt_at if delivery.status == OutboxStatus.pending else None
            ),
            last_error=delivery.last_error,
            delivered_at=delivery.delivered_at,
            created_at=delivery.created_at,
            log=[AttemptOut.model_validate(a) for a in attempts],
            payload=event.payload,
        )


class DeliveryPage(ApiModel):
    data: list[DeliveryOut]
    has_more: bool
    next_before: int | None
