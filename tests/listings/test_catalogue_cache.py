"""The cache of the public catalogue (`GET /api/listings`, the anonymous `/shop`): a change made
through this server is in its next answer; another server process shows it within
CATALOGUE_CACHE_SECONDS; entity tags answer 304; nothing personal is shared between visitors."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from souq.listings.cache import CatalogueCache
from tests.helpers import (
    anonymous,
    api_user,
    browser_login,
    create_listing,
    create_store,
    store_team,
)
from tests.payments.stripe_helpers import checkout, create_account, flush, listing, onboarded_team
from tests.payments.stripe_helpers import control as sandbox_control
from tests.servers import LiveServer, RunningServer, start_server


def api_items(client: httpx.Client, store_id: int) -> dict[int, dict[str, Any]]:
    response = client.get("/api/listings", params={"storeId": store_id})
    assert response.status_code == 200, response.text
    return {item["id"]: item for item in response.json()["items"]}


def shop_rows(client: httpx.Client, store_id: int) -> dict[int, str]:
    """The shop's table rows of one store, by listing id."""
    response = client.get("/shop", params={"storeId": store_id})
    assert response.status_code == 200, response.text
    rows = re.findall(r"<tr>(.*?)</tr>", response.text, re.S)
    return {
        int(found.group(1)): row
        for row in rows
        if (found := re.search(r'<a href="/listings/(\d+)">', row))
    }


def test_a_listing_created_repriced_restocked_or_deactivated_shows_at_once(
    live: LiveServer,
) -> None:
    with api_user(live) as owner, anonymous(live) as visitor:
        store = create_store(owner)
        first = create_listing(owner, store["id"], name="First", price="10.00", stock=4)
        # Both answers are cached now.
        assert set(api_items(visitor, store["id"])) == {first["id"]}
        assert set(shop_rows(visitor, store["id"])) == {first["id"]}

        second = create_listing(owner, store["id"], name="Second", price="5.00")
        assert set(api_items(visitor, store["id"])) == {first["id"], second["id"]}
        assert set(shop_rows(visitor, store["id"])) == {first["id"], second["id"]}

        changed = owner.client.patch(
            f"/api/listings/{first['id']}", json={"price": "12.50", "stock": 2, "name": "Renamed"}
        )
        assert changed.status_code == 200, changed.text
        item = api_items(visitor, store["id"])[first["id"]]
        assert (item["name"], item["price"], item["stock"]) == ("Renamed", "12.50", 2)
        row = shop_rows(visitor, store["id"])[first["id"]]
        assert "Renamed" in row and "$12.50" in row and "<td>2</td>" in row

        hidden = owner.client.patch(f"/api/listings/{second['id']}", json={"active": False})
        assert hidden.status_code == 200, hidden.text
        assert set(api_items(visitor, store["id"])) == {first["id"]}
        assert set(shop_rows(visitor, store["id"])) == {first["id"]}

        assert owner.client.delete(f"/api/listings/{first['id']}").status_code == 200
        assert api_items(visitor, store["id"]) == {}
        assert shop_rows(visitor, store["id"]) == {}


def test_stock_taken_by_a_checkout_and_a_store_taking_payments_show_at_once(
    live: LiveServer,
) -> None:
    # Stock is taken with an UPDATE statement, not through an ORM object; the store's
    # payments are switched on by the account.updated webhook's job.
    with onboarded_team(live) as team, anonymous(live) as visitor:
        scarce = listing(team, stock=3)
        assert api_items(visitor, team.id)[scarce]["stock"] == 3
        assert "<td>3</td>" in shop_rows(visitor, team.id)[scarce]
        assert checkout(visitor, team.id, [(scarce, 2)]).status_code == 200
        assert api_items(visitor, team.id)[scarce]["stock"] == 1
        assert "<td>1</td>" in shop_rows(visitor, team.id)[scarce]

    with store_team(live, name="Not Yet") as team, anonymous(live) as visitor:
        item = listing(team)
        assert "cannot take payments yet" in shop_rows(visitor, team.id)[item]
        sandbox_control(live, f"/accounts/{create_account(team)}/onboard", {"outcome": "complete"})
        flush(live)
        row = shop_rows(visitor, team.id)[item]
        assert 'action="/shop/buy"' in row and "cannot take payments" not in row


def test_the_catalogue_answers_304_to_its_entity_tag(live: LiveServer) -> None:
    with api_user(live) as owner, anonymous(live) as visitor:
        store = create_store(owner)
        create_listing(owner, store["id"], name="Older")
        item = create_listing(owner, store["id"])
        url = f"/api/listings?storeId={store['id']}"
        first = visitor.get(url)
        tag = first.headers["etag"]
        assert first.headers["cache-control"] == "no-cache"
        for sent in (tag, f"W/{tag}", f'"nothing", {tag}', "*"):
            again = visitor.get(url, headers={"If-None-Match": sent})
            assert again.status_code == 304, sent
            assert again.content == b""
            assert again.headers["etag"] == tag
        assert visitor.get(url, headers={"If-None-Match": '"nothing"'}).status_code == 200
        # Another answer has its own tag (a page of one has a cursor to the next).
        assert visitor.get(url + "&limit=1").headers["etag"] != tag

        owner.client.patch(f"/api/listings/{item['id']}", json={"price": "1.00"})
        changed = visitor.get(url, headers={"If-None-Match": tag})
        assert changed.status_code == 200
        assert changed.headers["etag"] != tag
        assert changed.json()["items"][0]["price"] == "1.00"


def session_cookie(client: httpx.Client) -> dict[str, Any]:
    """The data in the client's signed session cookie (base64 JSON before the signature)."""
    payload = client.cookies["souq_session"].split(".")[0]
    data: dict[str, Any] = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
    return data


def form_values(html: str, name: str) -> set[str]:
    return set(re.findall(rf'name="{name}" value="([^"]*)"', html))


def test_a_cached_shop_page_is_each_visitors_own(live: LiveServer) -> None:
    with onboarded_team(live, name="Cached Shop") as team:
        listing(team)
        url = f"/shop?storeId={team.id}"
        with anonymous(live) as one, anonymous(live) as two:
            pages = [one.get(url).text, two.get(url).text, one.get(url).text]
            tokens = [form_values(page, "csrf_token") for page in pages]
            # Each visitor's page carries the CSRF token of their own session.
            assert tokens[0] == tokens[2] == {session_cookie(one)["csrf"]}
            assert tokens[1] == {session_cookie(two)["csrf"]}
            assert tokens[0] != tokens[1]
            # A fresh one-time form key on every page: a second visit makes a second order.
            keys = [form_values(page, "idempotency_key") for page in pages]
            assert len(set.union(*keys)) == 3
            assert 'name="email"' in pages[0]

        with (
            api_user(live, name="Logged Buyer") as buyer,
            browser_login(live, buyer.email) as browser,
        ):
            page = browser.client.get(url).text
        assert "Logged in as <strong>Logged Buyer</strong>" in page
        assert form_values(page, "csrf_token") == {browser.csrf}
        assert 'name="email"' not in page  # a logged-in buyer's email is known


@pytest.fixture
def second_server(live: LiveServer, tmp_path: Path) -> Iterator[RunningServer]:
    """Another server process on `live`'s database, keeping catalogue answers for a minute (its
    own jobs off: they are `live`'s)."""
    other = start_server(
        live.settings.database_url, tmp_path, catalogue_cache_seconds=60, jobs_in_web=False
    )
    try:
        yield other
    finally:
        other.stop()


@pytest.mark.fresh_server
def test_another_server_shows_a_change_within_its_cache_seconds(
    live: LiveServer, second_server: RunningServer
) -> None:
    other = second_server.live
    with api_user(live) as owner:
        store = create_store(owner)
        item = create_listing(owner, store["id"], price="10.00")
        with other.client() as visitor:
            visitor.get("/api/listings?limit=1")  # the other server's cache exists now
            cache: CatalogueCache = other.app.state.catalogue_cache
            now = [1_000.0]
            cache.clock = lambda: now[0]
            assert api_items(visitor, store["id"])[item["id"]]["price"] == "10.00"
            assert "$10.00" in shop_rows(visitor, store["id"])[item["id"]]

            changed = owner.client.patch(f"/api/listings/{item['id']}", json={"price": "11.00"})
            assert changed.status_code == 200
            with anonymous(live) as here:
                assert api_items(here, store["id"])[item["id"]]["price"] == "11.00"
            # The other process has not seen it yet, and may keep its answers this long:
            now[0] += 59.9
            assert api_items(visitor, store["id"])[item["id"]]["price"] == "10.00"
            assert "$10.00" in shop_rows(visitor, store["id"])[item["id"]]
            # and no longer.
            now[0] += 0.1
            assert api_items(visitor, store["id"])[item["id"]]["price"] == "11.00"
            assert "$11.00" in shop_rows(visitor, store["id"])[item["id"]]
