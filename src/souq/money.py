"""Money: integer minor units plus a lower-case ISO 4217 code. Pure functions only.

Every amount Souq parses, shows, checks or sends to Stripe is in *Stripe's* minor units, from
the one table below, which follows Stripe's "Supported currencies" page
(https://docs.stripe.com/currencies): its presentment currencies, the zero-decimal ones, the
three-decimal ones whose last digit must be 0, and its special cases
(https://docs.stripe.com/currencies#special-cases). Stripe's units are not CLDR's: Babel says
HUF, ISK or IDR have no decimals, but Stripe's API counts them in hundredths, so a price of
"1000" HUF is 100000 minor units. Babel's only job here is to format an amount for a locale.

Amounts cross the JSON API as decimal strings in Stripe's exponent ("19.99" USD, "500" JPY,
"1.250" KWD, "1000" or "1000.00" HUF).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from babel.numbers import format_currency, get_currency_precision

MAX_AMOUNT = 99_999_999  # Stripe: at most eight digits of minor units.


@dataclass(frozen=True)
class Currency:
    """How Stripe counts one currency."""

    code: str
    exponent: int
    # Charges must be a multiple of this many minor units: 10 for the three-decimal
    # currencies, 100 for ISK (whole krónur only, in hundredths).
    step: int = 1
    # Stripe's smallest charge in minor units, from its table of minimum charge amounts.
    minimum: int | None = None
    # Payouts must be a multiple of this many minor units (HUF, TWD: whole units only).
    payout_step: int = 1

    @property
    def minimum_charge(self) -> int:
        """Stripe's table for the currencies it lists; for the others Stripe's minimum is the
        equivalent of 0.50 USD at the day's rate, which Souq cannot know: half a major unit
        (50 units of a zero-decimal currency) is the floor checked here, and Stripe's own
        check at session creation catches the rest."""
        if self.minimum is not None:
            return self.minimum
        floor: int = 50 * 10 ** max(self.exponent - 2, 0)
        return max(floor, self.step)


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


# https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL = _codes("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf")
# https://docs.stripe.com/currencies#three-decimal: the last digit must be 0.
THREE_DECIMAL = _codes("bhd jod kwd omr tnd")
# Every other presentment currency is two-decimal in Stripe's API
# (https://docs.stripe.com/currencies#presentment-currencies).
TWO_DECIMAL = _codes(
    """usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bmd bnd bob brl bsd bwp byn
    bzd cad cdf chf cny cop crc cve czk dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd gtq gyd
    hkd hnl htg huf idr ils inr isk jmd kes kgs khr kyd kzt lak lbp lkr lrd lsl mad mdl mkd mmk
    mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd pab pen pgk php pkr pln qar ron rsd
    rub sar sbd scr sek sgd shp sle sos srd std szl thb tjs top try ttd twd tzs uah uyu uzs wst
    xcd xcg yer zar zmw"""
)
# https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts
MINIMUM_CHARGE = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50, "czk": 1500,
    "dkk": 250, "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50, "jpy": 50,
    "mxn": 1000, "myr": 200, "nok": 300, "nzd": 50, "pln": 200, "ron": 200, "sek": 300,
    "sgd": 50, "thb": 1000,
}  # fmt: skip
# https://docs.stripe.com/currencies#special-cases, and for ISK
# https://support.stripe.com/questions/deprecation-of-fractional-isk-charges-and-refunds:
# ISK stays two-decimal in the API but charges must be whole krónur (multiples of 100);
# HUF and TWD charge in hundredths but pay out whole units only. UGX is zero-decimal.
CHARGE_STEP = {"isk": 100}
PAYOUT_STEP = {"huf": 100, "twd": 100, "isk": 100}


def _currency(code: str) -> Currency:
    exponent = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    return Currency(
        code=code,
        exponent=exponent,
        step=CHARGE_STEP.get(code, 10 if exponent == 3 else 1),
        minimum=MINIMUM_CHARGE.get(code),
        payout_step=PAYOUT_STEP.get(code, 1),
    )


CURRENCIES: dict[str, Currency] = {
    code: _currency(code) for code in sorted(ZERO_DECIMAL | THREE_DECIMAL | TWO_DECIMAL)
}

# A decimal: digits with at most one point and an optional short exponent ("1e3" is exactly
# 1000); bounded, so no arithmetic on it can overflow ("1e1000000" is refused, not a 500).
_DECIMAL = re.compile(r"[+-]?(\d{1,20}(\.\d{0,20})?|\.\d{1,20})([eE][+-]?\d{1,2})?")


class MoneyError(ValueError):
    """An amount or currency a client sent that cannot be money."""


def currency_rule(code: str) -> Currency:
    """Stripe's rules for a currency code in either case; unsupported codes are refused."""
    found = CURRENCIES.get(code.strip().lower()) if isinstance(code, str) else None
    if found is None:
        raise MoneyError(f"{code!r} is not a currency Stripe can charge in")
    return found


def normalize_currency(code: str) -> str:
    """An ISO 4217 code in either case → lower case; codes Stripe cannot charge in (XXX, XTS,
    XAU, made-up ones) are refused."""
    return currency_rule(code).code


def exponent(code: str) -> int:
    """How many decimal places Stripe's minor unit has (USD 2, JPY 0, KWD 3, HUF 2)."""
    return currency_rule(code).exponent


def parse_amount(text: str, code: str) -> int:
    """A decimal string in Stripe's exponent → minor units. More decimals than the currency
    has, or an amount Stripe cannot charge (KWD "1.255", ISK "5.50"), is an error, never a
    silent rounding."""
    if not isinstance(text, str):
        raise MoneyError('amounts are decimal strings, e.g. "19.99"')
    rule = currency_rule(code)
    stripped = text.strip()
    if not _DECIMAL.fullmatch(stripped):
        raise MoneyError(f"{text[:40]!r} is not a decimal amount like 19.99")
    minor = Decimal(stripped).scaleb(rule.exponent)
    if minor != minor.to_integral_value():
        raise MoneyError(
            f"{stripped!r} has more than {rule.exponent} decimal places for {rule.code.upper()}"
        )
    amount = int(minor)
    if amount % rule.step:
        raise MoneyError(
            f"{stripped!r}: Stripe charges {rule.code.upper()} only in steps of "
            f"{format_amount(rule.step, rule.code)}"
        )
    return amount


def format_amount(minor: int, code: str) -> str:
    """Minor units → the decimal string the API returns ("19.99", "500", "1.250")."""
    places = exponent(code)
    if places == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**places)
    return f"{sign}{whole}.{frac:0{places}d}"


# Babel's formatting is ~0.1 ms a call, once per price on every page row: a page of a catalogue
# shows the same few prices again and again (measured on /shop with `python -m bench.catalogue`).
@lru_cache(maxsize=4096)
def display(minor: int, code: str, locale: str = "en_US") -> str:
    """A human rendering for pages ("$19.99", "¥500", "HUF1,000", "HUF10.45"): exact, with
    the locale's everyday decimals when the amount fits them and Stripe's otherwise."""
    rule = currency_rule(code)
    value = Decimal(minor).scaleb(-rule.exponent)
    everyday = int(str(get_currency_precision(rule.code.upper())))
    if everyday >= rule.exponent or minor % 10 ** (rule.exponent - everyday) == 0:
        return str(format_currency(value, rule.code.upper(), locale=locale))
    return str(
        format_currency(
            value,
            rule.code.upper(),
            locale=locale,
            currency_digits=False,
            decimal_quantization=False,
        )
    )


def platform_fee(total: int, bps: int, code: str) -> int:
    """The platform's commission: total × bps / 10000 in integers, rounded half up to what
    Stripe can charge in the currency (a multiple of 10 for KWD), never above the total.
    500 bps of 1010 USD cents is 50.5 → 51; of 1009 is 50.45 → 50."""
    if total < 0 or not 0 <= bps <= 10_000:
        raise ValueError("total must be non-negative and bps within 0..10000")
    step = currency_rule(code).step
    unit = 10_000 * step
    return min(total, (total * bps + unit // 2) // unit * step)


def minimum_charge(code: str) -> int:
    """Stripe's smallest chargeable amount in minor units (see Currency.minimum_charge)."""
    return currency_rule(code).minimum_charge


@dataclass(frozen=True)
class FeeRule:
    """The values that price one order's fees, copied onto the order when it is made so a
    later change of the platform's or the store's rule never reprices it. Amounts are minor
    units of the order's currency, already multiples of its step."""

    bps: int
    fixed: int = 0
    minimum: int = 0
    buyer_bps: int = 0


@dataclass(frozen=True)
class Fees:
    """What a buyer pays on top of the subtotal, and what the platform keeps of it all."""

    commission: int
    buyer_fee: int

    @property
    def application_fee(self) -> int:
        """The platform's share of the charge: the store's commission and the buyer's fee."""
        return self.commission + self.buyer_fee


def order_fees(subtotal: int, rule: FeeRule, code: str) -> Fees:
    """The commission is bps of the subtotal (rounded half up to the currency's step, as in
    `platform_fee`) plus the fixed amount, at least the minimum, never above the subtotal;
    the buyer's service fee is buyer_bps of the subtotal, rounded the same way, charged on
    top. 10.09 USD at 500 bps + 0.30 fixed, minimum 0.60 → 0.50 + 0.30 = 0.80."""
    if rule.fixed < 0 or rule.minimum < 0:
        raise ValueError("fixed and minimum fees must be non-negative")
    commission = min(
        subtotal, max(platform_fee(subtotal, rule.bps, code) + rule.fixed, rule.minimum)
    )
    return Fees(commission=commission, buyer_fee=platform_fee(subtotal, rule.buyer_bps, code))
