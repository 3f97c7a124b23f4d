"""The fixtures every database test shares: a real server on a free port, serving the app with
the Stripe sandbox embedded, on SQLite and (when TEST_DATABASE_URL is set) on PostgreSQL."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import make_url

from souq import migrations
from souq.app import create_app
from souq.config import Settings

# argon2id at its cheapest: the suite makes hundreds of accounts; production keeps the default.
FAST_HASHING: dict[str, int] = {
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 1024,
    "password_hash_parallelism": 1,
}
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


@pytest.fixture(scope="session", params=ENGINES)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, migrated database for this test session on the engine of the parameter."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "souq.sqlite3"
        url = f"sqlite:///{path}"
        migrate(url)
        yield url
        return
    base = make_url(os.environ["TEST_DATABASE_URL"])
    name = f"souq_test_{uuid.uuid4().hex[:10]}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.set(database=name).render_as_string(hide_password=False)
    migrate(url)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class LiveServer:
    url: str
    settings: Settings
    app: Any
    db: sa.Engine

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    @property
    def sandbox_url(self) -> str:
        return self.url + "/_sandbox"

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.db.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[sa.Row[Any]]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.text(sql), params))


def serve_in_thread(app: Any, sock: socket.socket) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return server, thread


@pytest.fixture(scope="session")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app on a real socket, with the sandbox embedded at /_sandbox."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = Settings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        app_url=f"http://127.0.0.1:{port}",
        sandbox_db_path=Path(tmp_path_factory.mktemp("sandbox")) / "sandbox.sqlite3",
        login_max_failures=5,
        password_hash_time_cost=FAST_HASHING["password_hash_time_cost"],
        password_hash_memory_kib=FAST_HASHING["password_hash_memory_kib"],
        password_hash_parallelism=FAST_HASHING["password_hash_parallelism"],
        stripe_timeout_seconds=3,
    )
    app = create_app(settings)
    server, thread = serve_in_thread(app, sock)
    engine = sa.create_engine(sync_url(database_url))
    try:
        yield LiveServer(url=settings.app_url, settings=app.state.settings, app=app, db=engine)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()


@pytest.fixture
def cli(live: LiveServer) -> Any:
    """Run the `souq` command as a user would, against the live server's database and Stripe."""
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "DATABASE_URL": live.settings.database_url,
            "APP_URL": live.url,
            "SECRET_KEY": live.settings.secret_key.get_secret_value(),
            "COLUMNS": "200",
            **{name.upper(): str(value) for name, value in FAST_HASHING.items()},
        }
        for name in ("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "NEXT_PUBLIC_APP_URL"):
            env.pop(name, None)
        return subprocess.run(
            [sys.executable, "-m", "souq.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    return run
