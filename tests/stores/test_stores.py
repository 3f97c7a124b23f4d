"""Stores over the JSON API: create, read, update, and the caller's own list."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.helpers import anonymous, api_user, create_store, error_code
from tests.servers import LiveServer


def test_the_creator_becomes_owner(live: LiveServer) -> None:
    with api_user(live) as owner:
        response = owner.client.post(
            "/api/stores", json={"name": "Cedar Crafts", "country": "de", "defaultCurrency": "EUR"}
        )
        assert response.status_code == 201
        store = response.json()
        assert store["name"] == "Cedar Crafts"
        assert store["country"] == "DE"
        assert store["defaultCurrency"] == "eur"
        assert store["slug"].startswith("cedar-crafts")
        assert store["stripeAccountId"] is None
        assert store["stripeChargesEnabled"] is False
        role = live.scalar(
            "SELECT role FROM store_member WHERE store_id = :s AND user_id = :u",
            s=store["id"],
            u=owner.id,
        )
        assert role == "owner"
        mine = owner.client.get("/api/me/stores").json()
    assert [(s["id"], s["role"]) for s in mine] == [(store["id"], "owner")]


def test_defaults_are_us_and_usd(live: LiveServer) -> None:
    with api_user(live) as owner:
        store = create_store(owner, name="Plain")
    assert (store["country"], store["defaultCurrency"]) == ("US", "usd")


def test_slugs_are_unique(live: LiveServer) -> None:
    name = f"Twin Shop {uuid.uuid4().hex[:6]}"
    with api_user(live) as owner:
        first = create_store(owner, name=name)
        second = create_store(owner, name=name)
        third = create_store(owner, name=name.upper())
    base = first["slug"]
    assert base == name.lower().replace(" ", "-")
    assert second["slug"] == base + "-2"
    assert third["slug"] == base + "-3"


def test_odd_names_still_get_a_slug(live: LiveServer) -> None:
    with api_user(live) as owner:
        store = create_store(owner, name="سوق ★")
    assert store["slug"].startswith("store")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "Shop", "country": "XX"}, "country"),
        ({"name": "Shop", "country": "USA"}, "country"),
        ({"name": "Shop", "defaultCurrency": "zzz"}, "defaultCurrency"),
        ({"name": "Shop", "defaultCurrency": "dollars"}, "defaultCurrency"),
        ({"name": "Shop", "stripeAccountId": "acct_1"}, "stripeAccountId"),
        ({}, "name"),
    ],
)
def test_bad_stores_are_422_and_write_nothing(
    live: LiveServer, body: dict[str, Any], field: str
) -> None:
    with api_user(live) as owner:
        response = owner.client.post("/api/stores", json=body)
        assert response.status_code == 422, response.text
        assert error_code(response) == "invalid_input"
        assert field in response.text
        assert owner.client.get("/api/me/stores").json() == []


def test_creating_a_store_needs_a_login(live: LiveServer) -> None:
    name = f"Anon {uuid.uuid4().hex}"
    with anonymous(live) as client:
        response = client.post("/api/stores", json={"name": name})
    assert response.status_code == 401
    assert live.scalar("SELECT count(*) FROM store WHERE name = :n", n=name) == 0


def test_update_changes_details_but_keeps_the_slug(live: LiveServer) -> None:
    with api_user(live) as owner:
        store = create_store(owner, name="Before")
        response = owner.client.patch(
            f"/api/stores/{store['id']}",
            json={"name": "After", "country": "JP", "defaultCurrency": "JPY"},
        )
        assert response.status_code == 200
        updated = response.json()
        assert (updated["name"], updated["country"], updated["defaultCurrency"]) == (
            "After",
            "JP",
            "jpy",
        )
        assert updated["slug"] == store["slug"]
        assert owner.client.get(f"/api/stores/{store['id']}").json()["name"] == "After"


def test_a_bad_update_changes_nothing(live: LiveServer) -> None:
    with api_user(live) as owner:
        store = create_store(owner, name="Stable")
        response = owner.client.patch(
            f"/api/stores/{store['id']}", json={"name": "Changed", "country": "ZZ"}
        )
        assert response.status_code == 422
        assert owner.client.get(f"/api/stores/{store['id']}").json()["name"] == "Stable"


@pytest.mark.parametrize("store_id", ["0", "-1", "abc", "99999999999999999999"])
def test_bad_store_ids_are_client_errors(live: LiveServer, store_id: str) -> None:
    with api_user(live) as user:
        response = user.client.get(f"/api/stores/{store_id}")
    assert response.status_code in (404, 422)


def test_an_unknown_store_is_404(live: LiveServer) -> None:
    with api_user(live) as user:
        response = user.client.get("/api/stores/2147483647")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_concurrent_stores_with_one_name_get_distinct_slugs(live: LiveServer) -> None:
    name = f"Rush {uuid.uuid4().hex[:6]}"
    with api_user(live) as owner:

        def attempt(_: int) -> httpx.Response:
            return owner.client.post("/api/stores", json={"name": name})

        with ThreadPoolExecutor(max_workers=5) as pool:
            responses = list(pool.map(attempt, range(5)))
    assert [r.status_code for r in responses] == [201] * 5
    slugs = {r.json()["slug"] for r in responses}
    assert len(slugs) == 5
    assert live.scalar("SELECT count(*) FROM store WHERE name = :n", n=name) == 5
