"""Writing messages (`notify`), who gets them, users' preferences, and the admin's outbox."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape
from sqlalchemy import event, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from souq.auth.models import User
from souq.config import get_settings
from souq.db import utcnow
from souq.errors import InvalidInput
from souq.money import display
from souq.notifications.kinds import KINDS, Kind
from souq.notifications.models import MailMessage, NotificationPreference
from souq.orders.models import Order
from souq.outbox import OutboxStatus
from souq.stores.models import StoreMember, StoreRole

log = logging.getLogger(__name__)

# Keys of Session.info, set by the app's session factory (db.session_factory).
APP_URL = "souq.app_url"
# A callable run after a commit that wrote outbox rows: it queues the senders' job.
AFTER_OUTBOX_COMMIT = "souq.after_outbox_commit"
_ARMED = "souq.outbox_armed"

MANAGERS = (StoreRole.owner, StoreRole.admin)

mail_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent.parent / "web" / "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)
mail_templates.filters["money"] = lambda minor, currency: display(int(minor), str(currency))


@dataclass(frozen=True)
class Recipient:
    email: str
    user_id: int | None = None

    @property
    def ident(self) -> str:
        if self.user_id is not None:
            return f"u{self.user_id}"
        return "e" + hashlib.sha256(self.email.strip().lower().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@functools.cache
def _subject_template(source: str) -> Template:
    # Compiling a template is most of rendering it: each kind's subject is compiled once.
    return mail_templates.from_string(source)


def render(kind: Kind, context: dict[str, Any]) -> Rendered:
    subject = _subject_template(kind.subject).render(context).strip()
    subject = " ".join(subject.split())[:300]
    context = {**context, "subject": subject}
    text = mail_templates.get_template(f"mail/{kind.name}.txt").render(context)
    html = mail_templates.get_template(f"mail/{kind.name}.html").render(context)
    return Rendered(subject, text, html)


def buyer_of(order: Order) -> Recipient:
    return Recipient(order.customer_email, order.user_id)


async def store_managers(session: AsyncSession, store_id: int) -> list[Recipient]:
    """A store's owners and admins."""
    rows = await session.execute(
        select(User.email, User.id)
        .join(StoreMember, StoreMember.user_id == User.id)
        .where(StoreMember.store_id == store_id, StoreMember.role.in_(MANAGERS))
        .order_by(User.id)
    )
    return [Recipient(email, user_id) for email, user_id in rows]


async def platform_admins(session: AsyncSession) -> list[Recipient]:
    rows = await session.execute(
        select(User.email, User.id).where(User.is_platform_admin.is_(True)).order_by(User.id)
    )
    return [Recipient(email, user_id) for email, user_id in rows]


async def _opted_out(session: AsyncSession, kind: str, user_ids: list[int]) -> set[int]:
    if not user_ids:
        return set()
    rows = await session.execute(
        select(NotificationPreference.user_id).where(
            NotificationPreference.kind == kind,
            NotificationPreference.user_id.in_(user_ids),
            NotificationPreference.enabled.is_(False),
        )
    )
    return set(rows.scalars())


async def notify(
    session: AsyncSession,
    kind_name: str,
    key: str,
    recipients: Sequence[Recipient],
    **context: Any,
) -> int:
    """Write one message of `kind_name` per recipient, in the caller's transaction, each keyed
    `{key}/{recipient}`: a key already written is left alone, so calling this twice for one
    change sends nothing twice. Users who turned the kind off are skipped (never for
    transactional kinds). Returns how many messages were written."""
    kind = KINDS[kind_name]
    skipped = (
        set()
        if kind.transactional
        else await _opted_out(
            session, kind.name, [r.user_id for r in recipients if r.user_id is not None]
        )
    )
    app_url = session.info.get(APP_URL) or get_settings().app_url
    written = 0
    seen: set[str] = set()
    for recipient in recipients:
        if recipient.user_id in skipped or recipient.ident in seen:
            continue
        seen.add(recipient.ident)
        rendered = render(kind, {**context, "app_url": app_url, "recipient": recipient})
        written += await insert_once(
            session,
            MailMessage,
            "key",
            key=f"{key}/{recipient.ident}"[:200],
            kind=kind.name,
            to_email=recipient.email,
            user_id=recipient.user_id,
            subject=rendered.subject,
            text_body=rendered.text,
            html_body=rendered.html,
            status=OutboxStatus.pending,
            attempts=0,
            next_attempt_at=utcnow(),
            created_at=utcnow(),
        )
    if written:
        after_commit_start_senders(session)
    return written


async def insert_once(session: AsyncSession, model: Any, unique: str, **values: Any) -> int:
    """INSERT … ON CONFLICT DO NOTHING on the `unique` column; 1 if the row was written."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # RETURNING, not rowcount: what a driver reports for a skipped row is not reliable.
    result = await session.execute(
        insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[unique])
        .returning(model.id)
    )
    return 1 if result.first() is not None else 0


def after_commit_start_senders(session: AsyncSession) -> None:
    """Once this session commits, queue the senders (the hook of the session factory)."""
    start: Callable[[], None] | None = session.info.get(AFTER_OUTBOX_COMMIT)
    if start is None or session.info.get(_ARMED):
        return
    session.info[_ARMED] = True

    def committed(_session: Session) -> None:
        start()

    event.listen(session.sync_session, "after_commit", committed)


@dataclass(frozen=True)
class Preference:
    kind: Kind
    enabled: bool


async def preferences(session: AsyncSession, user: User) -> list[Preference]:
    rows = await session.execute(
        select(NotificationPreference).where(NotificationPreference.user_id == user.id)
    )
    chosen = {row.kind: row.enabled for row in rows.scalars()}
    return [
        Preference(kind, kind.transactional or chosen.get(kind.name, True))
        for kind in KINDS.values()
    ]


async def set_preferences(session: AsyncSession, user: User, off: set[str]) -> list[Preference]:
    """Turn off exactly the kinds in `off` for `user`, and on every other kind that can be
    turned off; transactional kinds cannot be."""
    for name in off:
        kind = KINDS.get(name)
        if kind is None or kind.transactional:
            raise InvalidInput(f"{name!r} is not a kind that can be turned off", code="bad_kind")
    existing = {
        row.kind: row
        for row in (
            await session.execute(
                select(NotificationPreference)
                .where(NotificationPreference.user_id == user.id)
                .with_for_update()
            )
        ).scalars()
    }
    for kind in KINDS.values():
        if kind.transactional:
            continue
        enabled = kind.name not in off
        row = existing.get(kind.name)
        if row is None:
            session.add(NotificationPreference(user_id=user.id, kind=kind.name, enabled=enabled))
        elif row.enabled != enabled:
            row.enabled = enabled
            row.updated_at = utcnow()
    await session.flush()
    return await preferences(session, user)


async def outbox(
    session: AsyncSession, *, status: OutboxStatus | None, limit: int, before: int | None
) -> Sequence[MailMessage]:
    """Messages newest first (the caller checked the platform admin)."""
    query = select(MailMessage)
    if status is not None:
        query = query.where(MailMessage.status == status)
    if before is not None:
        query = query.where(MailMessage.id < before)
    return (
        (await session.execute(query.order_by(MailMessage.id.desc()).limit(limit))).scalars().all()
    )
