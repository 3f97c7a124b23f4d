"""The mail outbox (platform admins) and each user's notification preferences."""

from __future__ import annotations

from fastapi import APIRouter, Query

from souq.auth.deps import CurrentUser, OptionalUser
from souq.auth.service import require_platform_admin
from souq.deps import SessionDep
from souq.errors import Conflict, NotFound
from souq.notifications import service
from souq.notifications.models import MailMessage
from souq.notifications.schemas import (
    MailMessageOut,
    OutboxPage,
    PreferenceOut,
    PreferencesIn,
)
from souq.orders.api import BeforeQuery, LimitQuery, OrderId, page_of
from souq.outbox import OutboxStatus, retry_now
from souq.schemas import error_responses

router = APIRouter(tags=["notifications"])


@router.get("/api/admin/outbox", response_model=OutboxPage, responses=error_responses(401, 403))
async def list_outbox(
    user: OptionalUser,
    session: SessionDep,
    status: OutboxStatus | None = Query(default=None, description="Only messages in this state"),
    limit: LimitQuery = 20,
    before: BeforeQuery = None,
) -> OutboxPage:
    """Every email Souq wrote, newest first, with its state (platform admins only): with no
    SMTP server configured this is where mail goes."""
    require_platform_admin(user)
    messages = await service.outbox(session, status=status, limit=limit + 1, before=before)
    page, next_before = page_of(messages, limit)
    return OutboxPage(
        data=[MailMessageOut.of(m) for m in page],
        has_more=next_before is not None,
        next_before=next_before,
    )


@router.post(
    "/api/admin/outbox/{message_id}/retry",
    response_model=MailMessageOut,
    responses=error_responses(401, 403, 404, 409),
)
async def retry_message(
    message_id: OrderId, user: OptionalUser, session: SessionDep
) -> MailMessageOut:
    """Send a failed message again (platform admins only)."""
    require_platform_admin(user)
    message = await session.get(MailMessage, message_id, with_for_update=True)
    if message is None:
        raise NotFound("message not found")
    if message.status != OutboxStatus.failed:
        raise Conflict(
            f"message {message_id} is {message.status.value}, not failed", code="not_failed"
        )
    retry_now(message)
    await session.flush()
    service.after_commit_start_senders(session)
    return MailMessageOut.of(message)


def _preferences_out(prefs: list[service.Preference]) -> list[PreferenceOut]:
    return [
        PreferenceOut(
            kind=p.kind.name,
            description=p.kind.description,
            transactional=p.kind.transactional,
            enabled=p.enabled,
        )
        for p in prefs
    ]


@router.get("/api/me/notifications", responses=error_responses(401))
async def get_preferences(user: CurrentUser, session: SessionDep) -> list[PreferenceOut]:
    """Every kind of email, and whether you get it (transactional ones always go)."""
    return _preferences_out(await service.preferences(session, user))


@router.put("/api/me/notifications", responses=error_responses(401, 422))
async def put_preferences(
    body: PreferencesIn, user: CurrentUser, session: SessionDep
) -> list[PreferenceOut]:
    """Choose the kinds of email you do not want (only kinds that are not transactional)."""
    return _preferences_out(await service.set_preferences(session, user, set(body.off)))
