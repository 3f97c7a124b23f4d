"""The `souq` command in a process of its own, started cheaply.

Starting Python and importing the application (SQLAlchemy, FastAPI, the Stripe SDK, every model)
costs a `souq` command one to two seconds of CPU before it does anything, and the suite runs
the command a hundred times. So each test process keeps a fork server (multiprocessing's
`forkserver`: a single-threaded process that has imported those libraries once) and every
command is a fresh fork of it, with the command's own environment, arguments, stdout and
stderr, exit status and timeout, entering at `souq.cli:app` as the installed `souq` script
does. `souq.cli` itself is imported in each fork, after its environment is set (its console
reads the terminal width then). A few tests still start `python -m souq.cli` from nothing
(tests/test_foundation.py, the worker and server processes), which covers the start-up itself.

This module imports nothing of the application: the fork server loads it, not the test
process."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from functools import cache
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

# What the commands import, loaded once by the fork server (souq.cli is not: see above).
PRELOAD = [
    "souq.app",
    "souq.models",
    "souq.demo",
    "souq.senders",
    "souq.ledger.disputes",
    "souq.ledger.reports",
    "souq.payments.reconcile",
    "souq.payments.sweep",
    "souq.payments.tasks",
    "souq.payments.transfers",
    "typer",
    "rich.console",
    "rich.progress",
    "rich.table",
]


@cache
def _forkserver() -> ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def stop() -> None:
    """Stop this process's fork server, if it started, and wait for it: its commands' CPU time
    then counts in this process's children, as a subprocess's would."""
    if _forkserver.cache_info().currsize:
        from multiprocessing import forkserver

        server: Any = forkserver._forkserver
        # Its own stop closes our end of its "alive" pipe and waits for it to see EOF, which
        # never comes while another copy of that end lives on in this process (seen: a run
        # hung here for ten minutes). Terminated first, it is only reaped.
        if server._forkserver_pid is not None:
            os.kill(server._forkserver_pid, signal.SIGTERM)
        server._stop()
        _forkserver.cache_clear()


def run_souq(
    args: list[str], env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """`souq *args` with exactly the environment `env`, as `subprocess.run(..., text=True,
    capture_output=True)` reports it."""
    with tempfile.TemporaryDirectory(prefix="souq-cli-") as folder:
        out, err = Path(folder, "stdout"), Path(folder, "stderr")
        process = _forkserver().Process(target=_main, args=(args, dict(env), str(out), str(err)))
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired(["souq", *args], timeout)
        return subprocess.CompletedProcess(
            [sys.executable, "-m", "souq.cli", *args],
            process.exitcode,
            out.read_text(),
            err.read_text(),
        )


def _main(args: list[str], env: dict[str, str], out: str, err: str) -> None:
    """In the fork: the command's environment and output files, then the `souq` script."""
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdin = open(os.devnull)  # noqa: SIM115
    sys.argv = [str(Path(sys.executable).parent / "souq"), *args]
    from souq.cli import app

    # Exits (SystemExit) with the command's status; multiprocessing makes it the exit code.
    app(prog_name="souq")
