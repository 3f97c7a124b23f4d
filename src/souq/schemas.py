"""The base every JSON schema shares: camelCase keys in and out, and text a database accepts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic.alias_generators import to_camel

from souq.errors import InvalidInput
from souq.money import MoneyError, normalize_currency


class ApiModel(BaseModel):
    """A response body: camelCase keys, read straight from ORM objects."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        from_attributes=True,
    )


class ApiInput(ApiModel):
    """A request body: unknown keys are refused (a typo must not be silently ignored), and so
    is text no database can store (NUL characters, lone surrogates), which would otherwise
    surface as a 500 from the driver."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            check_storable(value)
        return value


def check_storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text may not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode") from None
    return value


NAME_MAX_LENGTH = 200


def clean_name(name: str, field: str = "name") -> str:
    """A person's, store's or listing's name with its whitespace collapsed; an empty one, or
    one over NAME_MAX_LENGTH characters, is a 422 naming the field."""
    cleaned = " ".join(name.split())
    problem = (
        "a name is required"
        if not cleaned
        else f"at most {NAME_MAX_LENGTH} characters"
        if len(cleaned) > NAME_MAX_LENGTH
        else None
    )
    if problem is not None:
        raise InvalidInput(f"{field}: {problem}", details=[{"field": field, "message": problem}])
    return cleaned


def currency_input(code: str, field: str = "currency") -> str:
    """A currency code from a request, in either case → lower case; a 422 naming the field."""
    try:
        return normalize_currency(code)
    except MoneyError as exc:
        raise InvalidInput(str(exc), details=[{"field": field, "message": str(exc)}]) from None


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] | None = None


class ErrorBody(BaseModel):
    """The one error shape: `{"error": {"code", "message", "details"?}}`."""

    error: ErrorInfo


_ERROR_DESCRIPTIONS = {
    400: "A bad request: a webhook without a valid signature, or not a usable event",
    401: "Not logged in, or a bad API token",
    403: "Not allowed for your role, or a missing CSRF token",
    404: "No such resource, or not visible to you",
    409: "Conflicts with the current state",
    422: "Invalid input; `details` names the fields",
    429: "Too many failed logins; try again later",
    502: "Stripe refused the request; nothing was charged",
    503: "Stripe did not answer in time; retry with the same Idempotency-Key",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting the error statuses a route may answer with."""
    return {
        status: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }
