from __future__ import annotations

from datetime import datetime

from pydantic import Field

from souq.schemas import ApiInput, ApiModel


class RegisterInput(ApiInput):
    email: str = Field(max_length=320, examples=["ada@example.com"])
    password: str = Field(max_length=1024, description="At least 8 characters.")
    name: str = Field(max_length=200, examples=["Ada Lovelace"])


class LoginInput(ApiInput):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class TokenInput(ApiInput):
    """Credentials for scripts; omit them when calling from a logged-in session."""

    email: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=1024)
    name: str = Field(default="api", max_length=100, description="A label for the token.")


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
    token: str = Field(description="Shown once: only its hash is stored.")
    name: str
