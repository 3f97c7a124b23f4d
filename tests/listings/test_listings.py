"""Listings over the JSON API: create, update, delete, and money as decimal strings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from tests.helpers import api_user, create_listing, create_store, error_code, store_team
from tests.servers import LiveServer


def listing_count(live: LiveServer, store_id: int) -> int:
    count: int = live.scalar("SELECT count(*) FROM listing WHERE store_id = :s", s=store_id)
    return count


@pytest.mark.parametrize(
    ("price", "currency", "minor", "shown", "stored_currency"),
    [
        ("19.99", "usd", 1999, "19.99", "usd"),
        ("19.9", "USD", 1990, "19.90", "usd"),
        ("7", "usd", 700, "7.00", "usd"),
        ("500", "JPY", 500, "500", "jpy"),
        ("1.250", "kwd", 1250, "1.250", "kwd"),
        ("0.5", "Eur", 50, "0.50", "eur"),
    ],
)
def test_prices_are_decimal_strings_in_the_currency_exponent(
    live: LiveServer, price: str, currency: str, minor: int, shown: str, stored_currency: str
) -> None:
    with api_user(live) as owner:
        store = create_store(owner)
        listing = create_listing(owner, store["id"], price=price, currency=currency, stock=3)
    assert (listing["price"], listing["currency"], listing["stock"]) == (
        shown,
        stored_currency,
        3,
    )
    assert listing["storeId"] == store["id"]
    assert listing["active"] is True
    row = live.rows("SELECT price_amount, currency FROM listing WHERE id = :i", i=listing["id"])[0]
    assert (row.price_amount, row.currency) == (minor, stored_currency)


@pytest.mark.parametrize(
    ("price", "currency", "field"),
    [
        ("19.999", "usd", "price"),
        ("5.5", "jpy", "price"),
        ("1.2345", "kwd", "price"),
        ("0", "usd", "price"),
        ("-1.00", "usd", "price"),
        ("abc", "usd", "price"),
        ("NaN", "usd", "price"),
        ("Infinity", "usd", "price"),
        ("1e3", "usd", "price"),
        ("1000000.00", "usd", "price"),
        (19.99, "usd", "price"),
        ("19.99", "zzz", "currency"),
        ("19.99", "dollars", "currency"),
        ("19.99", "", "currency"),
    ],
)
def test_bad_prices_and_currencies_are_422_and_write_nothing(
    live: LiveServer, price: Any, currency: str, field: str
) -> None:
    with api_user(live) as owner:
        store = create_store(owner)
        response = owner.client.post(
            f"/api/stores/{store['id']}/listings",
            json={"name": "Thing", "price": price, "currency": currency},
        )
    if price == "1e3":
        # Scientific notation is still an exact decimal: 1000.00 USD.
        assert response.status_code == 201
        assert response.json()["price"] == "1000.00"
        return
    assert response.status_code == 422, response.text
    assert error_code(response) == "invalid_input"
    assert field in response.text
    assert listing_count(live, store["id"]) == 0


@pytest.mark.parametrize(
    "extra",
    [{"stock": -1}, {"stock": 10**12}, {"name": ""}, {"name": "x" * 201}, {"colour": "red"}],
)
def test_other_bad_fields_are_422(live: LiveServer, extra: dict[str, Any]) -> None:
    with api_user(live) as owner:
        store = create_store(owner)
        body = {"name": "Thing", "price": "1.00", "currency": "usd", **extra}
        response = owner.client.post(f"/api/stores/{store['id']}/listings", json=body)
    assert response.status_code == 422
    assert listing_count(live, store["id"]) == 0


def test_stock_defaults_to_unlimited(live: LiveServer) -> None:
    with api_user(live) as owner:
        store = create_store(owner)
        listing = create_listing(owner, store["id"])
    assert listing["stock"] is None
    assert listing["description"] == ""


def test_update_a_listing(live: LiveServer) -> None:
    with store_team(live) as team:
        listing = create_listing(team.owner, team.id, stock=5)
        path = f"/api/listings/{listing['id']}"
        response = team.seller.client.patch(
            path, json={"name": "Renamed", "price": "25", "description": "New"}
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["name"], body["price"], body["description"], body["stock"]) == (
            "Renamed",
            "25.00",
            "New",
            5,
        )
        # An explicit null makes the stock unlimited; leaving it out keeps it.
        assert team.seller.client.patch(path, json={"stock": None}).json()["stock"] is None
        assert team.seller.client.patch(path, json={"name": "Again"}).json()["stock"] is None
        changed = team.seller.client.patch(path, json={"price": "1000", "currency": "JPY"})
        assert changed.status_code == 200
        assert (changed.json()["price"], changed.json()["currency"]) == ("1000", "jpy")


def test_changing_currency_needs_a_price(live: LiveServer) -> None:
    with api_user(live) as owner:
        store = create_store(owner)
        listing = create_listing(owner, store["id"], price="10.00")
        response = owner.client.patch(f"/api/listings/{listing['id']}", json={"currency": "jpy"})
        assert response.status_code == 422
        again = owner.client.get(f"/api/listings/{listing['id']}").json()
    assert (again["price"], again["currency"]) == ("10.00", "usd")


def test_a_bad_update_changes_nothing(live: LiveServer) -> None:
    with api_user(live) as owner:
        store = create_store(owner)
        listing = create_listing(owner, store["id"], price="10.00")
        response = owner.client.patch(
            f"/api/listings/{listing['id']}", json={"name": "New name", "price": "10.001"}
        )
        assert response.status_code == 422
        again = owner.client.get(f"/api/listings/{listing['id']}").json()
    assert (again["name"], again["price"]) == (listing["name"], "10.00")


def test_delete_without_orders_removes_the_listing(live: LiveServer) -> None:
    with api_user(live) as owner:
        store = create_store(owner)
        listing = create_listing(owner, store["id"])
        response = owner.client.delete(f"/api/listings/{listing['id']}")
        assert response.status_code == 200
        assert response.json() == {"id": listing["id"], "outcome": "deleted"}
        assert owner.client.get(f"/api/listings/{listing['id']}").status_code == 404
    assert listing_count(live, store["id"]) == 0


def place_order(live: LiveServer, store_id: int, listing_id: int) -> None:
    """An order row referring to the listing, as checkout will write it."""
    with live.db.begin() as conn:
        order_id = conn.execute(
            sa.text(
                "INSERT INTO orders (store_id, customer_email, currency, subtotal_amount, "
                "total_amount, platform_fee_amount, payment_status, created_at) VALUES "
                "(:s, 'buyer@example.com', 'usd', 1999, 1999, 100, 'pending', :now) RETURNING id"
            ),
            {"s": store_id, "now": datetime.now(UTC)},
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO order_item (order_id, listing_id, title, quantity, unit_price, "
                "currency, line_subtotal, line_total) VALUES "
                "(:o, :l, 'Olive wood bowl', 1, 1999, 'usd', 1999, 1999)"
            ),
            {"o": order_id, "l": listing_id},
        )


def test_delete_with_orders_only_deactivates(live: LiveServer) -> None:
    with store_team(live) as team, api_user(live) as stranger:
        listing = create_listing(team.owner, team.id)
        place_order(live, team.id, listing["id"])
        response = team.seller.client.delete(f"/api/listings/{listing['id']}")
        assert response.status_code == 200
        assert response.json() == {"id": listing["id"], "outcome": "deactivated"}
        assert listing_count(live, team.id) == 1
        # Inactive: still visible to the store's members, hidden from everyone else.
        seen = team.seller.client.get(f"/api/listings/{listing['id']}")
        assert seen.status_code == 200
        assert seen.json()["active"] is False
        assert stranger.client.get(f"/api/listings/{listing['id']}").status_code == 404
        # And it can be reactivated.
        back = team.admin.client.patch(f"/api/listings/{listing['id']}", json={"active": True})
        assert back.json()["active"] is True
        assert stranger.client.get(f"/api/listings/{listing['id']}").status_code == 200


def test_an_unknown_listing_is_404(live: LiveServer) -> None:
    with api_user(live) as user:
        assert user.client.get("/api/listings/2147483647").status_code == 404
        assert user.client.patch("/api/listings/2147483647", json={}).status_code == 404
        assert user.client.delete("/api/listings/2147483647").status_code == 404
