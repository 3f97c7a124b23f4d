"""Settings, database URLs, migrations both ways on both engines, and the CLI's setup commands."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from souq.config import Settings
from souq.db import async_url, engine_options, is_pooled
from tests.conftest import ENGINES, FAST_HASHING, migrate, sync_url
from tests.servers import Cli, LiveServer


def test_settings_keep_the_seed_stacks_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXT_PUBLIC_APP_URL", "https://shop.example.com/")
    monkeypatch.setenv("PLATFORM_FEE_BPS", "750")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_123")
    settings = Settings(_env_file=None)
    assert settings.app_url == "https://shop.example.com"
    assert settings.platform_fee_bps == 750
    assert not settings.uses_sandbox
    assert "sk_test_123" not in repr(settings)  # secrets never printed


def test_production_refuses_missing_or_placeholder_secrets() -> None:
    settings = Settings(_env_file=None, environment="production")
    with pytest.raises(RuntimeError) as refused:
        settings.check_startup()
    for name in (
        "SECRET_KEY",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_CONNECT_WEBHOOK_SECRET",
    ):
        assert name in str(refused.value)
    ready = Settings(
        _env_file=None,
        environment="production",
        app_url="https://shop.example.com",
        secret_key=SecretStr("a-long-random-secret-for-sessions"),
        stripe_secret_key=SecretStr("sk_live_x"),
        stripe_webhook_secret=SecretStr("whsec_a"),
        stripe_connect_webhook_secret=SecretStr("whsec_b"),
    )
    ready.check_startup()


def test_the_data_folder_is_data_under_the_working_directory_or_souq_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("DATABASE_URL", "SOUQ_DATA_DIR", "SANDBOX_DB_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    here = Settings(_env_file=None)
    assert here.data_dir == tmp_path.resolve() / "data"
    assert here.database_url == f"sqlite:///{tmp_path.resolve() / 'data' / 'souq.sqlite3'}"
    assert here.sandbox_db_path == tmp_path.resolve() / "data" / "sandbox.sqlite3"
    monkeypatch.setenv("SOUQ_DATA_DIR", str(tmp_path / "elsewhere"))
    moved = Settings(_env_file=None)
    assert moved.database_url == f"sqlite:///{tmp_path.resolve() / 'elsewhere' / 'souq.sqlite3'}"
    assert moved.sandbox_db_path == tmp_path.resolve() / "elsewhere" / "sandbox.sqlite3"
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.example.com/souq")
    assert Settings(_env_file=None).database_url == "postgresql://u@db.example.com/souq"


def test_postgres_urls_use_psycopg_and_honour_neon() -> None:
    neon = "postgresql://u:p@ep-cool-1234-pooler.eu-central-1.aws.neon.tech/db?sslmode=require"
    url = async_url(neon)
    assert url.drivername == "postgresql+psycopg"
    assert url.query["sslmode"] == "require"
    assert is_pooled(url, None)
    assert engine_options(url)["connect_args"] == {"prepare_threshold": None}
    direct = async_url("postgres://u:p@ep-cool-1234.eu-central-1.aws.neon.tech/db")
    assert not is_pooled(direct, None) and "connect_args" not in engine_options(direct)
    assert engine_options(direct, pooled=True)["connect_args"] == {"prepare_threshold": None}
    assert async_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    with pytest.raises(ValueError):
        async_url("mysql://x/y")


@pytest.fixture(params=ENGINES)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    base = make_url(os.environ["TEST_DATABASE_URL"])
    name = f"souq_mig_{uuid.uuid4().hex[:8]}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(sync_url(url))
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


# procrastinate's, applied on PostgreSQL by the same upgrade (and dropped by the downgrade).
JOB_ENGINE_TABLES = {
    "procrastinate_jobs",
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_workers",
}


def test_migrations_upgrade_and_downgrade(empty_database: str) -> None:
    migrate(empty_database)
    assert _tables(empty_database) == {
        "user",
        "api_token",
        "throttle",
        "user_session",
        "store_invitation",
        "store",
        "store_member",
        "listing",
        "orders",
        "order_item",
        "order_payment",
        "stripe_event",
        "stripe_event_cursor",
        "checkout_request",
        "mail_message",
        "notification_preference",
        "webhook_endpoint",
        "webhook_event",
        "webhook_delivery",
        "webhook_attempt",
        "cart",
        "cart_item",
        "cart_checkout",
        "checkout_group",
        "store_transfer",
        "ledger_entry",
        "refund",
        "dispute",
        "store_loss_policy",
        "store_payout",
    } | (JOB_ENGINE_TABLES if empty_database.startswith("postgresql") else set())
    engine = sa.create_engine(sync_url(empty_database))
    with engine.begin() as conn:  # the case-insensitive unique email index exists
        insert = sa.text(
            'INSERT INTO "user" (email, name, password_hash, is_platform_admin, created_at) '
            "VALUES (:e, 'n', 'h', false, CURRENT_TIMESTAMP)"
        )
        conn.execute(insert, {"e": "Case@Example.com"})
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(insert, {"e": "case@example.COM"})
    engine.dispose()
    migrate(empty_database, "base", down=True)
    assert _tables(empty_database) == set()
    migrate(empty_database)
    assert "orders" in _tables(empty_database)


def _souq(
    env: dict[str, str], *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The `souq` command, run in `cwd` with none of the caller's database settings."""
    inherited = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SOUQ_DATA_DIR")}
    return subprocess.run(
        [sys.executable, "-m", "souq.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=cwd,
        env={
            **inherited,
            "COLUMNS": "200",
            **{name.upper(): str(value) for name, value in FAST_HASHING.items()},
            **env,
        },
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_db_upgrade_demo_and_create_admin_from_the_command_line(tmp_path: Path) -> None:
    # No DATABASE_URL: the database is data/souq.sqlite3 under the working directory.
    env: dict[str, str] = {}
    upgraded = _souq(env, "db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "Running upgrade" in upgraded.stderr  # which revisions ran is shown
    database = tmp_path / "data" / "souq.sqlite3"
    assert database.is_file()
    first = _souq(env, "demo", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "owner@atlas.test" in first.stdout and "souq-demo-2026" in first.stdout
    again = _souq(env, "demo", cwd=tmp_path)
    assert "0 new records" in again.stdout
    skipped = _souq(env, "demo", "--if-empty", cwd=tmp_path)
    assert "left as it is" in skipped.stdout
    admin = _souq(
        env,
        "create-admin",
        "--email",
        "Root@Example.com",
        "--name",
        "Root",
        "--password",
        "a-very-long-password",
        cwd=tmp_path,
    )
    assert admin.returncode == 0 and "created platform admin" in admin.stdout
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text('SELECT email, is_platform_admin FROM "user" ORDER BY id')
        ).all()
        stores = conn.execute(sa.text("SELECT count(*) FROM store")).scalar()
        currencies = set(conn.execute(sa.text("SELECT currency FROM listing")).scalars())
    engine.dispose()
    assert ("admin@souq.test", True) in [tuple(r) for r in rows]
    assert ("root@example.com", True) in [(r[0].lower(), r[1]) for r in rows]
    assert stores == 2 and currencies == {"usd", "eur", "jpy"}


def test_demo_logins_work_through_the_api(live: LiveServer, cli: Cli) -> None:
    result = cli("demo")
    assert result.returncode == 0, result.stderr
    with httpx.Client(base_url=live.url, timeout=30) as client:
        token = client.post(
            "/api/auth/tokens", json={"email": "owner@atlas.test", "password": "souq-demo-2026"}
        )
        assert token.status_code == 201, token.text
        me = client.get(
            "/api/me/stores", headers={"Authorization": f"Bearer {token.json()['token']}"}
        )
    assert me.status_code == 200
    assert "Atlas Ceramics" in me.text


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/api/stores", {"content": b"{not json"}),
        ("POST", "/api/auth/register", {"json": ["a", "list"]}),
        ("POST", "/api/stripe/checkout/create", {"json": {"storeId": {"$gt": 1}}}),
        ("GET", "/api/listings/not-a-number", {}),
        ("GET", "/api/orders/99999999999999999999999", {}),
        ("POST", "/api/stripe/webhook", {"content": b"\xff\xfe"}),
        ("DELETE", "/api/auth/register", {}),
        ("GET", "/no/such/page", {}),
    ],
)
def test_nothing_a_client_sends_is_a_500(
    live: LiveServer, method: str, path: str, kwargs: Any
) -> None:
    with live.client() as client:
        response = client.request(method, path, **kwargs)
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]


def test_the_openapi_document_lists_the_api(live: LiveServer) -> None:
    with live.client() as client:
        spec = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    for path in (
        "/api/auth/register",
        "/api/stores",
        "/api/stripe/connect/create-account",
        "/api/stripe/checkout/create",
        "/api/orders/{order_id}",
    ):
        assert path in spec["paths"], path
