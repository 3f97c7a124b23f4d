"""The control API (`/_control`, JSON) that lets people, scripts and tests drive what a
customer, a seller or the passing of time would do."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from souq.sandbox.delivery import Deliverer
from souq.sandbox.engine import Engine
from souq.sandbox.errors import StripeError, invalid

J = dict[str, Any]
FAULT_KEYS = {
    "api_error_rate": float,
    "api_latency_ms": float,
    "timeout_rate": float,
    "timeout_seconds": float,
    "webhook_duplicate_rate": float,
    "webhook_shuffle": bool,
    "webhook_failure_rate": float,
}


class Control:
    def __init__(self, engine: Engine, deliverer: Deliverer, api_key: str | None) -> None:
        self.engine = engine
        self.deliverer = deliverer
        self.api_key = api_key

    def routes(self) -> list[Route]:
        return [
            Route("/accounts/{id}/onboard", self.onboard, methods=["POST"]),
            Route("/accounts/{id}/deauthorize", self.deauthorize, methods=["POST"]),
            Route("/checkout/sessions/{id}/pay", self.pay, methods=["POST"]),
            Route("/clock", self.clock, methods=["GET"]),
            Route("/clock/advance", self.advance, methods=["POST"]),
            Route("/clock/reset", self.reset_clock, methods=["POST"]),
            Route("/webhooks/flush", self.flush, methods=["POST"]),
            Route("/webhooks/deliveries", self.deliveries, methods=["GET"]),
            Route("/faults", self.faults, methods=["GET", "POST"]),
            Route("/reset", self.reset, methods=["POST"]),
        ]

    def _allowed(self, request: Request) -> bool:
        host = request.client.host if request.client else ""
        try:
            if ipaddress.ip_address(host).is_loopback:
                return True
        except ValueError:
            if host in ("localhost", "testclient"):
                return True
        header = request.headers.get("authorization", "")
        return self.api_key is not None and header == f"Bearer {self.api_key}"

    async def _guard(self, request: Request) -> J:
        if not self._allowed(request):
            raise StripeError(
                403,
                "The sandbox control API answers only loopback clients or the sandbox key.",
                type_="invalid_request_error",
            )
        raw = await request.body()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise invalid("The body must be JSON.") from exc
        if not isinstance(body, dict):
            raise invalid("The body must be a JSON object.")
        return body

    async def _run(self, request: Request, action: Any) -> Response:
        try:
            body = await self._guard(request)
            result = action(body)
            if hasattr(result, "__await__"):
                result = await result
            if isinstance(result, Response):
                return result
            return JSONResponse(result)
        except StripeError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)

    async def onboard(self, request: Request) -> Response:
        account_id = request.path_params["id"]

        def act(body: J) -> J:
            return self.engine.render(
                self.engine.onboard(account_id, str(body.get("outcome", "complete")))
            )

        return await self._run(request, act)

    async def deauthorize(self, request: Request) -> Response:
        account_id = request.path_params["id"]
        return await self._run(
            request, lambda body: self.engine.render(self.engine.deauthorize(account_id))
        )

    async def pay(self, request: Request) -> Response:
        session_id = request.path_params["id"]

        def act(body: J) -> Response:
            session, error = self.engine.pay_session(
                session_id,
                card=body.get("card"),
                method=body.get("method"),
                outcome=body.get("outcome"),
                authentication=body.get("authentication"),
                email=body.get("email"),
            )
            pi_id = session.get("_payment_intent")
            pi = self.engine.store.get(pi_id) if pi_id else None
            answer = {
                "session": self.engine.render(session),
                "payment_intent": None if pi is None else self.engine.render(pi),
                "error": None if error is None else error.body()["error"],
            }
            return JSONResponse(answer, status_code=200 if error is None else error.status)

        return await self._run(request, act)

    async def clock(self, request: Request) -> Response:
        return await self._run(request, lambda body: {"now": self.engine.now()})

    async def advance(self, request: Request) -> Response:
        def act(body: J) -> J:
            seconds = body.get("seconds")
            if not isinstance(seconds, int | float) or seconds < 0:
                raise invalid("seconds must be a non-negative number", param="seconds")
            self.engine.advance_clock(float(seconds))
            processed = self.engine.tick()
            return {"now": self.engine.now(), "processed": processed}

        return await self._run(request, act)

    async def reset_clock(self, request: Request) -> Response:
        """Back to the wall clock. Clients compute times such as a session's expires_at from
        their own clocks, as they would against Stripe, so a test that travels forward comes
        back before the next one starts."""

        def act(_body: J) -> J:
            self.engine.advance_clock(-self.engine.clock_offset())
            return {"now": self.engine.now()}

        return await self._run(request, act)

    async def flush(self, request: Request) -> Response:
        async def act(body: J) -> J:
            self.engine.tick()
            totals = {"attempted": 0, "succeeded": 0, "failed": 0}
            for _ in range(20):
                counts = await self.deliverer.deliver_due()
                for k, v in counts.items():
                    totals[k] += v
                if counts["attempted"] == 0:
                    break
            pending = self.engine.store.execute(
                "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'"
            ).fetchone()[0]
            return {**totals, "pending": int(pending)}

        return await self._run(request, act)

    async def deliveries(self, request: Request) -> Response:
        limit = int(request.query_params.get("limit", "200"))
        return await self._run(request, lambda body: {"data": self.deliverer.deliveries(limit)})

    async def faults(self, request: Request) -> Response:
        def act(body: J) -> J:
            if request.method == "POST":
                current = dict(self.engine.faults())
                for key, value in body.items():
                    kind = FAULT_KEYS.get(key)
                    if kind is None:
                        raise invalid(f"Unknown fault: {key}", param=key)
                    if kind is bool:
                        current[key] = bool(value)
                    elif not isinstance(value, int | float) or value < 0:
                        raise invalid(f"{key} must be a non-negative number", param=key)
                    else:
                        current[key] = float(value)
                self.engine.store.set_meta("faults", current)
            return dict(self.engine.faults())

        return await self._run(request, act)

    async def reset(self, request: Request) -> Response:
        def act(body: J) -> J:
            self.engine.store.reset()
            return {"reset": True}

        return await self._run(request, act)
