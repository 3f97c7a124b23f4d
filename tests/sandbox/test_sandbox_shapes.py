"""Every operation the sandbox serves answers with the shape Stripe's OpenAPI description gives
it: a full marketplace flow over raw HTTP, each response validated against its operation."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from souq.sandbox import spec
from souq.sandbox.api import ROUTES
from tests.sandbox.support import SandboxServer


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _flatten(f"{prefix}[{k}]", v)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _flatten(f"{prefix}[{i}]", v)]
    if isinstance(value, bool):
        return [(prefix, "true" if value else "false")]
    return [(prefix, str(value))]


class Caller:
    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.http = httpx.Client(headers={"Authorization": "Bearer sk_test_shapes"})
        self.seen: set[tuple[str, str]] = set()

    def __call__(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        status: int = 200,
        account: str | None = None,
    ) -> Any:
        pairs: list[tuple[str, str | int | float | bool | None]] = [
            p for k, v in (params or {}).items() for p in _flatten(k, v)
        ]
        headers = {"Stripe-Account": account} if account else {}
        url = f"{self.server.url}{path}"
        if method == "GET":
            response = self.http.get(url, params=pairs, headers=headers)
        elif method == "DELETE":
            response = self.http.delete(url, headers=headers)
        else:
            response = self.http.post(
                url,
                content=urlencode(pairs),
                headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
            )
        assert response.status_code == status, response.text
        body = response.json()
        problems = spec.validate_response(method, path, response.status_code, body)
        assert problems == [], f"{method} {path}: {problems[:5]}"
        found = spec.find_operation(method, path)
        assert found is not None
        self.seen.add((method, found[0]))
        return body


@pytest.fixture
def call(sandbox_server: SandboxServer) -> Caller:
    return Caller(sandbox_server)


def test_every_response_has_stripes_shape(sandbox_server: SandboxServer, call: Caller) -> None:
    acct = call(
        "POST",
        "/v1/accounts",
        {
            "type": "express",
            "email": "s@example.com",
            "capabilities": {
                "card_payments": {"requested": True},
                "transfers": {"requested": True},
            },
        },
    )["id"]
    call("GET", f"/v1/accounts/{acct}")
    call("POST", f"/v1/accounts/{acct}", {"metadata": {"store": "1"}})
    call("GET", "/v1/accounts", {"limit": 3})
    call(
        "POST",
        "/v1/account_links",
        {
            "account": acct,
            "type": "account_onboarding",
            "refresh_url": "http://x/r",
            "return_url": "http://x/r",
        },
    )
    call("POST", f"/v1/accounts/{acct}/login_links", status=400)
    sandbox_server.control(f"/accounts/{acct}/onboard", {"outcome": "complete"})
    call("POST", f"/v1/accounts/{acct}/login_links")
    line = {
        "price_data": {"currency": "usd", "unit_amount": 2500, "product_data": {"name": "Vase"}},
        "quantity": 2,
    }
    cs = call(
        "POST",
        "/v1/checkout/sessions",
        {
            "mode": "payment",
            "success_url": "http://x/s",
            "cancel_url": "http://x/c",
            "line_items": [line],
            "customer_email": "b@example.com",
            "client_reference_id": "o1",
            "metadata": {"order": "1"},
            "payment_intent_data": {
                "application_fee_amount": 500,
                "transfer_group": "o1",
                "transfer_data": {"destination": acct},
                "metadata": {"order": "1"},
            },
        },
    )
    call("GET", f"/v1/checkout/sessions/{cs['id']}")
    call("GET", f"/v1/checkout/sessions/{cs['id']}/line_items")
    call("GET", "/v1/checkout/sessions", {"limit": 5})
    sandbox_server.pay(cs["id"], card="4242424242424242")
    cs = call(
        "GET", f"/v1/checkout/sessions/{cs['id']}", {"expand": ["payment_intent", "line_items"]}
    )
    pi = cs["payment_intent"]
    call("GET", f"/v1/payment_intents/{pi['id']}")
    call("GET", "/v1/payment_intents")
    charge = call("GET", f"/v1/charges/{pi['latest_charge']}")
    call("GET", "/v1/charges")
    call("GET", f"/v1/balance_transactions/{charge['balance_transaction']}")
    call("GET", "/v1/balance_transactions")
    call("GET", "/v1/balance")
    call("GET", "/v1/balance", account=acct)
    call("GET", f"/v1/transfers/{charge['transfer']}")
    call("GET", "/v1/transfers", {"transfer_group": "o1"})
    call("GET", f"/v1/application_fees/{charge['application_fee']}")
    call("GET", "/v1/application_fees")
    refund = call(
        "POST",
        "/v1/refunds",
        {
            "payment_intent": pi["id"],
            "amount": 1000,
            "reverse_transfer": True,
            "refund_application_fee": True,
            "reason": "requested_by_customer",
        },
    )
    call("GET", f"/v1/refunds/{refund['id']}")
    call("GET", "/v1/refunds")
    call("POST", "/v1/refunds", {"charge": charge["id"], "amount": 999_999}, status=400)
    call("POST", f"/v1/application_fees/{charge['application_fee']}/refunds", {"amount": 10})
    fee_refunds = call("GET", f"/v1/application_fees/{charge['application_fee']}/refunds")
    call(
        "GET",
        f"/v1/application_fees/{charge['application_fee']}/refunds/{fee_refunds['data'][0]['id']}",
    )
    # separate charges and transfers
    pi2 = call(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 3000,
            "currency": "usd",
            "payment_method": "pm_card_bypassPending",
            "confirm": True,
            "transfer_group": "o2",
        },
    )
    call(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 3000,
            "currency": "usd",
            "payment_method": "pm_card_chargeDeclined",
            "confirm": True,
        },
        status=402,
    )
    open_pi = call("POST", "/v1/payment_intents", {"amount": 3000, "currency": "usd"})
    call("POST", f"/v1/payment_intents/{open_pi['id']}/confirm", {"payment_method": "pm_card_visa"})
    other = call("POST", "/v1/payment_intents", {"amount": 3000, "currency": "usd"})
    call("POST", f"/v1/payment_intents/{other['id']}/cancel")
    tr = call(
        "POST",
        "/v1/transfers",
        {
            "amount": 1000,
            "currency": "usd",
            "destination": acct,
            "source_transaction": pi2["latest_charge"],
        },
    )
    call("POST", f"/v1/transfers/{tr['id']}", {"metadata": {"x": "1"}})
    # A manual payout schedule keeps the available funds on the account for the reversal.
    manual = {"settings": {"payouts": {"schedule": {"interval": "manual"}}}}
    call("POST", f"/v1/accounts/{acct}", manual)
    sandbox_server.advance(3 * 86_400)
    call("POST", f"/v1/transfers/{tr['id']}/reversals", {"amount": 100})
    reversals = call("GET", f"/v1/transfers/{tr['id']}/reversals")
    call("GET", f"/v1/transfers/{tr['id']}/reversals/{reversals['data'][0]['id']}")
    # back on the daily schedule, the available balance is paid out
    call(
        "POST",
        f"/v1/accounts/{acct}",
        {"settings": {"payouts": {"schedule": {"interval": "daily"}}}},
    )
    sandbox_server.advance(60)
    payouts = call("GET", "/v1/payouts", {"limit": 3}, account=acct)
    call("GET", f"/v1/payouts/{payouts['data'][0]['id']}", account=acct)
    # disputes
    cs2 = call(
        "POST",
        "/v1/checkout/sessions",
        {
            "mode": "payment",
            "success_url": "http://x/s",
            "line_items": [line],
            "payment_intent_data": {"transfer_data": {"destination": acct}},
        },
    )
    sandbox_server.pay(cs2["id"], card="4000000000000259")
    dispute = call("GET", "/v1/disputes")["data"][0]
    call("GET", f"/v1/disputes/{dispute['id']}")
    call("POST", f"/v1/disputes/{dispute['id']}", {"metadata": {"case": "1"}})
    call("POST", f"/v1/disputes/{dispute['id']}/close")
    cs3 = call(
        "POST",
        "/v1/checkout/sessions",
        {"mode": "payment", "success_url": "http://x/s", "line_items": [line]},
    )
    call("POST", f"/v1/checkout/sessions/{cs3['id']}/expire")
    # events and webhook endpoints
    events = call("GET", "/v1/events", {"limit": 100})
    call("GET", f"/v1/events/{events['data'][0]['id']}")
    call("GET", "/v1/events", {"type": "charge.*"})
    call("GET", "/v1/events", account=acct)
    we = call(
        "POST",
        "/v1/webhook_endpoints",
        {"url": "http://127.0.0.1:9/x", "enabled_events": ["charge.succeeded"], "connect": True},
    )
    assert we["secret"].startswith("whsec_")
    call("GET", "/v1/webhook_endpoints")
    call("GET", f"/v1/webhook_endpoints/{we['id']}")
    call("POST", f"/v1/webhook_endpoints/{we['id']}", {"disabled": True})
    call("DELETE", f"/v1/webhook_endpoints/{we['id']}")
    call("DELETE", f"/v1/accounts/{acct}")
    # error bodies have Stripe's error shape too
    call("GET", "/v1/charges/ch_nope", status=404)
    assert len(call.seen) == len(ROUTES), sorted(call.seen)


def test_event_payloads_have_stripes_shape(sandbox_server: SandboxServer) -> None:
    seller = sandbox_server.express_account()
    session = sandbox_server.session(seller.id)
    sandbox_server.pay(session.id, card="4242424242424242")
    sandbox_server.flush()
    received = sandbox_server.receiver.received
    assert received
    for item in received:
        import json

        body = json.loads(item.body)
        assert spec.validate_response("GET", f"/v1/events/{body['id']}", 200, body) == []
        assert body["request"].keys() == {"id", "idempotency_key"}
