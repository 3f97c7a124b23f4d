"""The public catalogue: active listings only, filtered by store, paginated by cursor."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from souq.listings.models import Listing
from souq.listings.service import SHOP_PAGE
from tests.helpers import anonymous, api_user, create_listing, create_store, error_code
from tests.servers import LiveServer


def test_catalogue_pages_through_a_stores_active_listings(live: LiveServer) -> None:
    with api_user(live) as owner:
        store = create_store(owner)
        other = create_store(owner, name="Other")
        ids = [create_listing(owner, store["id"], name=f"Item {i}")["id"] for i in range(5)]
        hidden = create_listing(owner, store["id"], name="Hidden")
        owner.client.patch(f"/api/listings/{hidden['id']}", json={"active": False})
        elsewhere = create_listing(owner, other["id"], name="Elsewhere")
    seen: list[int] = []
    pages = 0
    cursor: str | None = None
    with anonymous(live) as client:
        while True:
            params: dict[str, Any] = {"storeId": store["id"], "limit": 2}
            if cursor:
                params["cursor"] = cursor
            response = client.get("/api/listings", params=params)
            assert response.status_code == 200
            page = response.json()
            assert len(page["items"]) <= 2
            seen += [item["id"] for item in page["items"]]
            pages += 1
            cursor = page["nextCursor"]
            if cursor is None:
                break
        everything = client.get("/api/listings", params={"limit": 100}).json()["items"]
    assert seen == sorted(ids, reverse=True)
    assert pages == 3
    assert hidden["id"] not in [item["id"] for item in everything]
    assert elsewhere["id"] in [item["id"] for item in everything]
    assert all(item["active"] for item in everything)


def test_catalogue_items_carry_prices_as_strings(live: LiveServer) -> None:
    with api_user(live) as owner:
        store = create_store(owner)
        create_listing(owner, store["id"], price="500", currency="JPY")
    with anonymous(live) as client:
        items = client.get("/api/listings", params={"storeId": store["id"]}).json()["items"]
    assert [(i["price"], i["currency"]) for i in items] == [("500", "jpy")]


def test_an_empty_store_has_an_empty_page(live: LiveServer) -> None:
    with api_user(live) as owner:
        store = create_store(owner)
    with anonymous(live) as client:
        page = client.get("/api/listings", params={"storeId": store["id"]}).json()
    assert page == {"items": [], "nextCursor": None}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
        {"cursor": "abc"},
        {"cursor": "-5"},
        {"cursor": "0"},
        {"storeId": "abc"},
        {"storeId": 0},
    ],
)
def test_bad_catalogue_parameters_are_422(live: LiveServer, params: dict[str, Any]) -> None:
    with anonymous(live) as client:
        response = client.get("/api/listings", params=params)
    assert response.status_code == 422
    assert error_code(response) == "invalid_input"


def test_the_shop_pages_newest_first_by_cursor(live: LiveServer) -> None:
    # /shop reads one page down an index from its cursor instead of sorting every listing.
    with api_user(live) as owner:
        store = create_store(owner)
        other = create_store(owner, name="Other")
    rows = [
        {"store_id": store["id"], "name": f"Bulk {n}", "description": "", "price_amount": 100,
         "currency": "usd", "stock": None, "active": n != 7}
        for n in range(SHOP_PAGE + 5)
    ]  # fmt: skip
    with live.db.begin() as conn:
        conn.execute(sa.insert(Listing), rows)
        conn.execute(
            sa.insert(Listing),
            [{**rows[0], "store_id": other["id"], "name": "Elsewhere", "active": True}],
        )
    ids = live.rows(
        "SELECT id FROM listing WHERE store_id = :s AND active ORDER BY id DESC", s=store["id"]
    )
    expected = [row.id for row in ids]
    assert len(expected) == SHOP_PAGE + 4
    seen: list[int] = []
    with anonymous(live) as client:
        url: str | None = f"/shop?storeId={store['id']}"
        while url is not None:
            page = client.get(url)
            assert page.status_code == 200, page.text
            shown = [int(i) for i in re.findall(r'<a href="/listings/(\d+)">', page.text)]
            assert len(shown) <= SHOP_PAGE
            seen += shown
            link = re.search(r'<a href="(/shop\?after=\d+&amp;storeId=\d+)" rel="next">', page.text)
            url = link.group(1).replace("&amp;", "&") if link else None
        assert ">Bulk 7<" not in client.get(f"/shop?storeId={store['id']}").text
        assert client.get("/shop?after=0").status_code == 422
    assert seen == expected
