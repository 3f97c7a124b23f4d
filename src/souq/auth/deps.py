"""Who is asking: a Bearer API token or the session cookie (a signed cookie carrying the key of
a server-side session row), with CSRF protection for state-changing requests that rely on the
cookie."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from souq.auth import service
from souq.auth.models import ApiToken, User, UserSession
from souq.deps import SessionDep
from souq.errors import Conflict, Forbidden, NotAuthenticated
from souq.middleware import client_address

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "csrf_token"
SESSION_KEY = "sid"
SESSION_CSRF = "csrf"
# The guest cart's key (souq.carts.service reads it).
CART_SESSION_KEY = "cart"


@dataclass(frozen=True)
class Authentication:
    user: User
    via: Literal["token", "cookie"]
    api_token: ApiToken | None = None
    user_session: UserSession | None = None


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use (also for anonymous sessions, so the
    login and register forms carry one)."""
    token = request.session.get(SESSION_CSRF)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_CSRF] = token
    return token


async def start_session(request: Request, session: AsyncSession, user: User) -> str:
    """Log `user` in on this browser: a new server-side session and a fresh cookie (no
    fixation) with a new CSRF token. Any session the browser had before is ended."""
    # A guest's cart survives logging in: the cart routes merge it into the user's.
    guest_cart = request.session.get(CART_SESSION_KEY)
    await end_session(request, session)
    if guest_cart:
        request.session[CART_SESSION_KEY] = guest_cart
    request.session[SESSION_KEY] = await service.start_user_session(session, user)
    return csrf_token(request)


async def end_session(request: Request, session: AsyncSession) -> None:
    """End this browser's session on the server (a copy of the cookie stops working) and
    clear its cookie."""
    key = request.session.get(SESSION_KEY)
    if isinstance(key, str) and key:
        await service.end_user_session(session, key)
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
        key = request.session.get(SESSION_KEY)
        if isinstance(key, str) and key:
            found_session = await service.user_for_session_key(session, key)
            if found_session is None:
                # Logged out elsewhere, expired, or a password change ended it.
                request.session.clear()
            else:
                if request.method not in SAFE_METHODS:
                    await _check_csrf(request)
                auth = Authentication(
                    user=found_session[0], via="cookie", user_session=found_session[1]
                )
    request.state.authentication = auth
    return auth


async def get_authentication(request: Request, session: SessionDep) -> Authentication | None:
    return await authenticate_request(request, session)


async def get_optional_user(
    auth: Annotated[Authentication | None, Depends(get_authentication)],
) -> User | None:
    return auth.user if auth else None


async def get_current_authentication(
    auth: Annotated[Authentication | None, Depends(get_authentication)],
) -> Authentication:
    if auth is None:
        raise NotAuthenticated("log in, or send an API token as 'Authorization: Bearer <token>'")
    return auth


async def get_current_user(
    auth: Annotated[Authentication, Depends(get_current_authentication)],
) -> User:
    return auth.user


async def verify_form_csrf(request: Request) -> None:
    """For anonymous HTML forms (login, register): the hidden field must match the session."""
    await _check_csrf(request)


AuthenticationDep = Annotated[Authentication | None, Depends(get_authentication)]
OptionalUser = Annotated[User | None, Depends(get_optional_user)]
CurrentUser = Annotated[User, Depends(get_current_user)]
CurrentAuthentication = Annotated[Authentication, Depends(get_current_authentication)]


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
            client_address=client_address(request),
            settings=request.app.state.settings,
        )
    except service.InvalidCredentials:
        await session.commit()
        raise


async def register_user(
    request: Request, session: AsyncSession, *, email: str, password: str, name: str
) -> User:
    """Register at the edge: a taken email counts against the address's budget (committed
    although the request fails, as a failed login is)."""
    try:
        return await service.register(
            session,
            email=email,
            password=password,
            name=name,
            client_address=client_address(request),
            settings=request.app.state.settings,
        )
    except Conflict:
        await session.commit()
        raise
