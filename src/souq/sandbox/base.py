"""What every part of the sandbox engine shares: ids, the example objects that give every
object Stripe's full shape, the caller's context, the clock, storage, rendering and events.

Keys starting with `_` are the sandbox's private state and never leave it.
"""

from __future__ import annotations

import copy
import gzip
import json
import random
import secrets
import string
import time
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from souq.sandbox.errors import invalid, missing
from souq.sandbox.rules import check_metadata, merge_metadata
from souq.sandbox.store import Store
from souq.sandbox.wire import as_bool, as_str, opt_bool, opt_str, req_str

J = dict[str, Any]
PLATFORM = "platform"
API_VERSION = "2023-08-16"
APPLICATION_ID = "ca_sandboxsouq0000000000000000"


@cache
def _fixtures() -> J:
    raw = resources.files("souq.sandbox").joinpath("openapi/fixtures3.json.gz").read_bytes()
    data: J = json.loads(gzip.decompress(raw))["resources"]
    return data


def template(name: str) -> J:
    return copy.deepcopy(_fixtures()[name])


_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def out(obj: J) -> J:
    """The public view of a stored object."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


@dataclass
class Ctx:
    """Who is calling: the platform or a connected account (Stripe-Account), and which request."""

    account: str | None = None
    request_id: str | None = None
    idempotency_key: str | None = None

    @property
    def owner(self) -> str:
        return self.account or PLATFORM


CONTROL = Ctx()


class EngineBase:
    """The clock, storage, rendering and events every area of the engine uses."""

    def __init__(
        self,
        store: Store,
        *,
        public_url: str,
        fee_bps: int,
        fee_fixed: int,
        async_capture: bool,
    ) -> None:
        self.store = store
        self.public_url = public_url.rstrip("/")
        self.fee_bps = fee_bps
        self.fee_fixed = fee_fixed
        self.async_capture = async_capture

    def now_f(self) -> float:
        return time.time() + float(self.store.get_meta("clock_offset", 0.0))

    def now(self) -> int:
        return int(self.now_f())

    def clock_offset(self) -> float:
        return float(self.store.get_meta("clock_offset", 0.0))

    def advance_clock(self, seconds: float) -> None:
        with self.store.transaction():
            offset = float(self.store.get_meta("clock_offset", 0.0))
            self.store.set_meta("clock_offset", offset + seconds)

    def faults(self) -> J:
        value: J = self.store.get_meta("faults", {})
        return value

    def _put(self, obj: J, owner: str) -> J:
        self.store.put(obj, owner=owner)
        return obj

    def _get(self, object_id: str, type_: str, kind: str, ctx: Ctx | None, param: str = "id") -> J:
        obj = self.store.get(object_id)
        if obj is None or obj.get("object") != type_:
            raise missing(kind, object_id, param=param)
        if ctx is not None and self.store.owner_of(object_id) != ctx.owner:
            raise missing(kind, object_id, param=param)
        return obj

    def load_any(self, object_id: str) -> J | None:
        obj = self.store.get(object_id)
        return None if obj is None else self.render(obj)

    def render(self, obj: J) -> J:
        view = out(obj)
        if view.get("object") == "balance_transaction":
            view["status"] = "available" if view["available_on"] <= self.now() else "pending"
        elif view.get("object") == "transfer":
            view["reversals"] = self._sublist(
                "transfer_reversal", "transfer", view["id"], f"/v1/transfers/{view['id']}/reversals"
            )
        elif view.get("object") == "application_fee":
            view["refunds"] = self._sublist(
                "fee_refund", "fee", view["id"], f"/v1/application_fees/{view['id']}/refunds"
            )
        elif view.get("object") == "charge":
            view["refunds"] = self._sublist(
                "refund", "charge", view["id"], f"/v1/charges/{view['id']}/refunds"
            )
            if view.get("transfer") is None:
                view.pop("transfer", None)  # optional, not nullable, in the 2023-08-16 schema
        elif view.get("object") == "account":
            # API 2023-08-16 renders only these two controller fields; the rest stays private.
            controller = view.get("controller") or {}
            view["controller"] = {
                k: controller[k] for k in ("is_controller", "type") if k in controller
            }
        return view

    def _sublist(self, type_: str, field: str, parent: str, url: str) -> J:
        items = self.store.query(
            type_, where=f"json_extract(data, '$.{field}') = ?", args=(parent,)
        )
        return {
            "object": "list",
            "data": [out(i) for i in items[:10]],
            "has_more": len(items) > 10,
            "url": url,
        }

    def emit(
        self,
        type_: str,
        obj: J,
        ctx: Ctx,
        *,
        account: str | None = None,
        previous: J | None = None,
        snapshot: J | None = None,
    ) -> J:
        """Record an event and queue it for every matching endpoint (connected-account events
        only to connect endpoints, platform events only to the others)."""
        data: J = {"object": snapshot if snapshot is not None else self.render(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event = template("event")
        event.update(
            id=new_id("evt_"),
            api_version=API_VERSION,
            created=self.now(),
            data=data,
            type=type_,
            livemode=False,
            request={"id": ctx.request_id, "idempotency_key": ctx.idempotency_key},
        )
        if account is not None:
            event["account"] = account
        endpoints = [
            e
            for e in self.store.query("webhook_endpoint")
            if e["status"] == "enabled"
            and bool(e["_connect"]) == (account is not None)
            and ("*" in e["enabled_events"] or type_ in e["enabled_events"])
        ]
        event["pending_webhooks"] = len(endpoints)
        self._put(event, account or PLATFORM)
        faults = self.faults()
        for endpoint in endpoints:
            self.store.add_delivery(event["id"], endpoint["id"], self.now_f())
            if random.random() < float(faults.get("webhook_duplicate_rate", 0)):
                self.store.add_delivery(event["id"], endpoint["id"], self.now_f())
        return event

    @staticmethod
    def diff(before: J, after: J) -> J:
        return {k: before.get(k) for k in after if before.get(k) != after.get(k)}

    def _update_with_event(self, obj: J, changes: J, type_: str, ctx: Ctx, **kw: Any) -> J:
        before = self.render(obj)
        obj.update(changes)
        self._put(obj, self.store.owner_of(obj["id"]) or PLATFORM)
        after = self.render(obj)
        prev = self.diff(before, after)
        if prev:
            self.emit(type_, obj, ctx, previous=prev, **kw)
        return obj

    def create_webhook_endpoint(self, params: J, ctx: Ctx) -> J:
        url = req_str(params, "url")
        events = params.get("enabled_events")
        if not isinstance(events, list) or not events:
            raise invalid(
                "Missing required param: enabled_events.",
                param="enabled_events",
                code="parameter_missing",
            )
        connect = opt_bool(params, "connect") or False
        with self.store.transaction():
            return self._new_endpoint(
                url,
                connect,
                [as_str(e, "enabled_events") for e in events],
                description=opt_str(params, "description"),
                metadata=check_metadata(params.get("metadata")),
                api_version=opt_str(params, "api_version"),
            )

    def _new_endpoint(
        self,
        url: str,
        connect: bool,
        events: list[str],
        *,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        api_version: str | None = None,
    ) -> J:
        endpoint = template("webhook_endpoint")
        endpoint.update(
            id=new_id("we_"),
            created=self.now(),
            url=url,
            enabled_events=events,
            description=description,
            metadata=metadata or {},
            api_version=api_version,
            application=None,
            status="enabled",
            livemode=False,
            _connect=connect,
            _secret="whsec_" + secrets.token_hex(24),
        )
        self._put(endpoint, PLATFORM)
        return endpoint

    def ensure_webhook_endpoint(self, url: str, *, connect: bool) -> str:
        with self.store.transaction():
            for endpoint in self.store.query("webhook_endpoint"):
                if endpoint["url"] == url and bool(endpoint["_connect"]) == connect:
                    return str(endpoint["_secret"])
            return str(self._new_endpoint(url, connect, ["*"])["_secret"])

    def endpoint_view(self, endpoint: J, *, with_secret: bool) -> J:
        view = out(endpoint)
        if with_secret:
            view["secret"] = endpoint["_secret"]
        return view

    def get_webhook_endpoint(self, endpoint_id: str) -> J:
        return self._get(endpoint_id, "webhook_endpoint", "webhook endpoint", None)

    def update_webhook_endpoint(self, endpoint_id: str, params: J) -> J:
        with self.store.transaction():
            endpoint = self.get_webhook_endpoint(endpoint_id)
            if "url" in params:
                endpoint["url"] = req_str(params, "url")
            if "enabled_events" in params and isinstance(params["enabled_events"], list):
                endpoint["enabled_events"] = params["enabled_events"]
            if "disabled" in params:
                endpoint["status"] = (
                    "disabled" if as_bool(params["disabled"], "disabled") else ("enabled")
                )
            if "description" in params:
                endpoint["description"] = opt_str(params, "description")
            endpoint["metadata"] = merge_metadata(endpoint["metadata"], params.get("metadata"))
            return self._put(endpoint, PLATFORM)

    def delete_webhook_endpoint(self, endpoint_id: str) -> J:
        with self.store.transaction():
            self.get_webhook_endpoint(endpoint_id)
            self.store.delete(endpoint_id)
            self.store.execute(
                "UPDATE deliveries SET status = 'canceled' WHERE endpoint_id = ? "
                "AND status = 'pending'",
                (endpoint_id,),
            )
            return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}

    def _acct(self, obj: J) -> str | None:
        owner = self.store.owner_of(obj["id"])
        return None if owner in (None, PLATFORM) else owner
