"""Anonymous checkout cannot tie up a store: checkouts are limited per address and per buyer
email, and one buyer holds at most so many units of a listing in unpaid orders."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import anonymous, error_code, fake_address
from tests.payments.stripe_helpers import checkout, onboarded_team, stock
from tests.servers import beside

PER_ADDRESS = 30  # CHECKOUT_RATE_PER_ADDRESS (the default; the test server relaxes it)
HOLD_CAP = 99  # CHECKOUT_MAX_HELD_PER_LISTING (default)


def listing(team: Any, *, stock: int | None = None) -> int:
    body: dict[str, Any] = {"name": "Limited", "price": "2.00", "currency": "usd"}
    if stock is not None:
        body["stock"] = stock
    response = team.owner.client.post(f"/api/stores/{team.id}/listings", json=body)
    assert response.status_code == 201, response.text
    listing_id: int = response.json()["id"]
    return listing_id


def test_one_buyer_cannot_hold_a_listings_stock(live: Any) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=500)
        address = fake_address()
        with anonymous(live, address=address) as greedy:
            first = checkout(greedy, team.id, [(item, 60)], email="greedy@example.com")
            assert first.status_code == 200, first.text
            # A second order would hold 120 of the listing: refused, with a new email too.
            again = checkout(greedy, team.id, [(item, 60)], email="greedy2@example.com")
            assert again.status_code == 409 and error_code(again) == "hold_limit_reached"
            # What fits under the cap is fine.
            small = checkout(greedy, team.id, [(item, HOLD_CAP - 60)], email="g3@example.com")
            assert small.status_code == 200, small.text
        # The same email from elsewhere is the same buyer.
        with anonymous(live) as elsewhere:
            more = checkout(elsewhere, team.id, [(item, 40)], email="GREEDY@example.com")
            assert more.status_code == 409
        assert stock(live, item) == 500 - HOLD_CAP
        with anonymous(live) as someone_else:
            other = checkout(someone_else, team.id, [(item, 5)], email="other@example.com")
            assert other.status_code == 200, other.text


def test_checkouts_per_address_are_limited(live: Any) -> None:
    with (
        onboarded_team(live) as team,
        beside(live, checkout_rate_per_address=PER_ADDRESS) as url,
    ):
        item = listing(team)
        with httpx.Client(
            base_url=url, timeout=30, headers={"X-Forwarded-For": fake_address()}
        ) as client:
            # Checkouts for no real store still count: probing costs the same.
            for n in range(PER_ADDRESS):
                response = checkout(client, 2_000_000_000, [(item, 1)], email=f"b{n}@example.com")
                assert response.status_code == 404, response.text
            refused = checkout(client, team.id, [(item, 1)], email="late@example.com")
        assert refused.status_code == 429 and error_code(refused) == "checkout_rate_limited"
        wait = int(refused.headers["retry-after"])
        assert 0 < wait <= 600
        assert f"{wait} seconds" in refused.json()["error"]["message"] or wait >= 120
        with httpx.Client(
            base_url=url, timeout=30, headers={"X-Forwarded-For": fake_address()}
        ) as other:
            fine = checkout(other, team.id, [(item, 1)], email="late@example.com")
            assert fine.status_code == 200, fine.text


@pytest.fixture
def strict_email_limit(live: Any) -> Iterator[str]:
    """The app with a strict per-email limit (the test server relaxes it, since the suite's
    buyers share one email), on the same database and the same Stripe sandbox."""
    with beside(live, checkout_rate_per_email=3) as url:
        yield url


def test_checkouts_per_email_are_limited_across_addresses(
    live: Any, strict_email_limit: str
) -> None:
    with onboarded_team(live) as team:
        item = listing(team)
        email = f"spam-{fake_address()}@example.com"
        statuses = []
        for _ in range(4):
            with httpx.Client(
                base_url=strict_email_limit,
                timeout=30,
                headers={"X-Forwarded-For": fake_address()},
            ) as client:
                statuses.append(checkout(client, team.id, [(item, 1)], email=email).status_code)
        assert statuses == [200, 200, 200, 429]
