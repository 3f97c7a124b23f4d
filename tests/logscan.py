"""A pytest plugin: keep every log record of the run and fail the run if a secret or an API
token appears in any of them.

The secrets are those of every app made during the run (SECRET_KEY, the webhook signing
secrets, the sandbox's API key: seen where the app's Stripe client is made from its final
settings) plus any value passed to `watch()`; API tokens are recognised
by their shape (`souq_` and 40-odd URL-safe characters), so every token issued during the run
is covered without being registered. Records are kept at INFO and above (what a production
log keeps). Under pytest-xdist each worker scans its own records and hands its findings to the
controller, which fails the run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator
from typing import Any

import pytest

TOKEN = re.compile(r"souq_[A-Za-z0-9_-]{30,}")
MIN_SECRET_LENGTH = 8
OUTPUT_KEY = "logscan_findings"
COUNT_KEY = "logscan_records"


class _Keeper(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.texts: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a record whose arguments do not format: keep what it has
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.texts.append((record.name, text))


_keeper = _Keeper()
_secrets: dict[str, str] = {}
_from_workers: list[str] = []
_counted_by_workers: list[int] = []


def watch(name: str, value: str | None) -> None:
    """Fail the run if `value` (a secret named `name`) is ever logged."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        _secrets[value] = name


def _watch_settings(settings: Any) -> None:
    for name in ("secret_key", "stripe_webhook_secret", "stripe_connect_webhook_secret",
                 "sandbox_api_key", "stripe_secret_key"):  # fmt: skip
        value = getattr(settings, name, None)
        watch(name.upper(), value.get_secret_value() if value is not None else None)
    for value in getattr(settings, "stripe_webhook_secrets_previous", []):
        watch("STRIPE_WEBHOOK_SECRETS_PREVIOUS", value.get_secret_value())


def findings() -> list[str]:
    """What leaked, where: the secret's name and the logger, never the secret itself."""
    found: list[str] = []
    for logger, text in _keeper.texts:
        for value, name in _secrets.items():
            if value in text:
                found.append(f"{name} in a record of logger {logger!r}")
        if TOKEN.search(text):
            found.append(f"an API token in a record of logger {logger!r}")
    return sorted(set(found))


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    root.addHandler(_keeper)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    # Every app (the shared servers, fresh ones, second servers) makes its Stripe client from
    # its final settings: watch the secrets there, whoever made the app.
    from souq.payments.stripe import StripeGateway

    made = StripeGateway.__init__

    def watching(self: StripeGateway, settings: Any) -> None:
        _watch_settings(settings)
        made(self, settings)

    StripeGateway.__init__ = watching  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    # uvicorn configures its own loggers (not propagating to the root) as a server starts.
    for name in ("uvicorn", "uvicorn.access"):
        handlers = logging.getLogger(name).handlers
        if _keeper not in handlers:
            handlers.append(_keeper)
    return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist, on the controller: collect what a worker found."""
    output = getattr(node, "workeroutput", {})
    _from_workers.extend(output.get(OUTPUT_KEY, []))
    _counted_by_workers.append(int(output.get(COUNT_KEY, 0)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    found = findings()
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller decides
        workeroutput[OUTPUT_KEY] = found
        workeroutput[COUNT_KEY] = len(_keeper.texts)
        return
    found = sorted(set(found) | set(_from_workers))
    config.stash[_found_key] = found
    if found and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_found_key = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    found = config.stash.get(_found_key, [])
    if found:
        terminalreporter.section("logscan: secrets in the logs", red=True)
        for line in found:
            terminalreporter.line(f"LEAKED: {line}", red=True)
    elif not hasattr(config, "workeroutput"):
        records = len(_keeper.texts) + sum(_counted_by_workers)
        terminalreporter.line(f"logscan: {records} log records, no secret in them")
