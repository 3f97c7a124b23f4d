"""Checkout Sessions: creation rules, paying with every test card, delayed payments, expiry,
the hosted checkout page, and the money a paid destination charge moves."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import stripe

from tests.sandbox.support import SandboxServer

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParamsLineItem


def test_session_open_without_payment_intent(sandbox_server: SandboxServer) -> None:
    seller = sandbox_server.express_account()
    session = sandbox_server.session(
        seller.id,
        customer_email="buyer@example.com",
        client_reference_id="order-7",
        metadata={"order_id": "7"},
        payment_intent_data={"transfer_group": "order-7", "metadata": {"order_id": "7"}},
    )
    assert session.id.startswith("cs_test_")
    assert session.status == "open"
    assert session.payment_status == "unpaid"
    assert session.payment_intent is None
    assert session.amount_total == 1000
    assert session.currency == "usd"
    assert session.url == f"{sandbox_server.url}/checkout/{session.id}"
    assert session.client_reference_id == "order-7"
    assert session.customer_email == "buyer@example.com"
    assert session.expires_at - session.created == 86_400
    fetched = sandbox_server.client.v1.checkout.sessions.retrieve(session.id)
    assert fetched.metadata is not None
    assert fetched.metadata.to_dict() == {"order_id": "7"}
    items = sandbox_server.client.v1.checkout.sessions.line_items.list(session.id)
    assert [(i.description, i.quantity, i.amount_total) for i in items.data] == [
        ("Handmade mug", 1, 1000)
    ]
    assert items.data[0].id.startswith("li_")


def test_card_payment_moves_money_like_a_destination_charge(
    sandbox_server: SandboxServer,
) -> None:
    client = sandbox_server.client
    seller = sandbox_server.express_account()
    session = sandbox_server.session(seller.id, amount=1000, fee=123)
    response = sandbox_server.pay(session.id, card="4242424242424242")
    assert response.status_code == 200, response.text
    assert response.json()["session"]["status"] == "complete"
    session = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent.latest_charge.balance_transaction"]}
    )
    assert session.status == "complete"
    assert session.payment_status == "paid"
    assert session.url is None
    pi: Any = session.payment_intent
    assert pi.status == "succeeded"
    assert pi.amount_received == 1000
    assert pi.application_fee_amount == 123
    assert pi.transfer_data.destination == seller.id
    charge = pi.latest_charge
    assert charge.id.startswith("ch_")
    assert charge.status == "succeeded"
    assert charge.balance_transaction.fee == 59  # 2.9% of 10.00 = 0.29 (half up) + 0.30
    assert charge.balance_transaction.net == 941
    transfer = client.v1.transfers.retrieve(charge.transfer)
    assert transfer.amount == 1000
    assert transfer.destination == seller.id
    assert transfer.source_transaction == charge.id
    assert isinstance(transfer.destination_payment, str)  # not expanded: the id
    assert transfer.destination_payment.startswith("py_")
    fee = client.v1.application_fees.retrieve(charge.application_fee)
    assert fee.amount == 123
    assert fee.account == seller.id
    assert fee.originating_transaction == charge.id
    assert fee.charge == transfer.destination_payment
    platform = client.v1.balance.retrieve()
    assert platform.pending[0].amount == 64  # 1.23 fee − 0.59 Stripe fee
    connected = client.v1.balance.retrieve(options={"stripe_account": seller.id})
    assert connected.pending[0].amount == 877
    sandbox_server.advance(2 * 86_400 + 1)
    assert client.v1.balance.retrieve().available[0].amount == 64
    assert client.v1.balance_transactions.retrieve(charge.balance_transaction.id).status == (
        "available"
    )


def test_paid_session_events(sandbox_server: SandboxServer) -> None:
    seller = sandbox_server.express_account()
    sandbox_server.flush()
    sandbox_server.receiver.clear()
    session = sandbox_server.session(seller.id)
    sandbox_server.pay(session.id, card="4242424242424242")
    counts = sandbox_server.flush()
    assert counts["failed"] == 0
    events = sandbox_server.events("platform")
    types = [e.type for e in events]
    assert sorted(types) == sorted(
        [
            "payment_intent.created",
            "charge.succeeded",
            "payment_intent.succeeded",
            "transfer.created",
            "application_fee.created",
            "checkout.session.completed",
        ]
    )
    completed = next(e for e in events if e.type == "checkout.session.completed")
    assert completed.id.startswith("evt_")
    assert completed.api_version == "2023-08-16"
    assert completed.data.object["id"] == session.id
    assert completed.data.object["payment_status"] == "paid"
    assert "account" not in completed
    assert sandbox_server.events("connect") == []


@pytest.mark.parametrize(
    ("card", "code", "decline_code"),
    [
        ("4000000000000002", "card_declined", "generic_decline"),
        ("4000000000009995", "card_declined", "insufficient_funds"),
        ("4000000000009987", "card_declined", "lost_card"),
        ("4000000000009979", "card_declined", "stolen_card"),
        ("4000000000000069", "expired_card", "expired_card"),
        ("4000000000000127", "incorrect_cvc", "incorrect_cvc"),
        ("4000000000000119", "processing_error", "processing_error"),
        ("4111111111111112", "incorrect_number", None),
    ],
)
def test_declined_cards_leave_session_open(
    sandbox_server: SandboxServer, card: str, code: str, decline_code: str | None
) -> None:
    seller = sandbox_server.express_account()
    session = sandbox_server.session(seller.id)
    response = sandbox_server.pay(session.id, card=card)
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["type"] == "card_error"
    assert error["code"] == code
    assert error.get("decline_code") == decline_code
    pi = response.json()["payment_intent"]
    assert pi["status"] == "requires_payment_method"
    assert pi["last_payment_error"]["code"] == code
    session = sandbox_server.client.v1.checkout.sessions.retrieve(session.id)
    assert session.status == "open"
    assert session.payment_intent is None
    # A second try with a good card completes the same session.
    assert sandbox_server.pay(session.id, card="4242424242424242").status_code == 200
    assert sandbox_server.client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"


def test_authentication_card_approve_and_fail(sandbox_server: SandboxServer) -> None:
    seller = sandbox_server.express_account()
    session = sandbox_server.session(seller.id)
    waiting = sandbox_server.pay(session.id, card="4000002500003155").json()
    assert waiting["payment_intent"]["status"] == "requires_action"
    assert waiting["session"]["status"] == "open"
    failed = sandbox_server.pay(session.id, authentication="fail")
    assert failed.status_code == 400
    assert failed.json()["error"]["code"] == "payment_intent_authentication_failure"
    assert sandbox_server.pay(session.id, card="4000002500003155").status_code == 200
    approved = sandbox_server.pay(session.id, authentication="approve")
    assert approved.json()["session"]["payment_status"] == "paid"


def test_dispute_card_opens_dispute(sandbox_server: SandboxServer) -> None:
    client = sandbox_server.client
    seller = sandbox_server.express_account()
    session = sandbox_server.session(seller.id)
    sandbox_server.pay(session.id, card="4000000000000259")
    sandbox_server.flush()
    events = sandbox_server.events("platform")
    created = next(e for e in events if e.type == "charge.dispute.created")
    assert any(e.type == "charge.dispute.funds_withdrawn" for e in events)
    dispute = client.v1.disputes.retrieve(created.data.object["id"])
    assert dispute.id.startswith("du_")
    assert dispute.status == "needs_response"
    assert dispute.reason == "fraudulent"
    assert dispute.amount == 1000
    assert isinstance(dispute.charge, str)  # not expanded: the id
    charge = client.v1.charges.retrieve(dispute.charge)
    assert charge.disputed is True
    closed = client.v1.disputes.close(dispute.id)
    assert closed.status == "lost"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.disputes.close(dispute.id)


def test_dispute_won_with_winning_evidence(sandbox_server: SandboxServer) -> None:
    client = sandbox_server.client
    seller = sandbox_server.express_account()
    session = sandbox_server.session(seller.id)
    sandbox_server.pay(session.id, card="4000000000002685")
    dispute = client.v1.disputes.list().data[0]
    assert dispute.reason == "product_not_received"
    won = client.v1.disputes.update(
        dispute.id, params={"evidence": {"uncategorized_text": "winning_evidence"}}
    )
    assert won.status == "won"
    sandbox_server.flush()
    types = [e.type for e in sandbox_server.events("platform")]
    assert "charge.dispute.closed" in types
    assert "charge.dispute.funds_reinstated" in types


def test_bypass_pending_card_is_available_at_once(sandbox_server: SandboxServer) -> None:
    seller = sandbox_server.express_account()
    session = sandbox_server.session(seller.id)
    sandbox_server.pay(session.id, card="4000000000000077")
    assert sandbox_server.client.v1.balance.retrieve().available[0].amount == 64


@pytest.mark.parametrize(
    ("outcome", "status", "event"),
    [
        ("succeeded", "paid", "checkout.session.async_payment_succeeded"),
        ("failed", "unpaid", "checkout.session.async_payment_failed"),
    ],
)
def test_delayed_payment_settles_later(
    sandbox_server: SandboxServer, outcome: str, status: str, event: str
) -> None:
    seller = sandbox_server.express_account()
    session = sandbox_server.session(seller.id)
    answer = sandbox_server.pay(session.id, method="delayed", outcome=outcome).json()
    assert answer["session"]["status"] == "complete"
    assert answer["session"]["payment_status"] == "unpaid"
    assert answer["payment_intent"]["status"] == "processing"
    sandbox_server.advance(61)
    session = sandbox_server.client.v1.checkout.sessions.retrieve(session.id)
    assert session.payment_status == status
    sandbox_server.flush()
    types = [e.type for e in sandbox_server.events("platform")]
    assert "checkout.session.completed" in types
    assert event in types


def test_expiry_by_clock_and_by_api(sandbox_server: SandboxServer) -> None:
    client = sandbox_server.client
    soon = sandbox_server.session(expires_at=int(time.time()) + 1900, fee=None)
    later = sandbox_server.session(fee=None)
    sandbox_server.advance(2000)
    assert client.v1.checkout.sessions.retrieve(soon.id).status == "expired"
    assert client.v1.checkout.sessions.retrieve(soon.id).url is None
    assert client.v1.checkout.sessions.retrieve(later.id).status == "open"
    expired = client.v1.checkout.sessions.expire(later.id)
    assert expired.status == "expired"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(later.id)
    sandbox_server.flush()
    types = [e.type for e in sandbox_server.events("platform")]
    assert types.count("checkout.session.expired") == 2


def test_list_sessions_paginates(sandbox_server: SandboxServer) -> None:
    ids = [sandbox_server.session(fee=None).id for _ in range(5)]
    first = sandbox_server.client.v1.checkout.sessions.list(params={"limit": 2})
    assert [s.id for s in first.data] == ids[::-1][:2]
    assert first.has_more is True
    assert first.url == "/v1/checkout/sessions"
    rest = sandbox_server.client.v1.checkout.sessions.list(
        params={"limit": 10, "starting_after": first.data[-1].id}
    )
    assert [s.id for s in rest.data] == ids[::-1][2:]
    assert rest.has_more is False


def _rejects(server: SandboxServer, param: str, **params: Any) -> stripe.InvalidRequestError:
    seller = params.pop("seller", None)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        server.session(seller, **params)
    assert caught.value.param == param, caught.value
    return caught.value


def test_session_rules(sandbox_server: SandboxServer) -> None:
    now = int(time.time())
    seller = sandbox_server.express_account()
    _rejects(sandbox_server, "expires_at", expires_at=now + 600, fee=None)
    _rejects(sandbox_server, "expires_at", expires_at=now + 90_000, fee=None)
    error = _rejects(sandbox_server, "line_items", amount=20, fee=None)
    assert error.code == "amount_too_small"
    _rejects(sandbox_server, "line_items[0][price_data][unit_amount]", amount=100_000_000, fee=None)
    _rejects(
        sandbox_server,
        "line_items[0][price_data][unit_amount]",
        amount=1005,
        currency="kwd",
        fee=None,
    )
    assert sandbox_server.session(amount=1010, currency="kwd", fee=None).amount_total == 1010
    assert sandbox_server.session(amount=500, currency="jpy", fee=None).amount_total == 500
    _rejects(sandbox_server, "line_items", amount=30, currency="jpy", fee=None)
    _rejects(
        sandbox_server,
        "payment_intent_data[application_fee_amount]",
        seller=seller.id,
        amount=1000,
        fee=1001,
    )
    _rejects(
        sandbox_server,
        "payment_intent_data[application_fee_amount]",
        payment_intent_data={"application_fee_amount": 100},
        fee=None,
    )
    unready = sandbox_server.express_account(onboard=False)
    error = _rejects(
        sandbox_server, "payment_intent_data[transfer_data][destination]", seller=unready.id
    )
    assert "transfers" in str(error)
    _rejects(
        sandbox_server,
        "payment_intent_data[transfer_data][destination]",
        seller="acct_doesnotexist",
    )
    _rejects(sandbox_server, "metadata", metadata={f"k{i}": "v" for i in range(51)}, fee=None)
    _rejects(sandbox_server, f"metadata[{'k' * 41}]", metadata={"k" * 41: "v"}, fee=None)
    _rejects(sandbox_server, "metadata[k]", metadata={"k": "v" * 501}, fee=None)


def test_too_many_line_items(sandbox_server: SandboxServer) -> None:
    item: SessionCreateParamsLineItem = {
        "price_data": {"currency": "usd", "unit_amount": 100, "product_data": {"name": "x"}},
        "quantity": 1,
    }
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sandbox_server.client.v1.checkout.sessions.create(
            params={"mode": "payment", "success_url": "http://x/s", "line_items": [item] * 101}
        )
    assert caught.value.param == "line_items"


def test_hosted_checkout_page_success(sandbox_server: SandboxServer) -> None:
    seller = sandbox_server.express_account()
    session = sandbox_server.session(seller.id)
    assert session.url is not None
    with httpx.Client() as browser:
        page = browser.get(session.url)
        assert page.status_code == 200
        assert "Handmade mug" in page.text and "$10.00" in page.text
        assert "http://shop.test/cancel" in page.text
        declined = browser.post(session.url, data={"method": "card", "card": "4000000000000002"})
        assert declined.status_code == 402
        assert "Your card was declined." in declined.text
        paid = browser.post(session.url, data={"method": "card", "card": "4242 4242 4242 4242"})
        assert paid.status_code == 303
        assert paid.headers["location"] == f"http://shop.test/success?session={session.id}"
        # Checkout waited for the fulfilment webhook before redirecting.
        assert "checkout.session.completed" in [e.type for e in sandbox_server.events("platform")]
        again = browser.get(session.url)
        assert "Already paid" in again.text
    assert sandbox_server.client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"


def test_hosted_checkout_page_authentication_and_delayed(sandbox_server: SandboxServer) -> None:
    seller = sandbox_server.express_account()
    session = sandbox_server.session(seller.id)
    assert session.url is not None
    with httpx.Client() as browser:
        challenge = browser.post(session.url, data={"method": "card", "card": "4000002500003155"})
        assert "Complete authentication" in challenge.text
        failed = browser.post(f"{session.url}/authenticate", data={"outcome": "fail"})
        assert failed.status_code == 402
        browser.post(session.url, data={"method": "card", "card": "4000002500003155"})
        done = browser.post(f"{session.url}/authenticate", data={"outcome": "approve"})
        assert done.status_code == 303
    other = sandbox_server.session(seller.id)
    assert other.url is not None
    with httpx.Client() as browser:
        done = browser.post(other.url, data={"method": "delayed", "outcome": "succeeded"})
        assert done.status_code == 303
    assert sandbox_server.client.v1.checkout.sessions.retrieve(other.id).status == "complete"


def test_expired_session_page(sandbox_server: SandboxServer) -> None:
    session = sandbox_server.session(fee=None)
    assert session.url is not None
    sandbox_server.client.v1.checkout.sessions.expire(session.id)
    with httpx.Client() as browser:
        page = browser.get(session.url)
    assert page.status_code == 410


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("cancel_url", "javascript:alert(document.cookie)"),
        ("success_url", "javascript:alert(1)"),
        ("success_url", "/orders/1/thanks"),
        ("cancel_url", "http://shop.test/has space"),
        ("cancel_url", "ftp://shop.test/cancel"),
    ],
)
def test_session_urls_must_be_http(sandbox_server: SandboxServer, field: str, url: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        extra: dict[str, Any] = {field: url}
        sandbox_server.session(fee=None, **extra)
    assert caught.value.http_status == 400
    assert caught.value.code == "url_invalid" and caught.value.param == field
    assert sandbox_server.client.v1.checkout.sessions.list().data == []
