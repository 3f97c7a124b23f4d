"""The cart across stores, paid once and split by transfers, against the embedded sandbox over
HTTP: amounts to the cent in Souq and in the sandbox, exactly-once transfers, failures and their
retry, and what checkout refuses."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.helpers import PASSWORD, anonymous, api_user, browser_login, error_code
from tests.payments.stripe_helpers import (
    clear_faults,
    completed_event,
    control,
    deliver,
    flush,
    listing,
    onboarded_team,
    pay,
    payments_status,
    platform_admin,
    sdk,
    session_id_of,
    set_faults,
    settle,
)
from tests.servers import Cli, LiveServer


def add(client: httpx.Client, listing_id: int, quantity: int = 1) -> dict[str, Any]:
    response = client.post("/api/cart/items", json={"listingId": listing_id, "quantity": quantity})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def checkout(client: httpx.Client, email: str | None = "buyer@example.com") -> httpx.Response:
    return client.post("/api/cart/checkout", json={} if email is None else {"customerEmail": email})


def group_transfers(live: LiveServer, group_id: int) -> list[dict[str, Any]]:
    found = sdk(live).v1.transfers.list(
        params={"transfer_group": f"checkout-group-{group_id}", "limit": 100}
    )
    return [t.to_dict() for t in found.data]


def order_json(team: Any, order_id: int) -> dict[str, Any]:
    response = team.owner.client.get(f"/api/orders/{order_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_three_store_cart_is_paid_once_and_each_store_gets_one_transfer(
    live: LiveServer,
) -> None:
    with (
        onboarded_team(live, name="Cedar") as a,
        onboarded_team(live, name="Olive") as b,
        onboarded_team(live, name="Fig") as c,
        anonymous(live) as buyer,
    ):
        items = {
            a.id: listing(a, price="19.99", stock=5),
            b.id: listing(b, price="10.10"),
            c.id: listing(c, price="7.05", stock=2),
        }
        add(buyer, items[a.id], 2)
        add(buyer, items[b.id])
        cart = add(buyer, items[c.id], 2)
        assert [s["subtotal"] for s in cart["stores"]] == ["39.98", "10.10", "14.10"]
        assert cart["totals"] == [
            {"currency": "usd", "subtotal": "64.18", "buyerFee": "0.00", "total": "64.18"}
        ]
        assert cart["problems"] == []

        started = checkout(buyer)
        assert started.status_code == 200, started.text
        body = started.json()
        group_id = body["checkoutGroupId"]
        assert group_id and len(body["orders"]) == 3
        assert buyer.get("/api/cart").json()["items"] == []  # emptied once the page exists
        session = sdk(live).v1.checkout.sessions.retrieve(session_id_of(body["url"])).to_dict()
        assert session["amount_total"] == 6418

        assert pay(live, body["url"], card="4242424242424242").status_code == 200
        flush(live)

        # 5% commission of each store's subtotal, half up: 2.00, 0.51, 0.71.
        expected = {a.id: (3998, 200), b.id: (1010, 51), c.id: (1410, 71)}
        sent = {t["destination"]: t for t in group_transfers(live, group_id)}
        assert len(sent) == 3
        paid = sdk(live).v1.checkout.sessions.retrieve(session["id"]).to_dict()
        intent = sdk(live).v1.payment_intents.retrieve(paid["payment_intent"]).to_dict()
        charge_id = intent["latest_charge"]
        assert intent["transfer_group"] == f"checkout-group-{group_id}"
        for team, placed in zip((a, b, c), body["orders"], strict=True):
            total, fee = expected[team.id]
            order = order_json(team, placed["orderId"])
            assert order["paymentStatus"] == "paid" and order["checkoutGroupId"] == group_id
            assert order["storeId"] == team.id
            account = payments_status(team)["stripeAccountId"]
            transfer = sent[account]
            assert transfer["amount"] == total - fee
            assert transfer["source_transaction"] == charge_id
            assert transfer["transfer_group"] == f"checkout-group-{group_id}"
            assert order["transfer"]["status"] == "sent"
            assert order["transfer"]["stripeTransferId"] == transfer["id"]
            assert order["platformFee"] == f"{fee / 100:.2f}"
            balance = sdk(live).v1.balance.retrieve(options={"stripe_account": account}).to_dict()
            held = sum(
                entry["amount"]
                for entry in balance["pending"] + balance["available"]
                if entry["currency"] == "usd"
            )
            assert held == total - fee
        # The platform kept the commissions: the charge minus the three transfers.
        assert sum(t["amount"] for t in sent.values()) == 6418 - 322


@pytest.mark.slow
def test_transfers_happen_once_under_duplicate_and_shuffled_webhooks_and_concurrent_reconcile(
    live: LiveServer, cli: Cli
) -> None:
    with (
        onboarded_team(live, name="One") as a,
        onboarded_team(live, name="Two") as b,
        anonymous(live) as buyer,
    ):
        add(buyer, listing(a, price="12.00"))
        add(buyer, listing(b, price="8.00"))
        body = checkout(buyer).json()
        assert pay(live, body["url"], card="4242424242424242").status_code == 200
        event = completed_event(live, session_id_of(body["url"]))
        # The same event delivered again and again, concurrently, and reconcile runs besides.
        with ThreadPoolExecutor(max_workers=6) as pool:
            deliveries = [pool.submit(deliver, live, event) for _ in range(4)]
            reconciles = [pool.submit(cli, "reconcile") for _ in range(2)]
            assert all(f.result().status_code == 200 for f in deliveries)
            assert all(f.result().returncode == 0 for f in reconciles)
        flush(live)
        transfers = group_transfers(live, body["checkoutGroupId"])
        assert sorted(t["amount"] for t in transfers) == [760, 1140]
        assert (
            live.scalar(
                "SELECT count(*) FROM store_transfer "
                "WHERE checkout_group_id = :g AND status = 'sent'",
                g=body["checkoutGroupId"],
            )
            == 2
        )


def test_transfers_are_asked_for_only_after_the_payment_is_committed(live: LiveServer) -> None:
    """With every Stripe call slowed down, the group is seen paid in the database while its
    store transfers are still unsent: Stripe was not asked inside the payment's transaction
    (which would have committed only after the transfers existed). Then each is sent once."""
    with (
        onboarded_team(live, name="Slow One") as a,
        onboarded_team(live, name="Slow Two") as b,
        anonymous(live) as buyer,
    ):
        add(buyer, listing(a, price="6.00"))
        add(buyer, listing(b, price="4.00"))
        body = checkout(buyer).json()
        group_id = body["checkoutGroupId"]
        assert pay(live, body["url"], card="4242424242424242").status_code == 200
        set_faults(live, api_latency_ms=1000)
        try:
            control(live, "/webhooks/flush")
            deadline = time.monotonic() + 30
            while (
                live.scalar("SELECT status FROM checkout_group WHERE id = :g", g=group_id) != "paid"
            ):
                assert time.monotonic() < deadline, "the group was never paid"
                time.sleep(0.005)
            unsent = live.scalar(
                "SELECT count(*) FROM store_transfer "
                "WHERE checkout_group_id = :g AND status = 'pending'",
                g=group_id,
            )
            assert unsent == 2
        finally:
            clear_faults(live)
        settle(live)
        assert sorted(t["amount"] for t in group_transfers(live, group_id)) == [380, 570]
        statuses = live.rows(
            "SELECT status, attempts FROM store_transfer WHERE checkout_group_id = :g", g=group_id
        )
        assert sorted(tuple(r) for r in statuses) == [("sent", 1), ("sent", 1)]


def refused_transfer_checkout(
    live: LiveServer, a: Any, b: Any, buyer: httpx.Client
) -> tuple[dict[str, Any], str]:
    """A two-store cart paid after Stripe restricted the second store's account (it cannot
    receive transfers): the checkout's answer and that account's id."""
    add(buyer, listing(a, price="20.00"))
    add(buyer, listing(b, price="30.00"))
    body: dict[str, Any] = checkout(buyer).json()
    account_b: str = payments_status(b)["stripeAccountId"]
    control(live, f"/accounts/{account_b}/onboard", {"outcome": "requirements_due"})
    assert pay(live, body["url"], card="4242424242424242").status_code == 200
    return body, account_b


@pytest.mark.fresh_server
def test_a_refused_transfer_is_recorded_shown_to_admins_and_retried_by_reconcile(
    live: LiveServer, cli: Cli
) -> None:
    with (
        onboarded_team(live, name="Fine") as a,
        onboarded_team(live, name="Restricted") as b,
        anonymous(live) as buyer,
        platform_admin(live) as admin,
    ):
        body, account_b = refused_transfer_checkout(live, a, b, buyer)
        flush(live)

        order_b = order_json(b, body["orders"][1]["orderId"])
        assert order_b["paymentStatus"] == "paid"
        assert order_b["transfer"]["status"] == "failed"
        assert "insufficient_capabilities_for_transfer" in order_b["transfer"]["failureReason"]
        assert order_json(a, body["orders"][0]["orderId"])["transfer"]["status"] == "sent"
        failed = admin.client.get("/api/admin/transfers?status=failed").json()["data"]
        assert [(t["orderId"], t["storeId"]) for t in failed] == [(order_b["id"], b.id)]
        assert len(group_transfers(live, body["checkoutGroupId"])) == 1

        control(live, f"/accounts/{account_b}/onboard", {"outcome": "complete"})
        result = cli("reconcile")
        assert result.returncode == 0, result.stderr
        assert "transfer sent" in result.stdout
        order_b = order_json(b, order_b["id"])
        assert order_b["transfer"]["status"] == "sent" and order_b["transfer"]["attempts"] == 2
        transfers = group_transfers(live, body["checkoutGroupId"])
        assert sorted((t["destination"], t["amount"]) for t in transfers) == sorted(
            [(payments_status(a)["stripeAccountId"], 1900), (account_b, 2850)]
        )
        assert admin.client.get("/api/admin/transfers?status=failed").json()["data"] == []
        again = cli("reconcile")
        assert "transfer" not in again.stdout
        assert len(group_transfers(live, body["checkoutGroupId"])) == 2


def test_a_one_store_cart_keeps_the_destination_charge(live: LiveServer) -> None:
    with onboarded_team(live) as team, anonymous(live) as buyer:
        add(buyer, listing(team, price="15.00"), 2)
        body = checkout(buyer).json()
        assert body["checkoutGroupId"] is None and len(body["orders"]) == 1
        assert pay(live, body["url"], card="4242424242424242").status_code == 200
        flush(live)
        order = order_json(team, body["orders"][0]["orderId"])
        assert order["paymentStatus"] == "paid" and order["transfer"] is None
        intent = (
            sdk(live)
            .v1.payment_intents.retrieve(order["payment"]["stripePaymentIntentId"])
            .to_dict()
        )
        assert intent["transfer_data"]["destination"] == payments_status(team)["stripeAccountId"]
        assert intent["application_fee_amount"] == 150


def test_price_changes_stock_outs_and_mixed_currencies_are_reported_not_charged(
    live: LiveServer,
) -> None:
    with (
        onboarded_team(live, name="A") as a,
        onboarded_team(live, name="B") as b,
        anonymous(live) as buyer,
    ):
        repriced = listing(a, price="10.00")
        scarce = listing(b, price="5.00", stock=3)
        gone = listing(b, price="6.00")
        add(buyer, repriced)
        add(buyer, scarce, 2)
        add(buyer, gone)
        assert a.seller.client.patch(
            f"/api/listings/{repriced}", json={"price": "12.00"}
        ).is_success
        assert b.seller.client.patch(f"/api/listings/{scarce}", json={"stock": 1}).is_success
        assert b.seller.client.patch(f"/api/listings/{gone}", json={"active": False}).is_success
        orders_before = live.scalar("SELECT count(*) FROM orders")

        response = checkout(buyer)
        assert response.status_code == 409 and error_code(response) == "cart_changed"
        problems = {d["field"]: d["code"] for d in response.json()["error"]["details"]}
        assert problems == {
            f"items.{repriced}": "price_changed",
            f"items.{scarce}": "out_of_stock",
            f"items.{gone}": "unavailable",
        }
        assert live.scalar("SELECT count(*) FROM orders") == orders_before
        assert live.scalar("SELECT stock FROM listing WHERE id = :i", i=scarce) == 1
        cart = buyer.get("/api/cart").json()
        assert len(cart["problems"]) == 3 and len(cart["items"]) == 3

        # Accepting the new price and the stock left, and dropping the gone item, clears it.
        assert buyer.patch(f"/api/cart/items/{repriced}", json={"quantity": 1}).is_success
        assert buyer.patch(f"/api/cart/items/{scarce}", json={"quantity": 1}).is_success
        assert buyer.delete(f"/api/cart/items/{gone}").is_success
        cart = buyer.get("/api/cart").json()
        assert cart["problems"] == [] and cart["totals"][0]["total"] == "17.00"

        yen = listing(b, price="500", currency="jpy")
        add(buyer, yen)
        mixed = checkout(buyer)
        assert mixed.status_code == 409
        assert [d["code"] for d in mixed.json()["error"]["details"]] == ["mixed_currencies"]
        assert live.scalar("SELECT count(*) FROM orders") == orders_before


def test_cart_input_is_checked(live: LiveServer) -> None:
    with onboarded_team(live) as team, anonymous(live) as buyer:
        item = listing(team, price="3.00")
        for body, status in (
            ({"listingId": 2147483647}, 404),
            ({"listingId": item, "quantity": 0}, 422),
            ({"listingId": item, "quantity": 100}, 409),
            ({"listingId": item, "price": "0.01"}, 422),
        ):
            assert buyer.post("/api/cart/items", json=body).status_code == status, body
        assert buyer.patch(f"/api/cart/items/{item}", json={"quantity": 1}).status_code == 404
        assert error_code(checkout(buyer)) == "empty_cart"
        add(buyer, item, 99)
        assert error_code(buyer.post("/api/cart/items", json={"listingId": item})) == (
            "quantity_limit"
        )
        assert error_code(checkout(buyer, email=None)) == "email_required"


def test_a_guest_cart_is_merged_into_the_users_cart_at_login(live: LiveServer) -> None:
    with onboarded_team(live) as team, api_user(live, name="Shopper") as shopper:
        first, second = listing(team, price="4.00"), listing(team, price="6.00")
        add(shopper.client, first, 1)  # the user's own cart, through the API token
        with anonymous(live) as browser:
            add(browser, first, 2)
            add(browser, second, 1)
            response = browser.post(
                "/api/auth/login", json={"email": shopper.email, "password": PASSWORD}
            )
            assert response.status_code == 200, response.text
            merged = browser.get("/api/cart").json()
        quantities = {i["listingId"]: i["quantity"] for i in merged["items"]}
        assert quantities == {first: 3, second: 1}
        assert shopper.client.get("/api/cart").json()["items"] == merged["items"]
        assert (
            live.scalar(
                "SELECT count(*) FROM cart WHERE key_hash IS NOT NULL AND id IN "
                "(SELECT cart_id FROM cart_item WHERE listing_id = :l)",
                l=second,
            )
            == 0
        )


def test_each_caller_sees_only_their_own_cart(live: LiveServer) -> None:
    with (
        onboarded_team(live) as team,
        api_user(live, name="Mine") as mine,
        api_user(live, name="Theirs") as theirs,
        anonymous(live) as guest,
    ):
        item = listing(team)
        add(mine.client, item)
        for other in (theirs.client, guest):
            assert other.get("/api/cart").json()["items"] == []
            assert other.patch(f"/api/cart/items/{item}", json={"quantity": 5}).status_code == 404
            assert other.delete(f"/api/cart/items/{item}").status_code == 404
        assert mine.client.get("/api/cart").json()["items"][0]["quantity"] == 1
        with browser_login(live, mine.email) as session:
            # A cookie session's writes need its CSRF token, as every other route's do.
            refused = session.client.post("/api/cart/items", json={"listingId": item})
            assert refused.status_code == 403
            accepted = session.client.post(
                "/api/cart/items", json={"listingId": item}, headers=session.csrf_headers
            )
            assert accepted.status_code == 200
        assert mine.client.get("/api/cart").json()["items"][0]["quantity"] == 2
