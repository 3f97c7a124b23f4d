"""Events (recorded by Core.emit) and the webhook endpoints they are delivered to."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from souq.sandbox.core import Core
from souq.sandbox.errors import invalid
from souq.sandbox.objects import PLATFORM, Ctx, J, new_id, out, template
from souq.sandbox.rules import check_metadata, merge_metadata, req_url
from souq.sandbox.wire import as_bool, as_str, opt_bool, opt_str


class Events:
    def __init__(self, core: Core) -> None:
        self.core = core

    def retrieve(self, ctx: Ctx, params: J, event_id: str) -> J:
        return self.core.get(event_id, "event", "event", ctx)

    def all(self, ctx: Ctx, params: J) -> list[J]:
        """Filtered by `type` (`charge.*` matches a prefix) or `types`."""
        events = self.core.store.query("event", owner=ctx.owner)
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


class WebhookEndpoints:
    """The endpoint's signing secret is private (`_secret`) and shown only on creation."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def create(self, ctx: Ctx, params: J) -> J:
        url = req_url(params, "url")
        events = params.get("enabled_events")
        if not isinstance(events, list) or not events:
            raise invalid(
                "Missing required param: enabled_events.",
                param="enabled_events",
                code="parameter_missing",
            )
        connect = opt_bool(params, "connect") or False
        with self.core.store.transaction():
            endpoint = self._new(
                url,
                connect,
                [as_str(e, "enabled_events") for e in events],
                description=opt_str(params, "description"),
                metadata=check_metadata(params.get("metadata")),
                api_version=opt_str(params, "api_version"),
            )
            return dict(out(endpoint), secret=endpoint["_secret"])

    def _new(
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
            created=self.core.now(),
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
        return self.core.put(endpoint, PLATFORM)

    def ensure(self, url: str, *, connect: bool, events: Sequence[str] = ("*",)) -> str:
        """Register (once) an endpoint for these event types, or bring an existing one's
        `enabled_events` up to date; answers its whsec_ secret."""
        with self.core.store.transaction():
            for endpoint in self.core.store.query("webhook_endpoint"):
                if endpoint["url"] == url and bool(endpoint["_connect"]) == connect:
                    if endpoint["enabled_events"] != list(events):
                        endpoint["enabled_events"] = list(events)
                        self.core.put(endpoint, PLATFORM)
                    return str(endpoint["_secret"])
            return str(self._new(url, connect, list(events))["_secret"])

    def retrieve(self, ctx: Ctx | None, params: J, endpoint_id: str) -> J:
        return self.core.get(endpoint_id, "webhook_endpoint", "webhook endpoint", None)

    def all(self, ctx: Ctx, params: J) -> list[J]:
        return self.core.store.query("webhook_endpoint")

    def update(self, ctx: Ctx, params: J, endpoint_id: str) -> J:
        with self.core.store.transaction():
            endpoint = self.retrieve(ctx, params, endpoint_id)
            if "url" in params:
                endpoint["url"] = req_url(params, "url")
            if "enabled_events" in params and isinstance(params["enabled_events"], list):
                endpoint["enabled_events"] = params["enabled_events"]
            if "disabled" in params:
                disabled = as_bool(params["disabled"], "disabled")
                endpoint["status"] = "disabled" if disabled else "enabled"
            if "description" in params:
                endpoint["description"] = opt_str(params, "description")
            endpoint["metadata"] = merge_metadata(endpoint["metadata"], params.get("metadata"))
            return self.core.put(endpoint, PLATFORM)

    def delete(self, ctx: Ctx, params: J, endpoint_id: str) -> J:
        """Delete the endpoint; its pending deliveries are canceled."""
        with self.core.store.transaction():
            self.retrieve(ctx, params, endpoint_id)
            self.core.store.delete(endpoint_id)
            self.core.store.execute(
                "UPDATE deliveries SET status = 'canceled' WHERE endpoint_id = ? "
                "AND status = 'pending'",
                (endpoint_id,),
            )
            return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}
