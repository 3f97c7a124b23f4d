"""Stores, their members and roles, and the one authorization check every store-scoped route
uses.

Roles: owner and admin manage the store, its members and its payments settings; seller
manages listings and reads orders. Only an owner may make someone an owner or change or remove
an owner; a store always keeps at least one owner. Any member may leave a store (unless they
are its last owner).

Platform admins get no implicit access here: on store-scoped routes they are treated like any
other user (404 unless they are a member). Platform-wide oversight belongs to dedicated admin
routes, so that no store route has a second, easily forgotten way in.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from souq.auth.models import User
from souq.auth.service import normalize_email, require_platform_admin
from souq.config import Settings, TransferTiming
from souq.db import utcnow
from souq.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from souq.money import MAX_AMOUNT, FeeRule, MoneyError, format_amount, parse_amount
from souq.schemas import STRIPE_CONNECT_COUNTRIES, clean_name, currency_input
from souq.stores.models import Store, StoreInvitation, StoreMember, StoreRole

MANAGE_STORE: frozenset[StoreRole] = frozenset({StoreRole.owner, StoreRole.admin})
MANAGE_LISTINGS: frozenset[StoreRole] = frozenset(StoreRole)
READ_STORE: frozenset[StoreRole] = frozenset(StoreRole)
READ_ORDERS: frozenset[StoreRole] = frozenset(StoreRole)
# Whoever packs and ships: every role, sellers included.
FULFIL_ORDERS: frozenset[StoreRole] = frozenset(StoreRole)


async def require_store_role(
    session: AsyncSession,
    store_id: int,
    user: User | None,
    roles: Collection[StoreRole],
) -> tuple[Store, StoreMember]:
    """The store and the caller's membership, if the caller holds one of `roles` there.

    Anonymous → 401; not a member, or no such store → 404 (never reveal another store's
    private resources); a member without one of the roles → 403."""
    if user is None:
        raise NotAuthenticated("log in, or send an API token as 'Authorization: Bearer <token>'")
    result = await session.execute(
        select(Store, StoreMember)
        .join(StoreMember, StoreMember.store_id == Store.id)
        .where(Store.id == store_id, StoreMember.user_id == user.id)
    )
    row = result.first()
    if row is None:
        raise NotFound("store not found")
    store, member = row.tuple()
    if member.role not in roles:
        raise Forbidden(f"your role in this store ({member.role.value}) may not do this")
    return store, member


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-")
    return slug or "store"


async def _unique_slug(session: AsyncSession, base: str) -> str:
    taken = set(
        (
            await session.execute(
                select(Store.slug).where((Store.slug == base) | Store.slug.like(base + "-%"))
            )
        ).scalars()
    )
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _clean_country(country: str) -> str:
    code = country.strip().upper()
    if code not in STRIPE_CONNECT_COUNTRIES:
        raise InvalidInput(
            f"country {country!r}: a store's Stripe account can be opened only in a country "
            "Stripe supports, given as an ISO 3166 two-letter code such as 'US'",
            details=[{"field": "country", "message": "not a country Stripe supports"}],
        )
    return code


async def create_store(
    session: AsyncSession,
    *,
    owner: User,
    name: str,
    country: str = "US",
    default_currency: str = "usd",
) -> Store:
    """A new store with `owner` as its first owner; the slug comes from the name, with a
    numeric suffix when taken."""
    name = clean_name(name)
    country = _clean_country(country)
    default_currency = currency_input(default_currency, "defaultCurrency")
    base = slugify(name)
    for attempt in range(5):
        slug = await _unique_slug(session, base)
        if attempt:
            # Lost a race for the slug to a concurrent request: add randomness.
            slug = f"{base}-{secrets.token_hex(3)}"
        store = Store(name=name, slug=slug, country=country, default_currency=default_currency)
        try:
            async with session.begin_nested():
                session.add(store)
                await session.flush()
        except IntegrityError:
            continue
        session.add(StoreMember(store_id=store.id, user_id=owner.id, role=StoreRole.owner))
        await session.flush()
        return store
    raise Conflict("could not pick a unique address for this store; try again")


async def update_store(
    session: AsyncSession,
    store: Store,
    *,
    name: str | None = None,
    country: str | None = None,
    default_currency: str | None = None,
) -> Store:
    """Change a store's details. The slug stays, so links to the store keep working."""
    if name is not None:
        store.name = clean_name(name)
    if country is not None:
        store.country = _clean_country(country)
    if default_currency is not None:
        store.default_currency = currency_input(default_currency, "defaultCurrency")
    await session.flush()
    return store


async def list_user_stores(session: AsyncSession, user: User) -> list[tuple[Store, StoreRole]]:
    result = await session.execute(
        select(Store, StoreMember.role)
        .join(StoreMember, StoreMember.store_id == Store.id)
        .where(StoreMember.user_id == user.id)
        .order_by(Store.id)
    )
    return [(store, role) for store, role in result.tuples()]


async def list_members(session: AsyncSession, store: Store) -> list[tuple[StoreMember, User]]:
    result = await session.execute(
        select(StoreMember, User)
        .join(User, User.id == StoreMember.user_id)
        .where(StoreMember.store_id == store.id)
        .order_by(StoreMember.id)
    )
    return [(member, user) for member, user in result.tuples()]


async def _lock_store(session: AsyncSession, store: Store) -> None:
    # Member changes on one store run one at a time, so two owners demoting each other at
    # once cannot leave the store with none (SQLite already serializes writers).
    await session.execute(select(Store.id).where(Store.id == store.id).with_for_update())


async def _owner_count(session: AsyncSession, store: Store) -> int:
    result = await session.execute(
        select(func.count())
        .select_from(StoreMember)
        .where(StoreMember.store_id == store.id, StoreMember.role == StoreRole.owner)
    )
    return int(result.scalar_one())


def _may_assign(actor: StoreMember, role: StoreRole) -> bool:
    return actor.role in MANAGE_STORE and (role != StoreRole.owner or actor.role == StoreRole.owner)


def _check_may_assign(actor: StoreMember, role: StoreRole) -> None:
    if actor.role not in MANAGE_STORE:
        raise Forbidden(f"your role in this store ({actor.role.value}) may not manage members")
    if role == StoreRole.owner and actor.role != StoreRole.owner:
        raise Forbidden("only an owner may make someone an owner or change an owner")


async def invite_member(
    session: AsyncSession,
    *,
    store: Store,
    actor: StoreMember,
    email: str,
    role: StoreRole,
    ttl: timedelta,
) -> StoreInvitation:
    """Invite whoever has (or will register) `email` to the store with `role`. The answer is
    the same whether or not an account has that address, so inviting reveals nothing; the
    person becomes a member only by accepting."""
    _check_may_assign(actor, role)
    email = normalize_email(email).lower()
    await _lock_store(session, store)
    member = await session.execute(
        select(StoreMember.id)
        .join(User, User.id == StoreMember.user_id)
        .where(StoreMember.store_id == store.id, func.lower(User.email) == email)
    )
    if member.first() is not None:
        # The store's members are listed to its managers anyway: no secret is told here.
        raise _already_member()
    now = utcnow()
    existing = (
        await session.execute(
            select(StoreInvitation).where(
                StoreInvitation.store_id == store.id, StoreInvitation.email == email
            )
        )
    ).scalar_one_or_none()
    if existing is not None:
        if existing.expires_at > now:
            raise Conflict(
                "this address already has an open invitation to this store; withdraw it to "
                "invite again",
                code="already_invited",
            )
        await session.delete(existing)
        await session.flush()
    invitation = StoreInvitation(
        store_id=store.id,
        email=email,
        role=role,
        invited_by_user_id=actor.user_id,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(invitation)
    await session.flush()
    return invitation


async def list_invitations(session: AsyncSession, store: Store) -> list[StoreInvitation]:
    """The store's invitations that were neither accepted nor declined (expired ones too)."""
    result = await session.execute(
        select(StoreInvitation)
        .where(StoreInvitation.store_id == store.id)
        .order_by(StoreInvitation.id)
    )
    return list(result.scalars())


async def withdraw_invitation(
    session: AsyncSession, *, store: Store, actor: StoreMember, invitation_id: int
) -> None:
    """Withdraw an invitation (owners and admins; only owners withdraw an owner's)."""
    invitation = await session.get(StoreInvitation, invitation_id)
    if invitation is None or invitation.store_id != store.id:
        raise NotFound("no such invitation")
    _check_may_assign(actor, invitation.role)
    await session.delete(invitation)
    await session.flush()


async def list_my_invitations(
    session: AsyncSession, user: User
) -> list[tuple[StoreInvitation, Store]]:
    """The open invitations addressed to the user's email."""
    result = await session.execute(
        select(StoreInvitation, Store)
        .join(Store, Store.id == StoreInvitation.store_id)
        .where(
            StoreInvitation.email == user.email.lower(),
            StoreInvitation.expires_at > utcnow(),
        )
        .order_by(StoreInvitation.id)
    )
    return [(invitation, store) for invitation, store in result.tuples()]


async def _my_invitation(session: AsyncSession, user: User, invitation_id: int) -> StoreInvitation:
    invitation = await session.get(StoreInvitation, invitation_id)
    # Someone else's invitation is as unknown as a missing one.
    if invitation is None or invitation.email != user.email.lower():
        raise NotFound("no such invitation")
    return invitation


async def accept_invitation(
    session: AsyncSession, user: User, invitation_id: int
) -> tuple[StoreMember, Store]:
    """Join the store with the invited role. The inviter must still be allowed to give that
    role: an invitation from someone who has since lost the right to make it is void."""
    invitation = await _my_invitation(session, user, invitation_id)
    store = await session.get(Store, invitation.store_id)
    assert store is not None
    await _lock_store(session, store)
    if invitation.expires_at <= utcnow():
        raise Conflict("this invitation has expired; ask for a new one", code="invitation_expired")
    inviter = (
        await session.execute(
            select(StoreMember).where(
                StoreMember.store_id == store.id,
                StoreMember.user_id == invitation.invited_by_user_id,
            )
        )
    ).scalar_one_or_none()
    if inviter is None or not _may_assign(inviter, invitation.role):
        raise Conflict(
            "this invitation is no longer valid; ask for a new one", code="invitation_void"
        )
    existing = (
        await session.execute(
            select(StoreMember).where(
                StoreMember.store_id == store.id, StoreMember.user_id == user.id
            )
        )
    ).scalar_one_or_none()
    if existing is not None:
        raise _already_member()
    member = StoreMember(store_id=store.id, user_id=user.id, role=invitation.role)
    await session.delete(invitation)
    try:
        async with session.begin_nested():
            session.add(member)
            await session.flush()
    except IntegrityError:
        raise _already_member() from None
    return member, store


async def decline_invitation(session: AsyncSession, user: User, invitation_id: int) -> None:
    await session.delete(await _my_invitation(session, user, invitation_id))
    await session.flush()


def _already_member() -> Conflict:
    return Conflict(
        "already a member of this store; change their role instead", code="member_exists"
    )


async def _get_member(session: AsyncSession, store: Store, user_id: int) -> StoreMember:
    result = await session.execute(
        select(StoreMember).where(StoreMember.store_id == store.id, StoreMember.user_id == user_id)
    )
    member = result.scalar_one_or_none()
    if member is None:
        raise NotFound("no such member in this store")
    return member


async def change_member_role(
    session: AsyncSession, *, store: Store, actor: StoreMember, user_id: int, role: StoreRole
) -> StoreMember:
    """Give a member another role; the last owner cannot be demoted."""
    await _lock_store(session, store)
    member = await _get_member(session, store, user_id)
    _check_may_assign(actor, role)
    if member.role == StoreRole.owner:
        _check_may_assign(actor, StoreRole.owner)
        if role != StoreRole.owner and await _owner_count(session, store) <= 1:
            raise _last_owner()
    member.role = role
    await session.flush()
    return member


async def remove_member(
    session: AsyncSession, *, store: Store, actor: StoreMember, user_id: int
) -> None:
    """Remove a member (or leave, when it is oneself); the last owner cannot be removed."""
    await _lock_store(session, store)
    member = await _get_member(session, store, user_id)
    if member.id != actor.id:
        _check_may_assign(actor, member.role)
    if member.role == StoreRole.owner and await _owner_count(session, store) <= 1:
        raise _last_owner()
    await session.delete(member)
    await session.flush()


async def remove_or_leave(
    session: AsyncSession, store_id: int, user: User | None, user_id: int
) -> None:
    """Remove a member (owners and admins), or leave the store (any member, oneself)."""
    roles = READ_STORE if user is not None and user_id == user.id else MANAGE_STORE
    store, actor = await require_store_role(session, store_id, user, roles)
    await remove_member(session, store=store, actor=actor, user_id=user_id)


def _last_owner() -> Conflict:
    return Conflict("a store must keep at least one owner", code="last_owner")


def parse_role(text: str) -> StoreRole:
    """A role named in a form; a 422 naming the roles there are."""
    try:
        return StoreRole(text)
    except ValueError:
        names = ", ".join(role.value for role in StoreRole)
        raise InvalidInput(
            f"role: one of {names}", details=[{"field": "role", "message": f"one of {names}"}]
        ) from None


async def get_store(session: AsyncSession, store_id: int) -> Store:
    """A store, for the public storefront (its name and listings are public)."""
    store = await session.get(Store, store_id)
    if store is None:
        raise NotFound("store not found")
    return store


async def list_stores(session: AsyncSession, limit: int = 500) -> list[Store]:
    """Stores by name: the storefront's filter, and the back office's list."""
    return list((await session.execute(select(Store).order_by(Store.name).limit(limit))).scalars())


def _amounts(field: str, given: dict[str, str] | None) -> dict[str, int]:
    """Currency → decimal string from a request → currency → minor units; a 422 naming the
    entry for a code Stripe cannot charge in or an amount it cannot charge."""
    amounts: dict[str, int] = {}
    for code, text in (given or {}).items():
        currency = currency_input(code, f"{field}.{code}")
        try:
            amount = parse_amount(text, currency)
        except MoneyError as exc:
            raise InvalidInput(
                f"{field}.{code}: {exc}",
                details=[{"field": f"{field}.{code}", "message": str(exc)}],
            ) from None
        if not 0 <= amount <= MAX_AMOUNT:
            problem = f"must be from 0 to {format_amount(MAX_AMOUNT, currency)}"
            raise InvalidInput(
                f"{field}.{code}: {problem}",
                details=[{"field": f"{field}.{code}", "message": problem}],
            )
        amounts[currency] = amount
    return amounts


async def set_commission(
    session: AsyncSession, store_id: int, user: User | None, changes: dict[str, Any]
) -> Store:
    """A platform admin sets a store's commission; only orders made afterwards are charged it
    (each order keeps the rule it was made with)."""
    require_platform_admin(user)
    store = (
        await session.execute(select(Store).where(Store.id == store_id).with_for_update())
    ).scalar_one_or_none()
    if store is None:
        raise NotFound("store not found", code="store_not_found")
    if "bps" in changes:
        store.platform_fee_bps = changes["bps"]
    if "fixed" in changes:
        store.commission_fixed = _amounts("fixed", changes["fixed"])
    if "minimum" in changes:
        store.commission_minimum = _amounts("minimum", changes["minimum"])
    if "transfer_timing" in changes:
        store.transfer_timing = changes["transfer_timing"]
    await session.flush()
    return store


def commission_rule(store: Store, settings: Settings, currency: str) -> FeeRule:
    """The rule an order of this store in this currency is made with, now."""
    bps = store.platform_fee_bps
    return FeeRule(
        bps=settings.platform_fee_bps if bps is None else bps,
        fixed=(store.commission_fixed or {}).get(currency, 0),
        minimum=(store.commission_minimum or {}).get(currency, 0),
        buyer_bps=settings.buyer_fee_bps,
    )


def transfer_timing(store: Store, settings: Settings) -> TransferTiming:
    """When the store's share of a cart's payment is sent: its own timing, or the platform's."""
    if store.transfer_timing is None:
        return settings.transfer_timing
    return "on_fulfilment" if store.transfer_timing == "on_fulfilment" else "on_payment"


def holds_transfers(store: Store, settings: Settings) -> bool:
    return transfer_timing(store, settings) == "on_fulfilment"
