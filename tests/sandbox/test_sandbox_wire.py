"""Stripe's wire conventions: auth, errors, idempotency, Stripe-Account, expansion, faults."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import stripe

from souq.sandbox import Sandbox, SandboxConfig
from tests.sandbox.conftest import make_client, served_sandbox
from tests.sandbox.support import SandboxServer

if TYPE_CHECKING:
    from stripe.params import AccountCreateParams


def test_missing_or_bad_key_is_401(sandbox_server: SandboxServer) -> None:
    with httpx.Client() as http:
        missing = http.get(f"{sandbox_server.url}/v1/balance")
        bad = http.get(
            f"{sandbox_server.url}/v1/balance", headers={"Authorization": "Bearer sk_live_nope"}
        )
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert bad.status_code == 401
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient(
            "pk_test_wrongkind",
            base_addresses={"api": sandbox_server.url},
            http_client=stripe.HTTPXClient(allow_sync_methods=True),
        ).v1.balance.retrieve()


def test_unknown_url_and_unknown_id_are_404(sandbox_server: SandboxServer) -> None:
    with httpx.Client() as http:
        response = http.get(
            f"{sandbox_server.url}/v1/nothing_here", headers={"Authorization": "Bearer sk_test_x"}
        )
    assert response.status_code == 404
    for call in (
        lambda: sandbox_server.client.v1.checkout.sessions.retrieve("cs_test_missing"),
        lambda: sandbox_server.client.v1.payment_intents.retrieve("pi_missing"),
        lambda: sandbox_server.client.v1.charges.retrieve("ch_missing"),
        lambda: sandbox_server.client.v1.transfers.retrieve("tr_missing"),
        lambda: sandbox_server.client.v1.refunds.retrieve("re_missing"),
        lambda: sandbox_server.client.v1.events.retrieve("evt_missing"),
        lambda: sandbox_server.client.v1.disputes.retrieve("du_missing"),
        lambda: sandbox_server.client.v1.application_fees.retrieve("fee_missing"),
        lambda: sandbox_server.client.v1.balance_transactions.retrieve("txn_missing"),
    ):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            call()
        assert caught.value.http_status == 404
        assert caught.value.code == "resource_missing"


def test_spec_validation_names_the_param(sandbox_server: SandboxServer) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sandbox_server.client.v1.accounts.create(
            params={"type": "express", "colour": "red"}  # type: ignore[arg-type]  # unknown on purpose
        )
    assert caught.value.code == "parameter_unknown"
    assert caught.value.param == "colour"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sandbox_server.client.v1.checkout.sessions.create(
            params={  # type: ignore[arg-type]  # unit_amount "ten" is invalid on purpose
                "mode": "payment",
                "success_url": "http://x/s",
                "line_items": [
                    {
                        "price_data": {
                            "currency": "usd",
                            "unit_amount": "ten",
                            "product_data": {"name": "x"},
                        },
                        "quantity": 1,
                    }
                ],
            }
        )
    assert caught.value.param == "line_items[0][price_data][unit_amount]"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sandbox_server.client.v1.account_links.create(params={"type": "account_onboarding"})  # type: ignore[typeddict-item]
    assert caught.value.code == "parameter_missing"
    assert caught.value.param == "account"


def test_idempotent_replay_and_mismatch(sandbox_server: SandboxServer) -> None:
    key = f"order-{uuid.uuid4()}"
    params: AccountCreateParams = {"type": "express", "email": "a@example.com"}
    first = sandbox_server.client.v1.accounts.create(
        params=params, options={"idempotency_key": key}
    )
    second = sandbox_server.client.v1.accounts.create(
        params=params, options={"idempotency_key": key}
    )
    assert first.id == second.id
    assert second.last_response is not None
    assert second.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(sandbox_server.client.v1.accounts.list().data) == 1
    with pytest.raises(stripe.IdempotencyError):
        sandbox_server.client.v1.accounts.create(
            params={"type": "express", "email": "b@example.com"}, options={"idempotency_key": key}
        )
    with pytest.raises(stripe.IdempotencyError):
        sandbox_server.client.v1.webhook_endpoints.create(
            params={"url": "http://x/y", "enabled_events": ["*"]},
            options={"idempotency_key": key},
        )


def test_idempotency_keys_are_pruned_after_a_day(sandbox_server: SandboxServer) -> None:
    key = f"k-{uuid.uuid4()}"
    first = sandbox_server.client.v1.accounts.create(
        params={"type": "express"}, options={"idempotency_key": key}
    )
    sandbox_server.advance(24 * 3600 + 1)
    second = sandbox_server.client.v1.accounts.create(
        params={"type": "express"}, options={"idempotency_key": key}
    )
    assert second.id != first.id


def test_idempotency_replays_errors_too(sandbox_server: SandboxServer) -> None:
    key = f"k-{uuid.uuid4()}"
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            sandbox_server.client.v1.account_links.create(
                params={"account": "acct_missing", "type": "account_onboarding"},
                options={"idempotency_key": key},
            )
    assert caught.value.http_status == 404
    assert caught.value.headers is not None
    assert caught.value.headers.get("Idempotent-Replayed") == "true"


def test_concurrent_same_key_gets_409(sandbox_server: SandboxServer) -> None:
    sandbox_server.control("/faults", {"api_latency_ms": 400})
    key = f"k-{uuid.uuid4()}"
    results: list[object] = []

    def create() -> None:
        try:
            results.append(
                sandbox_server.client.v1.accounts.create(
                    params={"type": "express"}, options={"idempotency_key": key}
                )
            )
        except stripe.StripeError as exc:
            results.append(exc)

    threads = [threading.Thread(target=create) for _ in range(2)]
    threads[0].start()
    import time

    time.sleep(0.1)
    threads[1].start()
    for thread in threads:
        thread.join()
    sandbox_server.control("/faults", {"api_latency_ms": 0})
    errors = [r for r in results if isinstance(r, stripe.StripeError)]
    assert len(errors) == 1
    assert errors[0].http_status == 409
    assert errors[0].json_body is not None
    assert isinstance(errors[0].json_body, dict)
    assert errors[0].json_body["error"]["code"] == "idempotency_key_in_use"


def test_api_error_fault_and_timeout_fault(sandbox_server: SandboxServer) -> None:
    sandbox_server.control("/faults", {"api_error_rate": 1})
    with pytest.raises(stripe.APIError) as caught:
        sandbox_server.client.v1.balance.retrieve()
    assert caught.value.http_status == 500
    sandbox_server.control(
        "/faults", {"api_error_rate": 0, "timeout_rate": 1, "timeout_seconds": 1}
    )
    short = stripe.StripeClient(
        "sk_test_x",
        base_addresses={"api": sandbox_server.url},
        http_client=stripe.HTTPXClient(allow_sync_methods=True, timeout=0.3),
        max_network_retries=0,
    )
    key = f"k-{uuid.uuid4()}"
    with pytest.raises(stripe.APIConnectionError):
        short.v1.accounts.create(params={"type": "express"}, options={"idempotency_key": key})
    sandbox_server.control("/faults", {"timeout_rate": 0})
    # The request ran; retrying with the same key replays its result.
    again = sandbox_server.client.v1.accounts.create(
        params={"type": "express"}, options={"idempotency_key": key}
    )
    assert [a.id for a in sandbox_server.client.v1.accounts.list().data] == [again.id]
    assert sandbox_server.control("/faults", {"nonsense": 1}).status_code == 400


def test_stripe_account_header_scopes_objects(sandbox_server: SandboxServer) -> None:
    seller = sandbox_server.express_account()
    with pytest.raises(stripe.PermissionError):
        sandbox_server.client.v1.balance.retrieve(options={"stripe_account": "acct_nobody"})
    direct = sandbox_server.client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "success_url": "http://x/s",
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 2000,
                        "product_data": {"name": "x"},
                    },
                    "quantity": 1,
                }
            ],
            "payment_intent_data": {"application_fee_amount": 200},
        },
        options={"stripe_account": seller.id},
    )
    with pytest.raises(stripe.InvalidRequestError):
        sandbox_server.client.v1.checkout.sessions.retrieve(direct.id)
    assert sandbox_server.pay(direct.id, card="4242424242424242").status_code == 200
    sandbox_server.flush()
    connect_types = [e.type for e in sandbox_server.events("connect")]
    assert "checkout.session.completed" in connect_types
    assert all(e.account == seller.id for e in sandbox_server.events("connect"))
    balance = sandbox_server.client.v1.balance.retrieve(options={"stripe_account": seller.id})
    assert balance.pending[0].amount == 2000 - 88 - 200
    assert sandbox_server.client.v1.balance.retrieve().pending[0].amount == 200


def test_expand_list_items(sandbox_server: SandboxServer) -> None:
    seller = sandbox_server.express_account()
    session = sandbox_server.session(seller.id)
    sandbox_server.pay(session.id, card="4242424242424242")
    listed = sandbox_server.client.v1.checkout.sessions.list(
        params={"expand": ["data.payment_intent"]}
    )
    pi: Any = listed.data[0].payment_intent
    assert pi.object == "payment_intent"
    charge = sandbox_server.client.v1.charges.retrieve(
        pi.latest_charge, params={"expand": ["balance_transaction", "transfer"]}
    )
    assert charge.balance_transaction.object == "balance_transaction"  # type: ignore[union-attr]
    assert charge.transfer.object == "transfer"  # type: ignore[union-attr]


def test_state_survives_restart(tmp_path: Path) -> None:
    from tests.sandbox.conftest import ThreadedServer, free_port

    db = tmp_path / "sandbox.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = Sandbox(SandboxConfig(db_path=db, public_url=url, deliver_webhooks_in_background=False))
    secret = first.ensure_webhook_endpoint("http://127.0.0.1:9/hook", connect=False)
    with ThreadedServer(first.app, port):
        account = make_client(url).v1.accounts.create(params={"type": "express"})
    first.store.close()
    second = Sandbox(
        SandboxConfig(db_path=db, public_url=url, deliver_webhooks_in_background=False)
    )
    assert second.ensure_webhook_endpoint("http://127.0.0.1:9/hook", connect=False) == secret
    assert second.ensure_webhook_endpoint("http://127.0.0.1:9/hook", connect=True) != secret
    with ThreadedServer(second.app, port):
        assert make_client(url).v1.accounts.retrieve(account.id).id == account.id
    second.reset()
    assert second.store.get(account.id) is None
    assert second.ensure_webhook_endpoint("http://127.0.0.1:9/hook", connect=False) == secret


def test_api_key_admits_only_that_key(tmp_path: Path) -> None:
    key = "sk_test_only_this_one_" + uuid.uuid4().hex
    with served_sandbox(tmp_path / "s.db", api_key=key) as (sandbox, url):
        for other in ("sk_test_souq", key + "x", key[:-1]):
            with pytest.raises(stripe.AuthenticationError) as caught:
                make_client(url, other).v1.accounts.create(params={"type": "express"})
            assert caught.value.http_status == 401
        assert sandbox.store.query("account") == []
        account = make_client(url, key).v1.accounts.create(params={"type": "express"})
        assert make_client(url, key).v1.accounts.retrieve(account.id).id == account.id
