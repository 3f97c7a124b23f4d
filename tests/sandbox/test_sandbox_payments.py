"""Separate charges and transfers, refunds with reversals, application fee refunds, balances."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.sandbox.support import SandboxServer


def _paid_destination_charge(
    server: SandboxServer, amount: int = 1000, fee: int = 100, card: str = "4242424242424242"
) -> tuple[Any, Any]:
    seller = server.express_account()
    session = server.session(seller.id, amount=amount, fee=fee)
    assert server.pay(session.id, card=card).status_code == 200
    paid = server.client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent.latest_charge"]}
    )
    pi: Any = paid.payment_intent
    return seller, pi.latest_charge


def test_payment_intent_create_and_confirm(sandbox_server: SandboxServer) -> None:
    client = sandbox_server.client
    pi = client.v1.payment_intents.create(
        params={
            "amount": 5000,
            "currency": "usd",
            "transfer_group": "order-9",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "metadata": {"o": "9"},
        }
    )
    assert pi.status == "succeeded"
    assert pi.amount_received == 5000
    assert pi.latest_charge is not None
    later = client.v1.payment_intents.create(params={"amount": 5000, "currency": "usd"})
    assert later.status == "requires_payment_method"
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_intents.confirm(
            later.id, params={"payment_method": "pm_card_chargeDeclined"}
        )
    assert caught.value.code == "card_declined"
    assert caught.value.json_body is not None
    assert isinstance(caught.value.json_body, dict)
    assert caught.value.json_body["error"]["payment_intent"]["id"] == later.id
    confirmed = client.v1.payment_intents.confirm(
        later.id, params={"payment_method": "pm_card_visa"}
    )
    assert confirmed.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.confirm(later.id, params={"payment_method": "pm_card_visa"})
    with pytest.raises(stripe.InvalidRequestError) as too_small:
        client.v1.payment_intents.create(params={"amount": 10, "currency": "usd"})
    assert too_small.value.code == "amount_too_small"
    with pytest.raises(stripe.InvalidRequestError) as fee_only:
        client.v1.payment_intents.create(
            params={"amount": 1000, "currency": "usd", "application_fee_amount": 10}
        )
    assert fee_only.value.param == "application_fee_amount"


def test_separate_transfers_from_a_charge(sandbox_server: SandboxServer) -> None:
    client = sandbox_server.client
    first = sandbox_server.express_account()
    second = sandbox_server.express_account()
    pi = client.v1.payment_intents.create(
        params={
            "amount": 3000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    charge = str(pi.latest_charge)
    t1 = client.v1.transfers.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "destination": first.id,
            "source_transaction": charge,
        }
    )
    assert t1.transfer_group == f"group_{pi.id}"
    assert client.v1.charges.retrieve(charge).transfer_group == f"group_{pi.id}"
    with pytest.raises(stripe.InvalidRequestError) as over:
        client.v1.transfers.create(
            params={
                "amount": 1001,
                "currency": "usd",
                "destination": second.id,
                "source_transaction": charge,
            }
        )
    assert over.value.param == "amount"
    with pytest.raises(stripe.InvalidRequestError) as currency:
        client.v1.transfers.create(
            params={
                "amount": 100,
                "currency": "eur",
                "destination": second.id,
                "source_transaction": charge,
            }
        )
    assert currency.value.param == "currency"
    t2 = client.v1.transfers.create(
        params={
            "amount": 1000,
            "currency": "usd",
            "destination": second.id,
            "source_transaction": charge,
            "transfer_group": f"group_{pi.id}",
        }
    )
    listed = client.v1.transfers.list(params={"transfer_group": f"group_{pi.id}"})
    assert {t.id for t in listed.data} == {t1.id, t2.id}
    assert (
        client.v1.balance.retrieve(options={"stripe_account": second.id}).pending[0].amount == 1000
    )


def test_transfer_without_source_needs_available_funds(sandbox_server: SandboxServer) -> None:
    client = sandbox_server.client
    seller = sandbox_server.express_account()
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.transfers.create(
            params={"amount": 500, "currency": "usd", "destination": seller.id}
        )
    assert caught.value.code == "balance_insufficient"
    client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_bypassPending",
            "confirm": True,
        }
    )
    transfer = client.v1.transfers.create(
        params={"amount": 500, "currency": "usd", "destination": seller.id}
    )
    assert transfer.amount == 500
    unready = sandbox_server.express_account(onboard=False)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.transfers.create(
            params={"amount": 100, "currency": "usd", "destination": unready.id}
        )
    assert refused.value.param == "destination"


def test_transfer_reversal_needs_connected_available_balance(
    sandbox_server: SandboxServer,
) -> None:
    client = sandbox_server.client
    seller, charge = _paid_destination_charge(sandbox_server)
    # A manual payout schedule keeps the funds on the account once they are available.
    client.v1.accounts.update(
        seller.id, params={"settings": {"payouts": {"schedule": {"interval": "manual"}}}}
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.transfers.reversals.create(charge.transfer, params={"amount": 100})
    assert caught.value.code == "balance_insufficient"
    sandbox_server.advance(2 * 86_400 + 5)
    reversal = client.v1.transfers.reversals.create(charge.transfer, params={"amount": 100})
    assert reversal.id.startswith("trr_")
    transfer = client.v1.transfers.retrieve(charge.transfer)
    assert transfer.amount_reversed == 100
    assert transfer.reversed is False
    assert [r.id for r in transfer.reversals.data] == [reversal.id]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.reversals.create(charge.transfer, params={"amount": 901})
    sandbox_server.flush()
    assert "transfer.reversed" in [e.type for e in sandbox_server.events("platform")]


def test_partial_refunds_reverse_transfer_and_fee_proportionally(
    sandbox_server: SandboxServer,
) -> None:
    client = sandbox_server.client
    _seller, charge = _paid_destination_charge(sandbox_server, amount=1000, fee=100)
    refund = client.v1.refunds.create(
        params={
            "charge": charge.id,
            "amount": 250,
            "reverse_transfer": True,
            "refund_application_fee": True,
            "reason": "requested_by_customer",
        }
    )
    assert refund.id.startswith("re_")
    assert refund.status == "succeeded"
    assert refund.amount == 250
    assert refund.payment_intent == charge.payment_intent
    reversal = client.v1.transfers.reversals.retrieve(
        charge.transfer, str(refund.transfer_reversal)
    )
    assert reversal.source_refund == refund.id
    transfer = client.v1.transfers.retrieve(charge.transfer)
    assert transfer.amount_reversed == 250
    fee = client.v1.application_fees.retrieve(charge.application_fee)
    assert fee.amount_refunded == 25
    assert fee.refunds.data[0].id.startswith("fr_")
    charge_now = client.v1.charges.retrieve(charge.id)
    assert charge_now.amount_refunded == 250
    assert charge_now.refunded is False
    rest = client.v1.refunds.create(
        params={
            "payment_intent": charge.payment_intent,
            "reverse_transfer": True,
            "refund_application_fee": True,
        }
    )
    assert rest.amount == 750
    assert client.v1.transfers.retrieve(charge.transfer).reversed is True
    assert client.v1.application_fees.retrieve(charge.application_fee).refunded is True
    assert client.v1.charges.retrieve(charge.id).refunded is True
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.refunds.create(params={"charge": charge.id})
    assert again.value.code == "charge_already_refunded"
    sandbox_server.flush()
    types = [e.type for e in sandbox_server.events("platform")]
    for expected in (
        "refund.created",
        "charge.refunded",
        "transfer.reversed",
        "application_fee.refunded",
    ):
        assert expected in types
    assert reversal.amount == 250


def test_refund_rules(sandbox_server: SandboxServer) -> None:
    client = sandbox_server.client
    _seller, charge = _paid_destination_charge(sandbox_server)
    with pytest.raises(stripe.InvalidRequestError) as over:
        client.v1.refunds.create(params={"charge": charge.id, "amount": 1001})
    assert over.value.param == "amount"
    assert "greater than unrefunded amount" in str(over.value)
    with pytest.raises(stripe.InvalidRequestError) as fee_only:
        client.v1.refunds.create(params={"charge": charge.id, "refund_application_fee": True})
    assert fee_only.value.param == "refund_application_fee"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create(params={})
    # The platform bears a plain refund; the transfer stays.
    client.v1.refunds.create(params={"charge": charge.id, "amount": 300})
    assert client.v1.transfers.retrieve(charge.transfer).amount_reversed == 0
    assert client.v1.refunds.list(params={"charge": charge.id}).data[0].amount == 300


def test_refund_test_cards(sandbox_server: SandboxServer) -> None:
    client = sandbox_server.client
    _, pending_charge = _paid_destination_charge(sandbox_server, card="4000000000007726")
    pending = client.v1.refunds.create(params={"charge": pending_charge.id})
    assert pending.status == "pending"
    _, failing_charge = _paid_destination_charge(sandbox_server, card="4000000000005126")
    failing = client.v1.refunds.create(params={"charge": failing_charge.id})
    assert failing.status == "succeeded"
    sandbox_server.advance(61)
    assert client.v1.refunds.retrieve(pending.id).status == "succeeded"
    failed = client.v1.refunds.retrieve(failing.id)
    assert failed.status == "failed"
    assert client.v1.charges.retrieve(failing_charge.id).amount_refunded == 0
    sandbox_server.flush()
    types = [e.type for e in sandbox_server.events("platform")]
    assert "refund.failed" in types and "refund.updated" in types


def test_application_fee_refunds(sandbox_server: SandboxServer) -> None:
    client = sandbox_server.client
    _, charge = _paid_destination_charge(sandbox_server, fee=200)
    partial = client.v1.application_fees.refunds.create(
        charge.application_fee, params={"amount": 50}
    )
    assert partial.amount == 50
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.application_fees.refunds.create(charge.application_fee, params={"amount": 151})
    rest = client.v1.application_fees.refunds.create(charge.application_fee)
    assert rest.amount == 150
    listed = client.v1.application_fees.refunds.list(charge.application_fee)
    assert {r.id for r in listed.data} == {partial.id, rest.id}
    fetched = client.v1.application_fees.refunds.retrieve(charge.application_fee, partial.id)
    assert fetched.amount == 50


def test_balance_transactions_of_a_destination_charge(sandbox_server: SandboxServer) -> None:
    client = sandbox_server.client
    seller, _charge = _paid_destination_charge(sandbox_server, amount=1000, fee=123)
    platform = client.v1.balance_transactions.list()
    by_type = {t.type: t for t in platform.data}
    assert by_type["charge"].amount == 1000 and by_type["charge"].fee == 59
    assert by_type["transfer"].amount == -1000
    assert by_type["application_fee"].amount == 123
    connected = client.v1.balance_transactions.list(options={"stripe_account": seller.id})
    assert [(t.type, t.amount, t.fee, t.net) for t in connected.data] == [
        ("payment", 1000, 123, 877)
    ]
