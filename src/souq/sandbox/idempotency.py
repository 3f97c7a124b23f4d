"""Idempotency-Key on POST requests (https://docs.stripe.com/api/idempotent_requests): the first
request's answer is stored and replayed for 24 hours; the key is refused on another endpoint or
with other parameters, and while the first request still runs."""

from __future__ import annotations

import hashlib
import json

from souq.sandbox.core import Core
from souq.sandbox.errors import StripeError, invalid
from souq.sandbox.objects import J

IDEMPOTENCY_TTL = 24 * 3600
MAX_KEY_LENGTH = 255


def fingerprint(method: str, path: str, params: J) -> str:
    blob = json.dumps([method, path, params], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class Idempotency:
    """Keys are scoped per account (`scope` is the caller's owner): stricter than a key per
    API key, which Stripe leaves unspecified for Connect."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.store = core.store

    def claim(
        self, scope: str, key: str, method: str, path: str, params: J
    ) -> tuple[int, str] | None:
        """Take the key for this request (None), or answer the stored (status, body) to
        replay; raises when the key cannot be used for this request."""
        if len(key) > MAX_KEY_LENGTH:
            raise invalid(
                "Idempotency keys can be at most 255 characters long.", param="Idempotency-Key"
            )
        mark = fingerprint(method, path, params)
        now = self.core.now_f()
        with self.store.transaction():
            row = self.store.execute(
                "SELECT * FROM idempotency WHERE scope = ? AND key = ?", (scope, key)
            ).fetchone()
            if row is not None and row["created"] < now - IDEMPOTENCY_TTL:
                self.release(scope, key)
                row = None
            if row is None:
                self.store.execute(
                    "INSERT INTO idempotency (scope, key, method, path, params, state, created) "
                    "VALUES (?, ?, ?, ?, ?, 'in_flight', ?)",
                    (scope, key, method, path, mark, now),
                )
                return None
            _check_reuse(dict(row), key, method, path, mark)
            return int(row["status"]), str(row["body"])

    def finish(self, scope: str, key: str, status: int, body: str) -> None:
        self.store.execute(
            "UPDATE idempotency SET state = 'done', status = ?, body = ? "
            "WHERE scope = ? AND key = ?",
            (status, body, scope, key),
        )

    def release(self, scope: str, key: str) -> None:
        """Forget a key whose request never finished, so a retry runs it."""
        self.store.execute("DELETE FROM idempotency WHERE scope = ? AND key = ?", (scope, key))


def _check_reuse(row: J, key: str, method: str, path: str, mark: str) -> None:
    if row["state"] == "in_flight":
        raise StripeError(
            409,
            "There is currently another in-progress request using this Stripe token "
            "(probably means you are trying to create the same resource twice). Try "
            "again in a few seconds.",
            code="idempotency_key_in_use",
        )
    if row["method"] != method or row["path"] != path:
        raise StripeError(
            400,
            "Keys for idempotent requests can only be used for the same endpoint they "
            f"were first used for ('{row['method']} {row['path']}'). Try using a key "
            f"other than '{key}' if you meant to execute a different request.",
            type_="idempotency_error",
        )
    if row["params"] != mark:
        raise StripeError(
            400,
            "Keys for idempotent requests can only be used with the same parameters "
            f"they were first used with. Try using a key other than '{key}' if you "
            "meant to execute a different request.",
            type_="idempotency_error",
        )
