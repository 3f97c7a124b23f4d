"""How a cart is checked out, against the embedded sandbox over HTTP: CHECKOUT_SPLIT_MODE=
per_store (one destination-charge payment per store, each success page leading to the next
store's), and a double click (two concurrent checkouts of one cart make one checkout)."""

from __future__ import annotations

import html
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.carts.test_cart import add, checkout, group_transfers, order_json
from tests.carts.test_holds import hold
from tests.helpers import anonymous, fake_address
from tests.payments.stripe_helpers import (
    flush,
    listing,
    onboarded_team,
    pay,
    payments_status,
    sdk,
    session_id_of,
    stock,
)
from tests.servers import LiveServer, beside


def success_page(live: LiveServer, url: str) -> str:
    with anonymous(live) as browser:
        page = browser.get("/checkout/success", params={"session_id": session_id_of(url)})
    assert page.status_code == 200, page.text
    return page.text


def test_per_store_mode_pays_each_store_in_turn_by_destination_charges(
    live: LiveServer,
) -> None:
    with (
        onboarded_team(live, name="First Stall") as a,
        onboarded_team(live, name="Second Stall") as b,
        beside(live, checkout_split_mode="per_store") as url,
        httpx.Client(
            base_url=url, timeout=30, headers={"X-Forwarded-For": fake_address()}
        ) as buyer,
    ):
        add(buyer, listing(a, price="20.00"))
        add(buyer, listing(b, price="12.50"), 2)
        started = checkout(buyer)
        assert started.status_code == 200, started.text
        body = started.json()
        assert body["splitMode"] == "per_store" and body["checkoutGroupId"] is None
        first, second = body["orders"]
        assert (first["storeId"], second["storeId"]) == (a.id, b.id)
        assert body["url"] == first["url"] and first["url"] != second["url"]
        assert buyer.get("/api/cart").json()["items"] == []

        assert pay(live, first["url"], card="4242424242424242").status_code == 200
        flush(live)
        page = success_page(live, first["url"])
        assert 'id="next-payment"' in page and f'data-order-id="{second["orderId"]}"' in page
        assert html.escape(second["url"]) in page and "Second Stall" in page

        assert pay(live, second["url"], card="4242424242424242").status_code == 200
        flush(live)
        assert 'id="next-payment"' not in success_page(live, second["url"])
        assert 'id="next-payment"' not in success_page(live, first["url"])

        # Each store was paid by its own destination charge, minus its 5% commission.
        for team, placed, total in ((a, first, 2000), (b, second, 2500)):
            order = order_json(team, placed["orderId"])
            assert order["paymentStatus"] == "paid"
            assert order["checkoutGroupId"] is None and order["transfer"] is None
            intent = (
                sdk(live)
                .v1.payment_intents.retrieve(order["payment"]["stripePaymentIntentId"])
                .to_dict()
            )
            account = payments_status(team)["stripeAccountId"]
            assert intent["amount"] == total
            assert intent["transfer_data"]["destination"] == account
            assert intent["application_fee_amount"] == total * 5 // 100
            # Stripe's own group for a destination charge's transfer, not one of Souq's.
            assert not intent["transfer_group"].startswith("checkout-group-")


def test_per_store_mode_leads_on_from_a_held_stores_payment(live: LiveServer) -> None:
    """A store whose money is held is paid by a group of one (separate charge and transfer);
    its success page still leads to the next store's payment."""
    with (
        onboarded_team(live, name="Held Stall") as a,
        onboarded_team(live, name="Open Stall") as b,
        beside(live, checkout_split_mode="per_store") as url,
        httpx.Client(
            base_url=url, timeout=30, headers={"X-Forwarded-For": fake_address()}
        ) as buyer,
    ):
        hold(live, a)
        add(buyer, listing(a, price="8.00"))
        add(buyer, listing(b, price="3.00"))
        first, second = checkout(buyer).json()["orders"]
        assert first["storeId"] == a.id and order_json(a, first["orderId"])["checkoutGroupId"]

        assert pay(live, first["url"], card="4242424242424242").status_code == 200
        flush(live)
        page = success_page(live, first["url"])
        assert 'id="group-status" data-status="paid"' in page
        assert 'id="next-payment"' in page and f'data-order-id="{second["orderId"]}"' in page
        assert html.escape(second["url"]) in page and "Open Stall" in page

        assert pay(live, second["url"], card="4242424242424242").status_code == 200
        flush(live)
        assert 'id="next-payment"' not in success_page(live, first["url"])


def concurrent_checkouts(client: httpx.Client, email: str, times: int = 2) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=times) as pool:
        answers = list(pool.map(lambda _: checkout(client, email=email), range(times)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return [a.json() for a in answers]


def test_a_double_click_on_cart_checkout_makes_one_checkout(live: LiveServer) -> None:
    with (
        onboarded_team(live, name="Clicks") as a,
        onboarded_team(live, name="Twice") as b,
        anonymous(live) as buyer,
    ):
        # Several stores: one checkout group, whichever request made it.
        scarce = listing(a, price="8.00", stock=3)
        add(buyer, scarce)
        add(buyer, listing(b, price="9.00"))
        email = f"double-{uuid.uuid4().hex[:12]}@example.com"
        one, two = concurrent_checkouts(buyer, email)
        assert one == two and one["checkoutGroupId"] is not None
        orders = live.rows(
            "SELECT id, checkout_group_id FROM orders WHERE customer_email = :e", e=email
        )
        assert sorted(o.id for o in orders) == sorted(o["orderId"] for o in one["orders"])
        assert {o.checkout_group_id for o in orders} == {one["checkoutGroupId"]}
        assert stock(live, scarce) == 2
        # A click answered after the first finished, the cart empty since: the same checkout.
        late = checkout(buyer, email=email)
        assert late.status_code == 200 and late.json() == one

        # Once it is paid, the empty cart is just empty again.
        assert pay(live, one["url"], card="4242424242424242").status_code == 200
        flush(live)
        assert len(group_transfers(live, one["checkoutGroupId"])) == 2
        assert checkout(buyer, email=email).status_code == 409

        # One store: one order with its destination charge.
        add(buyer, scarce)
        first, again = concurrent_checkouts(buyer, email)
        assert first == again and first["checkoutGroupId"] is None
        assert len(first["orders"]) == 1
        assert live.scalar("SELECT count(*) FROM orders WHERE customer_email = :e", e=email) == 3
        assert stock(live, scarce) == 1
