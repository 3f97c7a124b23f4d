"""What the `live` fixtures are made of: test databases copied from a template migrated once, and
the app served on a real socket with the Stripe sandbox embedded.

Under pytest-xdist every worker is a process of its own with its own `Servers`: its databases
are named after the worker and a random token (PostgreSQL) or live in the worker's own temporary
folder (SQLite), its sandbox files too, and its ports come from the OS (a socket bound to port
0), so no two workers, and no two runs on one machine, can meet.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import psycopg
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from souq import migrations
from souq.app import create_app
from souq.config import Settings
from tests.cli_process import run_souq

# argon2id at its cheapest: the suite makes hundreds of accounts; production keeps the default.
FAST_HASHING: dict[str, int] = {
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 1024,
    "password_hash_parallelism": 1,
}
# Job timings sized for tests: a failed job is tried again a second later, and a PostgreSQL
# worker finds a job that came due (a retry, a stalled job queued again) within 0.2 s; the
# tests of retries wait for them. The servers and the `souq` commands (workers) use them.
FAST_JOBS: dict[str, float] = {"jobs_backoff_base": 1, "jobs_poll_seconds": 0.2}
ENGINES = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


def migrate(database_url: str, revision: str = "head", *, down: bool = False) -> None:
    if down:
        migrations.downgrade(database_url, revision)
    else:
        migrations.upgrade(database_url, revision)


def sync_url(database_url: str) -> str:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url.set(drivername="sqlite").render_as_string(hide_password=False)


def admin_url() -> str:
    """The PostgreSQL server of TEST_DATABASE_URL, as psycopg takes it (to create databases)."""
    base = make_url(os.environ["TEST_DATABASE_URL"])
    return base.set(drivername="postgresql").render_as_string(hide_password=False)


def postgres_url(name: str) -> str:
    base = make_url(os.environ["TEST_DATABASE_URL"])
    return base.set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(name: str) -> None:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class LiveServer:
    """The app on a real socket, with the sandbox embedded at /_sandbox."""

    url: str
    settings: Settings
    app: FastAPI
    db: sa.Engine

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    @property
    def sandbox_url(self) -> str:
        return self.url + "/_sandbox"

    @property
    def stripe_secret_key(self) -> str:
        """The key the app's Stripe client sends (the embedded sandbox's)."""
        return _revealed(self.settings.stripe_secret_key)

    @property
    def webhook_secret(self) -> str:
        """The signing secret of the platform endpoint, /api/stripe/webhook."""
        return _revealed(self.settings.stripe_webhook_secret)

    @property
    def connect_webhook_secret(self) -> str:
        """The signing secret of the Connect endpoint, /api/stripe/connect/webhook."""
        return _revealed(self.settings.stripe_connect_webhook_secret)

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.db.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[sa.Row[*tuple[Any, ...]]]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.text(sql), params))


def _revealed(secret: SecretStr | None) -> str:
    assert secret is not None, "the embedded sandbox sets every Stripe secret"
    return secret.get_secret_value()


class Cli(Protocol):
    """The `souq` command run as a user runs it: `cli("reconcile", "--min-age", "0")`."""

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]: ...


def cli_for(live: LiveServer, *, columns: int = 200) -> Cli:
    """The `souq` command in a process of its own (forked from a process that has imported the
    application, tests/cli_process.py), against `live`'s database and Stripe, in a terminal
    `columns` wide."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_souq(list(args), cli_env(live, COLUMNS=str(columns)), timeout=120)

    return run


def cli_env(live: LiveServer, **extra: str) -> dict[str, str]:
    """The environment of a `souq` command against `live`'s database and Stripe (the embedded
    sandbox), with `extra` variables."""
    env = {
        **os.environ,
        "DATABASE_URL": live.settings.database_url,
        "SOUQ_DATA_DIR": str(live.settings.data_dir),
        "APP_URL": live.url,
        "SECRET_KEY": live.settings.secret_key.get_secret_value(),
        **{name.upper(): str(value) for name, value in (FAST_HASHING | FAST_JOBS).items()},
        **extra,
    }
    for name in ("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "NEXT_PUBLIC_APP_URL"):
        env.pop(name, None)
    return env


class Databases:
    """A worker's test databases. Each engine's schema is migrated once, into a template; every
    database after that is a copy of it (a file copy, or PostgreSQL's CREATE DATABASE … TEMPLATE),
    which costs a fraction of running the migrations again. `close()` drops them all."""

    def __init__(self, folder: Path, label: str) -> None:
        self.folder = folder
        self.label = label
        self._count = 0
        self._templates: dict[str, str] = {}
        self._postgres: list[str] = []

    def create(self, engine: str) -> str:
        """A new, migrated, empty database on `engine`; its URL."""
        self._count += 1
        if engine == "sqlite":
            path = self.folder / f"souq-{self._count}.sqlite3"
            shutil.copyfile(self._template(engine), path)
            return f"sqlite:///{path}"
        name = f"souq_test_{self.label}_{self._count}"
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template(engine)}"')
            # Nothing here needs to survive a crash of the server: commits need not wait for
            # the disk (what a transaction sees is unchanged).
            conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        self._postgres.append(name)
        return postgres_url(name)

    def drop(self, database_url: str) -> None:
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{url.database}{suffix}").unlink(missing_ok=True)
        elif url.database in self._postgres:
            drop_postgres_database(url.database)
            self._postgres.remove(url.database)

    def close(self) -> None:
        names = [*self._postgres]
        if "postgresql" in self._templates:
            names.append(self._templates["postgresql"])
        for name in names:
            drop_postgres_database(name)
        self._postgres.clear()
        self._templates.clear()

    def _template(self, engine: str) -> str:
        """The template's file (SQLite) or database name (PostgreSQL), migrated on first use."""
        if engine not in self._templates:
            if engine == "sqlite":
                path = self.folder / "template.sqlite3"
                migrate(f"sqlite:///{path}")
                # Fold the write-ahead log into the file, so that a copy of the file is whole.
                with closing(sqlite3.connect(path)) as conn:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._templates[engine] = str(path)
            else:
                name = f"souq_test_{self.label}_template"
                with psycopg.connect(admin_url(), autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                self._templates[engine] = name
                migrate(postgres_url(name))
        return self._templates[engine]


@dataclass
class RunningServer:
    live: LiveServer
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.live.db.dispose()


def serve_in_thread(app: FastAPI, sock: socket.socket) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    return server, thread


def start_server(database_url: str, folder: Path, **overrides: Any) -> RunningServer:
    """The app on a free port of 127.0.0.1, on `database_url`, its sandbox in `folder`, with
    `overrides` to its settings."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = Settings(
        _env_file=None,
        environment="test",
        data_dir=folder,
        database_url=database_url,
        app_url=f"http://127.0.0.1:{port}",
        login_max_failures=5,
        forwarded_allow_ips="127.0.0.1",  # helpers.anonymous() picks addresses this way
        # The suite's buyers share buyer@example.com and some loop over checkouts: the
        # checkout limits' own tests set them (tests/payments/test_checkout_limits.py).
        checkout_rate_per_email=10_000,
        checkout_rate_per_address=10_000,
        stripe_timeout_seconds=3,
        # On PostgreSQL the server runs a procrastinate worker of its own; periodic jobs only
        # where a test asks for them (they would repair what other tests leave broken).
        jobs_in_web=True,
        jobs_periodic=False,
        jobs_backoff_base=int(FAST_JOBS["jobs_backoff_base"]),
        jobs_poll_seconds=FAST_JOBS["jobs_poll_seconds"],
        password_hash_time_cost=FAST_HASHING["password_hash_time_cost"],
        password_hash_memory_kib=FAST_HASHING["password_hash_memory_kib"],
        password_hash_parallelism=FAST_HASHING["password_hash_parallelism"],
    ).model_copy(update=overrides)
    app = create_app(settings)
    server, thread = serve_in_thread(app, sock)
    live = LiveServer(
        url=settings.app_url,
        settings=app.state.settings,
        app=app,
        db=sa.create_engine(sync_url(database_url)),
    )
    return RunningServer(live, server, thread)


def scratch_folder(label: str) -> Path:
    """A folder for test databases and sandbox files, on tmpfs when the machine has one: SQLite
    syncs every commit to disk (a few milliseconds each), worthless for data thrown away."""
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=f"souq-tests-{label}-", dir=parent))


class Servers:
    """A process's servers: one per engine shared by the tests that need nothing of their own,
    started when the first of them runs; and fresh ones, each on a database of its own."""

    def __init__(self, label: str) -> None:
        self.folder = scratch_folder(label)
        self.databases = Databases(self.folder, label)
        self._shared: dict[str, RunningServer] = {}
        self._count = 0

    def shared(self, engine: str) -> LiveServer:
        if engine not in self._shared:
            self._shared[engine] = self._start(engine)
        return self._shared[engine].live

    @contextmanager
    def fresh(self, engine: str, **overrides: Any) -> Iterator[LiveServer]:
        """A server on a database of its own, with `overrides` to its settings."""
        running = self._start(engine, **overrides)
        try:
            yield running.live
        finally:
            running.stop()
            self.databases.drop(running.live.settings.database_url)

    def close(self) -> None:
        try:
            for running in self._shared.values():
                running.stop()
            self._shared.clear()
            self.databases.close()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _start(self, engine: str, **overrides: Any) -> RunningServer:
        self._count += 1
        folder = self.folder / f"server-{self._count}"
        folder.mkdir()
        return start_server(self.databases.create(engine), folder, **overrides)


@contextmanager
def serve(make_settings: Callable[[str], Settings]) -> Iterator[str]:
    """Serve create_app(make_settings(url)) on a free port; yields its URL. uvicorn's own
    proxy handling is off, as `souq serve` has it unless FORWARDED_ALLOW_IPS is set: the app
    alone decides whom to believe."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(make_settings(url))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", proxy_headers=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        thread.join(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def beside(live: LiveServer, **overrides: Any) -> Iterator[str]:
    """A server like `live` (its database, and its Stripe sandbox through the SDK) with
    `overrides` to its settings: for tests of what a setting does."""

    def settings(url: str) -> Settings:
        changed: Settings = live.settings.model_copy(update={"app_url": url, **overrides})
        return changed

    with serve(settings) as url:
        yield url
