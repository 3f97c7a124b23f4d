"""Webhook delivery: signed like Stripe signs, at least once, retried with backoff.

The store lock is held only to claim deliveries and to record results, never across HTTP: the
receiving app may live in the same server and call back into the sandbox while it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from souq.sandbox.core import Core

# Seconds after each failed attempt at which the next one comes due (Stripe's test mode retries a
# few times over hours; the sandbox keeps the shape, the clock control makes it quick).
RETRY_DELAYS = [60, 300, 1800, 3600, 3 * 3600, 6 * 3600]
ATTEMPT_TIMEOUT = 10.0
LEASE_SECONDS = 30.0
logger = logging.getLogger("souq.sandbox")


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + payload
    mac = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class Deliverer:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.store = core.store
        self._client: httpx.AsyncClient | None = None
        # One delivery cycle at a time, so a flush waits for a background cycle already in
        # flight: when flush answers, everything that was due has been delivered.
        self._cycle: asyncio.Lock | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=ATTEMPT_TIMEOUT)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver_due(self) -> dict[str, int]:
        """Send every delivery that is due now; answers counts of what happened."""
        if self._cycle is None:
            self._cycle = asyncio.Lock()
        async with self._cycle:
            return await self._deliver_due()

    async def _deliver_due(self) -> dict[str, int]:
        rows = self.store.claim_due_deliveries(self.core.now_f(), LEASE_SECONDS)
        faults = self.core.faults()
        if faults.get("webhook_shuffle"):
            random.shuffle(rows)
        counts = {"attempted": 0, "succeeded": 0, "failed": 0}
        for row in rows:
            ok = await self._attempt(dict(row), faults)
            counts["attempted"] += 1
            counts["succeeded" if ok else "failed"] += 1
        return counts

    async def _attempt(self, row: dict[str, Any], faults: dict[str, Any]) -> bool:
        event = self.store.get(row["event_id"])
        endpoint = self.store.get(row["endpoint_id"])
        if event is None or endpoint is None:
            self.store.execute(
                "UPDATE deliveries SET status = 'canceled' WHERE id = ?", (row["id"],)
            )
            return False
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = "simulated failure (webhook_failure_rate fault)"
        if random.random() >= float(faults.get("webhook_failure_rate", 0)):
            status_code, error = await self._post(event, endpoint)
        ok = status_code is not None and 200 <= status_code < 300
        duration = int((time.monotonic() - started) * 1000)
        with self.store.transaction():
            attempt = int(row["attempts"]) + 1
            self.store.execute(
                "INSERT INTO attempts (delivery_id, event_id, event_type, endpoint_id, url, "
                "attempt, status_code, error, ok, at, duration_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row["id"], event["id"], event["type"], endpoint["id"], endpoint["url"],
                 attempt, status_code, error, int(ok), self.core.now_f(), duration),
            )  # fmt: skip
            self._schedule_next(row, event, attempt, ok)
        return ok

    async def _post(
        self, event: dict[str, Any], endpoint: dict[str, Any]
    ) -> tuple[int | None, str | None]:
        """Send the signed event: (HTTP status, None) or (None, what went wrong)."""
        payload = json.dumps(self.core.render(event), indent=2).encode()
        # The sandbox clock (never behind real time) so that a retry after advancing it
        # carries a later t, as every Stripe attempt does.
        header = sign(payload, str(endpoint["_secret"]), int(self.core.now_f()))
        try:
            response = await self._http().post(
                str(endpoint["url"]),
                content=payload,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": header,
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                },
            )
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, None

    def _schedule_next(
        self, row: dict[str, Any], event: dict[str, Any], attempt: int, ok: bool
    ) -> None:
        """Done, failed for good after the last retry, or due again after the next delay; a
        finished delivery lowers the event's `pending_webhooks`."""
        next_at = float(row["next_attempt_at"])
        if ok:
            status = "succeeded"
        elif attempt > len(RETRY_DELAYS):
            status = "failed"
        else:
            status = "pending"
            next_at = self.core.now_f() + RETRY_DELAYS[attempt - 1]
        self.store.execute(
            "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, "
            "lease_until = 0 WHERE id = ?",
            (status, attempt, next_at, row["id"]),
        )
        if status != "pending":
            remaining = self.store.execute(
                "SELECT COUNT(*) FROM deliveries WHERE event_id = ? AND status = 'pending'",
                (event["id"],),
            ).fetchone()[0]
            event["pending_webhooks"] = int(remaining)
            self.store.put(event, owner=self.store.owner_of(event["id"]) or "platform")

    def deliveries(self, limit: int = 200) -> list[dict[str, Any]]:
        """Up to `limit` attempts, newest first, then up to `limit` deliveries not tried yet."""
        attempted = self.store.execute(
            "SELECT a.delivery_id, a.event_id, a.event_type, a.endpoint_id, a.url, a.attempt, "
            "a.status_code, a.error, a.ok, a.at, a.duration_ms, d.status AS delivery_status, "
            "d.next_attempt_at FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
            "ORDER BY a.id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        untried = self.store.execute(
            "SELECT d.id AS delivery_id, d.event_id, json_extract(e.data, '$.type') AS event_type, "
            "d.endpoint_id, "
            "NULL AS url, 0 AS attempt, NULL AS status_code, NULL AS error, 0 AS ok, "
            "NULL AS at, NULL AS duration_ms, 'pending' AS delivery_status, d.next_attempt_at "
            "FROM deliveries d LEFT JOIN objects e ON e.id = d.event_id "
            "WHERE d.status = 'pending' AND d.attempts = 0 ORDER BY d.id LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            {
                "delivery": r["delivery_id"],
                "event": r["event_id"],
                "type": r["event_type"],
                "endpoint": r["endpoint_id"],
                "url": r["url"],
                "attempt": r["attempt"],
                "status_code": r["status_code"],
                "error": r["error"],
                "ok": bool(r["ok"]),
                "at": r["at"],
                "duration_ms": r["duration_ms"],
                "delivery_status": r["delivery_status"],
                "next_attempt_at": r["next_attempt_at"],
            }
            for r in [*attempted, *untried]
        ]


async def run_loop(
    deliverer: Deliverer, tick: Callable[[], int], stop: asyncio.Event, interval: float = 0.25
) -> None:
    """The background loop: let time pass (expiries, settlements), then deliver what is due."""
    while not stop.is_set():
        try:
            tick()
            await deliverer.deliver_due()
        except Exception:
            logger.exception("webhook delivery loop")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
