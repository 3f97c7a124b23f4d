"""The one store, clock, event emitter and ledger that every resource service shares.

Each Stripe resource lives in its own module as a small service that holds a `Core` and
explicit references to the other services it calls; nothing is inherited.
"""

from __future__ import annotations

import random
import time
from typing import Any

from souq.sandbox.errors import missing
from souq.sandbox.ledger import Ledger
from souq.sandbox.objects import API_VERSION, PLATFORM, Ctx, J, new_id, out, template
from souq.sandbox.store import Store

# Nested lists Stripe renders inside a parent object: (object, child type, child's parent field,
# list url). Stripe shows the first ten.
_SUBLISTS = {
    "transfer": ("reversals", "transfer_reversal", "transfer", "/v1/transfers/{}/reversals"),
    "application_fee": ("refunds", "fee_refund", "fee", "/v1/application_fees/{}/refunds"),
    "charge": ("refunds", "refund", "charge", "/v1/charges/{}/refunds"),
}


class Core:
    """Storage, the sandbox clock, rendering and events; `ledger` books balance transactions."""

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
        self.ledger = Ledger(self)

    # the clock: real time plus an offset the control API moves

    def clock_offset(self) -> float:
        return float(self.store.get_meta("clock_offset", 0.0))

    def now_f(self) -> float:
        return time.time() + self.clock_offset()

    def now(self) -> int:
        return int(self.now_f())

    def advance_clock(self, seconds: float) -> None:
        with self.store.transaction():
            self.store.set_meta("clock_offset", self.clock_offset() + seconds)

    def schedule(self, delay: float, kind: str, payload: J) -> None:
        """A job the clock runs `delay` seconds from now (see Engine.tick)."""
        self.store.add_job(self.now_f() + delay, kind, payload)

    def faults(self) -> J:
        value: J = self.store.get_meta("faults", {})
        return value

    # objects

    def put(self, obj: J, owner: str) -> J:
        self.store.put(obj, owner=owner)
        return obj

    def save(self, obj: J) -> J:
        """Store an object again under the owner it already has."""
        return self.put(obj, self.store.owner_of(obj["id"]) or PLATFORM)

    def get(self, object_id: str, type_: str, kind: str, ctx: Ctx | None, param: str = "id") -> J:
        """An object of this type, visible to `ctx` (any owner when `ctx` is None), or 404."""
        obj = self.store.get(object_id)
        if obj is None or obj.get("object") != type_:
            raise missing(kind, object_id, param=param)
        if ctx is not None and self.store.owner_of(object_id) != ctx.owner:
            raise missing(kind, object_id, param=param)
        return obj

    def children(self, type_: str, field: str, parent: str) -> list[J]:
        """Objects of a type whose `field` names `parent`, newest first."""
        return self.store.query(type_, where=f"json_extract(data, '$.{field}') = ?", args=(parent,))

    def account_of(self, obj: J) -> str | None:
        """The connected account owning an object, or None for the platform's."""
        owner = self.store.owner_of(obj["id"])
        return None if owner in (None, PLATFORM) else owner

    def load_any(self, object_id: str) -> J | None:
        obj = self.store.get(object_id)
        return None if obj is None else self.render(obj)

    def render(self, obj: J) -> J:
        """An object as the API answers it."""
        view = out(obj)
        kind = view.get("object")
        if view.get("deleted"):
            return view
        if kind == "balance_transaction":
            view["status"] = "available" if view["available_on"] <= self.now() else "pending"
        elif kind == "account":
            # API 2023-08-16 renders only these two controller fields; the rest stays private.
            controller = view.get("controller") or {}
            view["controller"] = {
                k: controller[k] for k in ("is_controller", "type") if k in controller
            }
        if kind in _SUBLISTS:
            name, child, field, url = _SUBLISTS[kind]
            items = self.children(child, field, view["id"])
            view[name] = {
                "object": "list",
                "data": [out(i) for i in items[:10]],
                "has_more": len(items) > 10,
                "url": url.format(view["id"]),
            }
        if kind == "charge" and view.get("transfer") is None:
            view.pop("transfer", None)  # optional, not nullable, in the 2023-08-16 schema
        return view

    # events

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
        self.put(event, account or PLATFORM)
        duplicate_rate = float(self.faults().get("webhook_duplicate_rate", 0))
        for endpoint in endpoints:
            self.store.add_delivery(event["id"], endpoint["id"], self.now_f())
            if random.random() < duplicate_rate:
                self.store.add_delivery(event["id"], endpoint["id"], self.now_f())
        return event

    @staticmethod
    def diff(before: J, after: J) -> J:
        """`previous_attributes`: the fields that changed, with their old values."""
        return {k: before.get(k) for k in after if before.get(k) != after.get(k)}

    def update(self, obj: J, changes: J, type_: str, ctx: Ctx, **emit_args: Any) -> J:
        """Apply changes, store, and emit `type_` with what changed (nothing changed, no event)."""
        before = self.render(obj)
        obj.update(changes)
        self.save(obj)
        previous = self.diff(before, self.render(obj))
        if previous:
            self.emit(type_, obj, ctx, previous=previous, **emit_args)
        return obj
