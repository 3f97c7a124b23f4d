"""`souq sandbox` as a user runs it: its own API key, given, from the environment, or generated
once and kept beside its database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import stripe

from tests.sandbox.conftest import free_port, make_client


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Start `souq sandbox`, wait until it answers, and return (its URL, what it printed)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {k: v for k, v in os.environ.items() if k != "SANDBOX_API_KEY"}
    environment |= {"SANDBOX_DB_PATH": str(tmp_path / "sandbox.sqlite3"), **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "souq.cli", "sandbox", "--port", str(port), *args],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/v1/balance", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("souq sandbox did not start") from None
                time.sleep(0.1)
        _check_only_key_works(url, _expected_key(tmp_path, args, env))
    finally:
        process.kill()  # no graceful shutdown needed: the key was printed and kept at start
        printed, _ = process.communicate(timeout=30)
    return url, printed


def _expected_key(tmp_path: Path, args: tuple[str, ...], env: dict[str, str] | None) -> str:
    if "--api-key" in args:
        return args[args.index("--api-key") + 1]
    if env and "SANDBOX_API_KEY" in env:
        return env["SANDBOX_API_KEY"]
    return (tmp_path / "sandbox.api_key").read_text().strip()


def _check_only_key_works(url: str, key: str) -> None:
    assert make_client(url, key).v1.balance.retrieve().object == "balance"
    with pytest.raises(stripe.AuthenticationError):
        make_client(url, "sk_test_anything_else").v1.balance.retrieve()


@pytest.mark.slow
def test_generated_key_is_kept_beside_the_database(tmp_path: Path) -> None:
    _, printed = _serve(tmp_path)
    key_file = tmp_path / "sandbox.api_key"
    key = key_file.read_text().strip()
    assert key.startswith("sk_test_") and len(key) >= 40
    assert key in printed
    assert key_file.stat().st_mode & 0o077 == 0
    _, again = _serve(tmp_path)
    assert key in again and key_file.read_text().strip() == key


@pytest.mark.slow
def test_key_from_the_option_or_the_environment(tmp_path: Path) -> None:
    _, printed = _serve(tmp_path, "--api-key", "sk_test_from_the_option")
    assert "sk_test_from_the_option" in printed
    _, printed = _serve(tmp_path, env={"SANDBOX_API_KEY": "sk_test_from_the_environment"})
    assert "sk_test_from_the_environment" in printed
    assert not (tmp_path / "sandbox.api_key").exists()
