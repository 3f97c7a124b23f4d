from __future__ import annotations

from fastapi import APIRouter, Request, status

from souq.auth import service
from souq.auth.deps import (
    AuthenticationDep,
    CurrentUser,
    authenticate_request,
    check_credentials,
    end_session,
    start_session,
)
from souq.auth.schemas import LoginInput, LoginOut, RegisterInput, TokenInput, TokenOut, UserOut
from souq.deps import SessionDep
from souq.errors import NotAuthenticated
from souq.schemas import error_responses

router = APIRouter(tags=["auth"])


@router.post(
    "/api/auth/register", status_code=status.HTTP_201_CREATED, responses=error_responses(409, 422)
)
async def register(body: RegisterInput, session: SessionDep) -> UserOut:
    """Create an account (email unique case-insensitively, password of 8+ characters)."""
    user = await service.create_user(
        session, email=body.email, password=body.password, name=body.name
    )
    return UserOut.model_validate(user)


@router.post("/api/auth/login", responses=error_responses(401, 422, 429))
async def login(body: LoginInput, request: Request, session: SessionDep) -> LoginOut:
    """Log in: sets the session cookie and returns the CSRF token for later writes."""
    user = await check_credentials(request, session, email=body.email, password=body.password)
    csrf = start_session(request, user)
    return LoginOut(user=UserOut.model_validate(user), csrf_token=csrf)


@router.post(
    "/api/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401, 403)
)
async def logout(request: Request, session: SessionDep, auth: AuthenticationDep) -> None:
    """Log out: ends the cookie session, or revokes the API token the request was sent with."""
    if auth is not None and auth.api_token is not None:
        await service.revoke_api_token(session, auth.api_token)
    end_session(request)


@router.get("/api/me", responses=error_responses(401))
async def me(user: CurrentUser) -> UserOut:
    """The logged-in user."""
    return UserOut.model_validate(user)


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
    token = await service.create_api_token(session, user=user, name=body.name)
    return TokenOut(token=token, name=body.name.strip() or "api")
