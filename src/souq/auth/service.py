"""Accounts: users with argon2id password hashes, login throttling, personal API tokens."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from souq import throttle
from souq.auth.models import ApiToken, User, UserSession
from souq.config import Settings
from souq.db import utcnow
from souq.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    TooManyRequests,
    wait_text,
)
from souq.schemas import EMAIL, clean_name

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024
EMAIL_MAX_LENGTH = 320
TOKEN_PREFIX = "souq_"  # noqa: S105 - a public prefix, not a secret
# A token's last_used_at (and a session's last_seen_at) is refreshed at most this often, so
# reads do not write every time.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=5)
# A browser session ends this long after login, whatever happens (logout ends it sooner).
SESSION_LIFETIME = timedelta(days=14)

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters
# Verified against when the email is unknown, so a miss costs as long as a wrong password.
# Made on the first such login, not at import: every process importing this module (each
# `souq` command) would otherwise pay for a full-cost hash it mostly never uses.
_dummy_hash: str | None = None


def configure_password_hashing(settings: Settings) -> None:
    """argon2id's cost from the settings (the library's RFC 9106 profile by default). Hashes
    carry their own parameters, so changing the cost never breaks existing passwords."""
    global _hasher, _dummy_hash
    wanted = (
        settings.password_hash_time_cost,
        settings.password_hash_memory_kib,
        settings.password_hash_parallelism,
    )
    if (_hasher.time_cost, _hasher.memory_cost, _hasher.parallelism) == wanted:
        return
    _hasher = PasswordHasher(time_cost=wanted[0], memory_cost=wanted[1], parallelism=wanted[2])
    _dummy_hash = None


async def _unknown_user_hash() -> str:
    """A hash of the current cost that no password matches (made once, then kept)."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = await hash_password("not-a-real-password")
    return _dummy_hash


class InvalidCredentials(NotAuthenticated):
    code = "invalid_credentials"


def normalize_email(email: str) -> str:
    """The address as given, trimmed; refused unless it looks like an email address."""
    email = email.strip()
    if len(email) > EMAIL_MAX_LENGTH or not EMAIL.match(email):
        raise InvalidInput(
            "enter a valid email address",
            details=[{"field": "email", "message": "not an email address"}],
        )
    return email


def check_password_policy(password: str) -> None:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise InvalidInput(
            f"passwords need at least {PASSWORD_MIN_LENGTH} characters",
            code="weak_password",
            details=[{"field": "password", "message": "too short"}],
        )
    if len(password) > PASSWORD_MAX_LENGTH:
        raise InvalidInput(
            f"passwords may have at most {PASSWORD_MAX_LENGTH} characters",
            details=[{"field": "password", "message": "too long"}],
        )


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow and memory-hard: keep it off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    try:
        return await asyncio.to_thread(_hasher.verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(
        select(User).where(func.lower(User.email) == email.strip().lower())
    )
    return result.scalar_one_or_none()


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    name: str,
    is_platform_admin: bool = False,
) -> User:
    """A new account. The email is unique case-insensitively: a taken one is a 409."""
    email = normalize_email(email)
    name = clean_name(name)
    check_password_policy(password)
    if await get_user_by_email(session, email) is not None:
        raise _email_taken()
    user = User(
        email=email,
        name=name,
        password_hash=await hash_password(password),
        is_platform_admin=is_platform_admin,
    )
    try:
        # A concurrent registration may win the unique index between our check and the insert.
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError:
        raise _email_taken() from None
    return user


def require_platform_admin(user: User | None) -> User:
    if user is None:
        raise NotAuthenticated("log in, or send an API token as 'Authorization: Bearer <token>'")
    if not user.is_platform_admin:
        raise Forbidden("only platform admins can do this", code="platform_admin_only")
    return user


def _email_taken() -> Conflict:
    return Conflict("an account with this email already exists", code="email_taken")


@dataclass(frozen=True)
class LoginKeys:
    """The throttle keys of a login: the account from this address, and the address."""

    pair: str
    address: str


def login_keys(email: str, client_address: str | None) -> LoginKeys:
    address = (client_address or "unknown")[:60]
    account = email.strip().lower()[:EMAIL_MAX_LENGTH]
    return LoginKeys(pair=f"login:{account}|{address}", address=f"login-addr:{address}")


async def check_login_allowed(session: AsyncSession, keys: LoginKeys) -> None:
    """429 while this account is backing off from this address, or while the address has
    spent its budget of failures. The answer says how long, and Retry-After says the same."""
    wait = await throttle.blocked_for(session, [keys.pair, keys.address])
    if wait is not None:
        raise TooManyRequests(
            f"too many failed logins; try again in {wait_text(wait)}",
            code="login_throttled",
            retry_after=wait,
        )


async def authenticate(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    client_address: str | None,
    settings: Settings,
) -> User:
    """The user whose email and password these are.

    Throttled per account-and-address pair and per address, never per account alone: a
    stranger's failures from elsewhere cannot lock the owner out. After `login_max_failures`
    failures of one pair, each further try waits (doubling up to a cap); an address that
    fails `login_address_max_failures` times in a window, across accounts, waits for the
    window's end. A failure is recorded (flushed) before InvalidCredentials is raised; the
    caller must commit it, since the request itself fails."""
    keys = login_keys(email, client_address)
    await check_login_allowed(session, keys)
    user = await get_user_by_email(session, email)
    ok = await verify_password(user.password_hash if user else await _unknown_user_hash(), password)
    if user is None or not ok:
        await record_login_failure(session, keys, settings)
        raise InvalidCredentials("wrong email or password")
    if _hasher.check_needs_rehash(user.password_hash):
        # The hash was made with other argon2 parameters: upgrade it while we have the password.
        user.password_hash = await hash_password(password)
    # Only the pair's counter is cleared: a success on one's own account must not reset the
    # address counter someone is using to guess other accounts' passwords.
    await throttle.clear(session, keys.pair)
    return user


async def record_login_failure(session: AsyncSession, keys: LoginKeys, settings: Settings) -> None:
    window = timedelta(seconds=settings.login_window_seconds)
    now = utcnow()
    pair = await throttle.hit(session, keys.pair, window)
    if pair.hits >= settings.login_max_failures:
        extra = min(pair.hits - settings.login_max_failures, 20)  # 2**20 s is past any cap
        delay = min(settings.login_backoff_max_seconds, settings.login_backoff_seconds * 2**extra)
        pair.blocked_until = now + timedelta(seconds=delay)
    await record_address_failure(session, keys, settings)


async def record_address_failure(
    session: AsyncSession, keys: LoginKeys, settings: Settings
) -> None:
    """Count a failure against the address's budget (failed logins, and registrations of a
    taken email, which probe for accounts just the same)."""
    window = timedelta(seconds=settings.login_window_seconds)
    address = await throttle.hit(session, keys.address, window)
    if address.hits >= settings.login_address_max_failures:
        address.blocked_until = address.window_started_at + window
    await session.flush()


async def register(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    name: str,
    client_address: str | None,
    settings: Settings,
) -> User:
    """A registration from a client. Telling the visitor that an email is taken cannot be
    avoided without an email round trip, so each taken email counts against the address's
    budget of failed logins: probing for accounts is as slow here as at the login form. The
    failure is flushed before the 409; the caller commits it."""
    keys = login_keys(email, client_address)
    wait = await throttle.blocked_for(session, [keys.address])
    if wait is not None:
        raise TooManyRequests(
            f"too many failed attempts from this address; try again in {wait_text(wait)}",
            code="login_throttled",
            retry_after=wait,
        )
    try:
        return await create_user(session, email=email, password=password, name=name)
    except Conflict:
        await record_address_failure(session, keys, settings)
        raise


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_api_token(
    session: AsyncSession, *, user: User, name: str, expires_in_days: int | None = None
) -> tuple[str, ApiToken]:
    """A new personal API token. Only its SHA-256 is stored: the token is returned once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name.strip() or "api",
        token_hash=_hash_token(token),
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(row)
    await session.flush()
    return token, row


async def user_for_token(session: AsyncSession, token: str) -> tuple[User, ApiToken] | None:
    now = utcnow()
    result = await session.execute(
        select(User, ApiToken)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_hash == _hash_token(token),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
        )
    )
    row = result.first()
    if row is None:
        return None
    user, api_token = row.tuple()
    if api_token.last_used_at is None or now - api_token.last_used_at > TOKEN_TOUCH_INTERVAL:
        api_token.last_used_at = now
    return user, api_token


async def list_api_tokens(session: AsyncSession, user: User) -> list[ApiToken]:
    result = await session.execute(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    )
    return list(result.scalars())


async def revoke_api_token(session: AsyncSession, api_token: ApiToken) -> None:
    await session.delete(api_token)
    await session.flush()


async def revoke_api_token_by_id(session: AsyncSession, user: User, token_id: int) -> None:
    """Revoke one of the user's tokens; someone else's token is as unknown as a missing one."""
    api_token = await session.get(ApiToken, token_id)
    if api_token is None or api_token.user_id != user.id:
        raise NotFound("no such API token")
    await revoke_api_token(session, api_token)


async def start_user_session(session: AsyncSession, user: User) -> str:
    """A new server-side session for `user`; returns the key its cookie carries. The user's
    expired sessions are swept on the way."""
    now = utcnow()
    await session.execute(
        delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= now)
    )
    key = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            user_id=user.id,
            key_hash=_hash_token(key),
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    await session.flush()
    return key


async def user_for_session_key(session: AsyncSession, key: str) -> tuple[User, UserSession] | None:
    now = utcnow()
    result = await session.execute(
        select(User, UserSession)
        .join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.key_hash == _hash_token(key), UserSession.expires_at > now)
    )
    row = result.first()
    if row is None:
        return None
    user, user_session = row.tuple()
    if now - user_session.last_seen_at > TOKEN_TOUCH_INTERVAL:
        user_session.last_seen_at = now
    return user, user_session


async def end_user_session(session: AsyncSession, key: str) -> None:
    await session.execute(delete(UserSession).where(UserSession.key_hash == _hash_token(key)))


async def end_user_sessions(
    session: AsyncSession, user: User, *, keep: UserSession | None = None
) -> int:
    """End every session of `user` (but `keep`, if given); returns how many ended."""
    query = delete(UserSession).where(UserSession.user_id == user.id)
    if keep is not None:
        query = query.where(UserSession.id != keep.id)
    result = await session.execute(query)
    await session.flush()
    return int(result.rowcount)  # type: ignore[attr-defined]


async def change_password(
    session: AsyncSession, user: User, *, new_password: str, keep: UserSession | None
) -> int:
    """Set a new password (the caller has verified the current one) and end every other
    session of the user; returns how many sessions ended."""
    check_password_policy(new_password)
    user.password_hash = await hash_password(new_password)
    return await end_user_sessions(session, user, keep=keep)


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)
