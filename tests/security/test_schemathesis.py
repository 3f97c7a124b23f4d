"""Schemathesis against a live app's /openapi.json: every operation, anonymous and with a
Bearer token, every check on. Any server error, or any answer the description does not allow
(an undocumented status, a valid request refused, an invalid one accepted, a wrong Allow
header...), fails the test; the report names the operation and a curl command reproducing it.

The app runs on a database of its own, on each engine, so what the fuzzer finds depends only
on what it did itself. Bounded to stay fast in CI: a fixed seed and a few examples per
operation; to explore further, set SOUQ_SCHEMATHESIS_SEED and SOUQ_SCHEMATHESIS_EXAMPLES."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PASSWORD, fake_address, unique_email
from tests.servers import Servers

EXAMPLES = os.environ.get("SOUQ_SCHEMATHESIS_EXAMPLES", "3")
SEED = os.environ.get("SOUQ_SCHEMATHESIS_SEED", "20261129")


@pytest.fixture
def fuzzed(database_engine: str, servers: Servers) -> Iterator[str]:
    """A server of its own, on a fresh database and sandbox of the engine; its URL."""
    with servers.fresh(database_engine) as server:
        yield server.url


ROOT = Path(__file__).resolve().parents[2]


def run_schemathesis(url: str, folder: Path, phases: str, env: dict[str, str] | None = None) -> str:
    """Run it in `folder`, where it keeps its cache (never in the source tree)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--phases",
            phases,
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
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        check=False,
    )
    assert result.returncode == 0, result.stdout[-15_000:] + result.stderr[-3_000:]
    return result.stdout


# Anonymous requests to the authenticated operations stop at the 401 before their input is
# read, so the coverage phase (every boundary of every parameter, the slowest phase) runs only
# with a token, where the input is validated; the other phases run both ways.
ANONYMOUS_PHASES = "examples,fuzzing,stateful"
AUTHENTICATED_PHASES = "examples,coverage,fuzzing,stateful"


def test_every_operation_conforms_anonymously(fuzzed: str, tmp_path: Path) -> None:
    assert "Tested:" in run_schemathesis(fuzzed, tmp_path, ANONYMOUS_PHASES)


@pytest.mark.slow
def test_every_operation_conforms_with_a_bearer_token(fuzzed: str, tmp_path: Path) -> None:
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
        tmp_path,
        AUTHENTICATED_PHASES,
        {
            "SCHEMATHESIS_HOOKS": "tests.security.schemathesis_auth",
            "SOUQ_ST_URL": fuzzed,
            "SOUQ_ST_EMAIL": email,
            "SOUQ_ST_PASSWORD": PASSWORD,
            "SOUQ_ST_TOKEN_ADDRESS": fake_address(),
        },
    )
    assert "Tested:" in output
