"""Seller onboarding with Stripe Connect Express: the connected account, its onboarding links,
and the store's payment status, which follows Stripe (webhooks, the success page, sync)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.models import User
from souq.config import Settings
from souq.db import unit_of_work, utcnow
from souq.errors import Conflict
from souq.payments.stripe import AccountStatus, Event, StripeGateway
from souq.payments.webhooks import Apply, Ignored, read_or_ignore
from souq.stores.models import Store, StoreMember, StoreRole
from souq.stores.service import READ_STORE, require_store_role

log = logging.getLogger(__name__)


def manager_roles(settings: Settings) -> tuple[StoreRole, ...]:
    """The roles that may manage a store's connected account (setting CONNECT_MANAGER_ROLES)."""
    return tuple(StoreRole(role) for role in settings.connect_manager_roles)


async def _lock_store(session: AsyncSession, store_id: int) -> Store:
    store = (
        await session.execute(
            select(Store)
            .where(Store.id == store_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    return store


async def _owner_email(session: AsyncSession, store: Store) -> str | None:
    email = (
        await session.execute(
            select(User.email)
            .join(StoreMember, StoreMember.user_id == User.id)
            .where(StoreMember.store_id == store.id, StoreMember.role == StoreRole.owner)
            .order_by(StoreMember.id)
            .limit(1)
        )
    ).scalar_one_or_none()
    return email


def apply_account_status(store: Store, status: AccountStatus) -> list[str]:
    """Copy Stripe's view of the account onto the store; returns the names of what changed."""
    changes: list[str] = []
    updates: dict[str, Any] = {
        "stripe_onboarding_complete": status.details_submitted,
        "stripe_charges_enabled": status.charges_enabled,
        "stripe_payouts_enabled": status.payouts_enabled,
        "stripe_requirements_due": status.requirements_due,
        "stripe_disabled_reason": status.disabled_reason,
    }
    for field, value in updates.items():
        if getattr(store, field) != value:
            setattr(store, field, value)
            changes.append(field)
    return changes


async def create_account(
    session: AsyncSession,
    gateway: StripeGateway,
    settings: Settings,
    store_id: int,
    user: User | None,
) -> str:
    """The store's Express account, created once. The store row is locked while Stripe is
    asked, and the idempotency key is derived from the store, so concurrent calls (or a retry
    after a lost answer) end with exactly one account."""
    await require_store_role(session, store_id, user, manager_roles(settings))
    store = await _lock_store(session, store_id)
    if store.stripe_account_id:
        return store.stripe_account_id
    account = await gateway.create_express_account(
        store_id=store.id,
        country=store.country,
        email=await _owner_email(session, store),
        generation=int(store.stripe_deauthorized_at.timestamp())
        if store.stripe_deauthorized_at
        else 0,
    )
    store.stripe_account_id = account.account_id
    store.stripe_deauthorized_at = None
    apply_account_status(store, account)
    await session.flush()
    log.info("store %s connected to Stripe account %s", store.id, account.account_id)
    return store.stripe_account_id


def onboarding_urls(settings: Settings, store_id: int) -> tuple[str, str]:
    query = urlencode({"storeId": store_id})
    base = f"{settings.app_url}/dashboard/settings/payments/onboarding"
    return f"{base}/refresh?{query}", f"{base}/success?{query}"


async def account_link(
    session: AsyncSession,
    gateway: StripeGateway,
    settings: Settings,
    store_id: int,
    user: User | None,
) -> str:
    """A fresh onboarding link. A store without an account gets 409: create it first."""
    store, account_id = await _connected_store(session, settings, store_id, user)
    refresh_url, return_url = onboarding_urls(settings, store.id)
    return await gateway.create_account_link(
        account_id=account_id, refresh_url=refresh_url, return_url=return_url
    )


async def _connected_store(
    session: AsyncSession, settings: Settings, store_id: int, user: User | None
) -> tuple[Store, str]:
    """The store, for its managers, and its connected account (409 when it has none)."""
    store, _member = await require_store_role(session, store_id, user, manager_roles(settings))
    if not store.stripe_account_id:
        raise Conflict(
            "This store has no Stripe account yet: create it first "
            "(POST /api/stripe/connect/create-account).",
            code="no_stripe_account",
        )
    return store, store.stripe_account_id


async def login_link(
    session: AsyncSession,
    gateway: StripeGateway,
    settings: Settings,
    store_id: int,
    user: User | None,
) -> str:
    """A single-use link into the store's Express dashboard, once onboarding is complete."""
    store, account_id = await _connected_store(session, settings, store_id, user)
    if not store.stripe_onboarding_complete:
        raise Conflict(
            "Finish Stripe onboarding before opening the Stripe dashboard.",
            code="onboarding_incomplete",
        )
    return await gateway.create_login_link(account_id)


async def refresh_from_stripe(
    session: AsyncSession, gateway: StripeGateway, store: Store, *, as_of: int | None = None
) -> list[str]:
    """Re-read the store's account from Stripe (the source of truth) and apply it."""
    if not store.stripe_account_id:
        return []
    account = await gateway.retrieve_account(store.stripe_account_id)
    return await apply_account(session, store, account, as_of=as_of)


async def apply_account(
    session: AsyncSession, store: Store, account: AccountStatus, *, as_of: int | None = None
) -> list[str]:
    """Apply an account read from Stripe to its (locked) store; the fields that changed."""
    changes = apply_account_status(store, account)
    if as_of is not None and (store.stripe_account_synced_at or 0) < as_of:
        store.stripe_account_synced_at = as_of
    await session.flush()
    return changes


async def sync_store(
    session: AsyncSession,
    gateway: StripeGateway,
    settings: Settings,
    store_id: int,
    user: User | None,
) -> Store:
    """The onboarding success page: read the account at once rather than wait for a webhook."""
    await require_store_role(session, store_id, user, manager_roles(settings))
    store = await _lock_store(session, store_id)
    await refresh_from_stripe(session, gateway, store)
    return store


async def _store_for_account(
    session: AsyncSession, account_id: str | None, *, lock: bool = True
) -> Store | None:
    if not account_id:
        return None
    query = select(Store).where(Store.stripe_account_id == account_id)
    return (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()


async def on_account_updated(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, event: Event
) -> Apply | Ignored:
    """Events can arrive twice or out of order, so the event only says *that* the account
    changed: the account is re-read from Stripe (no transaction open), then applied unless an
    event newer than this one was applied meanwhile, so the store always ends at Stripe's
    current state."""
    account_id = event.account or event.object_id
    async with unit_of_work(factory) as session:
        known = await _store_for_account(session, account_id, lock=False) is not None
    if not known:
        return Ignored(f"no store of ours has Stripe account {account_id}")
    account = await read_or_ignore(gateway.retrieve_account(account_id), f"account {account_id}")
    if isinstance(account, Ignored):
        log.warning("Stripe account %s is gone at Stripe", account_id)
        return account

    async def apply(session: AsyncSession) -> Ignored | None:
        store = await _store_for_account(session, account_id)
        if store is None:
            return Ignored(f"no store of ours has Stripe account {account_id}")
        synced = store.stripe_account_synced_at
        if synced is None or event.created >= synced:
            await apply_account(session, store, account, as_of=event.created)
        return None

    return apply


async def on_deauthorized(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, event: Event
) -> Apply | Ignored:
    """The seller disconnected the platform: the store can no longer take payments."""

    async def apply(session: AsyncSession) -> Ignored | None:
        store = await _store_for_account(session, event.account)
        if store is None:
            return Ignored(f"no store of ours has Stripe account {event.account}")
        log.warning("store %s: Stripe account %s deauthorized", store.id, store.stripe_account_id)
        store.stripe_account_id = None
        store.stripe_onboarding_complete = False
        store.stripe_charges_enabled = False
        store.stripe_payouts_enabled = False
        store.stripe_requirements_due = []
        store.stripe_disabled_reason = None
        store.stripe_account_synced_at = None
        store.stripe_deauthorized_at = utcnow()
        await session.flush()
        return None

    return apply


NextAction = Literal[
    "set_up_payouts", "continue_onboarding", "open_dashboard", "wait", "contact_support"
]


@dataclass(frozen=True)
class NextStep:
    action: NextAction
    label: str
    explanation: str


def next_step(store: Store) -> NextStep:
    """The one right next step for the store's payments, in plain words."""
    reason = store.stripe_disabled_reason or ""
    if not store.stripe_account_id:
        if store.stripe_deauthorized_at is not None:
            return NextStep(
                "set_up_payouts",
                "Set up payouts",
                "This store's Stripe account was disconnected from the marketplace, so it "
                "cannot take payments. Set up payouts again to reconnect.",
            )
        return NextStep(
            "set_up_payouts",
            "Set up payouts",
            "This store has no Stripe account yet, so buyers cannot pay it.",
        )
    if reason.startswith("rejected"):
        return NextStep(
            "contact_support",
            "Contact Stripe support",
            f"Stripe rejected this account ({reason}). Payments and payouts are disabled.",
        )
    if store.stripe_requirements_due or not store.stripe_onboarding_complete:
        due = ", ".join(store.stripe_requirements_due) or "the remaining details"
        return NextStep(
            "continue_onboarding",
            "Continue onboarding",
            f"Stripe still needs: {due}.",
        )
    if not store.stripe_charges_enabled or not store.stripe_payouts_enabled:
        why = {
            "requirements.pending_verification": "Stripe is verifying the details you gave",
            "under_review": "Stripe is reviewing the account",
        }.get(reason, f"Stripe has disabled them ({reason or 'no reason given yet'})")
        return NextStep("wait", "Check back soon", f"Payments or payouts are off: {why}.")
    return NextStep(
        "open_dashboard",
        "Open Stripe dashboard",
        "Ready: this store takes payments and receives payouts.",
    )


async def payments_status(
    session: AsyncSession, store_id: int, user: User | None
) -> tuple[Store, StoreMember]:
    """The store's payment status, for any member (and the caller's membership)."""
    return await require_store_role(session, store_id, user, READ_STORE)
