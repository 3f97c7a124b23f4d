"""Sellers' money held until fulfilment (TRANSFER_TIMING=on_fulfilment, set per store by a
platform admin), against the embedded sandbox over HTTP: no transfer until the seller marks
the order fulfilled, then exactly one; the release after TRANSFER_RELEASE_DAYS, less what a
refund made in Stripe's dashboard took; a one-store cart paid by separate charge and transfer."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.carts.test_cart import add, checkout, order_json
from tests.helpers import StoreTeam, anonymous, api_user, error_code
from tests.payments.stripe_helpers import (
    advance_clock,
    flush,
    listing,
    onboarded_team,
    pay,
    payments_status,
    platform_admin,
    reset_clock,
    sdk,
)
from tests.servers import LiveServer, cli_env

DAY = 86_400


def hold(live: LiveServer, team: StoreTeam) -> None:
    """A platform admin sets the store's transfer timing to on_fulfilment."""
    with platform_admin(live) as admin:
        response = admin.client.patch(
            f"/api/admin/stores/{team.id}/commission", json={"transferTiming": "on_fulfilment"}
        )
    assert response.status_code == 200, response.text
    assert response.json()["transferTiming"] == "on_fulfilment"
    assert response.json()["effectiveTransferTiming"] == "on_fulfilment"


def fulfil(client: httpx.Client, order_id: int, **body: Any) -> httpx.Response:
    return client.post(f"/api/orders/{order_id}/fulfilment", json=body)


def transfers_to(live: LiveServer, team: StoreTeam) -> list[dict[str, Any]]:
    account = payments_status(team)["stripeAccountId"]
    found = sdk(live).v1.transfers.list(params={"destination": account, "limit": 100})
    return [t.to_dict() for t in found.data]


def paid_cart(live: LiveServer, buyer: httpx.Client, *items: int) -> dict[str, Any]:
    for item in items:
        add(buyer, item)
    started = checkout(buyer)
    assert started.status_code == 200, started.text
    body: dict[str, Any] = started.json()
    assert pay(live, body["url"], card="4242424242424242").status_code == 200
    flush(live)
    return body


def release_due(live: LiveServer, days: int) -> str:
    """`souq release-transfers` as an operator runs it, with TRANSFER_RELEASE_DAYS=days."""
    done = subprocess.run(
        [sys.executable, "-m", "souq.cli", "release-transfers"],
        capture_output=True,
        text=True,
        env=cli_env(live, TRANSFER_RELEASE_DAYS=str(days), COLUMNS="200"),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_held_transfer_waits_for_fulfilment_then_is_sent_exactly_once(
    live: LiveServer,
) -> None:
    with (
        onboarded_team(live, name="Held") as held,
        onboarded_team(live, name="Paid") as paid,
        anonymous(live) as buyer,
    ):
        hold(live, held)
        body = paid_cart(live, buyer, listing(held, price="20.00"), listing(paid, price="10.00"))
        held_id, paid_id = (o["orderId"] for o in body["orders"])

        order = order_json(held, held_id)
        assert order["paymentStatus"] == "paid" and order["transferOnFulfilment"] is True
        assert order["transfer"]["status"] == "held" and order["fulfilment"] is None
        assert transfers_to(live, held) == []
        # The store without a hold was paid at once.
        assert order_json(paid, paid_id)["transfer"]["status"] == "sent"
        assert [t["amount"] for t in transfers_to(live, paid)] == [950]

        shipped = fulfil(
            held.seller.client, held_id, status="shipped", carrier="DHL", trackingNumber="JD0142"
        )
        assert shipped.status_code == 200, shipped.text
        after = shipped.json()
        assert after["fulfilment"]["status"] == "shipped"
        assert after["fulfilment"]["carrier"] == "DHL"
        assert after["fulfilment"]["trackingNumber"] == "JD0142"
        assert after["transfer"]["status"] == "sent"
        sent = transfers_to(live, held)
        assert len(sent) == 1 and sent[0]["amount"] == 2000 - 100
        assert sent[0]["transfer_group"] == f"checkout-group-{body['checkoutGroupId']}"
        assert after["transfer"]["stripeTransferId"] == sent[0]["id"]

        # Delivered later: the fulfilment moves on, the transfer is not made again.
        delivered = fulfil(held.owner.client, held_id, status="delivered")
        assert delivered.status_code == 200, delivered.text
        assert delivered.json()["fulfilment"]["status"] == "delivered"
        assert delivered.json()["fulfilment"]["carrier"] == "DHL"
        assert len(transfers_to(live, held)) == 1
        listed = held.owner.client.get(f"/api/stores/{held.id}/orders").json()["data"]
        mine = next(o for o in listed if o["id"] == held_id)
        assert mine["transfer"]["status"] == "sent" and mine["fulfilment"]["status"] == "delivered"


def test_a_one_store_cart_with_holds_is_paid_by_separate_charge_and_transfer(
    live: LiveServer,
) -> None:
    with onboarded_team(live, name="Solo Held") as team, anonymous(live) as buyer:
        hold(live, team)
        body = paid_cart(live, buyer, listing(team, price="15.00"))
        assert body["checkoutGroupId"] is not None and len(body["orders"]) == 1
        order_id = body["orders"][0]["orderId"]
        intent_id = live.scalar(
            "SELECT stripe_payment_intent_id FROM checkout_group WHERE id = :g",
            g=body["checkoutGroupId"],
        )
        intent = sdk(live).v1.payment_intents.retrieve(intent_id).to_dict()
        assert intent["transfer_data"] is None and intent["application_fee_amount"] is None
        assert order_json(team, order_id)["transfer"]["status"] == "held"
        assert transfers_to(live, team) == []
        done = fulfil(team.admin.client, order_id, status="delivered")
        assert done.status_code == 200, done.text
        assert [t["amount"] for t in transfers_to(live, team)] == [1500 - 75]


def test_a_store_checkout_with_holds_is_paid_by_separate_charge_and_transfer(
    live: LiveServer,
) -> None:
    """`POST /api/stripe/checkout/create` (and the Buy form behind it) for a store whose money
    is held: a platform charge in a group of one, no transfer until fulfilment, then one."""
    with onboarded_team(live, name="Held Buy") as team, anonymous(live) as buyer:
        hold(live, team)
        body = {
            "storeId": team.id,
            "currency": "usd",
            "customerEmail": "held-buyer@example.com",
            "items": [{"listingId": listing(team, price="40.00"), "quantity": 1}],
        }
        key = {"Idempotency-Key": f"held-{team.id}"}
        started = buyer.post("/api/stripe/checkout/create", json=body, headers=key)
        assert started.status_code == 200, started.text
        again = buyer.post("/api/stripe/checkout/create", json=body, headers=key)
        assert again.json() == started.json()  # the same order and page
        order_id, url = started.json()["orderId"], started.json()["url"]
        group_id = order_json(team, order_id)["checkoutGroupId"]
        assert group_id is not None

        assert pay(live, url, card="4242424242424242").status_code == 200
        flush(live)
        order = order_json(team, order_id)
        assert order["paymentStatus"] == "paid" and order["transfer"]["status"] == "held"
        intent_id = live.scalar(
            "SELECT stripe_payment_intent_id FROM checkout_group WHERE id = :g", g=group_id
        )
        intent = sdk(live).v1.payment_intents.retrieve(intent_id).to_dict()
        assert intent["transfer_data"] is None and intent["application_fee_amount"] is None
        assert intent["transfer_group"] == f"checkout-group-{group_id}"
        assert transfers_to(live, team) == []

        done = fulfil(team.seller.client, order_id, status="shipped")
        assert done.status_code == 200, done.text
        sent = transfers_to(live, team)
        assert [(t["amount"], t["transfer_group"]) for t in sent] == [
            (4000 - 200, f"checkout-group-{group_id}")
        ]
        assert done.json()["transfer"]["stripeTransferId"] == sent[0]["id"]


@pytest.mark.fresh_server
def test_held_transfers_are_released_after_the_holding_time_less_a_dashboard_refund(
    live: LiveServer,
) -> None:
    with (
        onboarded_team(live, name="Waiting") as team,
        anonymous(live) as buyer,
        anonymous(live) as refunded_buyer,
    ):
        hold(live, team)
        kept = paid_cart(live, buyer, listing(team, price="30.00"))
        refunded = paid_cart(live, refunded_buyer, listing(team, price="12.00"))
        refunded_id = refunded["orders"][0]["orderId"]
        # The platform refunds part of the second payment in Stripe's dashboard: Souq books it
        # on the order and takes the store's part (2.00 less the commission on it) off the
        # held transfer, as its own refund would.
        charge_id = live.scalar(
            "SELECT stripe_charge_id FROM checkout_group WHERE id = :g",
            g=refunded["checkoutGroupId"],
        )
        sdk(live).v1.refunds.create(params={"charge": charge_id, "amount": 200})
        flush(live)
        assert order_json(team, refunded_id)["paymentStatus"] == "partially_refunded"
        held = order_json(team, refunded_id)["transfer"]
        assert (held["status"], held["amount"]) == ("held", "9.50")

        # Within the holding time (the default 14 days): nothing is due.
        assert "0 held transfer(s) due" in release_due(live, 14)
        assert transfers_to(live, team) == []

        out = release_due(live, 0)  # the holding time is over
        assert "transfer sent: 2" in out, out
        sent = transfers_to(live, team)
        assert sorted(t["amount"] for t in sent) == [1140 - 190, 3000 - 150]
        assert order_json(team, kept["orders"][0]["orderId"])["transfer"]["status"] == "sent"
        assert order_json(team, refunded_id)["transfer"]["status"] == "sent"

        # Neither a second run nor the seller's fulfilment sends anything more.
        assert "0 held transfer(s) due" in release_due(live, 0)
        done = fulfil(team.seller.client, refunded_id, status="shipped")
        assert done.status_code == 200, done.text
        assert len(transfers_to(live, team)) == 2


def balance(client: httpx.Client, team: StoreTeam) -> dict[str, Any]:
    response = client.get(f"/api/stores/{team.id}/balance")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["storeId"] == team.id and body["paidOutKnown"] is True
    return {c["currency"]: c for c in body["currencies"]}


def money_row(client: httpx.Client, team: StoreTeam) -> dict[str, str]:
    """The Money section of the store's dashboard page, for US dollars (minor units)."""
    page = client.get(f"/dashboard/stores/{team.id}")
    assert page.status_code == 200, page.text
    found = re.search(r'<tr data-currency="usd"([^>]*)>', page.text)
    assert found is not None, page.text
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', found.group(1)))


@pytest.mark.fresh_server
def test_the_store_and_its_orders_show_held_released_and_paid_out_money(
    live: LiveServer,
) -> None:
    with (
        onboarded_team(live, name="Counting") as team,
        anonymous(live) as buyer,
        anonymous(live) as second_buyer,
    ):
        hold(live, team)
        assert balance(team.seller.client, team) == {}
        held_order = paid_cart(live, buyer, listing(team, price="20.00"))["orders"][0]["orderId"]
        # A sale paid by destination charge (before the hold) counts as released at once.
        with platform_admin(live) as admin:
            assert admin.client.patch(
                f"/api/admin/stores/{team.id}/commission", json={"transferTiming": "on_payment"}
            ).is_success
            direct = paid_cart(live, second_buyer, listing(team, price="10.00"))
            assert direct["checkoutGroupId"] is None
        usd = balance(team.owner.client, team)["usd"]
        assert (usd["held"], usd["waiting"], usd["released"], usd["paidOut"]) == (
            "19.00",
            "0.00",
            "9.50",
            "0.00",
        )
        assert money_row(team.seller.client, team) == {
            "held": "1900",
            "waiting": "0",
            "released": "950",
            "paid-out": "0",
        }
        share = order_json(team, held_order)["storeShare"]
        assert share == {"held": "19.00", "waiting": "0.00", "released": "0.00"}
        share = order_json(team, direct["orders"][0]["orderId"])["storeShare"]
        assert share == {"held": "0.00", "waiting": "0.00", "released": "9.50"}

        assert fulfil(team.seller.client, held_order, status="shipped").status_code == 200
        usd = balance(team.admin.client, team)["usd"]
        assert (usd["held"], usd["released"]) == ("0.00", "28.50")
        assert order_json(team, held_order)["storeShare"]["released"] == "19.00"

        # Stripe pays the account's available balance out daily; it arrives a day later.
        try:
            advance_clock(live, 2 * DAY + 60)
            advance_clock(live, DAY)
            assert balance(team.seller.client, team)["usd"]["paidOut"] == "28.50"
            assert money_row(team.owner.client, team)["paid-out"] == "2850"
        finally:
            reset_clock(live)
        with api_user(live, name="Stranger") as stranger:
            assert stranger.client.get(f"/api/stores/{team.id}/balance").status_code == 404
        assert buyer.get(f"/api/stores/{team.id}/balance").status_code == 401


def _fulfilment_row(live: LiveServer, order_id: int) -> tuple[Any, ...]:
    row = live.rows(
        "SELECT o.fulfilment_status, o.fulfilment_carrier, o.fulfilment_tracking_number, "
        "o.fulfilled_at, t.status FROM orders o LEFT JOIN store_transfer t ON t.order_id = o.id "
        "WHERE o.id = :i",
        i=order_id,
    )[0]
    return tuple(row)


def test_fulfilment_input_is_checked_and_a_refusal_writes_nothing(live: LiveServer) -> None:
    with onboarded_team(live, name="Careful") as team, anonymous(live) as buyer:
        hold(live, team)
        item = listing(team, price="9.00")
        body = paid_cart(live, buyer, item)
        order_id = body["orders"][0]["orderId"]
        before = _fulfilment_row(live, order_id)
        owner = team.owner.client
        for bad in (
            {},
            {"status": "lost"},
            {"status": "shipped", "carrier": ""},
            {"status": "shipped", "carrier": "   "},
            {"status": "shipped", "trackingNumber": "x" * 101},
            {"status": "shipped", "trackingNumber": "a\nb"},
            {"status": "shipped", "eta": "tomorrow"},
            {"status": "shipped", "carrier": 7},
        ):
            response = fulfil(owner, order_id, **bad)
            assert response.status_code == 422, (bad, response.text)
            assert error_code(response)
        assert fulfil(owner, 2**31 - 1, status="shipped").status_code == 404
        assert fulfil(owner, 0, status="shipped").status_code == 422
        assert _fulfilment_row(live, order_id) == before
        assert transfers_to(live, team) == []

        # An unpaid order cannot be fulfilled.
        add(buyer, item)
        unpaid = checkout(buyer).json()["orders"][0]["orderId"]
        refused = fulfil(owner, unpaid, status="shipped")
        assert refused.status_code == 409 and error_code(refused) == "order_not_paid"
        assert _fulfilment_row(live, unpaid)[:4] == (None, None, None, None)

        # Delivered never goes back to shipped.
        assert fulfil(owner, order_id, status="delivered").status_code == 200
        after = _fulfilment_row(live, order_id)
        back = fulfil(owner, order_id, status="shipped", carrier="UPS")
        assert back.status_code == 409 and error_code(back) == "already_delivered"
        assert _fulfilment_row(live, order_id) == after
        assert len(transfers_to(live, team)) == 1
