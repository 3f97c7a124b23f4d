"""Checkout with the platform's commission, the payment webhook and the order lifecycle,
against the embedded sandbox over HTTP."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.helpers import anonymous, api_user, error_code, store_team
from tests.payments.stripe_helpers import (
    advance_clock,
    api_order,
    checkout,
    clear_faults,
    completed_event,
    control,
    create_account,
    flush,
    listing,
    onboarded_team,
    order,
    pay,
    payments_status,
    sdk,
    session_id_of,
    set_faults,
    settle,
    sign,
    start,
    stock,
)
from tests.servers import Cli, LiveServer


def test_the_whole_purchase_lands_every_cent_where_it_should(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        account_id = payments_status(team)["stripeAccountId"]
        item = listing(team, price="19.99", stock=5)
        started = start(live, team, [(item, 2)])
        assert order(live, started["orderId"])["payment_status"] == "pending"
        assert stock(live, item) == 3  # reserved

        paid = pay(live, started["url"], card="4242424242424242")
        assert paid.status_code == 200, paid.text
        flush(live)  # the signed checkout.session.completed webhook arrives

        body = api_order(team, started["orderId"])
        assert body["paymentStatus"] == "paid" and body["paidAt"]
        assert (body["total"], body["platformFee"], body["netToStore"]) == (
            "39.98",
            "2.00",
            "37.98",
        )
        payment = body["payment"]
        assert payment["amount"] == "39.98" and payment["currency"] == "usd"
        assert payment["platformFee"] == "2.00" and payment["netToStore"] == "37.98"
        assert payment["stripeCheckoutSessionId"] == session_id_of(started["url"])
        assert payment["stripePaymentIntentId"].startswith("pi_")
        assert payment["stripeChargeId"].startswith("ch_")
        # Stripe's fee: 2.9% + 30 of 3998 = 145.94 → 1.46; the platform keeps 2.00 - 1.46.
        assert payment["stripeFee"] == "1.46" and payment["platformMargin"] == "0.54"
        assert (
            live.scalar(
                "SELECT count(*) FROM order_payment WHERE order_id = :id", id=started["orderId"]
            )
            == 1
        )

        # The sandbox's own records agree with Souq's to the cent.
        client = sdk(live)
        intent = client.v1.payment_intents.retrieve(payment["stripePaymentIntentId"]).to_dict()
        assert intent["amount"] == 3998 and intent["application_fee_amount"] == 200
        assert intent["transfer_data"]["destination"] == account_id
        charge = client.v1.charges.retrieve(payment["stripeChargeId"]).to_dict()
        fee = client.v1.application_fees.retrieve(charge["application_fee"]).to_dict()
        assert fee["amount"] == 200 and fee["account"] == account_id
        transfer = client.v1.transfers.retrieve(charge["transfer"]).to_dict()
        assert transfer["amount"] == 3998 and transfer["destination"] == account_id
        assert stock(live, item) == 3


def test_a_buyer_pays_on_the_hosted_checkout_page_and_lands_on_the_success_page(
    live: LiveServer,
) -> None:
    with onboarded_team(live) as team:
        item = listing(team, price="12.50")
        started = start(live, team, [(item, 1)])
        set_faults(live, webhook_failure_rate=1.0)  # the success page must not need the webhook
        try:
            with httpx.Client(timeout=30) as browser:
                page = browser.get(started["url"])
                assert page.status_code == 200 and "12.50" in page.text
                done = browser.post(
                    started["url"],
                    data={
                        "method": "card",
                        "card": "4242 4242 4242 4242",
                        "email": "buyer@example.com",
                    },
                )
                assert done.status_code == 303
                success = done.headers["location"]
                assert success.startswith(f"{live.url}/checkout/success?session_id=cs_")
                landing = browser.get(success)
            assert landing.status_code == 200
            assert 'data-status="paid"' in landing.text
        finally:
            clear_faults(live)
        assert order(live, started["orderId"])["payment_status"] == "paid"
        assert api_order(team, started["orderId"])["payment"]["platformFee"] == "0.63"


@pytest.mark.parametrize(
    ("how", "status", "code"),
    [
        ({"card": "4000000000000002"}, 402, "card_declined/generic_decline"),
        ({"card": "4000000000009995"}, 402, "card_declined/insufficient_funds"),
        ({"card": "4000002500003155", "authentication": "fail"}, 400,
         "payment_intent_authentication_failure/None"),
    ],
    ids=["declined", "insufficient_funds", "authentication_failed"],
)  # fmt: skip
def test_a_failed_payment_leaves_the_order_pending_until_the_session_expires(
    live: LiveServer, how: dict[str, str], status: int, code: str
) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=2)
        started = start(live, team, [(item, 2)])
        failed = pay(live, started["url"], **how)
        assert failed.status_code == status, failed.text
        error = failed.json()["error"]
        assert f"{error['code']}/{error.get('decline_code')}" == code
        flush(live)
        assert order(live, started["orderId"])["payment_status"] == "pending"  # may retry
        assert stock(live, item) == 0
        advance_clock(live, 35 * 60)
        flush(live)
        assert order(live, started["orderId"])["payment_status"] == "canceled"
        assert stock(live, item) == 2


def test_approved_authentication_pays(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team)
        started = start(live, team, [(item, 1)])
        paid = pay(live, started["url"], card="4000002500003155", authentication="approve")
        assert paid.status_code == 200, paid.text
        flush(live)
        assert order(live, started["orderId"])["payment_status"] == "paid"


@pytest.mark.parametrize(
    ("outcome", "final", "left"), [("succeeded", "paid", 2), ("failed", "failed", 3)]
)
def test_a_delayed_payment_waits_then_settles(
    live: LiveServer, outcome: str, final: str, left: int
) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=3)
        started = start(live, team, [(item, 1)])
        answer = pay(live, started["url"], method="delayed", outcome=outcome)
        assert answer.status_code == 200, answer.text
        flush(live)
        assert order(live, started["orderId"])["payment_status"] == "pending"  # unpaid: waits
        advance_clock(live, 120)
        flush(live)
        assert order(live, started["orderId"])["payment_status"] == final
        assert stock(live, item) == left
        rows = live.scalar(
            "SELECT count(*) FROM order_payment WHERE order_id = :id", id=started["orderId"]
        )
        assert rows == (1 if final == "paid" else 0)


def test_an_expired_session_cancels_the_order_and_releases_stock(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=4)
        started = start(live, team, [(item, 3)])
        assert stock(live, item) == 1
        advance_clock(live, 35 * 60)
        flush(live)
        assert order(live, started["orderId"])["payment_status"] == "canceled"
        assert stock(live, item) == 4


def test_the_cancel_page_expires_the_session_and_releases_stock(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=2)
        started = start(live, team, [(item, 2)])
        session = sdk(live).v1.checkout.sessions.retrieve(session_id_of(started["url"])).to_dict()
        cancel_url = session["cancel_url"]
        assert cancel_url.startswith(f"{live.url}/checkout/cancel?orderId={started['orderId']}")
        with httpx.Client(timeout=30) as browser:
            forged = browser.get(f"{live.url}/checkout/cancel?orderId={started['orderId']}&token=x")
            assert forged.status_code == 404
            assert order(live, started["orderId"])["payment_status"] == "pending"
            page = browser.get(cancel_url)
        assert page.status_code == 200 and "Try again" in page.text
        assert order(live, started["orderId"])["payment_status"] == "canceled"
        assert stock(live, item) == 2
        again = sdk(live).v1.checkout.sessions.retrieve(session_id_of(started["url"])).to_dict()
        assert again["status"] == "expired"


def test_the_same_webhook_twice_and_concurrently_has_its_effect_once(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=10)
        started = start(live, team, [(item, 1)])
        set_faults(live, webhook_failure_rate=1.0)
        try:
            assert pay(live, started["url"], card="4242424242424242").status_code == 200
            flush(live)
        finally:
            clear_faults(live)
        event = completed_event(live, session_id_of(started["url"]))
        body = json.dumps(event).encode()
        secret = live.webhook_secret

        def deliver(_: int) -> int:
            with anonymous(live) as client:
                return client.post(
                    "/api/stripe/webhook",
                    content=body,
                    headers={"Stripe-Signature": sign(body, secret)},
                ).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(deliver, range(8)))
        assert statuses == [200] * 8
        assert deliver(0) == 200  # and once more, late
        assert order(live, started["orderId"])["payment_status"] == "paid"
        assert (
            live.scalar(
                "SELECT count(*) FROM order_payment WHERE order_id = :id", id=started["orderId"]
            )
            == 1
        )
        assert (
            live.scalar(
                "SELECT count(*) FROM stripe_event WHERE stripe_event_id = :e", e=event["id"]
            )
            == 1
        )
        assert stock(live, item) == 9


def test_duplicated_and_shuffled_deliveries_end_in_the_right_state(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=10)
        paid_orders = [start(live, team, [(item, 1)]) for _ in range(3)]
        expired = start(live, team, [(item, 2)])
        delayed_fail = start(live, team, [(item, 1)])
        set_faults(live, webhook_duplicate_rate=1.0, webhook_shuffle=True)
        try:
            for started in paid_orders:
                assert pay(live, started["url"], card="4242424242424242").status_code == 200
            assert (
                pay(live, delayed_fail["url"], method="delayed", outcome="failed").status_code
                == 200
            )
            advance_clock(live, 35 * 60)
            flush(live)
            flush(live)
        finally:
            clear_faults(live)
        for started in paid_orders:
            assert order(live, started["orderId"])["payment_status"] == "paid"
            assert (
                live.scalar(
                    "SELECT count(*) FROM order_payment WHERE order_id = :id", id=started["orderId"]
                )
                == 1
            )
        assert order(live, expired["orderId"])["payment_status"] == "canceled"
        assert order(live, delayed_fail["orderId"])["payment_status"] == "failed"
        assert stock(live, item) == 10 - 3


@pytest.mark.parametrize(
    "case", ["missing", "forged", "altered", "stale", "wrong_secret", "garbage"]
)
def test_bad_signatures_are_refused_and_change_nothing(live: LiveServer, case: str) -> None:
    with onboarded_team(live) as team:
        item = listing(team)
        started = start(live, team, [(item, 1)])
        set_faults(live, webhook_failure_rate=1.0)
        try:
            assert pay(live, started["url"], card="4242424242424242").status_code == 200
            flush(live)
        finally:
            clear_faults(live)
        event = completed_event(live, session_id_of(started["url"]))
        body = json.dumps(event).encode()
        secret = live.webhook_secret
        headers = {
            "missing": {},
            "forged": {"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"},
            "altered": {"Stripe-Signature": sign(body, secret)},
            "stale": {"Stripe-Signature": sign(body, secret, int(time.time()) - 600)},
            "wrong_secret": {"Stripe-Signature": sign(body, "whsec_not_the_secret")},
            "garbage": {"Stripe-Signature": "nonsense"},
        }[case]
        sent = body.replace(b'"paid"', b'"PAID"') if case == "altered" else body
        with anonymous(live) as client:
            response = client.post("/api/stripe/webhook", content=sent, headers=headers)
        assert response.status_code == 400, response.text
        assert error_code(response) == "invalid_signature"
        assert order(live, started["orderId"])["payment_status"] == "pending"
        assert (
            live.scalar(
                "SELECT count(*) FROM stripe_event WHERE stripe_event_id = :e", e=event["id"]
            )
            == 0
        )


def test_prices_and_fees_come_only_from_the_database(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team, price="19.99")
        with anonymous(live) as buyer:
            response = buyer.post(
                "/api/stripe/checkout/create",
                json={
                    "storeId": team.id,
                    "currency": "usd",
                    "customerEmail": "b@example.com",
                    "items": [{"listingId": item, "quantity": 1, "price": "0.01", "unitAmount": 1}],
                    "total": "0.01",
                    "platformFee": "0",
                    "applicationFeeAmount": 0,
                },
            )
        assert response.status_code == 200, response.text
        session = (
            sdk(live).v1.checkout.sessions.retrieve(session_id_of(response.json()["url"])).to_dict()
        )
        assert session["amount_total"] == 1999
        assert order(live, response.json()["orderId"])["platform_fee_amount"] == 100


def test_listings_must_be_of_the_store_in_its_currency_active_and_real(live: LiveServer) -> None:
    with onboarded_team(live) as team, store_team(live, name="Elsewhere") as other:
        usd = listing(team, stock=5)
        eur = listing(team, currency="eur", price="5.00")
        inactive = listing(team, name="Gone")
        assert (
            team.seller.client.patch(
                f"/api/listings/{inactive}", json={"active": False}
            ).status_code
            == 200
        )
        foreign = listing(other)
        before = live.scalar("SELECT count(*) FROM orders")
        cases = [
            ([(foreign, 1)], 422, "listing_wrong_store"),
            ([(usd, 1), (eur, 1)], 422, "listing_wrong_currency"),
            ([(inactive, 1)], 409, "listing_inactive"),
            ([(999_999, 1)], 404, "listing_not_found"),
            ([], 422, "empty_cart"),
            ([(usd, 0)], 422, "invalid_quantity"),
            ([(usd, 1000)], 422, "invalid_quantity"),
            ([(usd, 60), (usd, 60)], 422, "invalid_quantity"),
        ]
        with anonymous(live) as buyer:
            for items, status, code in cases:
                response = checkout(buyer, team.id, items)
                assert response.status_code == status, (items, response.text)
                assert error_code(response) == code, response.text
            for body in (
                {
                    "storeId": team.id,
                    "currency": "usd",
                    "items": [{"listingId": usd, "quantity": 1.5}],
                    "customerEmail": "b@example.com",
                },
                {
                    "storeId": team.id,
                    "currency": "usd",
                    "items": [{"listingId": "x", "quantity": 1}],
                    "customerEmail": "b@example.com",
                },
                {
                    "storeId": team.id,
                    "currency": "usd",
                    "items": [{"listingId": usd, "quantity": 1}],
                    "customerEmail": "not-an-email",
                },
                {
                    "storeId": team.id,
                    "currency": "zzz",
                    "items": [{"listingId": usd, "quantity": 1}],
                    "customerEmail": "b@example.com",
                },
                {
                    "storeId": team.id,
                    "currency": "usd",
                    "items": [{"listingId": usd, "quantity": 1}],
                },
                {
                    "storeId": 999_999,
                    "currency": "usd",
                    "items": [{"listingId": usd, "quantity": 1}],
                    "customerEmail": "b@example.com",
                },
            ):
                response = buyer.post("/api/stripe/checkout/create", json=body)
                assert 400 <= response.status_code < 500, response.text
                error_code(response)
        assert live.scalar("SELECT count(*) FROM orders") == before
        assert stock(live, usd) == 5


def test_a_store_without_charges_cannot_take_payments(live: LiveServer) -> None:
    with store_team(live) as team:
        create_account(team)
        item = listing(team)
        with anonymous(live) as buyer:
            response = checkout(buyer, team.id, [(item, 1)])
        assert response.status_code == 409
        assert response.json()["error"]["message"] == "this store cannot take payments yet"


def test_stripes_limits_are_checked_before_anything_is_written(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        cheap = listing(team, price="0.49")
        dear = listing(team, price="999999.99", name="Yacht")
        before = live.scalar("SELECT count(*) FROM orders")
        with anonymous(live) as buyer:
            small = checkout(buyer, team.id, [(cheap, 1)])
            assert small.status_code == 422 and error_code(small) == "amount_too_small"
            large = checkout(buyer, team.id, [(dear, 2)])
            assert large.status_code == 422 and error_code(large) == "amount_too_large"
            assert checkout(buyer, team.id, [(cheap, 2)]).status_code == 200  # 0.98 is fine
        assert live.scalar("SELECT count(*) FROM orders") == before + 1


def test_the_last_item_bought_by_20_concurrent_buyers_goes_to_exactly_one(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=1, name="The last one")

        def buy(n: int) -> httpx.Response:
            with anonymous(live) as buyer:
                return checkout(buyer, team.id, [(item, 1)], email=f"buyer{n}@example.com")

        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(buy, range(20)))
        won = [a for a in answers if a.status_code == 200]
        lost = [a for a in answers if a.status_code == 409]
        assert len(won) == 1 and len(lost) == 19, [
            a.text for a in answers if a.status_code not in (200, 409)
        ]
        assert all(error_code(a) == "out_of_stock" for a in lost)
        assert stock(live, item) == 0
        assert (
            live.scalar(
                "SELECT count(*) FROM order_item JOIN orders ON orders.id = order_item.order_id "
                "WHERE listing_id = :l AND payment_status = 'pending'",
                l=item,
            )
            == 1
        )


@pytest.mark.fresh_server
@pytest.mark.parametrize(
    ("faults", "status"),
    [({"api_error_rate": 1.0}, 503), ({"timeout_rate": 1.0, "timeout_seconds": 5}, 503)],
    ids=["stripe_errors", "stripe_timeouts"],
)
def test_stripe_failures_leave_no_order_pending(
    live: LiveServer, cli: Cli, faults: dict[str, Any], status: int
) -> None:
    """Stripe may have made the session although its answer never came: the order keeps its
    stock, in its own state, until `souq reconcile` learns the session and closes it."""
    with onboarded_team(live) as team:
        item = listing(team, stock=3)
        set_faults(live, **faults)
        try:
            with anonymous(live) as buyer:
                response = checkout(buyer, team.id, [(item, 2)])
        finally:
            clear_faults(live)
        assert response.status_code == status, response.text
        assert "try again" in response.json()["error"]["message"]
        order_id = live.scalar("SELECT max(id) FROM orders WHERE store_id = :s", s=team.id)
        assert order(live, order_id)["payment_status"] == "session_unknown"
        assert stock(live, item) == 1  # held: Stripe may have made a session that gets paid
        result = cli("reconcile")
        assert result.returncode == 0, result.stderr
        assert order(live, order_id)["payment_status"] == "failed"
        assert stock(live, item) == 3
        sessions = sdk(live).v1.checkout.sessions.list(params={"limit": 100}).to_dict()["data"]
        mine = [s for s in sessions if s["client_reference_id"] == str(order_id)]
        assert len(mine) <= 1  # the idempotency key never let a retry make a second one


def test_flaky_stripe_never_makes_a_second_session_for_one_order(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team)
        set_faults(live, api_error_rate=0.5)
        try:
            answers = []
            with anonymous(live) as buyer:
                for _ in range(8):
                    answers.append(checkout(buyer, team.id, [(item, 1)]))
        finally:
            clear_faults(live)
        assert {a.status_code for a in answers} <= {200, 503}, [a.text for a in answers]
        sessions = sdk(live).v1.checkout.sessions.list(params={"limit": 100}).to_dict()["data"]
        for answer in answers:
            if answer.status_code == 200:
                order_id = answer.json()["orderId"]
                mine = [s for s in sessions if s["client_reference_id"] == str(order_id)]
                assert len(mine) == 1
                assert order(live, order_id)["stripe_checkout_session_id"] == mine[0]["id"]
        assert (
            live.scalar(
                "SELECT count(*) FROM orders WHERE store_id = :s AND payment_status = 'pending' "
                "AND stripe_checkout_session_id IS NULL",
                s=team.id,
            )
            == 0
        )


@pytest.mark.fresh_server
def test_reconcile_recovers_orders_whose_webhooks_were_dropped(live: LiveServer, cli: Cli) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=10)
        started = [start(live, team, [(item, 1)]) for _ in range(3)]
        waiting = start(live, team, [(item, 1)])
        set_faults(live, webhook_failure_rate=1.0)
        try:
            for s in started:
                assert pay(live, s["url"], card="4242424242424242").status_code == 200
            flush(live)
            assert all(order(live, s["orderId"])["payment_status"] == "pending" for s in started)
            result = cli("reconcile")
        finally:
            clear_faults(live)
        assert result.returncode == 0, result.stderr
        assert "paid" in result.stdout
        for s in started:
            assert order(live, s["orderId"])["payment_status"] == "paid"
            assert api_order(team, s["orderId"])["payment"]["stripeFee"] is not None
        assert order(live, waiting["orderId"])["payment_status"] == "pending"
        again = cli("reconcile")
        assert again.returncode == 0 and "paid" not in again.stdout


def test_jpy_and_a_store_override_use_the_commission_rule(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        # A per-store commission override (set by the platform, not by the store's members).
        with live.db.begin() as conn:
            conn.execute(
                sa.text("UPDATE store SET platform_fee_bps = 1250 WHERE id = :id"), {"id": team.id}
            )
        item = listing(team, price="1234", currency="jpy")
        started = start(live, team, [(item, 1)], currency="JPY")
        assert pay(live, started["url"], card="4242424242424242").status_code == 200
        flush(live)
        body = api_order(team, started["orderId"])
        # 12.5% of ¥1,234 = 154.25 → ¥154; the store nets ¥1,080.
        assert (body["currency"], body["total"], body["platformFee"], body["netToStore"]) == (
            "jpy",
            "1234",
            "154",
            "1080",
        )
        intent = (
            sdk(live)
            .v1.payment_intents.retrieve(body["payment"]["stripePaymentIntentId"])
            .to_dict()
        )
        assert intent["application_fee_amount"] == 154 and intent["currency"] == "jpy"


def test_orders_are_visible_to_their_buyer_store_members_and_admins_only(live: LiveServer) -> None:
    with (
        onboarded_team(live) as team,
        store_team(live, name="Other") as other,
        api_user(live, name="Buyer") as buyer,
        api_user(live, name="Stranger") as stranger,
    ):
        item = listing(team)
        response = checkout(buyer.client, team.id, [(item, 1)], email=None)
        assert response.status_code == 200, response.text
        order_id = response.json()["orderId"]
        assert buyer.client.get(f"/api/orders/{order_id}").json()["customerEmail"] == buyer.email
        for member in (team.owner, team.admin, team.seller):
            assert member.client.get(f"/api/orders/{order_id}").status_code == 200
        for outsider in (stranger, other.owner):
            assert outsider.client.get(f"/api/orders/{order_id}").status_code == 404
        with anonymous(live) as client:
            assert client.get(f"/api/orders/{order_id}").status_code == 404
        listed = team.seller.client.get(f"/api/stores/{team.id}/orders?status=pending&limit=1")
        assert listed.status_code == 200
        page = listed.json()
        assert [o["id"] for o in page["data"]] == [order_id]
        assert other.owner.client.get(f"/api/stores/{team.id}/orders").status_code == 404
        with anonymous(live) as client:
            assert client.get(f"/api/stores/{team.id}/orders").status_code == 401


def test_store_orders_paginate_newest_first(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team)
        ids = [start(live, team, [(item, 1)])["orderId"] for _ in range(5)]
        seen: list[int] = []
        before = None
        while True:
            query = f"/api/stores/{team.id}/orders?limit=2" + (
                f"&before={before}" if before else ""
            )
            page = team.owner.client.get(query).json()
            seen += [o["id"] for o in page["data"]]
            if not page["hasMore"]:
                break
            before = page["nextBefore"]
        assert seen == sorted(ids, reverse=True)
        bad = team.owner.client.get(f"/api/stores/{team.id}/orders?status=bogus")
        assert bad.status_code == 422


def test_the_store_orders_page_shows_fee_and_net(live: LiveServer) -> None:
    from tests.helpers import browser_login

    with onboarded_team(live) as team:
        item = listing(team, price="10.00")
        started = start(live, team, [(item, 1)])
        assert pay(live, started["url"], card="4242424242424242").status_code == 200
        flush(live)
        with browser_login(live, team.seller.email) as seller:
            page = seller.client.get(f"/dashboard/orders?storeId={team.id}")
        assert page.status_code == 200
        row = re.search(rf'data-order-id="{started["orderId"]}".*?</tr>', page.text, re.S)
        assert row is not None
        assert "$10.00" in row.group(0) and "$0.50" in row.group(0) and "$9.50" in row.group(0)
        assert 'data-status="paid"' in row.group(0)


@pytest.mark.fresh_server
def test_reconcile_finds_the_session_of_an_order_that_never_saved_it(
    live: LiveServer, cli: Cli
) -> None:
    """A crash right after Stripe answered leaves a pending order without its session id.
    Replaying the create with the order's idempotency key finds the same session."""
    with onboarded_team(live) as team:
        item = listing(team, stock=5)
        paid = start(live, team, [(item, 1)])
        unpaid = start(live, team, [(item, 1)])
        for started in (paid, unpaid):
            with live.db.begin() as conn:
                conn.execute(
                    sa.text("UPDATE orders SET stripe_checkout_session_id = NULL WHERE id = :i"),
                    {"i": started["orderId"]},
                )
        set_faults(live, webhook_failure_rate=1.0)
        assert pay(live, paid["url"], card="4242424242424242").status_code == 200
        flush(live)
        clear_faults(live)
        young = cli("reconcile")  # both orders are too young to be looked up
        assert young.returncode == 0 and "too_recent" in young.stdout
        assert order(live, paid["orderId"])["payment_status"] == "pending"

        result = cli("reconcile", "--min-age", "0")
        assert result.returncode == 0, result.stderr
        recovered = order(live, paid["orderId"])
        assert recovered["payment_status"] == "paid"
        assert recovered["stripe_checkout_session_id"] == session_id_of(paid["url"])
        waiting = order(live, unpaid["orderId"])
        assert waiting["payment_status"] == "pending"
        assert waiting["stripe_checkout_session_id"] == session_id_of(unpaid["url"])
        sessions = sdk(live).v1.checkout.sessions.list(params={"limit": 100}).to_dict()["data"]
        for started in (paid, unpaid):
            mine = [s for s in sessions if s["client_reference_id"] == str(started["orderId"])]
            assert len(mine) == 1  # the replay made no second session
        assert stock(live, item) == 3


def test_success_pages_and_the_webhook_racing_record_one_payment(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=5)
        started = start(live, team, [(item, 1)])
        set_faults(live, webhook_failure_rate=1.0)
        assert pay(live, started["url"], card="4242424242424242").status_code == 200
        flush(live)
        clear_faults(live)
        event = completed_event(live, session_id_of(started["url"]))
        body = json.dumps(event).encode()
        secret = live.webhook_secret
        success = f"/checkout/success?session_id={session_id_of(started['url'])}"

        def hit(n: int) -> int:
            with anonymous(live) as client:
                if n % 2:
                    return client.get(success).status_code
                return client.post(
                    "/api/stripe/webhook",
                    content=body,
                    headers={"Stripe-Signature": sign(body, secret)},
                ).status_code

        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(pool.map(hit, range(10)))
        assert statuses == [200] * 10
        assert order(live, started["orderId"])["payment_status"] == "paid"
        assert (
            live.scalar(
                "SELECT count(*) FROM order_payment WHERE order_id = :id", id=started["orderId"]
            )
            == 1
        )
        assert stock(live, item) == 4


def test_a_charge_event_fills_in_stripes_fee_when_it_was_not_known_yet(live: LiveServer) -> None:
    """With asynchronous capture the balance transaction (and so Stripe's fee) is not known
    when the session completes; charge.succeeded / charge.updated bring it later."""
    with onboarded_team(live) as team:
        item = listing(team, price="20.00")
        started = start(live, team, [(item, 1)])
        assert pay(live, started["url"], card="4242424242424242").status_code == 200
        flush(live)
        with live.db.begin() as conn:
            conn.execute(
                sa.text("UPDATE order_payment SET stripe_fee_amount = NULL WHERE order_id = :i"),
                {"i": started["orderId"]},
            )
        assert api_order(team, started["orderId"])["payment"]["stripeFee"] is None
        intent_id = api_order(team, started["orderId"])["payment"]["stripePaymentIntentId"]
        events = sdk(live).v1.events.list(params={"type": "charge.succeeded", "limit": 100})
        event = next(
            e.to_dict()
            for e in events.data
            if e.to_dict()["data"]["object"]["payment_intent"] == intent_id
        )
        event["id"] = event["id"] + "_again"  # a later charge.updated with the same charge
        event["type"] = "charge.updated"
        body = json.dumps(event).encode()
        secret = live.webhook_secret
        with anonymous(live) as client:
            response = client.post(
                "/api/stripe/webhook",
                content=body,
                headers={"Stripe-Signature": sign(body, secret)},
            )
        assert response.status_code == 200, response.text
        settle(live)
        payment = api_order(team, started["orderId"])["payment"]
        assert payment["stripeFee"] == "0.88"  # 2.9% of 20.00 + 0.30
        assert payment["platformMargin"] == "0.12"  # 1.00 commission - 0.88


@pytest.mark.fresh_server
def test_reconcile_fails_a_lost_order_of_a_store_that_was_disconnected(
    live: LiveServer, cli: Cli
) -> None:
    with onboarded_team(live) as team:
        account_id = payments_status(team)["stripeAccountId"]
        item = listing(team, stock=2)
        started = start(live, team, [(item, 2)])
        with live.db.begin() as conn:
            conn.execute(
                sa.text("UPDATE orders SET stripe_checkout_session_id = NULL WHERE id = :i"),
                {"i": started["orderId"]},
            )
        control(live, f"/accounts/{account_id}/deauthorize")
        flush(live)
        assert payments_status(team)["hasAccount"] is False
        result = cli("reconcile", "--min-age", "0")
        assert result.returncode == 0, result.stderr
        assert order(live, started["orderId"])["payment_status"] == "failed"
        assert stock(live, item) == 2
