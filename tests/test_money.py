"""Money arithmetic: minor units in Stripe's currency table, the commission rule, and the
sandbox's copy of Stripe's rules agreeing with Souq's."""

import re
from decimal import Decimal

import pytest

from souq.money import (
    CURRENCIES,
    FeeRule,
    MoneyError,
    display,
    exponent,
    format_amount,
    minimum_charge,
    normalize_currency,
    order_fees,
    parse_amount,
    platform_fee,
)


@pytest.mark.parametrize(
    ("currency", "places"),
    [("usd", 2), ("EUR", 2), ("jpy", 0), ("kwd", 3), ("bhd", 3), ("huf", 2), ("isk", 2),
     ("idr", 2), ("twd", 2), ("ugx", 0), ("cop", 2)],
)  # fmt: skip
def test_exponent_is_stripes_not_cldrs(currency: str, places: int) -> None:
    assert exponent(currency) == places


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [("19.99", "usd", 1999), ("500", "jpy", 500), ("1.250", "kwd", 1250), ("7", "usd", 700),
     ("0.5", "eur", 50), (" 3.10 ", "usd", 310), ("1000", "huf", 100000),
     ("10.45", "huf", 1045), ("5000", "isk", 500000), ("150000", "idr", 15000000),
     ("5000", "ugx", 5000), ("1.25", "kwd", 1250), (".5", "usd", 50),
     ("1e3", "usd", 100000), ("1.5E1", "jpy", 15)],
)  # fmt: skip
def test_parse_amount(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [("1.999", "usd"), ("500.5", "jpy"), ("1.2505", "kwd"), ("abc", "usd"), ("NaN", "usd"),
     ("Infinity", "usd"), ("", "usd"), ("1.255", "kwd"), ("5.50", "isk"), ("10.5", "ugx"),
     ("1e1000000", "usd"), ("1e-1000000", "usd"), ("1e100", "usd"), ("9" * 400, "usd"),
     ("1.2.3", "usd"),
     ("0x10", "usd"), ("19.99", "xxx")],
)  # fmt: skip
def test_parse_amount_refuses_what_is_not_exact(text: str, currency: str) -> None:
    with pytest.raises(MoneyError):
        parse_amount(text, currency)


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [(1999, "usd", "19.99"), (5, "usd", "0.05"), (500, "jpy", "500"), (1250, "kwd", "1.250"),
     (-250, "usd", "-2.50"), (0, "eur", "0.00")],
)  # fmt: skip
def test_format_amount(minor: int, currency: str, text: str) -> None:
    assert format_amount(minor, currency) == text
    assert parse_amount(text, currency) == minor


def test_currency_codes_are_lower_case_and_known() -> None:
    assert normalize_currency("USD") == "usd"
    assert normalize_currency("jpy") == "jpy"
    assert normalize_currency(" HUF ") == "huf"
    for bad in ("XYZ", "us", "usdd", "12$", "xxx", "XTS", "xau", "xag", "xdr", "ves", ""):
        with pytest.raises(MoneyError):
            normalize_currency(bad)


# The commission table documented in README.md: fee = total x bps / 10000, half up, <= total.
@pytest.mark.parametrize(
    ("total", "bps", "fee"),
    [
        (1000, 500, 50),  # 10.00 USD at 5% = 0.50
        (1010, 500, 51),  # 50.5 rounds up
        (1009, 500, 50),  # 50.45 rounds down
        (1990, 500, 100),  # 99.5 rounds up
        (999, 500, 50),  # 49.95 rounds up
        (1999, 1250, 250),  # 249.875 rounds up (a 12.5% store override)
        (500, 500, 25),  # 500 JPY at 5% = 25 yen
        (1234, 500, 62),  # 1,234 JPY: 61.7 rounds up to 62 yen
        (1000, 10_000, 1000),  # never above the total
        (1000, 0, 0),
        (99_999_999, 500, 5_000_000),
    ],
)
def test_platform_fee(total: int, bps: int, fee: int) -> None:
    assert platform_fee(total, bps, "usd") == fee
    assert 0 <= platform_fee(total, bps, "usd") <= total


def test_platform_fee_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        platform_fee(-1, 500, "usd")
    with pytest.raises(ValueError):
        platform_fee(100, 10_001, "usd")


def test_minimum_charge() -> None:
    assert minimum_charge("usd") == 50
    assert minimum_charge("jpy") == 50
    assert minimum_charge("gbp") == 30
    assert minimum_charge("huf") == 17500  # 175.00 HUF, in Stripe's hundredths
    assert minimum_charge("kwd") == 500
    assert minimum_charge("isk") == 100  # one whole króna
    assert minimum_charge("krw") == 50


def test_the_fee_is_a_chargeable_amount_in_every_currency() -> None:
    """Stripe refuses a KWD application fee whose last digit is not 0, or an ISK fee in
    fractions of a króna: the commission rounds half up to the currency's step."""
    assert platform_fee(1250, 500, "kwd") == 60  # 62.5 → 60 (steps of 10)
    assert platform_fee(1350, 500, "kwd") == 70  # 67.5 → 70
    assert platform_fee(500000, 333, "isk") == 16700  # 16650 → 16700 (steps of 100)
    for code, rule in CURRENCIES.items():
        for total in (rule.minimum_charge, rule.minimum_charge * 7, 99_999_000):
            fee = platform_fee(total, 500, code)
            assert fee % rule.step == 0 and 0 <= fee <= total, (code, total, fee)


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [(1999, "usd", "$19.99"), (500, "jpy", "¥500"), (1250, "kwd", "KWD1.250"),
     (100000, "huf", "HUF1,000"), (1045, "huf", "HUF10.45"), (500000, "isk", "ISK5,000"),
     (15000000, "idr", "IDR150,000"), (15000001, "idr", "IDR150,000.01"),
     (5000, "ugx", "UGX5,000")],
)  # fmt: skip
def test_display_is_exact(minor: int, currency: str, shown: str) -> None:
    assert display(minor, currency) == shown


def test_every_currency_round_trips_through_text_and_display() -> None:
    for code, rule in CURRENCIES.items():
        minor = rule.minimum_charge * 3 + rule.step * 7
        text = format_amount(minor, code)
        assert parse_amount(text, code.upper()) == minor, code
        shown = re.search(r"\d[\d,]*(\.\d+)?", display(minor, code))
        assert shown is not None, code
        assert Decimal(shown.group(0).replace(",", "")) == Decimal(minor).scaleb(-rule.exponent)


def _sandbox_accepts(amount: int, code: str, *, minimum: bool) -> bool:
    from souq.sandbox import rules
    from souq.sandbox.errors import StripeError

    try:
        rules.check_amount(amount, code, "amount", minimum=minimum)
    except StripeError:
        return False
    return True


def _sandbox_accepts_currency(code: str) -> bool:
    from souq.sandbox import rules
    from souq.sandbox.errors import StripeError

    try:
        rules.check_currency(code)
    except StripeError:
        return False
    return True


def test_the_sandbox_applies_the_same_currency_rules() -> None:
    from souq.sandbox import rules

    gaps: set[str] = set()
    for code, rule in CURRENCIES.items():
        sandbox_exponent = (
            0 if code in rules.ZERO_DECIMAL else 3 if code in rules.THREE_DECIMAL else 2
        )
        if sandbox_exponent != rule.exponent:
            gaps.add(f"exponent:{code}")
        least = rule.minimum_charge
        if not _sandbox_accepts(least, code, minimum=True) or (
            least > rule.step and _sandbox_accepts(least - rule.step, code, minimum=True)
        ):
            gaps.add(f"minimum:{code}")
        if rule.step > 1 and _sandbox_accepts(least + rule.step // 2, code, minimum=False):
            gaps.add(f"step:{code}")
    for code in ("xxx", "xts", "xau"):
        if _sandbox_accepts_currency(code):
            gaps.add(f"unsupported:{code}")
    assert gaps == set()


@pytest.mark.parametrize(
    ("subtotal", "code", "rule", "commission", "buyer_fee"),
    [
        # The worked table in README.md ("Commission and fees").
        (1009, "usd", FeeRule(bps=500), 50, 0),  # 50.45 → 50
        (1010, "usd", FeeRule(bps=500, buyer_bps=250), 51, 25),  # 50.5 → 51; 25.25 → 25
        (2005, "usd", FeeRule(bps=800, fixed=30, minimum=100), 190, 0),  # 160.4 → 160, + 30
        (500, "usd", FeeRule(bps=800, fixed=30, minimum=100), 100, 0),  # 40 + 30 → minimum
        (60, "usd", FeeRule(bps=0, minimum=100), 60, 0),  # never above the subtotal
        (1235, "jpy", FeeRule(bps=1000, fixed=30), 154, 0),  # 123.5 → 124, + 30
        (2350, "kwd", FeeRule(bps=1000, fixed=150), 390, 0),  # 235 → 240 (steps of 10), + 150
        (2350, "kwd", FeeRule(bps=0, buyer_bps=300), 0, 70),  # 70.5 → 70
        (500000, "isk", FeeRule(bps=333), 16700, 0),  # 16650 → 16700 (steps of 100)
    ],
)
def test_order_fees(
    subtotal: int, code: str, rule: FeeRule, commission: int, buyer_fee: int
) -> None:
    fees = order_fees(subtotal, rule, code)
    assert (fees.commission, fees.buyer_fee) == (commission, buyer_fee)
    assert fees.application_fee == commission + buyer_fee


def test_order_fees_refuse_negative_amounts() -> None:
    with pytest.raises(ValueError):
        order_fees(1000, FeeRule(bps=500, fixed=-1), "usd")
    with pytest.raises(ValueError):
        order_fees(1000, FeeRule(bps=500, minimum=-1), "usd")
