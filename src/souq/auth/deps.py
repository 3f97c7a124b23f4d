"""Who is asking: a Bearer API token or the signed session cookie, with CSRF protection for
state-changing requests that rely on the cookie."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from souq.auth import service
from souq.auth.models import ApiToken, User
from souq.deps import SessionDep
from souq.errors import Forbidden, NotAuthenticated

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "csrf_token"
SESSION_USER = "uid"
SESSION_CSRF = "csrf"


@dataclass(frozen=True)
class Authentication:
    user: User
    via: Literal["token", "cookie"]
    api_token: ApiToken | None = None


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use (also for anonymous sessions, so the
    login and register forms carry one)."""
    token = request.session.get(SESSION_CSRF)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_CSRF] = token
    return token


def start_session(request: Request, user: User) -> str:
    """Log `user` in on this browser: a fresh session (no fixation) with a new CSRF token."""
    request.session.clear()
    request.session[SESSION_USER] = user.id
    return csrf_token(request)


def end_session(request: Request) -> None:
    request.session.clear()


async def _check_csrf(request: Request) -> None:
    expected = request.session.get(SESSION_CSRF)
    sent = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if sent is None and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        field = (await request.form()).get(CSRF_FORM_FIELD)
        sent = field if isinstance(field, str) else None
    if (
        not isinstance(expected, str)
        or not sent
        or not secrets.compare_digest(sent.encode(), expected.encode())
    ):
        raise Forbidden(
            f"missing or wrong CSRF token: send the {CSRF_HEADER} header (or the "
            f"{CSRF_FORM_FIELD} form field) given at login",
            code="csrf_failed",
        )


async def authenticate_request(request: Request, session: AsyncSession) -> Authentication | None:
    """The caller's identity, or None when anonymous. A Bearer header, when present, is the
    only credential considered (a bad token is a 401, never a fall-back to the cookie)."""
    cached: Authentication | None = getattr(request.state, "authentication", None)
    if cached is not None:
        return cached
    authorization = request.headers.get("authorization")
    auth: Authentication | None = None
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        found = (
            await service.user_for_token(session, token.strip())
            if scheme.lower() == "bearer" and token.strip()
            else None
        )
        if found is None:
            raise NotAuthenticated("invalid or revoked API token", code="invalid_token")
        auth = Authentication(user=found[0], via="token", api_token=found[1])
    else:
        user_id = request.session.get(SESSION_USER)
        if isinstance(user_id, int):
            user = await service.get_user(session, user_id)
            if user is None:
                end_session(request)
            else:
                if request.method not in SAFE_METHODS:
                    await _check_csrf(request)
                auth = Authentication(user=user, via="cookie")
    request.state.authentication = auth
    return auth


async def get_authentication(request: Request, session: SessionDep) -> Authentication | None:
    return await authenticate_request(request, session)


async def get_optional_user(
    auth: Annotated[Authentication | None, Depends(get_authentication)],
) -> User | None:
    return auth.user if auth else None


async def get_current_user(
    auth: Annotated[Authentication | None, Depends(get_authentication)],
) -> User:
    if auth is None:
        raise NotAuthenticated("log in, or send an API token as 'Authorization: Bearer <token>'")
    return auth.user


async def verify_form_csrf(request: Request) -> None:
    """For anonymous HTML forms (login, register): the hidden field must match the session."""
    await _check_csrf(request)


AuthenticationDep = Annotated[Authentication | None, Depends(get_authentication)]
OptionalUser = Annotated[User | None, Depends(get_optional_user)]
CurrentUser = Annotated[User, Depends(get_current_user)]


async def check_credentials(
    request: Request, session: AsyncSession, *, email: str, password: str
) -> User:
    """Authenticate a login at the edge. A failed attempt must be counted even though the
    request fails, so its throttle record is committed before the error propagates (the
    request has written nothing else by then)."""
    try:
        return await service.authenticate(
            session,
            email=email,
            password=password,
            client_address=request.client.host if request.client else None,
            settings=request.app.state.settings,
        )
    except service.InvalidCredentials:
        await session.commit()
        raise
