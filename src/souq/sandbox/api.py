"""The `/v1` API the way Stripe speaks it: auth, Stripe-Account, idempotency, spec validation,
errors, lists and expansion, in front of the engine."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from souq.sandbox.base import API_VERSION, Ctx, new_id
from souq.sandbox.engine import Engine
from souq.sandbox.errors import StripeError, invalid, missing
from souq.sandbox.wire import decode_form, expand, paginate

J = dict[str, Any]
Handler = Callable[[Engine, Ctx, J, tuple[str, ...]], J]
IDEMPOTENCY_TTL = 24 * 3600
logger = logging.getLogger("souq.sandbox")


def _load_spec() -> ModuleType | None:
    # spec.py is written alongside this module; until it exists requests go unvalidated.
    try:
        return importlib.import_module("souq.sandbox.spec")
    except ImportError:
        return None


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def _page(items: list[J], engine: Engine, params: J, url: str) -> J:
    return paginate([engine.render(i) for i in items], params, url)


def _filter_created(items: list[J], params: J) -> list[J]:
    created = params.get("created")
    if isinstance(created, dict):
        for op, check in (
            ("gt", int.__gt__),
            ("gte", int.__ge__),
            ("lt", int.__lt__),
            ("lte", int.__le__),
        ):
            if op in created:
                bound = int(created[op])
                items = [i for i in items if check(int(i["created"]), bound)]
    elif created is not None and created != "":
        items = [i for i in items if int(i["created"]) == int(created)]
    return items


def _routes() -> list[Route]:
    r: list[tuple[str, str, Handler]] = []

    def add(method: str, path: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            r.append((method, path, fn))
            return fn

        return deco

    # accounts
    @add("POST", r"/v1/accounts")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.create_account(p, c))

    @add("GET", r"/v1/accounts")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return _page(_filter_created(e.store.query("account"), p), e, p, "/v1/accounts")

    @add("GET", r"/v1/accounts/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.get_account(g[0]))

    @add("POST", r"/v1/accounts/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.update_account(g[0], p, c))

    @add("DELETE", r"/v1/accounts/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.delete_account(g[0])

    @add("POST", r"/v1/accounts/([^/]+)/login_links")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.create_login_link(g[0], c)

    @add("POST", r"/v1/account_links")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.create_account_link(p, c)

    # checkout sessions
    @add("POST", r"/v1/checkout/sessions")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.create_session(p, c))

    @add("GET", r"/v1/checkout/sessions")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        items = _filter_created(e.list_sessions(p, c), p)
        return _page(items, e, p, "/v1/checkout/sessions")

    @add("GET", r"/v1/checkout/sessions/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return _session_view(e, e.get_session(g[0], c), p)

    @add("POST", r"/v1/checkout/sessions/([^/]+)/expire")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.expire_session(g[0], c))

    @add("GET", r"/v1/checkout/sessions/([^/]+)/line_items")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        items = e.session_line_items(g[0], c)
        return paginate(items, p, f"/v1/checkout/sessions/{g[0]}/line_items")

    # payment intents, charges
    @add("POST", r"/v1/payment_intents")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.create_payment_intent(p, c))

    @add("GET", r"/v1/payment_intents")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        items = _filter_created(e.store.query("payment_intent", owner=c.owner), p)
        return _page(items, e, p, "/v1/payment_intents")

    @add("GET", r"/v1/payment_intents/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.get_payment_intent(g[0], c))

    @add("POST", r"/v1/payment_intents/([^/]+)/confirm")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.confirm_payment_intent(g[0], p, c))

    @add("POST", r"/v1/payment_intents/([^/]+)/cancel")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.cancel_payment_intent(g[0], p, c))

    @add("GET", r"/v1/charges")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        items = e.store.query("charge", owner=c.owner)
        if isinstance(p.get("payment_intent"), str):
            items = [i for i in items if i["payment_intent"] == p["payment_intent"]]
        if isinstance(p.get("transfer_group"), str):
            items = [i for i in items if i["transfer_group"] == p["transfer_group"]]
        return _page(_filter_created(items, p), e, p, "/v1/charges")

    @add("GET", r"/v1/charges/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.get_charge(g[0], c))

    # transfers
    @add("POST", r"/v1/transfers")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.create_transfer(p, c))

    @add("GET", r"/v1/transfers")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        items = e.store.query("transfer", owner=c.owner)
        for key in ("destination", "transfer_group"):
            if isinstance(p.get(key), str):
                items = [i for i in items if i[key] == p[key]]
        return _page(_filter_created(items, p), e, p, "/v1/transfers")

    @add("GET", r"/v1/transfers/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.get_transfer(g[0], c))

    @add("POST", r"/v1/transfers/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.update_transfer(g[0], p, c))

    @add("POST", r"/v1/transfers/([^/]+)/reversals")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.reverse_transfer(g[0], p, c))

    @add("GET", r"/v1/transfers/([^/]+)/reversals")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return _page(e.list_reversals(g[0], c), e, p, f"/v1/transfers/{g[0]}/reversals")

    @add("GET", r"/v1/transfers/([^/]+)/reversals/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        e.get_transfer(g[0], c)
        reversal = e.store.get(g[1])
        if reversal is None or reversal.get("transfer") != g[0]:
            raise missing("transfer_reversal", g[1])
        return e.render(reversal)

    # application fees
    @add("GET", r"/v1/application_fees")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        items = e.store.query("application_fee")
        if isinstance(p.get("charge"), str):
            items = [i for i in items if p["charge"] in (i["charge"], i["originating_transaction"])]
        return _page(_filter_created(items, p), e, p, "/v1/application_fees")

    @add("GET", r"/v1/application_fees/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.get_application_fee(g[0]))

    @add("POST", r"/v1/application_fees/([^/]+)/refunds")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.refund_application_fee(g[0], p, c))

    @add("GET", r"/v1/application_fees/([^/]+)/refunds")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return _page(e.list_fee_refunds(g[0]), e, p, f"/v1/application_fees/{g[0]}/refunds")

    @add("GET", r"/v1/application_fees/([^/]+)/refunds/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        e.get_application_fee(g[0])
        refund = e.store.get(g[1])
        if refund is None or refund.get("fee") != g[0]:
            raise missing("fee_refund", g[1])
        return e.render(refund)

    # refunds
    @add("POST", r"/v1/refunds")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.create_refund(p, c))

    @add("GET", r"/v1/refunds")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        items = e.store.query("refund", owner=c.owner)
        for key in ("charge", "payment_intent"):
            if isinstance(p.get(key), str):
                items = [i for i in items if i[key] == p[key]]
        return _page(_filter_created(items, p), e, p, "/v1/refunds")

    @add("GET", r"/v1/refunds/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.get_refund(g[0], c))

    # disputes
    @add("GET", r"/v1/disputes")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return _page(e.store.query("dispute", owner=c.owner), e, p, "/v1/disputes")

    @add("GET", r"/v1/disputes/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.get_dispute(g[0], c))

    @add("POST", r"/v1/disputes/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.update_dispute(g[0], p, c))

    @add("POST", r"/v1/disputes/([^/]+)/close")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.close_dispute(g[0], c))

    # balance
    @add("GET", r"/v1/balance")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.balance(c)

    @add("GET", r"/v1/balance_transactions")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        items = e.store.query("balance_transaction", owner=c.owner)
        for key in ("source", "type", "currency"):
            if isinstance(p.get(key), str):
                items = [i for i in items if i[key] == p[key]]
        return _page(_filter_created(items, p), e, p, "/v1/balance_transactions")

    @add("GET", r"/v1/balance_transactions/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.get_balance_transaction(g[0], c))

    # payouts
    @add("GET", r"/v1/payouts")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        items = _filter_created(e.list_payouts(p, c), p)
        arrival = p.get("arrival_date")
        if arrival is not None and arrival != "":
            renamed = [dict(i, created=i["arrival_date"]) for i in items]
            kept = {i["id"] for i in _filter_created(renamed, {"created": arrival})}
            items = [i for i in items if i["id"] in kept]
        return _page(items, e, p, "/v1/payouts")

    @add("GET", r"/v1/payouts/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.get_payout(g[0], c))

    # events
    @add("GET", r"/v1/events")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return _page(_filter_created(e.list_events(p, c), p), e, p, "/v1/events")

    @add("GET", r"/v1/events/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.render(e.get_event(g[0], c))

    # webhook endpoints
    @add("POST", r"/v1/webhook_endpoints")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.endpoint_view(e.create_webhook_endpoint(p, c), with_secret=True)

    @add("GET", r"/v1/webhook_endpoints")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        items = [e.endpoint_view(i, with_secret=False) for i in e.store.query("webhook_endpoint")]
        return paginate(items, p, "/v1/webhook_endpoints")

    @add("GET", r"/v1/webhook_endpoints/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.endpoint_view(e.get_webhook_endpoint(g[0]), with_secret=False)

    @add("POST", r"/v1/webhook_endpoints/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.endpoint_view(e.update_webhook_endpoint(g[0], p), with_secret=False)

    @add("DELETE", r"/v1/webhook_endpoints/([^/]+)")
    def _(e: Engine, c: Ctx, p: J, g: tuple[str, ...]) -> J:
        return e.delete_webhook_endpoint(g[0])

    return [Route(m, re.compile(f"^{path}$"), h) for m, path, h in r]


def _session_view(engine: Engine, session: J, params: J) -> J:
    view = engine.render(session)
    if "line_items" in (params.get("expand") or []):
        view["line_items"] = paginate(
            session["_line_items"], {}, f"/v1/checkout/sessions/{session['id']}/line_items"
        )
    return view


ROUTES = _routes()


def stripe_response(status: int, body: J, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, indent=2),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


class Api:
    def __init__(self, engine: Engine, api_key: str | None) -> None:
        self.engine = engine
        self.api_key = api_key
        self.spec = _load_spec()

    def _auth(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        if not header:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        scheme, _, key = header.partition(" ")
        valid = scheme.lower() == "bearer" and key.startswith("sk_test_") and len(key) > 8
        if valid and self.api_key is not None:
            valid = key == self.api_key
        if not valid:
            shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if key else header
            raise StripeError(401, f"Invalid API Key provided: {shown}")

    def _context(self, request: Request, request_id: str) -> Ctx:
        account = request.headers.get("stripe-account") or None
        if account is not None:
            obj = self.engine.store.get(account)
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

    def _validate(self, method: str, path: str, params: J) -> J:
        if self.spec is None:
            return params
        if self.spec.find_operation(method, path) is None:
            return params
        try:
            coerced: J = self.spec.validate_request(method, path, params)
        except self.spec.SpecError as exc:
            raise StripeError(
                400,
                str(getattr(exc, "message", exc)),
                code=getattr(exc, "code", None),
                param=getattr(exc, "param", None),
            ) from exc
        return coerced

    async def handle(self, request: Request) -> Response:
        request_id = new_id("req_", 14)
        headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        try:
            return await self._handle(request, request_id, headers)
        except StripeError as exc:
            logger.info(
                "%s %s -> %d %s",
                request.method,
                request.url.path,
                exc.status,
                json.dumps(exc.body()["error"]),
            )
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
        self._auth(request)
        route, groups = self._match(method, path)
        if method == "POST":
            body = (await request.body()).decode()
            params = decode_form(body)
            if request.url.query:
                params.update(decode_form(request.url.query))
        else:
            params = decode_form(request.url.query)
        ctx = self._context(request, request_id)
        params = self._validate(method, path, params)
        faults = self.engine.faults()
        if random.random() < float(faults.get("api_error_rate", 0)):
            raise StripeError(
                500,
                "An unknown error occurred (simulated by the api_error_rate fault).",
                type_="api_error",
            )
        key = ctx.idempotency_key if method == "POST" else None
        if key is not None:
            replay = self._claim(ctx, key, method, path, params)
            if replay is not None:
                status, body_text = replay
                await self._maybe_time_out(faults)
                return Response(
                    body_text,
                    status_code=status,
                    media_type="application/json",
                    headers={**headers, "Idempotent-Replayed": "true", "Idempotency-Key": key},
                )
            headers["Idempotency-Key"] = key
        try:
            latency = float(faults.get("api_latency_ms", 0))
            if latency > 0:
                await asyncio.sleep(latency / 1000)
            try:
                result = route.handler(self.engine, ctx, params, groups)
                expansions = params.get("expand") or []
                if isinstance(expansions, list) and expansions:
                    result = expand(result, [str(x) for x in expansions], self.engine.load_any)
                status, payload = 200, result
            except StripeError as exc:
                status, payload = exc.status, exc.body()
        except BaseException:
            if key is not None:
                self._release(ctx, key)
            raise
        text = json.dumps(payload, indent=2)
        if status >= 400:
            # What Stripe would show in its request log: why a call was refused.
            logger.info("%s %s -> %d %s", method, path, status, json.dumps(payload["error"]))
        if key is not None:
            self._finish(ctx, key, status, text)
        # The request ran and its result is stored, but the answer may never arrive in time:
        # a retry with the same Idempotency-Key replays it (and may time out again).
        await self._maybe_time_out(faults)
        return Response(text, status_code=status, media_type="application/json", headers=headers)

    @staticmethod
    async def _maybe_time_out(faults: J) -> None:
        if random.random() < float(faults.get("timeout_rate", 0)):
            await asyncio.sleep(float(faults.get("timeout_seconds", 30)))
            raise StripeError(
                500,
                "The request timed out (simulated by the timeout_rate fault).",
                type_="api_error",
            )

    def _match(self, method: str, path: str) -> tuple[Route, tuple[str, ...]]:
        for route in ROUTES:
            if route.method == method:
                m = route.pattern.match(path)
                if m is not None:
                    return route, m.groups()
        raise StripeError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/.",
        )

    def _claim(
        self, ctx: Ctx, key: str, method: str, path: str, params: J
    ) -> tuple[int, str] | None:
        if len(key) > 255:
            raise invalid(
                "Idempotency keys can be at most 255 characters long.", param="Idempotency-Key"
            )
        store = self.engine.store
        fingerprint = self.engine.fingerprint(method, path, params)
        # Keys are scoped per account (UNVERIFIED; the stricter reading of BEHAVIOUR.md §8).
        with store.transaction():
            row = store.execute(
                "SELECT * FROM idempotency WHERE scope = ? AND key = ?", (ctx.owner, key)
            ).fetchone()
            if row is not None and row["created"] < self.engine.now_f() - IDEMPOTENCY_TTL:
                store.execute(
                    "DELETE FROM idempotency WHERE scope = ? AND key = ?", (ctx.owner, key)
                )
                row = None
            if row is None:
                store.execute(
                    "INSERT INTO idempotency (scope, key, method, path, params, state, created) "
                    "VALUES (?, ?, ?, ?, ?, 'in_flight', ?)",
                    (ctx.owner, key, method, path, fingerprint, self.engine.now_f()),
                )
                return None
            if row["state"] == "in_flight":
                raise StripeError(
                    409,
                    "There is currently another in-progress request using this Stripe token "
                    "(probably means you are trying to create the same resource twice). Try "
                    "again in a few seconds.",
                    code="idempotency_key_in_use",
                    type_="invalid_request_error",
                )
            if row["method"] != method or row["path"] != path:
                raise StripeError(
                    400,
                    "Keys for idempotent requests can only be used for the same endpoint they "
                    f"were first used for ('{row['method']} {row['path']}'). Try using a key "
                    f"other than '{key}' if you meant to execute a different request.",
                    type_="idempotency_error",
                )
            if row["params"] != fingerprint:
                raise StripeError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request.",
                    type_="idempotency_error",
                )
            return int(row["status"]), str(row["body"])

    def _finish(self, ctx: Ctx, key: str, status: int, body: str) -> None:
        self.engine.store.execute(
            "UPDATE idempotency SET state = 'done', status = ?, body = ? "
            "WHERE scope = ? AND key = ?",
            (status, body, ctx.owner, key),
        )

    def _release(self, ctx: Ctx, key: str) -> None:
        self.engine.store.execute(
            "DELETE FROM idempotency WHERE scope = ? AND key = ?", (ctx.owner, key)
        )
