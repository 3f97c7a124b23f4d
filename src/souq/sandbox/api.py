"""The `/v1` API the way Stripe speaks it: auth, Stripe-Account, idempotency, spec validation,
errors, lists and expansion, in front of the resource services.

Every route maps to one method of one service on the Engine, called as
`method(ctx, params, *path_ids)`. A method answers the object (rendered here) or, for a list,
the stored objects newest first (filtered by `created` and paginated here).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from starlette.requests import Request
from starlette.responses import Response

from souq.sandbox import spec
from souq.sandbox.engine import Engine
from souq.sandbox.errors import StripeError
from souq.sandbox.idempotency import Idempotency
from souq.sandbox.objects import API_VERSION, Ctx, J, new_id
from souq.sandbox.wire import decode_form, expand, in_range, paginate

Handler = Callable[..., J | list[J]]
logger = logging.getLogger("souq.sandbox")

_TABLE = """
POST    /v1/accounts                                        accounts.create
GET     /v1/accounts                                        accounts.all
GET     /v1/accounts/{account}                              accounts.retrieve
POST    /v1/accounts/{account}                              accounts.update
DELETE  /v1/accounts/{account}                              accounts.delete
POST    /v1/accounts/{account}/login_links                  login_links.create
POST    /v1/account_links                                   account_links.create
POST    /v1/checkout/sessions                               checkout_sessions.create
GET     /v1/checkout/sessions                               checkout_sessions.all
GET     /v1/checkout/sessions/{session}                     checkout_sessions.retrieve
POST    /v1/checkout/sessions/{session}/expire              checkout_sessions.expire
GET     /v1/checkout/sessions/{session}/line_items          checkout_sessions.line_items
POST    /v1/payment_intents                                 payment_intents.create
GET     /v1/payment_intents                                 payment_intents.all
GET     /v1/payment_intents/{intent}                        payment_intents.retrieve
POST    /v1/payment_intents/{intent}/confirm                payment_intents.confirm
POST    /v1/payment_intents/{intent}/cancel                 payment_intents.cancel
GET     /v1/charges                                         charges.all
GET     /v1/charges/{charge}                                charges.retrieve
POST    /v1/transfers                                       transfers.create
GET     /v1/transfers                                       transfers.all
GET     /v1/transfers/{transfer}                            transfers.retrieve
POST    /v1/transfers/{transfer}                            transfers.update
POST    /v1/transfers/{transfer}/reversals                  transfers.reverse
GET     /v1/transfers/{transfer}/reversals                  transfers.reversals
GET     /v1/transfers/{transfer}/reversals/{reversal}       transfers.reversal
GET     /v1/application_fees                                application_fees.all
GET     /v1/application_fees/{fee}                          application_fees.retrieve
POST    /v1/application_fees/{fee}/refunds                  application_fees.refund
GET     /v1/application_fees/{fee}/refunds                  application_fees.refunds
GET     /v1/application_fees/{fee}/refunds/{refund}         application_fees.refund_of
POST    /v1/refunds                                         refunds.create
GET     /v1/refunds                                         refunds.all
GET     /v1/refunds/{refund}                                refunds.retrieve
GET     /v1/disputes                                        disputes.all
GET     /v1/disputes/{dispute}                              disputes.retrieve
POST    /v1/disputes/{dispute}                              disputes.update
POST    /v1/disputes/{dispute}/close                        disputes.close
GET     /v1/balance                                         balance.retrieve
GET     /v1/balance_transactions                            balance.transactions
GET     /v1/balance_transactions/{transaction}              balance.transaction
GET     /v1/payouts                                         payouts.all
GET     /v1/payouts/{payout}                                payouts.retrieve
GET     /v1/events                                          events.all
GET     /v1/events/{event}                                  events.retrieve
POST    /v1/webhook_endpoints                               webhook_endpoints.create
GET     /v1/webhook_endpoints                               webhook_endpoints.all
GET     /v1/webhook_endpoints/{endpoint}                    webhook_endpoints.retrieve
POST    /v1/webhook_endpoints/{endpoint}                    webhook_endpoints.update
DELETE  /v1/webhook_endpoints/{endpoint}                    webhook_endpoints.delete
"""


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    target: str  # "service.method" on the Engine

    @classmethod
    def parse(cls, line: str) -> Route:
        method, path, target = line.split()
        return cls(method, re.compile("^" + re.sub(r"\{\w+\}", "([^/]+)", path) + "$"), target)

    def bind(self, engine: Engine) -> Handler:
        service, name = self.target.split(".")
        return cast("Handler", getattr(getattr(engine, service), name))


ROUTES = [Route.parse(line) for line in _TABLE.strip().splitlines()]


def stripe_response(status: int, body: J, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, indent=2),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _check_key(header: str, api_key: str | None) -> None:
    """Stripe's 401s: no key, a key of the wrong kind, or (with `api_key` set) any other key."""
    if not header:
        raise StripeError(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY').",
        )
    scheme, _, key = header.partition(" ")
    valid = scheme.lower() == "bearer" and key.startswith("sk_test_") and len(key) > 8
    if valid and api_key is not None:
        valid = hmac.compare_digest(key.encode(), api_key.encode())
    if not valid:
        shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if key else header
        raise StripeError(401, f"Invalid API Key provided: {shown}")


def _validate(method: str, path: str, params: J) -> J:
    if spec.find_operation(method, path) is None:
        return params
    try:
        coerced: J = spec.validate_request(method, path, params)
    except spec.SpecError as exc:
        raise StripeError(400, exc.message, code=exc.code, param=exc.param) from exc
    return coerced


class Api:
    def __init__(self, engine: Engine, api_key: str | None) -> None:
        self.engine = engine
        self.core = engine.core
        self.api_key = api_key
        self.idempotency = Idempotency(engine.core)
        self.routes = [(route, route.bind(engine)) for route in ROUTES]

    def _context(self, request: Request, request_id: str) -> Ctx:
        account = request.headers.get("stripe-account") or None
        if account is not None:
            obj = self.core.store.get(account)
            if obj is None or obj.get("object") != "account" or obj.get("_deauthorized"):
                raise StripeError(
                    403,
                    "The provided key does not have access to account "
                    f"'{account}' (or that account does not exist). Application access may "
                    "have been revoked.",
                    code="account_invalid",
                )
        return Ctx(
            account=account,
            request_id=request_id,
            idempotency_key=request.headers.get("idempotency-key"),
        )

    async def handle(self, request: Request) -> Response:
        request_id = new_id("req_", 14)
        headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        try:
            return await self._handle(request, request_id, headers)
        except StripeError as exc:
            reason = json.dumps(exc.body()["error"])
            logger.info("%s %s -> %d %s", request.method, request.url.path, exc.status, reason)
            return stripe_response(exc.status, exc.body(), headers)
        except Exception:
            # A sandbox bug still answers in Stripe's shape, so the SDK raises APIError.
            logger.exception("sandbox request %s failed", request_id)
            error = StripeError(
                500, "An unexpected error occurred in the sandbox.", type_="api_error"
            )
            return stripe_response(500, error.body(), headers)

    async def _handle(self, request: Request, request_id: str, headers: dict[str, str]) -> Response:
        method = request.method.upper()
        path = "/v1/" + request.path_params["path"].lstrip("/")
        _check_key(request.headers.get("authorization", ""), self.api_key)
        handler, ids = self._match(method, path)
        params = await _params(request)
        ctx = self._context(request, request_id)
        params = _validate(method, path, params)
        faults = self.core.faults()
        if random.random() < float(faults.get("api_error_rate", 0)):
            raise StripeError(
                500,
                "An unknown error occurred (simulated by the api_error_rate fault).",
                type_="api_error",
            )
        key = ctx.idempotency_key if method == "POST" else None
        if key is not None:
            replay = self.idempotency.claim(ctx.owner, key, method, path, params)
            if replay is not None:
                await _maybe_time_out(faults)
                replayed = {**headers, "Idempotent-Replayed": "true", "Idempotency-Key": key}
                return stripe_text(*replay, replayed)
            headers["Idempotency-Key"] = key
        try:
            status, payload = await self._run(handler, ctx, params, ids, path, faults)
        except BaseException:
            if key is not None:
                self.idempotency.release(ctx.owner, key)
            raise
        text = json.dumps(payload, indent=2)
        if status >= 400:
            # What Stripe would show in its request log: why a call was refused.
            logger.info("%s %s -> %d %s", method, path, status, json.dumps(payload["error"]))
        if key is not None:
            self.idempotency.finish(ctx.owner, key, status, text)
        # The request ran and its result is stored, but the answer may never arrive in time:
        # a retry with the same Idempotency-Key replays it (and may time out again).
        await _maybe_time_out(faults)
        return stripe_text(status, text, headers)

    async def _run(
        self, handler: Handler, ctx: Ctx, params: J, ids: tuple[str, ...], path: str, faults: J
    ) -> tuple[int, J]:
        """Call the resource method; a StripeError is an answer too (and is stored as one)."""
        latency = float(faults.get("api_latency_ms", 0))
        if latency > 0:
            await asyncio.sleep(latency / 1000)
        try:
            result = self._view(handler(ctx, params, *ids), params, path)
            expansions = params.get("expand") or []
            if isinstance(expansions, list) and expansions:
                result = expand(result, [str(x) for x in expansions], self.core.load_any)
            return 200, result
        except StripeError as exc:
            return exc.status, exc.body()

    def _view(self, result: J | list[J], params: J, path: str) -> J:
        if not isinstance(result, list):
            return self.core.render(result)
        created = params.get("created")
        if created is not None and created != "":
            result = [i for i in result if in_range(int(i["created"]), created)]
        return paginate([self.core.render(i) for i in result], params, path)

    def _match(self, method: str, path: str) -> tuple[Handler, tuple[str, ...]]:
        for route, handler in self.routes:
            if route.method == method:
                found = route.pattern.match(path)
                if found is not None:
                    return handler, found.groups()
        raise StripeError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/.",
        )


def stripe_text(status: int, text: str, headers: dict[str, str]) -> Response:
    return Response(text, status_code=status, media_type="application/json", headers=headers)


async def _params(request: Request) -> J:
    """Form-encoded parameters: the body of a POST (plus any in its query), else the query."""
    if request.method.upper() != "POST":
        return decode_form(request.url.query)
    params = decode_form((await request.body()).decode())
    if request.url.query:
        params.update(decode_form(request.url.query))
    return params


async def _maybe_time_out(faults: J) -> None:
    if random.random() < float(faults.get("timeout_rate", 0)):
        await asyncio.sleep(float(faults.get("timeout_seconds", 30)))
        raise StripeError(
            500, "The request timed out (simulated by the timeout_rate fault).", type_="api_error"
        )
