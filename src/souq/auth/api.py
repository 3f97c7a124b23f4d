from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, status

from souq.auth import service
from souq.auth.deps import (
    AuthenticationDep,
    CurrentAuthentication,
    CurrentUser,
    authenticate_request,
    check_credentials,
    end_session,
    register_user,
    start_session,
)
from souq.auth.schemas import (
    LoginInput,
    LoginOut,
    PasswordChangeInput,
    RegisterInput,
    SessionsEnded,
    TokenInfoOut,
    TokenInput,
    TokenOut,
    UserOut,
)
from souq.deps import SessionDep
from souq.errors import NotAuthenticated
from souq.schemas import error_responses

router = APIRouter(tags=["auth"])

TokenId = Annotated[int, Path(alias="tokenId", ge=1, le=2**31 - 1)]


@router.post(
    "/api/auth/register",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(409, 422, 429),
)
async def register(body: RegisterInput, request: Request, session: SessionDep) -> UserOut:
    """Create an account (email unique case-insensitively, password of 8+ characters)."""
    user = await register_user(
        request, session, email=body.email, password=body.password, name=body.name
    )
    return UserOut.model_validate(user)


@router.post("/api/auth/login", responses=error_responses(401, 422, 429))
async def login(body: LoginInput, request: Request, session: SessionDep) -> LoginOut:
    """Log in: sets the session cookie and returns the CSRF token for later writes."""
    user = await check_credentials(request, session, email=body.email, password=body.password)
    csrf = await start_session(request, session, user)
    return LoginOut(user=UserOut.model_validate(user), csrf_token=csrf)


@router.post(
    "/api/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401, 403)
)
async def logout(request: Request, session: SessionDep, auth: AuthenticationDep) -> None:
    """Log out: ends this browser session on the server, or revokes the API token the request
    was sent with."""
    if auth is not None and auth.api_token is not None:
        await service.revoke_api_token(session, auth.api_token)
    await end_session(request, session)


@router.post("/api/auth/logout-all", responses=error_responses(401, 403))
async def logout_everywhere(
    request: Request, session: SessionDep, auth: CurrentAuthentication
) -> SessionsEnded:
    """Log out everywhere: ends every browser session of the caller, this one included
    (API tokens stay: list and revoke them at /api/auth/tokens)."""
    ended = await service.end_user_sessions(session, auth.user)
    request.session.clear()
    return SessionsEnded(sessions_ended=ended)


@router.post("/api/auth/password", responses=error_responses(401, 403, 422, 429))
async def change_password(
    body: PasswordChangeInput, request: Request, session: SessionDep, auth: CurrentAuthentication
) -> SessionsEnded:
    """Change the password (the current one is required, and throttled like a login); every
    other browser session of the account ends, this one stays logged in."""
    user = await check_credentials(
        request, session, email=auth.user.email, password=body.current_password
    )
    ended = await service.change_password(
        session, user, new_password=body.new_password, keep=auth.user_session
    )
    return SessionsEnded(sessions_ended=ended)


@router.get("/api/me", responses=error_responses(401))
async def me(user: CurrentUser) -> UserOut:
    """The logged-in user."""
    return UserOut.model_validate(user)


@router.get("/api/auth/tokens", responses=error_responses(401))
async def list_tokens(session: SessionDep, auth: CurrentAuthentication) -> list[TokenInfoOut]:
    """The caller's API tokens: name, creation, last use and expiry (never the token)."""
    current = auth.api_token.id if auth.api_token is not None else None
    return [
        TokenInfoOut(
            id=token.id,
            name=token.name,
            created_at=token.created_at,
            last_used_at=token.last_used_at,
            expires_at=token.expires_at,
            current=token.id == current,
        )
        for token in await service.list_api_tokens(session, auth.user)
    ]


@router.post(
    "/api/auth/tokens",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 422, 429),
)
async def create_token(body: TokenInput, request: Request, session: SessionDep) -> TokenOut:
    """Create a personal API token, from email and password or a logged-in session; it is
    shown only in this response."""
    if body.email is not None or body.password is not None:
        user = await check_credentials(
            request, session, email=body.email or "", password=body.password or ""
        )
    else:
        auth = await authenticate_request(request, session)
        if auth is None:
            raise NotAuthenticated("send email and password, or call this from a logged-in session")
        user = auth.user
    token, row = await service.create_api_token(
        session, user=user, name=body.name, expires_in_days=body.expires_in_days
    )
    return TokenOut(id=row.id, token=token, name=row.name, expires_at=row.expires_at)


@router.delete(
    "/api/auth/tokens/{tokenId}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422),
)
async def revoke_token(token_id: TokenId, session: SessionDep, user: CurrentUser) -> None:
    """Revoke one of the caller's API tokens; it stops working at once."""
    await service.revoke_api_token_by_id(session, user, token_id)
