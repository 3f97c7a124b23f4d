"""The control API (`/_control`, JSON) that lets people, scripts and tests drive what a
customer, a seller or the passing of time would do.

It answers loopback clients only (and, when the sandbox has an `api_key`, anyone presenting it
as a Bearer token). Loopback is judged from the TCP peer; a request that carries forwarding
headers came through a proxy on this host on someone else's behalf, so it is not local.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from souq.sandbox.delivery import Deliverer
from souq.sandbox.engine import Engine
from souq.sandbox.errors import StripeError, invalid
from souq.sandbox.objects import J

Action = Callable[[Request, J], J | Response | Awaitable[J]]

FAULT_KEYS = {
    "api_error_rate": float,
    "api_latency_ms": float,
    "timeout_rate": float,
    "timeout_seconds": float,
    "webhook_duplicate_rate": float,
    "webhook_shuffle": bool,
    "webhook_failure_rate": float,
}
_FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
_LOCAL_NAMES = ("localhost", "testclient")  # Starlette's TestClient peer
MAX_ADVANCE = 10 * 365 * 86_400
DELIVERIES_LIMIT = (1, 1000)
_PAY_FIELDS = ("card", "method", "outcome", "authentication", "email")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in _LOCAL_NAMES


def _number(body: J, key: str, *, maximum: float = math.inf) -> float:
    """A finite, non-negative JSON number (not a boolean) no larger than `maximum`."""
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"{key} must be a non-negative number", param=key)
    if not math.isfinite(value) or not 0 <= value <= maximum:
        raise invalid(f"{key} must be a non-negative number up to {maximum:g}", param=key)
    return float(value)


def _strings(body: J, keys: tuple[str, ...]) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for key in keys:
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise invalid(f"{key} must be a string", param=key)
        values[key] = value
    return values


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "200")
    low, high = DELIVERIES_LIMIT
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise invalid(
            f"limit must be an integer from {low} to {high}",
            param="limit",
            code="parameter_invalid_integer",
        )
    return int(raw)


class Control:
    def __init__(self, engine: Engine, deliverer: Deliverer, api_key: str | None) -> None:
        self.engine = engine
        self.core = engine.core
        self.deliverer = deliverer
        self.api_key = api_key

    def routes(self) -> list[Route]:
        actions: list[tuple[str, Action, list[str]]] = [
            ("/accounts/{id}/onboard", self.onboard, ["POST"]),
            ("/accounts/{id}/deauthorize", self.deauthorize, ["POST"]),
            ("/accounts/{id}/bank_account", self.bank_account, ["POST"]),
            ("/checkout/sessions/{id}/pay", self.pay, ["POST"]),
            ("/clock", self.clock, ["GET"]),
            ("/clock/advance", self.advance, ["POST"]),
            ("/clock/reset", self.reset_clock, ["POST"]),
            ("/webhooks/flush", self.flush, ["POST"]),
            ("/webhooks/deliveries", self.deliveries, ["GET"]),
            ("/faults", self.faults, ["GET", "POST"]),
            ("/reset", self.reset, ["POST"]),
        ]
        return [Route(path, self._endpoint(action), methods=m) for path, action, m in actions]

    def _endpoint(self, action: Action) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                body = await self._guard(request)
                result = action(request, body)
                if not isinstance(result, dict | Response):
                    result = await result
                return result if isinstance(result, Response) else JSONResponse(result)
            except StripeError as exc:
                return JSONResponse(exc.body(), status_code=exc.status)

        return endpoint

    def _allowed(self, request: Request) -> bool:
        host = request.client.host if request.client else ""
        proxied = any(name in request.headers for name in _FORWARDING_HEADERS)
        if _is_loopback(host) and not proxied:
            return True
        header = request.headers.get("authorization", "")
        expected = f"Bearer {self.api_key}"
        return self.api_key is not None and hmac.compare_digest(header.encode(), expected.encode())

    async def _guard(self, request: Request) -> J:
        if not self._allowed(request):
            raise StripeError(
                403, "The sandbox control API answers only loopback clients or the sandbox key."
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

    def onboard(self, request: Request, body: J) -> J:
        outcome = _strings(body, ("outcome",))["outcome"] or "complete"
        account = self.engine.accounts.onboard(request.path_params["id"], outcome)
        return self.core.render(account)

    def deauthorize(self, request: Request, body: J) -> J:
        return self.core.render(self.engine.accounts.deauthorize(request.path_params["id"]))

    def bank_account(self, request: Request, body: J) -> J:
        """The account's bank account, as its holder would type it into the hosted form; a
        Stripe test number (000111111116, …) makes its payouts fail."""
        bank = self.engine.accounts.set_bank_account(
            request.path_params["id"], body.get("account_number")
        )
        return {"id": bank["id"], "last4": bank["last4"], "status": bank["status"]}

    def pay(self, request: Request, body: J) -> Response:
        fields = _strings(body, _PAY_FIELDS)
        session, error = self.engine.checkout_sessions.pay(request.path_params["id"], **fields)
        pi_id = session.get("_payment_intent")
        pi = self.core.store.get(pi_id) if pi_id else None
        answer = {
            "session": self.core.render(session),
            "payment_intent": None if pi is None else self.core.render(pi),
            "error": None if error is None else error.body()["error"],
        }
        return JSONResponse(answer, status_code=200 if error is None else error.status)

    def clock(self, request: Request, body: J) -> J:
        return {"now": self.core.now()}

    def advance(self, request: Request, body: J) -> J:
        self.core.advance_clock(_number(body, "seconds", maximum=MAX_ADVANCE))
        processed = self.engine.tick()
        return {"now": self.core.now(), "processed": processed}

    def reset_clock(self, request: Request, body: J) -> J:
        """Back to the wall clock. Clients compute times such as a session's expires_at from
        their own clocks, as they would against Stripe, so a test that travels forward comes
        back before the next one starts."""
        self.core.advance_clock(-self.core.clock_offset())
        return {"now": self.core.now()}

    async def flush(self, request: Request, body: J) -> J:
        self.engine.tick()
        totals = {"attempted": 0, "succeeded": 0, "failed": 0}
        for _ in range(20):
            counts = await self.deliverer.deliver_due()
            for k, v in counts.items():
                totals[k] += v
            if counts["attempted"] == 0:
                break
        pending = self.core.store.execute(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'"
        ).fetchone()[0]
        return {**totals, "pending": int(pending)}

    def deliveries(self, request: Request, body: J) -> J:
        return {"data": self.deliverer.deliveries(_limit(request))}

    def faults(self, request: Request, body: J) -> J:
        if request.method == "POST":
            current = dict(self.core.faults())
            for key, value in body.items():
                kind = FAULT_KEYS.get(key)
                if kind is None:
                    raise invalid(f"Unknown fault: {key}", param=key)
                if kind is bool and not isinstance(value, bool):
                    raise invalid(f"{key} must be true or false", param=key)
                current[key] = value if kind is bool else _number(body, key)
            self.core.store.set_meta("faults", current)
        return dict(self.core.faults())

    def reset(self, request: Request, body: J) -> J:
        self.core.store.reset()
        return {"reset": True}
