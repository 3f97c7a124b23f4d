"""The control API's guard and answers, the api_key setting, and the SDK's async methods."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import stripe

from souq.sandbox import Sandbox, SandboxConfig
from tests.sandbox.conftest import local_sandbox
from tests.sandbox.support import SandboxServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def test_control_refuses_remote_clients_without_the_key(tmp_path: Path) -> None:
    sandbox = Sandbox(
        SandboxConfig(
            db_path=tmp_path / "s.db",
            public_url="http://sandbox.test",
            deliver_webhooks_in_background=False,
            api_key="sk_test_only_this",
        )
    )
    remote = TestClient(sandbox.app, client=("203.0.113.9", 40000))
    assert remote.post("/_control/reset").status_code == 403
    allowed = remote.post("/_control/reset", headers={"Authorization": "Bearer sk_test_only_this"})
    assert allowed.status_code == 200
    assert (
        remote.get("/v1/balance", headers={"Authorization": "Bearer sk_test_other"}).status_code
        == 401
    )
    assert (
        remote.get("/v1/balance", headers={"Authorization": "Bearer sk_test_only_this"}).status_code
        == 200
    )
    local = TestClient(sandbox.app, client=("127.0.0.1", 40000))
    assert local.get("/_control/clock").status_code == 200


def test_control_errors(sandbox_server: SandboxServer) -> None:
    assert sandbox_server.pay("cs_test_nope", card="4242424242424242").status_code == 404
    session = sandbox_server.session(fee=None)
    assert sandbox_server.pay(session.id).status_code == 400  # no card, no method
    assert sandbox_server.pay(session.id, method="delayed", outcome="maybe").status_code == 400
    assert sandbox_server.pay(session.id, card="4242424242424242").status_code == 200
    again = sandbox_server.pay(session.id, card="4242424242424242")
    assert again.status_code == 400
    assert sandbox_server.control("/accounts/acct_nope/onboard").status_code == 404
    account = sandbox_server.express_account(onboard=False)
    bad = sandbox_server.control(f"/accounts/{account.id}/onboard", {"outcome": "maybe"})
    assert bad.status_code == 400
    assert sandbox_server.control("/clock/advance", {"seconds": -1}).status_code == 400
    now = sandbox_server.control("/clock", get=True).json()["now"]
    sandbox_server.advance(100)
    assert sandbox_server.control("/clock", get=True).json()["now"] >= now + 100
    back = sandbox_server.control("/clock/reset").json()["now"]
    assert now <= back < now + 100


def test_reset_over_control_keeps_endpoints(sandbox_server: SandboxServer) -> None:
    account = sandbox_server.express_account()
    assert sandbox_server.control("/reset").json() == {"reset": True}
    with pytest.raises(stripe.InvalidRequestError):
        sandbox_server.client.v1.accounts.retrieve(account.id)
    urls = [e.url for e in sandbox_server.client.v1.webhook_endpoints.list().data]
    assert f"{sandbox_server.receiver.url}/platform" in urls


async def test_async_sdk_methods(sandbox_server: SandboxServer) -> None:
    client = stripe.StripeClient(
        "sk_test_async",
        base_addresses={"api": sandbox_server.url},
        http_client=stripe.HTTPXClient(),
        max_network_retries=0,
    )
    account = await client.v1.accounts.create_async(
        params={"type": "express", "capabilities": {"transfers": {"requested": True}}},
        options={"idempotency_key": "async-account-1"},
    )
    fetched = await client.v1.accounts.retrieve_async(account.id)
    assert fetched.id == account.id
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.checkout.sessions.retrieve_async("cs_test_missing")


def test_control_judges_loopback_by_the_peer_never_by_forwarding_headers(tmp_path: Path) -> None:
    sandbox = local_sandbox(tmp_path / "s.db")
    remote = TestClient(sandbox.app, client=("203.0.113.9", 40000))
    local = TestClient(sandbox.app, client=("127.0.0.1", 40000))
    local_v6 = TestClient(sandbox.app, client=("::1", 40000))
    assert local.get("/_control/clock").status_code == 200
    assert local_v6.get("/_control/clock").status_code == 200
    for headers in ({}, {"X-Forwarded-For": "127.0.0.1"}, {"Authorization": "Bearer sk_test_x"}):
        refused = remote.post("/_control/reset", headers=headers)
        assert refused.status_code == 403, headers
        assert refused.json()["error"]["type"] == "invalid_request_error"
    # A proxy on this host forwarding someone else's request is not a local client.
    for name in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        proxied = local.post("/_control/faults", json={"api_error_rate": 1}, headers={name: "x"})
        assert proxied.status_code == 403, name
    assert local.get("/_control/faults").json().get("api_error_rate", 0) == 0


def test_control_rejects_bad_input_with_400(sandbox_server: SandboxServer) -> None:
    http, base = sandbox_server.http, f"{sandbox_server.url}/_control"
    for limit in ("abc", "-1", "0", "1001", "1.5", ""):
        answer = http.get(f"{base}/webhooks/deliveries", params={"limit": limit})
        assert answer.status_code == 400, limit
        assert answer.json()["error"]["param"] == "limit"
    account = sandbox_server.express_account()
    sandbox_server.flush()
    one = http.get(f"{base}/webhooks/deliveries", params={"limit": 1}).json()["data"]
    assert len(one) == 1
    session = sandbox_server.session(account.id)
    bad_bodies: list[tuple[str, Any]] = [
        ("/clock/advance", b"{not json"),
        ("/clock/advance", b"[1, 2]"),
        ("/clock/advance", {"seconds": "abc"}),
        ("/clock/advance", {"seconds": True}),
        ("/clock/advance", {"seconds": 10**12}),
        ("/clock/advance", b'{"seconds": NaN}'),
        ("/faults", {"webhook_shuffle": "yes"}),
        ("/faults", {"api_error_rate": "0.5"}),
        ("/faults", b'{"api_latency_ms": Infinity}'),
        (f"/accounts/{account.id}/onboard", {"outcome": 5}),
        (f"/checkout/sessions/{session.id}/pay", {"card": 4242424242424242}),
        (f"/checkout/sessions/{session.id}/pay", {"card": "4242424242424242", "email": ["x"]}),
    ]
    for path, body in bad_bodies:
        if isinstance(body, bytes):
            answer = http.post(f"{base}{path}", content=body)
        else:
            answer = http.post(f"{base}{path}", json=body)
        assert answer.status_code == 400, (path, body, answer.text)
        assert answer.json()["error"]["message"], (path, body)
    # Nothing changed: the clock did not move, no fault is set, the session is still open.
    assert abs(http.get(f"{base}/clock").json()["now"] - time.time()) < 60
    assert http.get(f"{base}/faults").json() == {}
    assert sandbox_server.client.v1.checkout.sessions.retrieve(session.id).status == "open"
