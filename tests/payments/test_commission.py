"""Commission rules: the platform's default, a store's override (platform admins only), a fixed
amount and a minimum per currency, the buyer's service fee; every order keeps the rule it was
made with. Against the embedded sandbox over HTTP."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import anonymous, error_code
from tests.payments.stripe_helpers import (
    api_order,
    checkout,
    flush,
    listing,
    onboarded_team,
    pay,
    platform_admin,
    sdk,
    start,
)
from tests.servers import LiveServer, beside


def set_commission(admin: httpx.Client, store_id: int, **body: Any) -> dict[str, Any]:
    response = admin.patch(f"/api/admin/stores/{store_id}/commission", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def paid_order(
    live: LiveServer, team: Any, items: list[tuple[int, int]], **kw: Any
) -> dict[str, Any]:
    started = start(live, team, items, **kw)
    assert pay(live, started["url"], card="4242424242424242").status_code == 200
    flush(live)
    body = api_order(team, started["orderId"])
    assert body["paymentStatus"] == "paid", body
    return body


def application_fee(live: LiveServer, body: dict[str, Any]) -> int:
    intent = sdk(live).v1.payment_intents.retrieve(body["payment"]["stripePaymentIntentId"])
    fee: int = intent.to_dict()["application_fee_amount"]
    return fee


def test_an_override_with_fixed_and_minimum_prices_orders_and_later_changes_leave_them(
    live: LiveServer,
) -> None:
    with onboarded_team(live) as team, platform_admin(live) as admin:
        rule = set_commission(
            admin.client, team.id, bps=800, fixed={"USD": "0.30"}, minimum={"usd": "1.00"}
        )
        assert rule == {
            "storeId": team.id,
            "bps": 800,
            "effectiveBps": 800,
            "fixed": {"usd": "0.30"},
            "minimum": {"usd": "1.00"},
            "buyerFeeBps": 0,
            "transferTiming": None,
            "effectiveTransferTiming": "on_payment",
        }
        item = listing(team, price="20.05")
        # 8% of 20.05 = 1.604 → 1.60, + 0.30 fixed = 1.90 (above the 1.00 minimum).
        first = paid_order(live, team, [(item, 1)])
        assert (first["commission"], first["platformFee"], first["netToStore"]) == (
            "1.90",
            "1.90",
            "18.15",
        )
        assert first["feeRule"] == {
            "bps": 800,
            "fixed": "0.30",
            "minimum": "1.00",
            "buyerFeeBps": 0,
        }
        assert application_fee(live, first) == 190

        # A small order pays the minimum: 8% of 5.00 = 0.40 + 0.30 = 0.70 → 1.00.
        cheap = listing(team, price="5.00")
        small = paid_order(live, team, [(cheap, 1)])
        assert (small["commission"], small["netToStore"]) == ("1.00", "4.00")

        # The platform changes the rule: the orders already made keep theirs.
        set_commission(admin.client, team.id, bps=None, fixed=None)
        assert api_order(team, first["id"])["commission"] == "1.90"
        assert api_order(team, first["id"])["feeRule"]["bps"] == 800
        assert (
            live.scalar("SELECT platform_fee_amount FROM orders WHERE id = :i", i=small["id"])
            == 100
        )
        # The next order is priced by the platform's default (500 bps), minimum still set.
        later = paid_order(live, team, [(item, 1)])
        assert later["commission"] == "1.00"  # 5% of 20.05 = 1.0025 → 1.00
        assert later["feeRule"] == {
            "bps": 500,
            "fixed": "0.00",
            "minimum": "1.00",
            "buyerFeeBps": 0,
        }


def test_jpy_and_three_decimal_fixed_amounts_follow_the_currency(live: LiveServer) -> None:
    with onboarded_team(live) as team, platform_admin(live) as admin:
        set_commission(admin.client, team.id, bps=1000, fixed={"jpy": "30", "kwd": "0.150"})
        yen = listing(team, price="1235", currency="jpy")
        # 10% of ¥1,235 = 123.5 → ¥124, + ¥30.
        body = paid_order(live, team, [(yen, 1)], currency="JPY")
        assert (body["commission"], body["netToStore"]) == ("154", "1081")
        assert application_fee(live, body) == 154
        dinar = listing(team, price="2.350", currency="kwd")
        # 10% of 2.350 KWD = 0.235 → 0.240 (steps of 0.010), + 0.150.
        body = paid_order(live, team, [(dinar, 1)], currency="KWD")
        assert (body["commission"], body["netToStore"]) == ("0.390", "1.960")
        assert application_fee(live, body) == 390


def test_the_buyer_fee_is_its_own_line_and_part_of_the_platforms_share(live: LiveServer) -> None:
    with onboarded_team(live) as team, beside(live, buyer_fee_bps=250) as url:
        item = listing(team, price="10.10")
        with httpx.Client(base_url=url, timeout=30) as buyer:
            response = checkout(buyer, team.id, [(item, 1)])
        assert response.status_code == 200, response.text
        started = response.json()
        assert pay(live, started["url"], card="4242424242424242").status_code == 200
        flush(live)
        body = api_order(team, started["orderId"])
        # 2.5% of 10.10 = 0.2525 → 0.25 on top; commission 5% of 10.10 = 0.505 → 0.51.
        assert (body["subtotal"], body["buyerFee"], body["total"]) == ("10.10", "0.25", "10.35")
        assert (body["commission"], body["platformFee"], body["netToStore"]) == (
            "0.51",
            "0.76",
            "9.59",
        )
        assert body["paymentStatus"] == "paid" and body["feeRule"]["buyerFeeBps"] == 250
        session = sdk(live).v1.checkout.sessions.retrieve(
            body["stripeCheckoutSessionId"], params={"expand": ["line_items"]}
        )
        lines = {
            line["description"]: line["amount_total"]
            for line in session.to_dict()["line_items"]["data"]
        }
        assert lines == {"Olive wood bowl": 1010, "Service fee": 25}
        assert application_fee(live, body) == 76


def test_only_platform_admins_set_commissions_and_bad_rules_are_refused(live: LiveServer) -> None:
    with onboarded_team(live) as team, platform_admin(live) as admin:
        path = f"/api/admin/stores/{team.id}/commission"
        assert error_code(team.owner.client.patch(path, json={"bps": 0})) == "platform_admin_only"
        with anonymous(live) as client:
            assert client.patch(path, json={"bps": 0}).status_code == 401
        for body in (
            {"bps": 10_001},
            {"bps": -1},
            {"fixed": {"xxx": "1.00"}},
            {"fixed": {"usd": "1.001"}},
            {"minimum": {"kwd": "1.005"}},
            {"minimum": {"usd": "-1.00"}},
            {"fixed": {"usd": "1e9"}},
            {"fixed": {"usd": 1}},
            {"other": 1},
        ):
            response = admin.client.patch(path, json=body)
            assert response.status_code == 422, (body, response.text)
        assert (
            live.rows(
                "SELECT platform_fee_bps, commission_fixed, commission_minimum FROM store "
                "WHERE id = :i",
                i=team.id,
            )[0][0]
            is None
        )
        missing = admin.client.patch("/api/admin/stores/2147483647/commission", json={"bps": 1})
        assert missing.status_code == 404
