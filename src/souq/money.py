"""Money: integer minor units plus a lower-case ISO 4217 code. Pure functions only.

Amounts cross the JSON API as decimal strings in the currency's own exponent ("19.99" USD,
"500" JPY, "1.250" KWD); the exponent comes from Babel's CLDR data.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from babel import Locale
from babel.numbers import format_currency, get_currency_precision

MAX_AMOUNT = 99_999_999  # Stripe: at most eight digits of minor units.

# Stripe's minimum charge per currency, in minor units (docs:/currencies, minimums).
MINIMUM_CHARGE = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50, "czk": 1500,
    "dkk": 250, "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50, "jpy": 50,
    "mxn": 1000, "myr": 200, "nok": 300, "nzd": 50, "pln": 200, "ron": 200, "sek": 300,
    "sgd": 50, "thb": 1000,
}  # fmt: skip


class MoneyError(ValueError):
    """An amount or currency a client sent that cannot be money."""


def normalize_currency(code: str) -> str:
    """An ISO 4217 code in either case → lower case; unknown codes are refused."""
    upper = code.strip().upper()
    if len(upper) != 3 or not upper.isalpha() or upper not in _CODES:
        raise MoneyError(f"unknown currency {code!r}")
    return upper.lower()


_CODES: frozenset[str] = frozenset(Locale.parse("en").currencies)


def exponent(currency: str) -> int:
    """How many decimal places the currency's minor unit has (USD 2, JPY 0, KWD 3)."""
    return int(str(get_currency_precision(currency.upper())))


def parse_amount(text: str, currency: str) -> int:
    """A decimal string in the currency's exponent → minor units. Too many decimals is an
    error, never a silent rounding."""
    if not isinstance(text, str):
        raise MoneyError('amounts are decimal strings, e.g. "19.99"')
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise MoneyError(f"{text!r} is not a decimal amount") from None
    if not value.is_finite():
        raise MoneyError(f"{text!r} is not a decimal amount")
    places = exponent(currency)
    minor = value.scaleb(places)
    if minor != minor.to_integral_value():
        raise MoneyError(f"{text!r} has more than {places} decimal places for {currency.upper()}")
    return int(minor)


def format_amount(minor: int, currency: str) -> str:
    """Minor units → the decimal string the API returns ("19.99", "500", "1.250")."""
    places = exponent(currency)
    if places == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**places)
    return f"{sign}{whole}.{frac:0{places}d}"


def display(minor: int, currency: str, locale: str = "en_US") -> str:
    """A human rendering for pages: "$19.99", "¥500"."""
    value = Decimal(minor).scaleb(-exponent(currency))
    return str(format_currency(value, currency.upper(), locale=locale))


def platform_fee(total: int, bps: int) -> int:
    """The platform's commission: total × bps / 10000 in integers, rounded half up, never
    above the total. 500 bps of 1010 is 50.5 → 51; of 1009 is 50.45 → 50."""
    if total < 0 or not 0 <= bps <= 10_000:
        raise ValueError("total must be non-negative and bps within 0..10000")
    return min(total, (total * bps + 5_000) // 10_000)


def minimum_charge(currency: str) -> int:
    """Stripe's smallest chargeable amount in minor units (0.50 USD-equivalent otherwise)."""
    scale = int(10 ** max(exponent(currency) - 2, 0))
    return MINIMUM_CHARGE.get(currency.lower(), 50 * scale)
