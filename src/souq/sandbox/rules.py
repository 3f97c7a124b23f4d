"""Stripe's amount, currency, metadata and URL rules: pure functions (see README.md, "Rules")."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from souq.sandbox.errors import invalid
from souq.sandbox.wire import opt_str, req_str

MAX_AMOUNT = 99_999_999
ZERO_DECIMAL = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
     "xaf", "xof", "xpf"]
)  # fmt: skip


THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])


# Stripe's minimum charge per currency, in minor units
# (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).
MINIMUM_CHARGE = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50, "czk": 1500,
    "dkk": 250, "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50, "jpy": 50,
    "mxn": 1000, "myr": 200, "nok": 300, "nzd": 50, "pln": 200, "ron": 200, "sek": 300,
    "sgd": 50, "thb": 1000,
}  # fmt: skip


def stripe_fee(amount: int, percent_bps: int, fixed: int) -> int:
    """Percentage rounded half up, plus the fixed part, never above the amount."""
    return min(amount, (amount * percent_bps + 5_000) // 10_000 + fixed)


def proportional(total: int, part: int, whole: int) -> int:
    """`total * part / whole`, rounded half up (Stripe leaves the rounding unspecified)."""
    if whole <= 0:
        return 0
    return (2 * total * part + whole) // (2 * whole)


def format_amount(amount: int, currency: str) -> str:
    if currency in ZERO_DECIMAL:
        return f"{amount} {currency.upper()}"
    digits = 3 if currency in THREE_DECIMAL else 2
    value = f"{amount / 10**digits:,.{digits}f}"
    return f"${value}" if currency == "usd" else f"{value} {currency.upper()}"


def check_metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid("Invalid object", param=param, code="parameter_invalid_object")
    if len(value) > 50:
        raise invalid(
            "Metadata can have up to 50 keys, but you passed in more.",
            param=param,
        )
    result: dict[str, str] = {}
    for key, item in value.items():
        if len(key) > 40:
            raise invalid(
                f"Metadata keys can have up to 40 characters, but you passed in {key!r}.",
                param=f"{param}[{key}]",
            )
        if "[" in key or "]" in key:
            raise invalid("Metadata keys can't contain square brackets.", param=f"{param}[{key}]")
        if not isinstance(item, str | int | bool):
            raise invalid("Metadata values must be strings.", param=f"{param}[{key}]")
        text = str(item).lower() if isinstance(item, bool) else str(item)
        if len(text) > 500:
            raise invalid("Metadata values can have up to 500 characters.", param=f"{param}[{key}]")
        result[key] = text
    return result


def merge_metadata(current: dict[str, str], update: Any, param: str = "metadata") -> dict[str, str]:
    """Stripe's update semantics: keys merge, an empty value unsets, an empty string clears."""
    if update == "":
        return {}
    if update is None:
        return current
    merged = dict(current)
    if not isinstance(update, dict):
        raise invalid("Invalid object", param=param, code="parameter_invalid_object")
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return check_metadata(merged, param)


def check_currency(value: str, param: str = "currency") -> str:
    currency = value.lower()
    if len(currency) != 3 or not currency.isalpha():
        raise invalid(f"Invalid currency: {value}.", param=param, code="invalid_currency")
    return currency


def check_amount(amount: int, currency: str, param: str, *, minimum: bool) -> None:
    if amount <= 0 and not (amount == 0 and not minimum):
        raise invalid(
            "This value must be greater than or equal to 1.",
            param=param,
            code="parameter_invalid_integer",
        )
    if amount > MAX_AMOUNT:
        raise invalid(
            "Amount must be no more than $999,999.99", param=param, code="amount_too_large"
        )
    if currency in THREE_DECIMAL and amount % 10 != 0:
        raise invalid(
            f"Amounts in {currency.upper()} must have a last digit of 0: Stripe charges "
            "three-decimal currencies in multiples of 10 minor units.",
            param=param,
            code="invalid_amount",
        )
    if minimum:
        least = MINIMUM_CHARGE.get(currency, 50 if currency not in ZERO_DECIMAL else 1)
        if amount < least:
            raise invalid(
                f"Amount must be at least {format_amount(least, currency)}",
                param=param,
                code="amount_too_small",
            )


def check_url(value: str, param: str) -> str:
    """An absolute http(s) URL; Stripe answers `url_invalid` otherwise
    (https://docs.stripe.com/error-codes#url-invalid)."""
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(ch.isspace() or ord(ch) < 32 for ch in value)
    ):
        raise invalid("Not a valid URL", param=param, code="url_invalid")
    return value


def req_url(params: dict[str, Any], key: str) -> str:
    return check_url(req_str(params, key), key)


def opt_url(params: dict[str, Any], key: str) -> str | None:
    value = opt_str(params, key)
    return None if value is None else check_url(value, key)
