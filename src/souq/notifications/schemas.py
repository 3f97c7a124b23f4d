from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field, WithJsonSchema

from souq.notifications.kinds import KINDS
from souq.notifications.models import MailMessage
from souq.outbox import OutboxStatus
from souq.schemas import ApiInput, ApiModel


class MailMessageOut(ApiModel):
    id: int
    key: str
    kind: str
    to_email: str
    subject: str
    text_body: str
    html_body: str
    status: OutboxStatus
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, message: MailMessage) -> MailMessageOut:
        out = cls.model_validate(message)
        if message.status != OutboxStatus.pending:
            out.next_attempt_at = None
        return out


class OutboxPage(ApiModel):
    data: list[MailMessageOut]
    has_more: bool
    next_before: int | None


class PreferenceOut(ApiModel):
    kind: str
    description: str
    transactional: bool
    enabled: bool


OPTIONAL_KINDS = [kind.name for kind in KINDS.values() if not kind.transactional]


def _optional_kind(value: str) -> str:
    if value not in OPTIONAL_KINDS:
        raise ValueError(
            f"not a kind that can be turned off; those are {', '.join(OPTIONAL_KINDS)}"
        )
    return value


OptionalKind = Annotated[
    str, AfterValidator(_optional_kind), WithJsonSchema({"type": "string", "enum": OPTIONAL_KINDS})
]


class PreferencesIn(ApiInput):
    off: list[OptionalKind] = Field(
        description="Every kind you do not want (the others are on); transactional kinds "
        "always go and cannot be listed",
        max_length=len(OPTIONAL_KINDS),
    )
