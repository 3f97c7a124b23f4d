from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from souq.schemas import EMAIL_PATTERN, NAME_PATTERN, WHOLE_NUMBER, ApiInput, ApiModel


class RegisterInput(ApiInput):
    email: str = Field(max_length=320, pattern=EMAIL_PATTERN, examples=["ada@example.com"])
    password: str = Field(min_length=8, max_length=1024, description="At least 8 characters.")
    name: str = Field(max_length=200, pattern=NAME_PATTERN, examples=["Ada Lovelace"])


class LoginInput(ApiInput):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class TokenInput(ApiInput):
    """Credentials for scripts; omit them when calling from a logged-in session."""

    email: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=1024)
    name: str = Field(default="api", max_length=100, description="A label for the token.")
    expires_in_days: Annotated[int, Field(ge=1, le=3650), WHOLE_NUMBER] | None = Field(
        default=None, description="Days until it stops working; null: never."
    )


class PasswordChangeInput(ApiInput):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024, description="At least 8 characters.")


class UserOut(ApiModel):
    id: int
    email: str
    name: str
    is_platform_admin: bool
    created_at: datetime


class LoginOut(ApiModel):
    user: UserOut
    csrf_token: str = Field(
        description="Send as the X-CSRF-Token header on state-changing requests that rely on "
        "the session cookie."
    )


class TokenOut(ApiModel):
    id: int
    token: str = Field(description="Shown once: only its hash is stored.")
    name: str
    expires_at: datetime | None


class TokenInfoOut(ApiModel):
    """A token as listed: never the token itself, which only its creator saw once."""

    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    current: bool = Field(description="Whether this request was sent with this token.")


class SessionsEnded(ApiModel):
    sessions_ended: int
