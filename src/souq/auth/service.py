"""Accounts: users with argon2id password hashes, login throttling, personal API tokens."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import Sequence
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from souq.auth.models import ApiToken, LoginThrottle, User
from souq.config import Settings
from souq.db import utcnow
from souq.errors import Conflict, InvalidInput, NotAuthenticated, TooManyRequests
from souq.schemas import clean_name

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024
EMAIL_MAX_LENGTH = 320
TOKEN_PREFIX = "souq_"  # noqa: S105 - a public prefix, not a secret
# A token's last_used_at is refreshed at most this often, so reads do not write every time.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=5)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_hasher = PasswordHasher()  # argon2id with the library's recommended parameters
# Verified against when the email is unknown, so a miss costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def configure_password_hashing(settings: Settings) -> None:
    """argon2id's cost from the settings (the library's RFC 9106 profile by default). Hashes
    carry their own parameters, so changing the cost never breaks existing passwords."""
    global _hasher, _DUMMY_HASH
    wanted = (
        settings.password_hash_time_cost,
        settings.password_hash_memory_kib,
        settings.password_hash_parallelism,
    )
    if (_hasher.time_cost, _hasher.memory_cost, _hasher.parallelism) == wanted:
        return
    _hasher = PasswordHasher(time_cost=wanted[0], memory_cost=wanted[1], parallelism=wanted[2])
    _DUMMY_HASH = _hasher.hash("not-a-real-password")


class InvalidCredentials(NotAuthenticated):
    code = "invalid_credentials"


def normalize_email(email: str) -> str:
    """The address as given, trimmed; refused unless it looks like an email address."""
    email = email.strip()
    if len(email) > EMAIL_MAX_LENGTH or not _EMAIL.match(email):
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


def _email_taken() -> Conflict:
    return Conflict("an account with this email already exists", code="email_taken")


def throttle_keys(email: str, client_address: str | None) -> list[str]:
    keys = ["email:" + email.strip().lower()[:EMAIL_MAX_LENGTH]]
    if client_address:
        keys.append("addr:" + client_address[:200])
    return keys


async def authenticate(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    client_address: str | None,
    settings: Settings,
) -> User:
    """The user whose email and password these are.

    Throttled per account email and per client address: after `login_max_failures` failures
    within `login_lockout_seconds`, that key is locked for `login_lockout_seconds` (429), even
    for the right password. A failure is recorded (flushed) before InvalidCredentials is
    raised; the caller must commit it, since the request itself fails."""
    keys = throttle_keys(email, client_address)
    now = utcnow()
    for row in await _throttle_rows(session, keys):
        if row.locked_until is not None and row.locked_until > now:
            minutes = max(1, -(-int((row.locked_until - now).total_seconds()) // 60))
            raise TooManyRequests(
                "too many failed logins for this account or from this address; "
                f"try again in {minutes} minute{'s' if minutes != 1 else ''}",
                code="login_throttled",
            )
    user = await get_user_by_email(session, email)
    ok = await verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not ok:
        await record_login_failure(session, keys, settings)
        raise InvalidCredentials("wrong email or password")
    if _hasher.check_needs_rehash(user.password_hash):
        # The hash was made with other argon2 parameters: upgrade it while we have the password.
        user.password_hash = await hash_password(password)
    # Only the account's counter is cleared: a success on one's own account must not reset
    # the address counter someone is using to guess other accounts' passwords.
    await session.execute(delete(LoginThrottle).where(LoginThrottle.key == keys[0]))
    return user


async def _throttle_rows(session: AsyncSession, keys: Sequence[str]) -> list[LoginThrottle]:
    result = await session.execute(select(LoginThrottle).where(LoginThrottle.key.in_(keys)))
    return list(result.scalars())


async def record_login_failure(
    session: AsyncSession, keys: Sequence[str], settings: Settings
) -> None:
    now = utcnow()
    window = timedelta(seconds=settings.login_lockout_seconds)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for key in keys:
        # Create the row if missing without racing a concurrent failure, then lock and count.
        await session.execute(
            insert(LoginThrottle)
            .values(key=key, failures=0, window_started_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        row = (
            await session.execute(
                select(LoginThrottle)
                .where(LoginThrottle.key == key)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one()
        if now - row.window_started_at > window:
            row.failures = 0
            row.window_started_at = now
        row.failures += 1
        if row.failures >= settings.login_max_failures:
            row.locked_until = now + window
            row.failures = 0
            row.window_started_at = now
    await session.flush()


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_api_token(session: AsyncSession, *, user: User, name: str) -> str:
    """A new personal API token. Only its SHA-256 is stored: the token is returned once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(user_id=user.id, name=name.strip() or "api", token_hash=_hash_token(token))
    )
    await session.flush()
    return token


async def user_for_token(session: AsyncSession, token: str) -> tuple[User, ApiToken] | None:
    result = await session.execute(
        select(User, ApiToken)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == _hash_token(token))
    )
    row = result.first()
    if row is None:
        return None
    user, api_token = row.tuple()
    now = utcnow()
    if api_token.last_used_at is None or now - api_token.last_used_at > TOKEN_TOUCH_INTERVAL:
        api_token.last_used_at = now
    return user, api_token


async def revoke_api_token(session: AsyncSession, api_token: ApiToken) -> None:
    await session.delete(api_token)
    await session.flush()


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)
