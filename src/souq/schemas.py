"""The base every JSON schema shares: camelCase keys in and out, and text a database accepts."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any

from babel import Locale
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel

from souq.errors import InvalidInput
from souq.money import MoneyError, normalize_currency

# Patterns shared by request schemas and the services, written so that JSON Schema (ECMA
# regexes), pydantic (Rust regexes) and Python's re agree on every character: blank means
# whitespace, a C0 or C1 control character, or the BOM in all three.
_BLANK = r"\s\x00-\x1f\x7f-\x9f\uFEFF"
NUL_FREE_PATTERN = r"^[^\x00]*$"
# Text with at least one visible character (names).
NAME_PATTERN = rf"^[^\x00]*[^{_BLANK}][^\x00]*$"
EMAIL_PATTERN = rf"^[^@{_BLANK}]+@[^@{_BLANK}]+\.[^@{_BLANK}]+$"
_VISIBLE = re.compile(rf"[^{_BLANK}]")
EMAIL = re.compile(EMAIL_PATTERN)


def has_visible_text(value: str) -> bool:
    return _VISIBLE.search(value) is not None


def document_storable_text(schema: dict[str, Any]) -> None:
    """Say in the JSON Schema what `check_storable` enforces: no NUL in any string."""
    if schema.get("type") == "string" and not {"pattern", "enum", "const", "format"} & set(schema):
        schema["pattern"] = NUL_FREE_PATTERN
    for value in schema.values():
        if isinstance(value, dict):
            document_storable_text(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    document_storable_text(item)


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

    model_config = ConfigDict(extra="forbid", json_schema_extra=document_storable_text)

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


# Where a store's Express account can be opened: the countries Stripe supports accounts in
# (https://stripe.com/global), for which Express accounts can be created "for most countries
# Stripe supports" (https://docs.stripe.com/connect/express-accounts). India is left out: its
# accounts are invite-only and Connect there is not self-serve.
STRIPE_CONNECT_COUNTRIES: frozenset[str] = frozenset({
    "AE", "AT", "AU", "BE", "BG", "BR", "CA", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI",
    "FR", "GB", "GI", "GR", "HK", "HR", "HU", "IE", "IT", "JP", "LI", "LT", "LU", "LV", "MT",
    "MX", "MY", "NL", "NO", "NZ", "PL", "PT", "RO", "SE", "SG", "SI", "SK", "TH", "US"
})  # fmt: skip


def _any_case(codes: Iterable[str], what: str) -> tuple[AfterValidator, WithJsonSchema]:
    """A code from `codes` in any letter case, and the JSON Schema saying exactly that (a
    pattern, since JSON Schema has no case-insensitive enum)."""
    allowed = frozenset(code.upper() for code in codes)

    def check(value: str) -> str:
        if value.upper() not in allowed:
            raise ValueError(f"not a {what} code this API accepts")
        return value

    schema = {"type": "string", "pattern": any_case_pattern(allowed)}
    return AfterValidator(check), WithJsonSchema(schema)


def any_case_pattern(codes: Iterable[str]) -> str:
    either = ["".join(f"[{ch.upper()}{ch.lower()}]" for ch in code) for code in sorted(codes)]
    return "^(?:" + "|".join(either) + ")$"


CountryCode = Annotated[str, *_any_case(STRIPE_CONNECT_COUNTRIES, "country")]


def _accepted_currency(code: str) -> bool:
    try:
        normalize_currency(code)
    except MoneyError:
        return False
    return True


# Every code the money module accepts, in any case: the schema tells a client (or a fuzzer)
# exactly which values are valid.
CurrencyCode = Annotated[
    str,
    *_any_case(
        [str(c) for c in Locale.parse("en").currencies if _accepted_currency(str(c))], "currency"
    ),
]


def _whole_number(value: Any) -> Any:
    # JSON Schema's integer includes 5.0, never true or "5"; pydantic's lax int is the other
    # way round, and its strict int refuses 5.0. This is exactly JSON Schema's rule.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


# Put it after the number's bounds: Annotated[int, Field(ge=…, le=…), WHOLE_NUMBER], so the
# bounds still appear in the JSON Schema.
WHOLE_NUMBER = BeforeValidator(_whole_number)


NAME_MAX_LENGTH = 200


def clean_name(name: str, field: str = "name") -> str:
    """A person's, store's or listing's name with its whitespace collapsed; an empty one, or
    one over NAME_MAX_LENGTH characters, is a 422 naming the field."""
    cleaned = " ".join(name.split())
    problem = (
        "a name is required"
        if not has_visible_text(cleaned)
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
    # What is wrong with the field, where a client may act on it (a cart's problems).
    code: str | None = None


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
    413: "The request body is too large",
    422: "Invalid input; `details` names the fields",
    429: "Too many attempts; Retry-After says when to try again",
    502: "Stripe refused the request; nothing was charged",
    503: "Stripe did not answer in time; retry with the same Idempotency-Key",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting the error statuses a route may answer with."""
    return {
        status: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }
