"""What a valid price looks like, as one regular expression per currency exponent: the server
checks prices with it and the OpenAPI description states it, so the two never disagree.

A price is a plain decimal string in the currency's exponent, greater than zero and at most
Stripe's eight digits of minor units: "19.99" (USD, 2 decimals), "500" (JPY, 0), "1.250"
(KWD, 3). No sign, exponent, spaces or leading zeros."""

from __future__ import annotations

import re
from collections import defaultdict
from functools import cache

from babel import Locale

from souq.money import MAX_AMOUNT, MoneyError, exponent, normalize_currency

MAX_DIGITS = len(str(MAX_AMOUNT))  # 99,999,999 minor units: eight digits


@cache
def price_pattern(places: int) -> str:
    """Positive decimals of at most `places` decimals and MAX_DIGITS digits of minor units."""
    whole = MAX_DIGITS - places
    if places == 0:
        return rf"^[1-9][0-9]{{0,{whole - 1}}}$"
    # Either a non-zero whole part, or "0." and a non-zero fraction.
    nonzero_fraction = "|".join(
        "0" * zeros + f"[1-9][0-9]{{0,{places - zeros - 1}}}" for zeros in range(places)
    )
    return (
        rf"^(?:[1-9][0-9]{{0,{whole - 1}}}(?:\.[0-9]{{1,{places}}})?"
        rf"|0\.(?:{nonzero_fraction}))$"
    )


@cache
def currencies_by_places() -> dict[int, tuple[str, ...]]:
    """The accepted currency codes (upper case), grouped by their number of decimals."""
    groups: dict[int, list[str]] = defaultdict(list)
    for code in Locale.parse("en").currencies:
        try:
            normalize_currency(str(code))
        except MoneyError:
            continue
        groups[exponent(str(code))].append(str(code).upper())
    return {places: tuple(sorted(codes)) for places, codes in sorted(groups.items())}


def fits(price: str, currency: str) -> bool:
    return re.fullmatch(price_pattern(exponent(currency)), price) is not None


def fits_any(price: str) -> bool:
    """Whether the price is well formed for some currency (its decimals aside)."""
    return any(re.fullmatch(price_pattern(places), price) for places in currencies_by_places())
