"""Both senders in one pass (`send_pending_mail`, `deliver_pending_webhooks`): what the job
`notifications.send_outbox` (notifications/tasks.py) and `souq notifications send` run."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.config import Settings
from souq.integrations.delivery import WebhookRun, deliver_pending_webhooks
from souq.notifications.sender import MailRun, send_pending_mail


async def send_all(
    factory: async_sessionmaker[AsyncSession], settings: Settings
) -> tuple[MailRun, WebhookRun]:
    """One pass of both senders: mail first (a disabled endpoint writes an email)."""
    hooks = await deliver_pending_webhooks(factory, settings)
    mail = await send_pending_mail(factory, settings)
    return mail, hooks
