"""Stripe's amount, currency, metadata and URL rules: pure functions (see README.md, "Rules")."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from souq.money import CURRENCIES, MAX_AMOUNT, THREE_DECIMAL, ZERO_DECIMAL
from souq.sandbox.errors import invalid
from souq.sandbox.wire import opt_str, req_str

# Stripe's currency table (decimals, three-decimal and ISK steps, minimum charges) is the one
# Souq itself uses, imported rather than copied so the two can never disagree.
__all__ = ["MAX_AMOUNT", "THREE_DECIMAL", "ZERO_DECIMAL"]


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
    if currency not in CURRENCIES:
        raise invalid(
            f"Invalid currency: {value}. Stripe currently supports these currencies: "
            + ", ".join(CURRENCIES),
            param=param,
            code="invalid_currency",
        )
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
    rule = CURRENCIES.get(currency)
    if rule is None:
        check_currency(currency)
        return
    if amount % rule.step != 0:
        raise invalid(
            f"Amounts in {currency.upper()} must be multiples of {rule.step} minor units "
            "(three-decimal currencies end in 0; ISK is charged in whole krónur).",
            param=param,
            code="invalid_amount",
        )
    if minimum and amount < rule.minimum_charge:
        raise invalid(
            f"Amount must be at least {format_amount(rule.minimum_charge, currency)}",
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
