"""Helpers shared by the sandbox tests: the server handle, the webhook receiver, flows."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import httpx
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from souq.sandbox import Sandbox

if TYPE_CHECKING:
    from stripe.params import AccountCreateParams
    from stripe.params.checkout import SessionCreateParams


@dataclass
class Received:
    path: str
    body: bytes
    signature: str


class Receiver:
    """Records every webhook it is sent; answers each path with queued statuses, then 200."""

    def __init__(self) -> None:
        self.url = ""
        self.received: list[Received] = []
        self.fail_next: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/{path}", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> Response:
        path = request.path_params["path"]
        body = await request.body()
        with self._lock:
            self.received.append(Received(path, body, request.headers.get("stripe-signature", "")))
            queue = self.fail_next.get(path) or []
            status = queue.pop(0) if queue else 200
        return Response("ok" if status < 300 else "nope", status_code=status)

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
            self.fail_next.clear()


@dataclass
class SandboxServer:
    url: str
    client: stripe.StripeClient
    sandbox: Sandbox
    receiver: Receiver
    platform_secret: str = ""
    connect_secret: str = ""
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def control(self, path: str, body: dict[str, Any] | None = None, *, get: bool = False) -> Any:
        url = f"{self.url}/_control{path}"
        response = self.http.get(url) if get else self.http.post(url, json=body or {})
        return response

    def flush(self) -> dict[str, int]:
        result: dict[str, int] = self.control("/webhooks/flush").json()
        return result

    def advance(self, seconds: int) -> None:
        assert self.control("/clock/advance", {"seconds": seconds}).status_code == 200

    def events(self, path: str) -> list[stripe.Event]:
        """Every webhook received on `path`, verified with the SDK."""
        secret = self.platform_secret if path == "platform" else self.connect_secret
        return [
            stripe.Webhook.construct_event(r.body.decode(), r.signature, secret)
            for r in self.receiver.received
            if r.path == path
        ]

    # flows

    def express_account(self, *, onboard: bool = True, **extra: Any) -> stripe.Account:
        params: dict[str, Any] = {
            "type": "express",
            "country": "US",
            "email": "seller@example.com",
            "capabilities": {
                "card_payments": {"requested": True},
                "transfers": {"requested": True},
            },
            **extra,
        }
        account = self.client.v1.accounts.create(params=cast("AccountCreateParams", params))
        if onboard:
            response = self.control(f"/accounts/{account.id}/onboard", {"outcome": "complete"})
            assert response.status_code == 200, response.text
            account = self.client.v1.accounts.retrieve(account.id)
        return account

    def session(
        self,
        destination: str | None = None,
        *,
        amount: int = 1000,
        fee: int | None = 123,
        currency: str = "usd",
        **extra: Any,
    ) -> stripe.checkout.Session:
        params: dict[str, Any] = {
            "mode": "payment",
            "success_url": "http://shop.test/success?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://shop.test/cancel",
            "line_items": [
                {
                    "price_data": {
                        "currency": currency,
                        "unit_amount": amount,
                        "product_data": {"name": "Handmade mug"},
                    },
                    "quantity": 1,
                }
            ],
            **extra,
        }
        if destination is not None:
            pid: dict[str, Any] = {"transfer_data": {"destination": destination}}
            if fee is not None:
                pid["application_fee_amount"] = fee
            params["payment_intent_data"] = {**pid, **params.get("payment_intent_data", {})}
        return self.client.v1.checkout.sessions.create(params=cast("SessionCreateParams", params))

    def pay(self, session_id: str, **body: Any) -> httpx.Response:
        response: httpx.Response = self.control(f"/checkout/sessions/{session_id}/pay", body)
        return response
