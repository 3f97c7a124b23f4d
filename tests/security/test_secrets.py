"""Secrets: the embedded sandbox answers only its own key, and the key and the development
SECRET_KEY are generated once per data folder; unsafe settings refuse to start."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import stripe
from pydantic import SecretStr

import souq.config
from souq.app import create_app
from souq.config import Settings
from souq.throttle import Throttle
from tests.helpers import api_user, create_store
from tests.servers import FAST_HASHING


def test_a_made_up_test_key_gets_stripes_401_from_the_sandbox(live: Any) -> None:
    made_up = stripe.StripeClient("sk_test_" + "x" * 24, base_addresses={"api": live.sandbox_url})
    with pytest.raises(stripe.AuthenticationError) as refused:
        made_up.v1.checkout.sessions.list()
    assert refused.value.http_status == 401
    with pytest.raises(stripe.AuthenticationError):
        made_up.v1.webhook_endpoints.create(
            params={"url": "https://evil.example/", "enabled_events": ["*"]}
        )
    # The app's own client has the sandbox's key, so everything still works.
    with api_user(live) as owner:
        store = create_store(owner)
        created = owner.client.post(
            "/api/stripe/connect/create-account", json={"storeId": store["id"]}
        )
        assert created.status_code == 200, created.text
    own_key = live.settings.sandbox_api_key.get_secret_value()
    assert live.settings.stripe_secret_key.get_secret_value() == own_key
    own = stripe.StripeClient(own_key, base_addresses={"api": live.sandbox_url})
    assert own.v1.accounts.retrieve(created.json()["stripeAccountId"]).id


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None,
        "environment": "development",
        "data_dir": tmp_path / "data",
        "database_url": f"sqlite:///{tmp_path / 'souq.sqlite3'}",
        "sandbox_db_path": tmp_path / "sandbox.sqlite3",
        **{name: value for name, value in FAST_HASHING.items()},
        **overrides,
    }
    return Settings(**values)


def test_keys_are_generated_once_per_data_folder_and_kept_private(tmp_path: Path) -> None:
    first = create_app(_settings(tmp_path, data_dir=tmp_path / "data")).state.settings
    again = create_app(_settings(tmp_path, data_dir=tmp_path / "data")).state.settings
    assert first.sandbox_api_key is not None and again.sandbox_api_key is not None
    key = first.sandbox_api_key.get_secret_value()
    assert key.startswith("sk_test_") and len(key) > 30
    assert again.sandbox_api_key.get_secret_value() == key
    assert again.secret_key.get_secret_value() == first.secret_key.get_secret_value()
    assert souq.config.secret_key_weakness(first.secret_key.get_secret_value()) is None
    for name in ("secret_key", "sandbox_api_key"):
        path = tmp_path / "data" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (tmp_path / "data" / "sandbox_api_key").read_text().strip() == key
    # Another data folder, other secrets; a fixed setting wins over the file.
    other = create_app(_settings(tmp_path, data_dir=tmp_path / "elsewhere")).state.settings
    assert other.secret_key.get_secret_value() != first.secret_key.get_secret_value()
    fixed = create_app(
        _settings(
            tmp_path,
            data_dir=tmp_path / "data",
            sandbox_api_key=SecretStr("sk_test_fixed_for_scripts"),
        )
    )
    assert fixed.state.settings.stripe_secret_key.get_secret_value() == "sk_test_fixed_for_scripts"


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"stripe_secret_key": SecretStr("sk_live_abc")}, "STRIPE_SECRET_KEY is a live key"),
        ({"stripe_secret_key": SecretStr("rk_live_abc")}, "STRIPE_SECRET_KEY is a live key"),
    ],
)
def test_a_live_stripe_key_needs_production(
    tmp_path: Path, overrides: dict[str, Any], problem: str
) -> None:
    for environment in ("development", "test"):
        with pytest.raises(RuntimeError, match=problem):
            create_app(_settings(tmp_path, environment=environment, **overrides))


GOOD_PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "app_url": "https://shop.example.com",
    "secret_key": SecretStr("R4nd0m-0nly-f0r-this-t3st_Zq8xKp2LmV9wYt"),
    "stripe_secret_key": SecretStr("sk_live_51Abc"),
    "stripe_webhook_secret": SecretStr("whsec_platform"),
    "stripe_connect_webhook_secret": SecretStr("whsec_connect"),
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"secret_key": SecretStr("a")}, "SECRET_KEY is missing or a placeholder|shorter"),
        ({"secret_key": SecretStr("CHANGEME")}, "SECRET_KEY is missing or a placeholder"),
        ({"secret_key": SecretStr("dev-secret-change-me ")}, "SECRET_KEY"),
        ({"secret_key": SecretStr("a" * 64)}, "SECRET_KEY has too little entropy"),
        ({"secret_key": SecretStr("abcd" * 16)}, "SECRET_KEY has too little entropy"),
        ({"secret_key": SecretStr("")}, "SECRET_KEY is missing"),
        ({"app_url": "http://shop.example.com"}, "APP_URL must be an https"),
        ({"stripe_secret_key": SecretStr("sk_test_abc")}, "test-mode key"),
        ({"stripe_secret_key": None}, "STRIPE_SECRET_KEY is missing"),
        ({"stripe_webhook_secret": None}, "STRIPE_WEBHOOK_SECRET is missing"),
        ({"stripe_connect_webhook_secret": SecretStr(" ")}, "STRIPE_CONNECT_WEBHOOK_SECRET"),
    ],
)
def test_production_refuses_weak_settings(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    with pytest.raises(RuntimeError, match=problem):
        create_app(_settings(tmp_path, **{**GOOD_PRODUCTION, **change}))


def _asgi_get(app: Any, *paths: str) -> list[httpx.Response]:
    """GET straight into the ASGI app (no lifespan, so only routes without the database)."""

    async def get() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://shop.example.com") as c:
            return [await c.get(path) for path in paths]

    return asyncio.run(get())


def test_production_with_good_settings_starts_with_secure_cookies_and_no_docs(
    tmp_path: Path,
) -> None:
    app = create_app(_settings(tmp_path, **GOOD_PRODUCTION))
    docs, redoc, spec, page = _asgi_get(app, "/docs", "/redoc", "/openapi.json", "/register")
    assert docs.status_code == redoc.status_code == spec.status_code == 404
    cookie = page.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert page.headers["strict-transport-security"].startswith("max-age=")
    # API_DOCS=true brings them back, in production too.
    [docs] = _asgi_get(create_app(_settings(tmp_path, **GOOD_PRODUCTION, api_docs=True)), "/docs")
    assert docs.status_code == 200


def test_cookies_are_secure_whenever_app_url_is_https(tmp_path: Path) -> None:
    development = _settings(
        tmp_path,
        app_url="https://dev.example.com",
        secret_key=SecretStr("d" + "ev-key-long-enough-0123456789abcdef"),
        sandbox_api_key=SecretStr("sk_test_dev"),
    )
    [page] = _asgi_get(create_app(development), "/register")
    assert "secure" in page.headers["set-cookie"].lower()
    plain = development.model_copy(update={"app_url": "http://127.0.0.1:8000"})
    [page] = _asgi_get(create_app(plain), "/register")
    assert "secure" not in page.headers["set-cookie"].lower()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_serve_prints_the_sandbox_key_and_trusts_no_forwarded_header_by_default(
    live: Any,
) -> None:
    """`souq serve` as a user runs it: it names the sandbox's key, and with FORWARDED_ALLOW_IPS
    unset an X-Forwarded-For from the peer changes nothing."""
    port = _free_port()
    key = "sk_test_" + "k" * 32
    env = {
        **os.environ,
        "DATABASE_URL": live.settings.database_url,
        "SECRET_KEY": live.settings.secret_key.get_secret_value(),
        "SANDBOX_API_KEY": key,
        "SOUQ_DATA_DIR": str(live.settings.data_dir),
        "SANDBOX_DB_PATH": str(Path(live.settings.sandbox_db_path).with_name("serve.sqlite3")),
        "LOGIN_ADDRESS_MAX_FAILURES": "2",
        **{name.upper(): str(value) for name, value in FAST_HASHING.items()},
    }
    for name in ("APP_URL", "NEXT_PUBLIC_APP_URL", "STRIPE_SECRET_KEY", "FORWARDED_ALLOW_IPS"):
        env.pop(name, None)
    server = subprocess.Popen(
        [sys.executable, "-m", "souq.cli", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "serve did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=url, timeout=30) as client:
            statuses = [
                client.post(
                    "/api/auth/login",
                    json={"email": f"nobody{n}@example.com", "password": "wrong-password"},
                    headers={"X-Forwarded-For": f"10.0.0.{n}"},
                ).status_code
                for n in range(3)
            ]
        # Two failures spend 127.0.0.1's budget whatever address each request claimed.
        assert statuses == [401, 401, 429]
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
        # Other tests log in from 127.0.0.1 without a forwarded address: give it back.
        with live.db.begin() as conn:
            conn.execute(sa.delete(Throttle).where(Throttle.key == "login-addr:127.0.0.1"))
    assert key in output and f"http://127.0.0.1:{port}/_sandbox" in output
