"""Every operation the sandbox serves answers in the shape Stripe's OpenAPI description gives it.

One marketplace flow runs once through the official SDK over HTTP; a recording HTTP client keeps
every raw response, and each operation the sandbox routes is its own test validating what it
answered. The operations come from the sandbox's route table, so a new route without a step in
the flow fails here until the flow exercises it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import pytest
import stripe

from souq.sandbox.api import ROUTES
from souq.sandbox.spec import find_operation, validate_response
from tests.sandbox.support import SandboxServer

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    status: int
    body: Any

    @property
    def operation(self) -> str:
        found = find_operation(self.method, self.path)
        template = found[0] if found else f"<not in spec: {self.path}>"
        suffix = "" if self.status == 200 else f" {self.status}"
        return f"{self.method} {template}{suffix}"


class RecordingHTTPClient(stripe.HTTPXClient):
    """The SDK's own httpx transport, keeping each raw response it receives."""

    def __init__(self) -> None:
        super().__init__(allow_sync_methods=True)
        self.exchanges: list[Exchange] = []

    def request_with_retries(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        post_data: Any = None,
        max_network_retries: int | None = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        content, status, response_headers = super().request_with_retries(
            method, url, headers, post_data, max_network_retries, _usage=_usage
        )
        path = urlsplit(url).path
        self.exchanges.append(
            Exchange(method.upper(), path[path.index("/v1/") :], status, json.loads(content))
        )
        return content, status, response_headers


def route_operation(method: str, pattern: str) -> str:
    concrete = re.sub(r"\(\[\^/\]\+\)", "id_1", pattern.strip("^$"))
    found = find_operation(method, concrete)
    assert found is not None, f"the sandbox serves {method} {pattern}, which Stripe does not have"
    return f"{method} {found[0]}"


SERVED = sorted({route_operation(route.method, route.pattern.pattern) for route in ROUTES})

# Error answers are validated against the operation's "default" (error) response.
ERRORS = [
    "GET /v1/charges/{charge} 404",
    "POST /v1/accounts 400",
    "POST /v1/accounts/{account}/login_links 400",
    "POST /v1/checkout/sessions 400",
    "POST /v1/payment_intents 402",
    "POST /v1/refunds 400",
    "GET /v1/events/{id} 404",
]

LINE_ITEM: dict[str, Any] = {
    "price_data": {"currency": "usd", "unit_amount": 2500, "product_data": {"name": "Vase"}},
    "quantity": 2,
}


def create_session(client: stripe.StripeClient, params: dict[str, Any]) -> stripe.checkout.Session:
    session: stripe.checkout.Session = client.v1.checkout.sessions.create(
        params=cast("SessionCreateParams", params)
    )
    return session


def drive_marketplace_flow(server: SandboxServer, client: stripe.StripeClient) -> None:
    """Onboarding, a destination charge paid at checkout, refunds, a separate charge with a
    transfer, a dispute, events and webhook endpoints: every call the marketplace makes."""
    v1 = client.v1

    # Webhook endpoints.
    endpoint = v1.webhook_endpoints.create(
        params={
            "url": "http://127.0.0.1:9/hooks",
            "enabled_events": ["charge.succeeded"],
            "connect": True,
        }
    )
    v1.webhook_endpoints.list()
    v1.webhook_endpoints.retrieve(endpoint.id)
    v1.webhook_endpoints.update(endpoint.id, params={"disabled": True})
    v1.webhook_endpoints.delete(endpoint.id)

    # A seller: an Express account, onboarded through its account link.
    seller = v1.accounts.create(
        params={
            "type": "express",
            "country": "US",
            "email": "seller@example.com",
            "capabilities": {
                "card_payments": {"requested": True},
                "transfers": {"requested": True},
            },
            "metadata": {"store_id": "1"},
        }
    )
    v1.account_links.create(
        params={
            "account": seller.id,
            "type": "account_onboarding",
            "refresh_url": "http://shop.test/onboarding/refresh",
            "return_url": "http://shop.test/onboarding/return",
        }
    )
    with pytest.raises(stripe.InvalidRequestError):
        v1.accounts.login_links.create(seller.id)  # not onboarded yet
    onboarded = server.control(f"/accounts/{seller.id}/onboard", {"outcome": "complete"})
    assert onboarded.status_code == 200, onboarded.text
    v1.accounts.retrieve(seller.id)
    v1.accounts.update(seller.id, params={"metadata": {"store_id": "1", "tier": ""}})
    v1.accounts.list(params={"limit": 3})
    v1.accounts.login_links.create(seller.id)
    with pytest.raises(stripe.InvalidRequestError):
        v1.accounts.create(params={"type": "premium"})

    # Checkout with a destination charge and an application fee.
    session_params: dict[str, Any] = {
        "mode": "payment",
        "success_url": "http://shop.test/orders/1/paid?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://shop.test/orders/1",
        "line_items": [LINE_ITEM],
        "customer_email": "buyer@example.com",
        "client_reference_id": "order-1",
        "metadata": {"order_id": "1"},
        "payment_intent_data": {
            "application_fee_amount": 500,
            "transfer_group": "order-1",
            "transfer_data": {"destination": seller.id},
            "metadata": {"order_id": "1"},
        },
    }
    session = create_session(client, session_params)
    v1.checkout.sessions.retrieve(session.id)
    v1.checkout.sessions.list(params={"limit": 5})
    v1.checkout.sessions.line_items.list(session.id)
    with pytest.raises(stripe.InvalidRequestError):
        create_session(client, {**session_params, "line_items": [{"quantity": 1, "bogus": 1}]})
    paid = server.pay(session.id, card="4242424242424242")
    assert paid.status_code == 200, paid.text
    session = v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent", "line_items"]}
    )
    assert isinstance(session.payment_intent, stripe.PaymentIntent)
    intent = v1.payment_intents.retrieve(session.payment_intent.id)
    v1.payment_intents.list(params={"limit": 3})
    assert isinstance(intent.latest_charge, str)
    charge = v1.charges.retrieve(intent.latest_charge)
    v1.charges.list(params={"payment_intent": intent.id})
    assert isinstance(charge.balance_transaction, str)
    assert isinstance(charge.transfer, str)
    assert isinstance(charge.application_fee, str)
    v1.balance_transactions.retrieve(charge.balance_transaction)
    v1.balance_transactions.list(params={"limit": 3})
    v1.balance.retrieve()
    v1.balance.retrieve(options={"stripe_account": seller.id})
    v1.transfers.retrieve(charge.transfer)
    v1.transfers.list(params={"transfer_group": "order-1"})
    v1.application_fees.retrieve(charge.application_fee)
    v1.application_fees.list(params={"charge": charge.id})
    with pytest.raises(stripe.InvalidRequestError):
        v1.charges.retrieve("ch_doesnotexist")

    # Refunds: a partial refund that reverses the transfer and refunds the fee in proportion.
    refund = v1.refunds.create(
        params={
            "payment_intent": intent.id,
            "amount": 1000,
            "reason": "requested_by_customer",
            "reverse_transfer": True,
            "refund_application_fee": True,
        }
    )
    v1.refunds.retrieve(refund.id)
    v1.refunds.list(params={"charge": charge.id})
    with pytest.raises(stripe.InvalidRequestError):
        v1.refunds.create(params={"charge": charge.id, "amount": 999_999})
    v1.application_fees.refunds.create(charge.application_fee, params={"amount": 10})
    fee_refunds = v1.application_fees.refunds.list(charge.application_fee)
    v1.application_fees.refunds.retrieve(charge.application_fee, fee_refunds.data[0].id)

    # Separate charges and transfers.
    separate = v1.payment_intents.create(
        params={
            "amount": 3000,
            "currency": "usd",
            "payment_method": "pm_card_bypassPending",
            "confirm": True,
            "transfer_group": "order-2",
        }
    )
    assert isinstance(separate.latest_charge, str)
    with pytest.raises(stripe.CardError):
        v1.payment_intents.create(
            params={
                "amount": 3000,
                "currency": "usd",
                "payment_method": "pm_card_chargeDeclined",
                "confirm": True,
            }
        )
    unconfirmed = v1.payment_intents.create(params={"amount": 3000, "currency": "usd"})
    v1.payment_intents.confirm(unconfirmed.id, params={"payment_method": "pm_card_visa"})
    abandoned = v1.payment_intents.create(params={"amount": 3000, "currency": "usd"})
    v1.payment_intents.cancel(abandoned.id)
    transfer = v1.transfers.create(
        params={
            "amount": 1000,
            "currency": "usd",
            "destination": seller.id,
            "source_transaction": separate.latest_charge,
            "transfer_group": "order-2",
        }
    )
    v1.transfers.update(transfer.id, params={"metadata": {"order_id": "2"}})
    v1.transfers.reversals.create(transfer.id, params={"amount": 100})
    reversals = v1.transfers.reversals.list(transfer.id)
    v1.transfers.reversals.retrieve(transfer.id, reversals.data[0].id)

    # A dispute from Stripe's dispute test card.
    disputed = create_session(
        client,
        {
            "mode": "payment",
            "success_url": "http://shop.test/s",
            "line_items": [LINE_ITEM],
            "payment_intent_data": {"transfer_data": {"destination": seller.id}},
        },
    )
    assert server.pay(disputed.id, card="4000000000000259").status_code == 200
    dispute = v1.disputes.list().data[0]
    v1.disputes.retrieve(dispute.id)
    v1.disputes.update(dispute.id, params={"metadata": {"case": "1"}})
    v1.disputes.close(dispute.id)

    # Declined cards, a card that asks for authentication, and delayed payments both ways.
    for pay in (
        {"card": "4000000000000002"},
        {"card": "4000000000009995"},
        {"card": "4000002500003155"},
        {"method": "delayed", "outcome": "failed"},
        {"method": "delayed", "outcome": "succeeded"},
    ):
        attempt = create_session(client, session_params)
        assert server.pay(attempt.id, **pay).status_code < 500
        v1.checkout.sessions.retrieve(attempt.id, params={"expand": ["payment_intent"]})
    server.advance(3 * 86_400)  # delayed payments settle, pending balances become available

    # The seller's available balance was paid out automatically; a day later the payout is paid.
    server.advance(86_400)
    payouts = v1.payouts.list(params={"limit": 3}, options={"stripe_account": seller.id})
    assert payouts.data, "the seller's available balance was not paid out"
    v1.payouts.retrieve(payouts.data[0].id, options={"stripe_account": seller.id})
    v1.payouts.list(params={"status": "paid"}, options={"stripe_account": seller.id})

    # Sellers left with requirements due, and rejected.
    for outcome in ("requirements_due", "rejected"):
        other = v1.accounts.create(params={"type": "express", "country": "US"})
        assert server.control(f"/accounts/{other.id}/onboard", {"outcome": outcome}).is_success
        v1.accounts.retrieve(other.id)

    # An abandoned checkout, expired.
    abandoned_session = create_session(
        client, {"mode": "payment", "success_url": "http://shop.test/s", "line_items": [LINE_ITEM]}
    )
    v1.checkout.sessions.expire(abandoned_session.id)

    # Every object the flow made, listed in full, on the platform and on the seller's account.
    for options in ({}, {"stripe_account": seller.id}):
        listing: dict[str, Any] = {"params": {"limit": 100}, "options": options}
        v1.charges.list(**listing)
        v1.payment_intents.list(**listing)
        v1.refunds.list(**listing)
        v1.balance_transactions.list(**listing)
        v1.disputes.list(**listing)
        v1.checkout.sessions.list(**listing)
    v1.transfers.list(params={"limit": 100})
    v1.application_fees.list(params={"limit": 100})
    v1.accounts.list(params={"limit": 100})

    # Events, every page of them, for the platform and for the connected account.
    events = list(v1.events.list(params={"limit": 100}).auto_paging_iter())
    v1.events.retrieve(events[0].id)
    v1.events.list(params={"type": "charge.*"})
    v1.events.list(options={"stripe_account": seller.id})
    with pytest.raises(stripe.InvalidRequestError):
        v1.events.retrieve("evt_doesnotexist")

    # A seller who leaves.
    leaving = v1.accounts.create(params={"type": "express", "country": "US"})
    v1.accounts.delete(leaving.id)


@pytest.fixture(scope="module")
def recorded(sandbox_server: SandboxServer) -> dict[str, list[Exchange]]:
    sandbox_server.sandbox.reset()
    recorder = RecordingHTTPClient()
    client = stripe.StripeClient(
        "sk_test_souq",
        base_addresses={"api": sandbox_server.url},
        http_client=recorder,
        max_network_retries=0,
    )
    drive_marketplace_flow(sandbox_server, client)
    by_operation: dict[str, list[Exchange]] = {}
    for exchange in recorder.exchanges:
        by_operation.setdefault(exchange.operation, []).append(exchange)
    return by_operation


@pytest.mark.parametrize("operation", SERVED + ERRORS)
def test_response_matches_the_spec(recorded: dict[str, list[Exchange]], operation: str) -> None:
    exchanges = recorded.get(operation)
    assert exchanges, f"the flow never exercised {operation}"
    problems = [
        f"{e.method} {e.path} -> {e.status}: {problem}"
        for e in exchanges
        for problem in validate_response(e.method, e.path, e.status, e.body)
    ]
    assert problems == [], "\n".join(problems)


def test_the_flow_calls_only_operations_checked_here(
    recorded: dict[str, list[Exchange]],
) -> None:
    assert sorted(set(recorded) - set(SERVED + ERRORS)) == []


# The retrieve operation whose response schema describes each object type.
RETRIEVE_PATHS = {
    "account": "/v1/accounts/{id}",
    "application_fee": "/v1/application_fees/{id}",
    "balance": "/v1/balance",
    "charge": "/v1/charges/{id}",
    "checkout.session": "/v1/checkout/sessions/{id}",
    "dispute": "/v1/disputes/{id}",
    "fee_refund": "/v1/application_fees/fee_1/refunds/{id}",
    "payment_intent": "/v1/payment_intents/{id}",
    "payout": "/v1/payouts/{id}",
    "refund": "/v1/refunds/{id}",
    "transfer": "/v1/transfers/{id}",
    "transfer_reversal": "/v1/transfers/tr_1/reversals/{id}",
}


def test_event_objects_match_their_resource_schema(
    recorded: dict[str, list[Exchange]],
) -> None:
    """`data.object` of every event is the full object, in the shape of its own resource."""
    events = {
        event["id"]: event
        for exchange in recorded["GET /v1/events"]
        for event in exchange.body["data"]
    }.values()
    assert len(events) > 10
    seen_types = {event["type"] for event in events}
    assert {"account.updated", "checkout.session.completed", "charge.refunded"} <= seen_types
    problems: list[str] = []
    unchecked: set[str] = set()
    for event in events:
        obj = event["data"]["object"]
        template = RETRIEVE_PATHS.get(obj["object"])
        if template is None:
            unchecked.add(obj["object"])
            continue
        path = template.format(id=obj.get("id", ""))
        problems += [
            f"{event['type']} {event['id']}: {problem}"
            for problem in validate_response("GET", path, 200, obj, strict=True)
        ]
    assert problems == [], "\n".join(problems)
    assert unchecked == set(), "add the retrieve operation of these objects to RETRIEVE_PATHS"


@pytest.mark.parametrize("operation", SERVED + ERRORS)
def test_response_has_no_fields_the_spec_does_not_define(
    recorded: dict[str, list[Exchange]], operation: str
) -> None:
    """The sandbox answers as API version 2023-08-16, so a field that version does not define
    is one Stripe would not send (Stripe's schemas leave objects open, hence `strict`)."""
    exchanges = recorded.get(operation, [])
    problems = sorted(
        {
            f"{e.method} {e.path} -> {e.status}: {problem}"
            for e in exchanges
            for problem in validate_response(e.method, e.path, e.status, e.body, strict=True)
        }
    )
    assert problems == [], "\n".join(problems)
