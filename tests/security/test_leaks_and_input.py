"""What the pen test found leaking or slipping through: buyers seeing the platform's split,
hidden listings telling their store apart, non-integer stock, countries Stripe does not serve."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import api_user, create_listing, create_store, error_code, store_team
from tests.payments.stripe_helpers import checkout, flush, onboarded_team, pay

SPLIT = {"platformFee", "netToStore"}
PAYMENT_SPLIT = {"platformFee", "stripeFee", "netToStore", "platformMargin"}


def test_a_buyer_sees_what_they_paid_not_how_it_is_split(live: Any) -> None:
    with onboarded_team(live) as team, api_user(live, name="Buyer") as buyer:
        item = create_listing(team.owner, team.id, price="20.00")
        started = checkout(buyer.client, team.id, [(item["id"], 1)], email=None)
        assert started.status_code == 200, started.text
        assert pay(live, started.json()["url"], card="4242424242424242").status_code == 200
        flush(live)
        order_id = started.json()["orderId"]
        mine = buyer.client.get(f"/api/orders/{order_id}").json()
        assert mine["paymentStatus"] == "paid" and mine["total"] == "20.00"
        assert not SPLIT & set(mine), mine
        assert set(mine["payment"]) == {"amount", "currency", "createdAt"}
        for member in (team.owner, team.seller):
            theirs = member.client.get(f"/api/orders/{order_id}").json()
            assert set(theirs) >= SPLIT and set(theirs["payment"]) >= PAYMENT_SPLIT


def test_a_hidden_listing_answers_like_a_missing_one(live: Any) -> None:
    with store_team(live) as team, api_user(live) as outsider:
        hidden = create_listing(team.owner, team.id)
        assert (
            team.owner.client.patch(
                f"/api/listings/{hidden['id']}", json={"active": False}
            ).status_code
            == 200
        )
        missing = 2_000_000_000
        for method, body in (("GET", None), ("PATCH", {"name": "Mine now"}), ("DELETE", None)):
            answers = [
                outsider.client.request(method, f"/api/listings/{listing_id}", json=body)
                for listing_id in (hidden["id"], missing)
            ]
            assert [a.status_code for a in answers] == [404, 404], method
            assert answers[0].json() == answers[1].json(), method
            assert "store" not in answers[0].text
        # An active listing of another store is no different.
        shown = create_listing(team.owner, team.id)
        other = outsider.client.patch(f"/api/listings/{shown['id']}", json={"name": "x"})
        assert other.json() == {"error": {"code": "not_found", "message": "listing not found"}}


@pytest.mark.parametrize("stock", [True, False, "5", "five", 1.5, [5], {"n": 5}])
def test_stock_is_a_whole_number_and_nothing_else(live: Any, stock: Any) -> None:
    with api_user(live) as owner:
        store = create_store(owner)
        created = owner.client.post(
            f"/api/stores/{store['id']}/listings",
            json={"name": "Thing", "price": "1.00", "currency": "usd", "stock": stock},
        )
        assert created.status_code == 422, created.text
        assert "stock" in created.text
        listing = create_listing(owner, store["id"], stock=3)
        updated = owner.client.patch(f"/api/listings/{listing['id']}", json={"stock": stock})
        assert updated.status_code == 422
        assert owner.client.get(f"/api/listings/{listing['id']}").json()["stock"] == 3
        # A whole number written as 5.0 is still five, as JSON Schema's integer says.
        assert (
            owner.client.patch(f"/api/listings/{listing['id']}", json={"stock": 5.0}).json()[
                "stock"
            ]
            == 5
        )


@pytest.mark.parametrize("country", ["XK", "xk", "KP", "IR", "ZZ", "EU"])
def test_stores_open_only_in_countries_stripe_supports(live: Any, country: str) -> None:
    with api_user(live) as owner:
        response = owner.client.post("/api/stores", json={"name": "Far", "country": country})
        assert response.status_code == 422 and error_code(response) == "invalid_input"
        assert "country" in response.text
        store = create_store(owner, country="gb")
        assert store["country"] == "GB"
        moved = owner.client.patch(f"/api/stores/{store['id']}", json={"country": country})
        assert moved.status_code == 422


def test_a_price_alone_that_does_not_fit_the_listings_currency_is_a_conflict(
    live: Any,
) -> None:
    """A price is read in the listing's currency: "10.50" is a fine price in USD, so for a JPY
    listing the request is valid on its face and conflicts with the listing (409)."""
    with api_user(live) as owner:
        store = create_store(owner)
        listing = create_listing(owner, store["id"], price="1000", currency="jpy")
        path = f"/api/listings/{listing['id']}"
        response = owner.client.patch(path, json={"price": "10.50"})
        assert response.status_code == 409
        assert error_code(response) == "price_does_not_fit_currency"
        both = owner.client.patch(path, json={"price": "10.50", "currency": "usd"})
        assert both.status_code == 200 and both.json()["price"] == "10.50"
