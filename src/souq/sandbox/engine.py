"""The sandbox's Stripe: objects, the rules Stripe enforces, money movement and events.

Every public method runs inside one store transaction; a StripeError rolls the whole call back.
The engine is assembled from one class per area, each building on the one before:
EngineBase (base.py) -> Accounts -> Payments -> Checkout -> Engine.
"""

from __future__ import annotations

import hashlib
import json

from souq.sandbox.base import CONTROL, Ctx, J
from souq.sandbox.checkout import Checkout


class Engine(Checkout):
    """The whole sandbox Stripe (see the module docstring)."""

    def get_event(self, event_id: str, ctx: Ctx) -> J:
        return self._get(event_id, "event", "event", ctx)

    def list_events(self, params: J, ctx: Ctx) -> list[J]:
        events = self.store.query("event", owner=ctx.owner)
        wanted = params.get("type")
        if isinstance(wanted, str):
            if wanted.endswith(".*"):
                events = [e for e in events if e["type"].startswith(wanted[:-1])]
            else:
                events = [e for e in events if e["type"] == wanted]
        types = params.get("types")
        if isinstance(types, list):
            events = [e for e in events if e["type"] in types]
        return events

    def tick(self) -> int:
        """Do whatever the clock says is due: expire sessions, settle delayed payments,
        finish pending refunds. Answers how many things happened."""
        done = 0
        with self.store.transaction():
            now = self.now()
            for session in self.store.query(
                "checkout.session",
                where="json_extract(data, '$.status') = 'open' AND "
                "json_extract(data, '$.expires_at') <= ?",
                args=(now,),
            ):
                self._expire(session, CONTROL)
                done += 1
            for kind, payload in self.store.take_due_jobs(self.now_f()):
                if kind == "settle_delayed":
                    self._settle_delayed(payload)
                elif kind == "refund_status":
                    self._refund_status(payload)
                done += 1
        return done

    def fingerprint(self, method: str, path: str, params: J) -> str:
        blob = json.dumps([method, path, params], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()
