"""What a valid price looks like, as one regular expression per kind of currency (its number
of decimals and the step Stripe charges it in): the OpenAPI description states them, and the
server accepts every price they match, so the two never disagree.

A price is a plain decimal string in the currency's exponent, greater than zero, on the
currency's step and at most Stripe's eight digits of minor units: "19.99" (USD), "500" (JPY),
"1.250" (KWD, steps of 0.010), "1500" or "1500.00" (HUF, whole forints). No sign, spaces or
leading zeros. (The server also reads an exponent such as "1e3", which no pattern lists.)"""

from __future__ import annotations

import re
from collections import defaultdict
from functools import cache

from souq.money import CURRENCIES, MAX_AMOUNT, currency_rule

MAX_DIGITS = len(str(MAX_AMOUNT))  # 99,999,999 minor units: eight digits


@cache
def price_pattern(places: int, step: int) -> str:
    """Positive decimals with at most `places` decimals, a multiple of `step` minor units
    (a power of ten), and at most MAX_DIGITS digits of minor units."""
    whole = f"[1-9][0-9]{{0,{MAX_DIGITS - places - 1}}}"
    free = places - (len(str(step)) - 1)  # decimals that may be other than zero
    if places == 0:
        return f"^{whole}$"
    if free <= 0:
        return rf"^{whole}(?:\.0{{1,{places}}})?$"
    zeros = f"0{{0,{places - free}}}"
    fraction = rf"\.[0-9]{{1,{free}}}{zeros}"
    # "0." needs a non-zero digit among the free decimals.
    small = "|".join("0" * n + f"[1-9][0-9]{{0,{free - n - 1}}}" for n in range(free))
    return rf"^(?:{whole}(?:{fraction})?|0\.(?:{small}){zeros})$"


@cache
def currency_kinds() -> dict[tuple[int, int], tuple[str, ...]]:
    """The currency codes (upper case) by (decimals, step)."""
    kinds: dict[tuple[int, int], list[str]] = defaultdict(list)
    for code, rule in CURRENCIES.items():
        kinds[(rule.exponent, rule.step)].append(code.upper())
    return {kind: tuple(sorted(codes)) for kind, codes in sorted(kinds.items())}


def fits(price: str, currency: str) -> bool:
    rule = currency_rule(currency)
    return re.fullmatch(price_pattern(rule.exponent, rule.step), price) is not None


def fits_any(price: str) -> bool:
    """Whether the price is well formed for some currency (its decimals and step aside)."""
    return any(re.fullmatch(price_pattern(*kind), price) for kind in currency_kinds())
