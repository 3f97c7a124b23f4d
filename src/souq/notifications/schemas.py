from __future__ import annotations

from datetime import datetime

from pydantic import Field

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


class PreferencesIn(ApiInput):
    kinds: dict[str, bool] = Field(
        description="Kind → on or off; transactional kinds cannot be turned off",
        max_length=50,
    )
