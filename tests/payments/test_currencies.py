"""Every currency Stripe supports, end to end: a price string becomes Stripe's minor units, the
sandbox charges exactly that, and the pages show exactly the price again. Currencies Stripe
does not support are refused where a store or listing is made."""

from __future__ import annotations

import re
from decimal import Decimal

import httpx
import pytest

from souq.money import CURRENCIES, format_amount
from tests.helpers import anonymous, api_user, create_store, error_code
from tests.payments.stripe_helpers import (
    checkout,
    listing,
    onboarded_team,
    sdk,
    session_id_of,
    start,
    webhooks_paused,
)
from tests.servers import LiveServer


@pytest.mark.slow
def test_a_price_in_every_currency_is_charged_and_shown_exactly(live: LiveServer) -> None:
    with (
        onboarded_team(live, name="Every Currency") as team,
        anonymous(live) as buyer,
        httpx.Client(base_url=f"{live.sandbox_url}/_control", timeout=60) as control,
        # The success page reads each session from Stripe itself; webhooks would only add
        # the same work a hundred times over.
        webhooks_paused(live),
    ):
        started: dict[str, tuple[str, str]] = {}
        for code, rule in CURRENCIES.items():
            # Above Stripe's minimum, on the currency's step, with its decimals in use.
            minor = rule.minimum_charge * 2 + rule.step * 7
            price = format_amount(minor, code)
            item = listing(team, price=price, currency=code.upper(), name=f"Thing in {code}")
            begun = checkout(buyer, team.id, [(item, 1)], currency=code)
            assert begun.status_code == 200, (code, begun.text)
            session_id = session_id_of(begun.json()["url"])
            paid = control.post(
                f"/checkout/sessions/{session_id}/pay", json={"card": "4242424242424242"}
            )
            assert paid.status_code == 200, (code, paid.text)
            assert paid.json()["payment_intent"]["amount"] == minor, code
            assert paid.json()["payment_intent"]["currency"] == code
            started[code] = (price, session_id)
        for code, (price, session_id) in started.items():
            page = buyer.get(f"/checkout/success?session_id={session_id}")
            assert page.status_code == 200 and 'data-status="paid"' in page.text, code
            total = re.search(r'id="order-total">([^<]*)<', page.text)
            assert total is not None, code
            shown = re.search(r"\d[\d,]*(\.\d+)?", total.group(1))
            assert shown is not None, (code, total.group(1))
            assert Decimal(shown.group(0).replace(",", "")) == Decimal(price), (
                code,
                price,
                total.group(1),
            )


@pytest.mark.parametrize("code", ["xxx", "XTS", "xau", "xag", "xdr", "abc"])
def test_currencies_stripe_does_not_support_are_refused(live: LiveServer, code: str) -> None:
    with api_user(live) as owner:
        response = owner.client.post("/api/stores", json={"name": "Gold", "defaultCurrency": code})
        assert response.status_code == 422 and error_code(response) == "invalid_input"
        store = create_store(owner)
        before = live.scalar("SELECT count(*) FROM listing")
        response = owner.client.post(
            f"/api/stores/{store['id']}/listings",
            json={"name": "Bar", "price": "10.00", "currency": code},
        )
        assert response.status_code == 422, response.text
        assert live.scalar("SELECT count(*) FROM listing") == before


@pytest.mark.parametrize(
    ("price", "currency", "minor"),
    [("1000", "huf", 100000), ("5000", "ISK", 500000), ("150000", "idr", 15000000),
     ("1.250", "kwd", 1250), ("500", "jpy", 500)],
)  # fmt: skip
def test_stripes_units_not_cldrs_reach_stripe(
    live: LiveServer, price: str, currency: str, minor: int
) -> None:
    """HUF, ISK and IDR have no decimals in CLDR but two in Stripe's API: a price of 1000 HUF
    is 100000 minor units at Stripe, not 1000 (which Stripe would read as 10.00 HUF)."""
    with onboarded_team(live) as team:
        item = listing(team, price=price, currency=currency)
        read = team.owner.client.get(f"/api/listings/{item}").json()
        assert read["price"] == format_amount(minor, currency.lower())
        begun = start(live, team, [(item, 1)], currency=currency)
        session_id = begun["url"].rsplit("/", 1)[-1]
        session = sdk(live).v1.checkout.sessions.retrieve(session_id).to_dict()
        assert session["amount_total"] == minor


@pytest.mark.parametrize(
    ("price", "currency"), [("1.255", "kwd"), ("5.50", "isk"), ("1e1000000", "usd")]
)
def test_amounts_stripe_cannot_charge_are_422(live: LiveServer, price: str, currency: str) -> None:
    with api_user(live) as owner:
        store = create_store(owner)
        response = owner.client.post(
            f"/api/stores/{store['id']}/listings",
            json={"name": "Odd", "price": price, "currency": currency},
        )
        assert response.status_code == 422, response.text
        assert error_code(response) == "invalid_input"
