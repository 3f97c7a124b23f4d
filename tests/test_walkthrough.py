"""What a newcomer does after `make run`, through the pages, as a browser would: the demo owner
sets up payouts on the sandbox's onboarding page, a guest buys a listing with 4242 4242 4242
4242 on the sandbox's checkout page, and the owner sees the order with its fee and net."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.payments.stripe_helpers import flush
from tests.servers import Cli, LiveServer


def form_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


@pytest.mark.fresh_server
def test_a_person_clicks_through_the_demo_marketplace(live: LiveServer, cli: Cli) -> None:
    assert cli("demo").returncode == 0
    with httpx.Client(base_url=live.url, timeout=30) as owner:
        # Log in as the demo store owner.
        login = owner.get("/login?next=/dashboard")
        assert login.status_code == 200
        done = owner.post(
            "/login",
            data={
                **form_fields(login.text),
                "email": "owner@atlas.test",
                "password": "souq-demo-2026",
            },
        )
        assert done.status_code == 303 and done.headers["location"] == "/dashboard"
        dashboard = owner.get("/dashboard")
        link = re.search(r"/dashboard/settings/payments\?storeId=(\d+)", dashboard.text)
        assert link is not None, dashboard.text
        store_id = int(link.group(1))
        # "Set up payouts".
        settings = owner.get(f"/dashboard/settings/payments?storeId={store_id}")
        assert "Set up payouts" in settings.text
        start = owner.post(
            f"/dashboard/settings/payments/onboarding/start?storeId={store_id}",
            data=form_fields(settings.text),
        )
        assert start.status_code == 303
        onboarding_url = start.headers["location"]
        # Stripe's (the sandbox's) hosted onboarding: finish it.
        page = owner.get(onboarding_url)
        assert page.status_code == 200
        finish = owner.post(onboarding_url, data={**form_fields(page.text), "outcome": "complete"})
        assert finish.status_code == 303
        back = owner.get(finish.headers["location"])
        assert back.status_code == 200 and 'data-next-step="open_dashboard"' in back.text
        assert "Ready" in back.text

    # A guest buys a demo listing of that store.
    with httpx.Client(base_url=live.url, timeout=30) as guest:
        shop = guest.get(f"/shop?storeId={store_id}")
        assert "Tagine pot, large" in shop.text
        forms = re.findall(r'<form method="post" action="/shop/buy">(.*?)</form>', shop.text, re.S)
        tagine_id = _listing_id(live, "Tagine pot, large")
        tagine = next(f for f in forms if f'name="listing_id" value="{tagine_id}"' in f)
        buy = guest.post(
            "/shop/buy", data={**form_fields(tagine), "quantity": "1", "email": "guest@example.com"}
        )
        assert buy.status_code == 303, buy.text
        checkout_url = buy.headers["location"]
        checkout = guest.get(checkout_url)
        assert checkout.status_code == 200 and "45.00" in checkout.text
        paid = guest.post(
            checkout_url,
            data={"method": "card", "card": "4242 4242 4242 4242", "email": "guest@example.com"},
        )
        assert paid.status_code == 303
        success = guest.get(paid.headers["location"])
        assert success.status_code == 200 and 'data-status="paid"' in success.text
    flush(live)

    # The owner sees it in the store's orders, with its fee and net.
    with httpx.Client(base_url=live.url, timeout=30) as owner:
        login = owner.get("/login")
        owner.post(
            "/login",
            data={
                **form_fields(login.text),
                "email": "owner@atlas.test",
                "password": "souq-demo-2026",
            },
        )
        orders = owner.get(f"/dashboard/orders?storeId={store_id}")
        row = re.search(r'<tr data-order-id="\d+" data-status="paid">.*?</tr>', orders.text, re.S)
        assert row is not None, orders.text
        assert "guest@example.com" in row.group(0)
        assert "$45.00" in row.group(0) and "$2.25" in row.group(0) and "$42.75" in row.group(0)
        assert "$1.61" in row.group(0)  # Stripe's fee: 2.9% of 45.00 + 0.30


def _listing_id(live: LiveServer, name: str) -> int:
    value: int = live.scalar("SELECT id FROM listing WHERE name = :n", n=name)
    return value
