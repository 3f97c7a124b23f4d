"""The log scan fails a test run whose logs hold a secret or an API token (tests/logscan.py,
active in every run of this suite): run it on small suites of its own."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


LEAKY = """
import logging
from tests import logscan

def test_logs_a_secret():
    logscan.watch("SECRET_KEY", "s3cr3t-value-for-the-scan")
    logging.getLogger("souq.somewhere").warning("signing with %s", "s3cr3t-value-for-the-scan")

def test_logs_a_token():
    logging.getLogger("souq.auth").info("issued souq_%s", "A" * 43)
"""

CLEAN = """
import logging

def test_logs_nothing_secret():
    logging.getLogger("souq.somewhere").warning("order 12 paid")
"""


def run_suite(tmp_path: Path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_suite.py").write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.logscan", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path), *options],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        timeout=300,
        check=False,
    )  # fmt: skip


WORKERS: list[list[str]] = [[]] + ([["-n", "2"]] if importlib.util.find_spec("xdist") else [])


@pytest.mark.slow
@pytest.mark.parametrize("options", WORKERS, ids=lambda o: " ".join(o) or "one process")
def test_a_leak_fails_the_run_and_names_what_leaked(tmp_path: Path, options: list[str]) -> None:
    result = run_suite(tmp_path, LEAKY, *options)
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "2 passed" in result.stdout  # the tests themselves passed: the scan failed the run
    assert "LEAKED: SECRET_KEY in a record of logger 'souq.somewhere'" in result.stdout
    assert "LEAKED: an API token in a record of logger 'souq.auth'" in result.stdout
    assert "s3cr3t-value-for-the-scan" not in result.stdout  # named, never shown


@pytest.mark.slow
def test_clean_logs_pass(tmp_path: Path) -> None:
    result = run_suite(tmp_path, CLEAN)
    assert result.returncode == 0, result.stdout
