"""The storefront pages over HTTP: search, filters and pages; error pages for browsers; CSRF on
the new forms."""

from __future__ import annotations

import re
import uuid

from tests.auth.test_auth_pages import form_token
from tests.helpers import PASSWORD, anonymous, api_user, unique_email
from tests.payments.stripe_helpers import listing, onboarded_team
from tests.servers import LiveServer


def _ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-listing-id="(\d+)"', html)]


def test_search_filters_and_pages_of_the_shop(live: LiveServer) -> None:
    word = uuid.uuid4().hex[:8]
    with onboarded_team(live, name=f"Search {word}") as team:
        usd = [listing(team, name=f"Lamp {word} {n}", price="3.00") for n in range(13)]
        eur = listing(team, name=f"Rug {word}", price="4.00", currency="eur")
        with anonymous(live) as browser:
            first = browser.get("/", params={"q": word, "store": team.id})
            second = browser.get("/", params={"q": word, "store": team.id, "page": 2})
            only_eur = browser.get("/", params={"q": word, "currency": "EUR", "store": ""})
            nothing = browser.get("/", params={"q": word + "-nope"})
    assert first.status_code == 200
    # Newest first, twelve a page, then the rest; the next page is linked.
    assert _ids(first.text) == [eur, *reversed(usd)][:12]
    assert _ids(second.text) == [eur, *reversed(usd)][12:]
    assert 'rel="next"' in first.text and 'rel="prev"' in second.text
    assert _ids(only_eur.text) == [eur]
    assert "€4.00" in only_eur.text
    assert _ids(nothing.text) == []
    assert "Nothing matches" in nothing.text


def test_the_shop_hides_stores_that_cannot_take_payments(live: LiveServer) -> None:
    word = uuid.uuid4().hex[:8]
    with api_user(live, name="Not Ready") as owner:
        store = owner.client.post("/api/stores", json={"name": f"Closed {word}"}).json()
        made = owner.client.post(
            f"/api/stores/{store['id']}/listings",
            json={"name": f"Vase {word}", "price": "1.00", "currency": "usd"},
        ).json()
        with anonymous(live) as browser:
            shop = browser.get("/", params={"q": word})
            page = browser.get(f"/listings/{made['id']}")
    assert _ids(shop.text) == []
    assert 'data-state="unavailable"' in page.text
    assert "Buy now" not in page.text


def test_browsers_get_an_error_page_and_the_api_keeps_json(live: LiveServer) -> None:
    with anonymous(live) as client:
        page = client.get("/listings/999999999", headers={"Accept": "text/html"})
        unknown = client.get("/no-such-page", headers={"Accept": "text/html"})
        bad = client.get("/?page=0", headers={"Accept": "text/html"})
        api = client.get("/api/listings/999999999", headers={"Accept": "text/html"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "listing not found" in page.text and 'role="alert"' in page.text
    assert unknown.status_code == 404 and "<h1>Something went wrong</h1>" in unknown.text
    assert bad.status_code == 422 and "query.page" in bad.text
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


def test_a_form_posted_without_its_csrf_field_changes_nothing(live: LiveServer) -> None:
    email = unique_email("csrf")
    with api_user(live, name="Csrf", email=email), anonymous(live) as browser:
        token = form_token(browser.get("/login").text)
        browser.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
        before = live.scalar("SELECT count(*) FROM store")
        refused = browser.post("/dashboard/stores", data={"name": "No Token", "country": "US"})
        assert refused.status_code == 403
        assert live.scalar("SELECT count(*) FROM store") == before
        token = form_token(browser.get("/dashboard").text)
        done = browser.post(
            "/dashboard/stores",
            data={
                "name": "With Token",
                "country": "US",
                "defaultCurrency": "usd",
                "csrf_token": token,
            },
        )
        assert done.status_code == 303
        assert live.scalar("SELECT count(*) FROM store") == before + 1


def test_a_refused_listing_form_keeps_what_was_typed(live: LiveServer) -> None:
    with api_user(live, name="Typist") as owner:
        store = owner.client.post("/api/stores", json={"name": "Typist Store"}).json()
        before = live.scalar("SELECT count(*) FROM listing WHERE store_id = :s", s=store["id"])
        response = owner.client.post(
            f"/dashboard/stores/{store['id']}/listings",
            data={"name": "Jug <b>", "price": "5.001", "currency": "usd", "stock": "-2"},
        )
    assert response.status_code == 422
    assert 'value="Jug &lt;b&gt;"' in response.text
    assert 'value="5.001"' in response.text
    assert 'id="f-price-error">' in response.text and 'aria-invalid="true"' in response.text
    assert live.scalar("SELECT count(*) FROM listing WHERE store_id = :s", s=store["id"]) == before
