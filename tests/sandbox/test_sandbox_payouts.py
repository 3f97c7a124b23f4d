"""Automatic payouts for connected accounts on the default Express schedule (daily, funds paid
out once available), through the SDK, the control API and the Express dashboard."""

from __future__ import annotations

import httpx
import pytest
import stripe

from tests.sandbox.support import SandboxServer

DAY = 86_400


def _paid_seller(
    server: SandboxServer, amount: int = 2000, fee: int | None = None
) -> stripe.Account:
    seller = server.express_account()
    session = server.session(seller.id, amount=amount, fee=fee)
    assert server.pay(session.id, card="4242424242424242").status_code == 200
    return seller


def _available(server: SandboxServer, account_id: str) -> int:
    balance = server.client.v1.balance.retrieve(options={"stripe_account": account_id})
    return sum(part.amount for part in balance.available)


def test_available_funds_are_paid_out_once_and_then_paid(sandbox_server: SandboxServer) -> None:
    client = sandbox_server.client
    seller = _paid_seller(sandbox_server)
    sandbox_server.advance(DAY)  # still pending: nothing to pay out
    assert client.v1.payouts.list(options={"stripe_account": seller.id}).data == []

    sandbox_server.advance(DAY + 60)
    payouts = client.v1.payouts.list(options={"stripe_account": seller.id}).data
    assert len(payouts) == 1
    payout = payouts[0]
    assert payout.id.startswith("po_")
    # The whole transfer: the platform paid Stripe's fee and took no application fee.
    transfer = client.v1.transfers.list(params={"destination": seller.id}).data[0]
    assert payout.amount == transfer.amount == 2000
    assert payout.currency == "usd"
    assert payout.automatic is True
    assert payout.method == "standard"
    assert payout.type == "bank_account"
    assert payout.status == "in_transit"
    assert payout.arrival_date > payout.created
    assert _available(sandbox_server, seller.id) == 0
    txn = client.v1.balance_transactions.retrieve(
        str(payout.balance_transaction), options={"stripe_account": seller.id}
    )
    assert (txn.type, txn.amount, txn.source) == ("payout", -2000, payout.id)
    # Not the platform's, and not visible to it.
    assert client.v1.payouts.list().data == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payouts.retrieve(payout.id)

    sandbox_server.advance(60)  # the same day again: no second payout for the same funds
    assert len(client.v1.payouts.list(options={"stripe_account": seller.id}).data) == 1

    sandbox_server.advance(DAY)  # arrival date reached; another day, still nothing new to pay
    paid = client.v1.payouts.retrieve(payout.id, options={"stripe_account": seller.id})
    assert paid.status == "paid"
    assert len(client.v1.payouts.list(options={"stripe_account": seller.id}).data) == 1
    assert _available(sandbox_server, seller.id) == 0
    listed = client.v1.payouts.list(
        params={"status": "paid"}, options={"stripe_account": seller.id}
    )
    assert [p.id for p in listed.data] == [payout.id]

    sandbox_server.flush()
    connect = [e for e in sandbox_server.events("connect") if e.type.startswith("payout.")]
    assert [e.type for e in connect] == ["payout.created", "payout.paid"]
    assert all(e.account == seller.id for e in connect)
    assert connect[1].data.object["status"] == "paid"
    assert connect[1].data.previous_attributes is not None
    assert not [e for e in sandbox_server.events("platform") if e.type.startswith("payout.")]


def test_a_tick_run_twice_pays_out_once(sandbox_server: SandboxServer) -> None:
    seller = _paid_seller(sandbox_server)
    sandbox_server.advance(2 * DAY + 60)
    assert sandbox_server.sandbox.engine.tick() == 0
    payouts = sandbox_server.client.v1.payouts.list(options={"stripe_account": seller.id})
    assert len(payouts.data) == 1


def test_accounts_without_payouts_get_none(sandbox_server: SandboxServer) -> None:
    client = sandbox_server.client
    disabled = _paid_seller(sandbox_server)
    response = sandbox_server.control(
        f"/accounts/{disabled.id}/onboard", {"outcome": "requirements_due"}
    )
    assert response.status_code == 200
    assert client.v1.accounts.retrieve(disabled.id).payouts_enabled is False
    manual = _paid_seller(sandbox_server)
    updated = client.v1.accounts.update(
        manual.id, params={"settings": {"payouts": {"schedule": {"interval": "manual"}}}}
    )
    assert updated.settings is not None and updated.settings.payouts is not None
    assert updated.settings.payouts.schedule.interval == "manual"
    sandbox_server.advance(3 * DAY)
    for account in (disabled, manual):
        assert client.v1.payouts.list(options={"stripe_account": account.id}).data == []
        assert _available(sandbox_server, account.id) == 2000


def test_express_dashboard_shows_payouts(sandbox_server: SandboxServer) -> None:
    seller = _paid_seller(sandbox_server, amount=4321)
    sandbox_server.advance(2 * DAY + 60)
    payout = sandbox_server.client.v1.payouts.list(options={"stripe_account": seller.id}).data[0]
    link = sandbox_server.client.v1.accounts.login_links.create(seller.id)
    with httpx.Client() as browser:
        page = browser.get(link.url)
    assert page.status_code == 200
    assert "does not simulate payouts" not in page.text
    assert payout.id in page.text
    assert "$43.21" in page.text
    assert "In transit" in page.text


def _listed(server: SandboxServer, account_id: str, payout_id: str) -> list[tuple[str, int]]:
    txns = server.client.v1.balance_transactions.list(
        params={"payout": payout_id}, options={"stripe_account": account_id}
    )
    return sorted((t.type, t.amount) for t in txns.data)


def test_a_payout_to_a_failing_test_bank_account_fails_and_the_money_comes_back(
    sandbox_server: SandboxServer,
) -> None:
    client = sandbox_server.client
    seller = _paid_seller(sandbox_server)
    answer = sandbox_server.control(
        f"/accounts/{seller.id}/bank_account", {"account_number": "000111111116"}
    )
    assert answer.status_code == 200, answer.text
    bank = answer.json()
    assert bank["id"].startswith("ba_") and bank["last4"] == "1116"
    sandbox_server.advance(2 * DAY + 60)
    [payout] = client.v1.payouts.list(options={"stripe_account": seller.id}).data
    assert (payout.status, payout.destination, payout.amount) == ("in_transit", bank["id"], 2000)
    assert _available(sandbox_server, seller.id) == 0

    sandbox_server.advance(DAY)  # the bank refuses it on the arrival date
    failed = client.v1.payouts.retrieve(payout.id, options={"stripe_account": seller.id})
    assert (failed.status, failed.failure_code) == ("failed", "no_account")
    assert failed.failure_message and "No bank account" in failed.failure_message
    back = client.v1.balance_transactions.retrieve(
        str(failed.failure_balance_transaction), options={"stripe_account": seller.id}
    )
    assert (back.type, back.amount, back.source) == ("payout_failure", 2000, payout.id)
    assert _available(sandbox_server, seller.id) == 2000
    # The failed payout still lists what it took; the money back is not part of it.
    assert _listed(sandbox_server, seller.id, payout.id) == [("payment", 2000), ("payout", -2000)]
    sandbox_server.flush()
    types = [e.type for e in sandbox_server.events("connect") if e.type.startswith("payout.")]
    assert types == ["payout.created", "payout.failed"]

    sandbox_server.advance(2 * DAY)  # payouts to the errored bank account are paused
    assert len(client.v1.payouts.list(options={"stripe_account": seller.id}).data) == 1
    assert _available(sandbox_server, seller.id) == 2000

    good = {"account_number": "000123456789"}
    assert sandbox_server.control(f"/accounts/{seller.id}/bank_account", good).status_code == 200
    sandbox_server.advance(60)
    retry = client.v1.payouts.list(
        params={"status": "in_transit"}, options={"stripe_account": seller.id}
    )
    [second] = retry.data
    assert second.amount == 2000 and second.id != payout.id
    assert _listed(sandbox_server, seller.id, second.id) == [
        ("payout", -2000),
        ("payout_failure", 2000),
    ]
    sandbox_server.advance(DAY)
    paid = client.v1.payouts.retrieve(second.id, options={"stripe_account": seller.id})
    assert paid.status == "paid" and _available(sandbox_server, seller.id) == 0


@pytest.mark.parametrize("number", ["12ab", "123", "1" * 18, 123456789])
def test_a_bank_account_number_must_be_4_to_17_digits(
    sandbox_server: SandboxServer, number: object
) -> None:
    seller = sandbox_server.express_account()
    answer = sandbox_server.control(
        f"/accounts/{seller.id}/bank_account", {"account_number": number}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "account_number"
