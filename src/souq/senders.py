"""Runs the senders (`send_pending_mail`, `deliver_pending_webhooks`) in the server process,
shortly after a commit that wrote messages or deliveries: the stand-in until the job queue runs
them as jobs. Retries that are due later are picked up by the next run: the next commit that
writes something, `souq reconcile`, or `souq notifications send` (run it from cron until the
job queue exists)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.config import Settings
from souq.integrations.delivery import WebhookRun, deliver_pending_webhooks
from souq.notifications.sender import MailRun, send_pending_mail

log = logging.getLogger(__name__)


async def send_all(
    factory: async_sessionmaker[AsyncSession], settings: Settings
) -> tuple[MailRun, WebhookRun]:
    """One pass of both senders: mail first (a disabled endpoint writes an email)."""
    hooks = await deliver_pending_webhooks(factory, settings)
    mail = await send_pending_mail(factory, settings)
    return mail, hooks


class Dispatcher:
    """Starts one background pass after a commit; a commit during a pass asks for another."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.factory: async_sessionmaker[AsyncSession] | None = None
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def kick(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self.factory is None:
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = loop.create_task(self._run(self.factory))

    async def _run(self, factory: async_sessionmaker[AsyncSession]) -> None:
        while True:
            self._again = False
            try:
                await send_all(factory, self.settings)
            except Exception:
                log.exception("sending mail and webhooks failed; the next run retries")
            if not self._again:
                return

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
