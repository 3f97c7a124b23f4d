"""The sandbox's own SQLite state: Stripe objects as JSON by id, plus idempotency keys, webhook
deliveries, timed jobs and a few settings. One connection, one re-entrant lock: every change runs
inside `transaction()`, so a failing API call leaves nothing half-written."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, owner TEXT NOT NULL, created INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_type_owner ON objects (type, owner);
CREATE INDEX IF NOT EXISTS objects_status_expiry ON objects (
    type, json_extract(data, '$.status'), json_extract(data, '$.expires_at')
);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,
    params TEXT NOT NULL, state TEXT NOT NULL, status INTEGER, body TEXT, created REAL NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, endpoint_id TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0, created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id INTEGER NOT NULL, event_id TEXT NOT NULL,
    event_type TEXT NOT NULL, endpoint_id TEXT NOT NULL, url TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status_code INTEGER, error TEXT, ok INTEGER NOT NULL, at REAL NOT NULL, duration_ms INTEGER
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, due_at REAL NOT NULL, kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
"""

_TABLES = ("meta", "objects", "idempotency", "deliveries", "attempts", "jobs")


class Store:
    """Objects are stored by id with their type and owner (`platform` or an `acct_` id)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._depth = 0

    def close(self) -> None:
        with self.lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock; the outermost block commits, or rolls back on an exception."""
        with self.lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self.lock:
            return self._db.execute(sql, args)

    def reset(self) -> None:
        """Forget everything except webhook endpoints: the app registered those once and holds
        their signing secrets."""
        with self.transaction():
            for table in _TABLES:
                if table == "objects":
                    self._db.execute("DELETE FROM objects WHERE type != 'webhook_endpoint'")
                else:
                    self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    # settings

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    def set_meta(self, key: str, value: Any) -> None:
        self.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    # objects

    def get(self, object_id: str) -> dict[str, Any] | None:
        row = self.execute("SELECT data FROM objects WHERE id = ?", (object_id,)).fetchone()
        return None if row is None else dict(json.loads(row["data"]))

    def owner_of(self, object_id: str) -> str | None:
        row = self.execute("SELECT owner FROM objects WHERE id = ?", (object_id,)).fetchone()
        return None if row is None else str(row["owner"])

    def put(self, obj: dict[str, Any], *, owner: str) -> None:
        self.execute(
            "INSERT INTO objects (id, type, owner, created, data) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            (obj["id"], obj["object"], owner, int(obj.get("created") or 0), json.dumps(obj)),
        )

    def delete(self, object_id: str) -> None:
        self.execute("DELETE FROM objects WHERE id = ?", (object_id,))

    def query(
        self, type_: str, *, owner: str | None = None, where: str = "", args: tuple[Any, ...] = ()
    ) -> list[dict[str, Any]]:
        """Objects of a type, newest first (insertion order, as Stripe lists them)."""
        sql = "SELECT data FROM objects WHERE type = ?"
        params: list[Any] = [type_]
        if owner is not None:
            sql += " AND owner = ?"
            params.append(owner)
        if where:
            sql += f" AND ({where})"
            params.extend(args)
        sql += " ORDER BY rowid DESC"
        return [dict(json.loads(r["data"])) for r in self.execute(sql, tuple(params)).fetchall()]

    # webhook deliveries

    def add_delivery(self, event_id: str, endpoint_id: str, due: float) -> None:
        self.execute(
            "INSERT INTO deliveries (event_id, endpoint_id, status, next_attempt_at, created) "
            "VALUES (?, ?, 'pending', ?, ?)",
            (event_id, endpoint_id, due, time.time()),
        )

    def claim_due_deliveries(self, now: float, lease_seconds: float) -> list[sqlite3.Row]:
        """Take every pending delivery that is due and not already being sent by someone else."""
        with self.transaction():
            rows = self.execute(
                "SELECT * FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ? "
                "AND lease_until <= ? ORDER BY id",
                (now, time.time()),
            ).fetchall()
            lease = time.time() + lease_seconds
            for row in rows:
                self.execute(
                    "UPDATE deliveries SET lease_until = ? WHERE id = ?", (lease, row["id"])
                )
            return list(rows)

    # timed jobs

    def add_job(self, due_at: float, kind: str, payload: dict[str, Any]) -> None:
        self.execute(
            "INSERT INTO jobs (due_at, kind, payload) VALUES (?, ?, ?)",
            (due_at, kind, json.dumps(payload)),
        )

    def take_due_jobs(self, now: float) -> list[tuple[str, dict[str, Any]]]:
        rows = self.execute(
            "SELECT id, kind, payload FROM jobs WHERE due_at <= ? ORDER BY due_at, id", (now,)
        ).fetchall()
        for row in rows:
            self.execute("DELETE FROM jobs WHERE id = ?", (row["id"],))
        return [(str(r["kind"]), dict(json.loads(r["payload"]))) for r in rows]
