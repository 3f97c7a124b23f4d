"""Schemathesis against a live app's /openapi.json: every operation, anonymous and with a
Bearer token, every check on. Any server error, or any answer the description does not allow
(an undocumented status, a valid request refused, an invalid one accepted, a wrong Allow
header...), fails the test; the report names the operation and a curl command reproducing it.

The app runs on a database of its own, on each engine, so what the fuzzer finds depends only
on what it did itself. Bounded to stay fast in CI: a fixed seed and a few examples per
operation; to explore further, set SOUQ_SCHEMATHESIS_SEED and SOUQ_SCHEMATHESIS_EXAMPLES."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from souq.app import create_app
from souq.config import Settings
from tests.conftest import ENGINES, FAST_HASHING, migrate, serve_in_thread
from tests.helpers import PASSWORD, fake_address, unique_email

EXAMPLES = os.environ.get("SOUQ_SCHEMATHESIS_EXAMPLES", "3")
SEED = os.environ.get("SOUQ_SCHEMATHESIS_SEED", "20261129")


@pytest.fixture(scope="module", params=ENGINES)
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A server of its own, on a fresh database of the parameter's engine; its URL."""
    folder = tmp_path_factory.mktemp("fuzzed")
    admin = name = None
    if request.param == "sqlite":
        database_url = f"sqlite:///{folder / 'souq.sqlite3'}"
    else:
        base = make_url(os.environ["TEST_DATABASE_URL"])
        name = f"souq_fuzz_{uuid.uuid4().hex[:10]}"
        admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        database_url = base.set(database=name).render_as_string(hide_password=False)
    migrate(database_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        app_url=url,
        sandbox_db_path=folder / "sandbox.sqlite3",
        secret_key=SecretStr(secrets.token_urlsafe(32)),
        sandbox_api_key=SecretStr("sk_test_" + secrets.token_hex(24)),
        forwarded_allow_ips="127.0.0.1",
        stripe_timeout_seconds=3,
        password_hash_time_cost=FAST_HASHING["password_hash_time_cost"],
        password_hash_memory_kib=FAST_HASHING["password_hash_memory_kib"],
        password_hash_parallelism=FAST_HASHING["password_hash_parallelism"],
    )
    server, thread = serve_in_thread(create_app(settings), sock)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if admin is not None:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_schemathesis(url: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            EXAMPLES,
            "--seed",
            SEED,
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--no-color",
            "--output-truncate",
            "true",
            # The fuzzed requests' own address, so the throttles they trip stay theirs.
            "--header",
            f"X-Forwarded-For: {fake_address()}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert result.returncode == 0, result.stdout[-15_000:] + result.stderr[-3_000:]
    return result.stdout


def test_every_operation_conforms_anonymously(fuzzed: str) -> None:
    assert "Tested:" in run_schemathesis(fuzzed)


def test_every_operation_conforms_with_a_bearer_token(fuzzed: str) -> None:
    import httpx

    email = unique_email("schemathesis")
    with httpx.Client(base_url=fuzzed, timeout=30) as client:
        response = client.post(
            "/api/auth/register",
            json={"email": email, "password": PASSWORD, "name": "Fuzzer"},
            headers={"X-Forwarded-For": fake_address()},
        )
    assert response.status_code == 201, response.text
    output = run_schemathesis(
        fuzzed,
        {
            "SCHEMATHESIS_HOOKS": "tests.security.schemathesis_auth",
            "SOUQ_ST_URL": fuzzed,
            "SOUQ_ST_EMAIL": email,
            "SOUQ_ST_PASSWORD": PASSWORD,
            "SOUQ_ST_TOKEN_ADDRESS": fake_address(),
        },
    )
    assert "Tested:" in output
