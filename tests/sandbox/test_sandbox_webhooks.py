"""Webhook delivery: Stripe's signature, at-least-once with retries, the deliveries log, faults,
and delivery to an app served by the same server as the sandbox."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from souq.sandbox import Sandbox, SandboxConfig
from souq.sandbox.delivery import sign
from tests.sandbox.conftest import ThreadedServer, free_port, make_client, served_sandbox
from tests.sandbox.support import SandboxServer


def _deliveries(server: SandboxServer) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = server.control("/webhooks/deliveries", get=True).json()["data"]
    return data


def test_signature_matches_stripes_scheme(sandbox_server: SandboxServer) -> None:
    sandbox_server.express_account()
    sandbox_server.flush()
    item = sandbox_server.receiver.received[0]
    parts = dict(p.split("=", 1) for p in item.signature.split(","))
    assert set(parts) == {"t", "v1"}
    assert abs(int(parts["t"]) - time.time()) < 60
    assert sign(item.body, sandbox_server.connect_secret, int(parts["t"])) == item.signature
    event = stripe.Webhook.construct_event(
        item.body.decode(), item.signature, sandbox_server.connect_secret
    )
    assert event.type == "account.updated"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            item.body.decode(), item.signature, sandbox_server.platform_secret
        )


def test_deliveries_not_tried_yet_show_their_event_type(sandbox_server: SandboxServer) -> None:
    account = sandbox_server.express_account(onboard=False)
    sandbox_server.control(f"/accounts/{account.id}/onboard", {"outcome": "complete"})
    pending = [d for d in _deliveries(sandbox_server) if d["attempt"] == 0]
    assert pending, "the onboarding's event should be waiting for delivery"
    assert {d["type"] for d in pending} == {"account.updated"}
    sandbox_server.flush()


def test_failed_delivery_is_retried_with_backoff(sandbox_server: SandboxServer) -> None:
    sandbox_server.receiver.fail_next["connect"] = [500, 503]
    account = sandbox_server.express_account(onboard=False)
    sandbox_server.control(f"/accounts/{account.id}/onboard", {"outcome": "rejected"})
    first = sandbox_server.flush()
    assert first == {"attempted": 1, "succeeded": 0, "failed": 1, "pending": 1}
    assert sandbox_server.flush()["attempted"] == 0  # not due yet
    sandbox_server.advance(61)
    assert sandbox_server.flush()["failed"] == 1
    sandbox_server.advance(301)
    assert sandbox_server.flush()["succeeded"] == 1
    log = _deliveries(sandbox_server)
    assert [(d["attempt"], d["status_code"], d["ok"]) for d in reversed(log)] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]
    signatures = {r.signature for r in sandbox_server.receiver.received}
    assert len(signatures) == 3  # a new t (and signature) per attempt
    events = sandbox_server.events("connect")
    assert len({e.id for e in events}) == 1


def test_unreachable_endpoint_is_logged_and_retried(sandbox_server: SandboxServer) -> None:
    endpoint = sandbox_server.client.v1.webhook_endpoints.create(
        params={"url": "http://127.0.0.1:9/unreachable", "enabled_events": ["*"]}
    )
    try:
        sandbox_server.session(fee=None)
        sandbox_server.client.v1.checkout.sessions.expire(
            sandbox_server.client.v1.checkout.sessions.list().data[0].id
        )
        counts = sandbox_server.flush()
        assert counts["failed"] == 1
        failed = [d for d in _deliveries(sandbox_server) if d["endpoint"] == endpoint.id]
        assert failed[0]["error"]
        assert failed[0]["delivery_status"] == "pending"
    finally:
        sandbox_server.client.v1.webhook_endpoints.delete(endpoint.id)


def test_enabled_events_filter_and_endpoint_api(sandbox_server: SandboxServer) -> None:
    client = sandbox_server.client
    endpoint = client.v1.webhook_endpoints.create(
        params={
            "url": f"{sandbox_server.receiver.url}/filtered",
            "enabled_events": ["checkout.session.expired"],
            "description": "only expiry",
        }
    )
    try:
        assert endpoint.secret is not None and endpoint.secret.startswith("whsec_")
        listed = client.v1.webhook_endpoints.list()
        assert endpoint.id in [e.id for e in listed.data]
        assert all("secret" not in e for e in listed.data)
        session = sandbox_server.session(fee=None)
        client.v1.checkout.sessions.expire(session.id)
        sandbox_server.flush()
        got = [r for r in sandbox_server.receiver.received if r.path == "filtered"]
        assert len(got) == 1
        event = stripe.Webhook.construct_event(
            got[0].body.decode(), got[0].signature, endpoint.secret
        )
        assert event.type == "checkout.session.expired"
    finally:
        assert client.v1.webhook_endpoints.delete(endpoint.id).deleted is True


def test_duplicate_and_failure_faults(sandbox_server: SandboxServer) -> None:
    sandbox_server.control("/faults", {"webhook_duplicate_rate": 1, "webhook_shuffle": True})
    sandbox_server.express_account()
    sandbox_server.flush()
    ids = [e.id for e in sandbox_server.events("connect")]
    assert len(ids) == 4 and len(set(ids)) == 2
    sandbox_server.control("/faults", {"webhook_duplicate_rate": 0, "webhook_failure_rate": 1})
    sandbox_server.receiver.clear()
    sandbox_server.express_account()
    assert sandbox_server.flush()["failed"] == 2
    assert sandbox_server.receiver.received == []
    sandbox_server.control("/faults", {"webhook_failure_rate": 0, "webhook_shuffle": False})
    sandbox_server.advance(61)
    assert sandbox_server.flush()["succeeded"] == 2


def test_event_api_and_previous_attributes(sandbox_server: SandboxServer) -> None:
    account = sandbox_server.express_account()
    sandbox_server.client.v1.accounts.update(account.id, params={"email": "x@example.com"})
    events = sandbox_server.client.v1.events.list(
        params={"type": "account.updated"}, options={"stripe_account": account.id}
    )
    latest = events.data[0]
    assert latest.account == account.id
    assert latest.data.previous_attributes is not None
    assert latest.data.previous_attributes["email"] == "seller@example.com"
    assert latest.request is not None and latest.request.id is not None
    assert latest.request.id.startswith("req_")
    again = sandbox_server.client.v1.events.retrieve(
        latest.id, options={"stripe_account": account.id}
    )
    assert again.id == latest.id


def test_async_capture_fills_money_fields_via_charge_updated(tmp_path: Path) -> None:
    with served_sandbox(tmp_path / "s.db", async_capture=True) as (_, url):
        client = make_client(url)
        seller = client.v1.accounts.create(
            params={"type": "express", "capabilities": {"transfers": {"requested": True}}}
        )
        httpx.post(f"{url}/_control/accounts/{seller.id}/onboard", json={"outcome": "complete"})
        session = client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "success_url": "http://x/s",
                "line_items": [
                    {
                        "price_data": {
                            "currency": "usd",
                            "unit_amount": 1000,
                            "product_data": {"name": "x"},
                        },
                        "quantity": 1,
                    }
                ],
                "payment_intent_data": {
                    "application_fee_amount": 100,
                    "transfer_data": {"destination": seller.id},
                },
            }
        )
        httpx.post(
            f"{url}/_control/checkout/sessions/{session.id}/pay", json={"card": "4242424242424242"}
        )
        events = {e.type: e for e in client.v1.events.list().data}
    succeeded = events["charge.succeeded"].data.object
    assert succeeded["balance_transaction"] is None
    assert "transfer" not in succeeded
    updated = events["charge.updated"]
    assert updated.data.object["balance_transaction"].startswith("txn_")
    assert updated.data.object["transfer"].startswith("tr_")
    assert updated.data.previous_attributes is not None
    assert updated.data.previous_attributes["balance_transaction"] is None


class _MainApp:
    """Like Souq: one server, the sandbox mounted at /_sandbox, webhooks posted back to it."""

    def __init__(self, db_path: Path, port: int) -> None:
        base = f"http://127.0.0.1:{port}"
        self.sandbox = Sandbox(SandboxConfig(db_path=db_path, public_url=f"{base}/_sandbox"))
        self.received: list[str] = []
        self.secret = self.sandbox.ensure_webhook_endpoint(
            f"{base}/webhooks/platform", connect=False
        )
        self.app = Starlette(
            routes=[
                Route("/webhooks/platform", self.hook, methods=["POST"]),
                Mount("/_sandbox", app=self.sandbox.app),
            ],
            lifespan=self.lifespan,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.sandbox.start()
        yield
        await self.sandbox.stop()

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        event = stripe.Webhook.construct_event(
            body.decode(), request.headers["stripe-signature"], self.secret
        )
        # The app may call the sandbox back while answering, on the same event loop.
        async with httpx.AsyncClient() as http:
            await http.get(
                f"{str(request.base_url).rstrip('/')}/_sandbox/v1/balance",
                headers={"Authorization": "Bearer sk_test_x"},
            )
        self.received.append(event.type)
        return Response("ok")


def test_embedded_background_delivery_to_the_same_server(tmp_path: Path) -> None:
    port = free_port()
    main = _MainApp(tmp_path / "s.db", port)
    config_server = ThreadedServer(main.app, port)
    config_server.server.config.lifespan = "on"
    with config_server:
        base = f"http://127.0.0.1:{port}/_sandbox"
        client = make_client(base)
        session = client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "success_url": "http://x/s",
                "line_items": [
                    {
                        "price_data": {
                            "currency": "usd",
                            "unit_amount": 1000,
                            "product_data": {"name": "x"},
                        },
                        "quantity": 1,
                    }
                ],
            }
        )
        assert session.url == f"{base}/checkout/{session.id}"
        page = httpx.get(session.url)
        assert page.status_code == 200 and f"{base}/checkout/{session.id}" in page.text
        # flush over HTTP on the same server: delivery must not block the loop
        flushed = httpx.post(f"{base}/_control/webhooks/flush", timeout=10).json()
        assert flushed["failed"] == 0
        httpx.post(
            f"{base}/_control/checkout/sessions/{session.id}/pay", json={"card": "4242424242424242"}
        )
        deadline = time.monotonic() + 5
        while "checkout.session.completed" not in main.received:
            assert time.monotonic() < deadline, main.received
            time.sleep(0.05)
    assert json.dumps(main.received)


def test_webhook_endpoint_urls_must_be_http(sandbox_server: SandboxServer) -> None:
    endpoints = sandbox_server.client.v1.webhook_endpoints
    before = [e.id for e in endpoints.list().data]
    for url in ("javascript:alert(1)", "file:///etc/passwd", "/relative/hook", "hook"):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            endpoints.create(params={"url": url, "enabled_events": ["*"]})
        assert caught.value.code == "url_invalid" and caught.value.param == "url"
    assert [e.id for e in endpoints.list().data] == before
    endpoint = endpoints.create(params={"url": "https://shop.test/hook", "enabled_events": ["*"]})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        endpoints.update(endpoint.id, params={"url": "gopher://shop.test/hook"})
    assert caught.value.code == "url_invalid"
    assert endpoints.retrieve(endpoint.id).url == "https://shop.test/hook"
    endpoints.delete(endpoint.id)
