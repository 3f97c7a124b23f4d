"""Delivering mail: `send_pending_mail` claims due messages, sends each over SMTP outside any
transaction, and records what happened. With no SMTP_URL, the database outbox is where mail
goes: claimed messages are marked `kept` and a platform admin reads them at /admin/outbox.

It is a plain idempotent function: the app starts it after a commit that wrote messages,
`souq reconcile` and `souq notifications send` run it, and the job queue will run it as a
periodic job. A message is sent at most once per claim; the one case that can repeat it is a
crash after the SMTP server accepted it and before it is marked sent (its Message-ID, derived
from the key, lets a mail system drop the copy).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.config import Settings
from souq.db import unit_of_work, utcnow
from souq.notifications.models import MailMessage
from souq.outbox import OutboxStatus, claim, reclaimed, settle

log = logging.getLogger(__name__)

BATCH = 50


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None


def smtp_server(url: str) -> SmtpServer:
    """smtp://[user:password@]host[:587] or smtps://[user:password@]host[:465]."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("SMTP_URL must look like smtp://user:password@host:587 or smtps://…")
    implicit = parts.scheme == "smtps"
    return SmtpServer(
        host=parts.hostname,
        port=parts.port or (465 if implicit else 587),
        implicit_tls=implicit,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def email_of(message: MailMessage, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to_email
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False)
    digest = hashlib.sha256(message.key.encode()).hexdigest()[:32]
    email["Message-ID"] = make_msgid(idstring=digest, domain="souq.mail")
    email.set_content(message.text_body)
    email.add_alternative(message.html_body, subtype="html")
    return email


@dataclass
class MailRun:
    sent: int = 0
    kept: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


async def _deliver(server: SmtpServer, email: EmailMessage, seconds: float) -> None:
    await aiosmtplib.send(
        email,
        hostname=server.host,
        port=server.port,
        username=server.username,
        password=server.password,
        use_tls=server.implicit_tls,
        timeout=seconds,
    )


async def send_pending_mail(
    factory: async_sessionmaker[AsyncSession], settings: Settings, *, limit: int = BATCH
) -> MailRun:
    """Send (or keep) every message that is due, `limit` at a time, until none is left."""
    run = MailRun()
    server = smtp_server(settings.smtp_url.get_secret_value()) if settings.smtp_url else None
    while True:
        async with unit_of_work(factory) as session:
            batch = await claim(session, MailMessage, limit)
            if server is None:
                for message in batch:
                    message.status = OutboxStatus.kept
                    message.claim_token = None
                    message.claimed_until = None
                run.kept += len(batch)
                claims = []
            else:
                claims = [(m.id, m.claim_token, email_of(m, settings.mail_from)) for m in batch]
        if not batch:
            return run
        for message_id, token, email in claims:
            assert token is not None
            error: str | None = None
            try:
                await _deliver(server, email, settings.smtp_timeout_seconds)  # type: ignore[arg-type]
            except (aiosmtplib.SMTPException, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.warning("mail %s to SMTP failed: %s", message_id, error)
            async with unit_of_work(factory) as session:
                message = await reclaimed(session, MailMessage, message_id, token)
                if message is None:
                    continue
                settle(
                    message,
                    error,
                    max_attempts=settings.mail_max_attempts,
                    base_seconds=settings.outbox_retry_base_seconds,
                )
                if error is None:
                    message.sent_at = utcnow()
                    run.sent += 1
                elif message.status == OutboxStatus.failed:
                    run.failed += 1
                    run.errors.append(error)
                else:
                    run.retrying += 1
