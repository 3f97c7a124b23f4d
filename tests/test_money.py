"""Money arithmetic: minor units, exponents from Babel, the commission rule."""

import pytest

from souq.money import (
    MoneyError,
    exponent,
    format_amount,
    minimum_charge,
    normalize_currency,
    parse_amount,
    platform_fee,
)


@pytest.mark.parametrize(
    ("currency", "places"), [("usd", 2), ("EUR", 2), ("jpy", 0), ("kwd", 3), ("bhd", 3)]
)
def test_exponent_comes_from_babel(currency: str, places: int) -> None:
    assert exponent(currency) == places


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [("19.99", "usd", 1999), ("500", "jpy", 500), ("1.250", "kwd", 1250), ("7", "usd", 700),
     ("0.5", "eur", 50), (" 3.10 ", "usd", 310)],
)  # fmt: skip
def test_parse_amount(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [("1.999", "usd"), ("500.5", "jpy"), ("1.2505", "kwd"), ("abc", "usd"), ("NaN", "usd"),
     ("Infinity", "usd"), ("", "usd")],
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
    for bad in ("XYZ", "us", "usdd", "12$"):
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
    assert platform_fee(total, bps) == fee
    assert 0 <= platform_fee(total, bps) <= total


def test_platform_fee_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        platform_fee(-1, 500)
    with pytest.raises(ValueError):
        platform_fee(100, 10_001)


def test_minimum_charge() -> None:
    assert minimum_charge("usd") == 50
    assert minimum_charge("jpy") == 50
    assert minimum_charge("gbp") == 30
