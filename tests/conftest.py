"""The fixtures every database test shares: a real server on a free port, serving the app with
the Stripe sandbox embedded, on SQLite and (when TEST_DATABASE_URL is set) on PostgreSQL.

`make test` runs the suite in parallel with pytest-xdist; plain `pytest` runs it in one process.
Either way each process (xdist worker) has servers of its own (see tests/servers.py): one per
engine, shared by the process's tests, which run one after another, so a test never sees another
test's requests in flight, only the data earlier tests left behind. Tests create the data they
need and look at that. A test that sweeps over everything (`souq reconcile`, `souq stripe
sync-accounts`, `souq events list`) or needs the demo's fixed logins is marked
`@pytest.mark.fresh_server`: its `live` (and `cli`) is a server with an empty database and
sandbox of its own.
"""

from __future__ import annotations

import inspect
import os
import ssl
import uuid
from collections.abc import Iterator

import pytest
from httpx._config import create_ssl_context
from httpx._transports import default as httpx_transport
from httpx._types import CertTypes

from tests import cli_process
from tests.servers import (
    ENGINES,
    FAST_HASHING,
    Cli,
    LiveServer,
    Servers,
    cli_for,
    migrate,
    sync_url,
)

__all__ = ["ENGINES", "FAST_HASHING", "Cli", "LiveServer", "migrate", "sync_url"]
pytest_plugins = ["tests.logscan"]  # fails the run if a secret or API token reached the logs


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fresh_server: give the test a server, database and sandbox of its own"
    )
    config.addinivalue_line(
        "markers", "slow: the test runs for many seconds (started early, see run_slow_first)"
    )


# What a test costs, roughly, by its markers and fixtures: the schemathesis runs (tens of
# seconds of fuzzing), tests marked `slow`, tests with servers of their own (marked, or taking
# `servers` to start some), tests running the `souq` command or driving the browser. Anything
# else counts 1; a test that is several of these counts their sum.
COSTS: tuple[tuple[str, int], ...] = (
    ("fuzzed", 100),
    ("slow", 30),
    ("fresh_server", 10),
    ("servers", 10),
    ("cli", 5),
    ("browsing", 5),
)


def cost_of(item: pytest.Item) -> int:
    names = {mark.name for mark in item.iter_markers()}
    if isinstance(item, pytest.Function):
        # `servers` is in every live test's closure (through `live`): only the tests that ask
        # for it themselves start servers of their own.
        names |= set(item.fixturenames) - {"servers"}
        names |= set(inspect.signature(item.function).parameters) & {"servers"}
    return max(sum(cost for name, cost in COSTS if name in names), 1)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    run_slow_first(items, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def run_slow_first(items: list[pytest.Item], workers: int) -> None:
    """Order the tests so that no worker is left running a long test alone at the end.

    `--dist worksteal` first hands each of the `workers` one contiguous slice of the collected
    tests (the first len//n, then the same of what is left), and an idle worker later steals the
    back half of the longest queue. So the costly tests are dealt out over the slices, each
    to the slice with the least cost so far, and put at the front of their slice; the cheap
    ones fill the rest in their collected order (which keeps each engine's tests together, so
    a worker rarely needs a server on the other engine). Every worker collects the same order:
    it depends only on the collection and the worker count."""
    costly = sorted((item for item in items if cost_of(item) > 1), key=cost_of, reverse=True)
    cheap = [item for item in items if cost_of(item) == 1]
    sizes, left = [], len(items)
    for index in range(workers):
        sizes.append(left // (workers - index))
        left -= sizes[-1]
    slices: list[list[pytest.Item]] = [[] for _ in sizes]
    loads = [0] * len(sizes)
    for item in costly:
        open_slices = [i for i, size in enumerate(sizes) if len(slices[i]) < size]
        chosen = min(open_slices, key=lambda i: loads[i])
        slices[chosen].append(item)
        loads[chosen] += cost_of(item)
    rest = iter(cheap)
    for index, size in enumerate(sizes):
        slices[index].extend(next(rest) for _ in range(size - len(slices[index])))
    items[:] = [item for chosen in slices for item in chosen]


@pytest.fixture(scope="session", autouse=True)
def _one_default_tls_context() -> Iterator[None]:
    """httpx parses the whole CA bundle into a new TLS context for every client (~30 ms), and the
    suite opens thousands of clients, all speaking plain HTTP to 127.0.0.1: the default context is
    built once and shared (an SSL context is safe to share), any other is built as asked."""
    shared = create_ssl_context()

    def default_once(
        verify: ssl.SSLContext | str | bool = True,
        cert: CertTypes | None = None,
        trust_env: bool = True,
    ) -> ssl.SSLContext:
        if verify is True and cert is None and trust_env:
            return shared
        return create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx_transport, "create_ssl_context", default_once)
        yield


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """This process's servers and databases; every database is dropped at the end."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    pool = Servers(f"{worker}_{uuid.uuid4().hex[:8]}")
    try:
        yield pool
    finally:
        pool.close()
        cli_process.stop()


@pytest.fixture(scope="session", params=ENGINES)
def database_engine(request: pytest.FixtureRequest) -> str:
    """The engine a database test runs on: every such test runs once per engine."""
    engine: str = request.param
    return engine


@pytest.fixture(scope="session")
def shared_live(database_engine: str, servers: Servers) -> LiveServer:
    """This process's server on the engine, for fixtures broader than one test."""
    return servers.shared(database_engine)


@pytest.fixture(scope="session")
def database_url(shared_live: LiveServer) -> str:
    """The migrated database of the shared server."""
    return shared_live.settings.database_url


@pytest.fixture
def live(
    request: pytest.FixtureRequest, database_engine: str, servers: Servers
) -> Iterator[LiveServer]:
    """The app on a real socket, with the sandbox embedded at /_sandbox: this process's shared
    server, or one of the test's own when it is marked `fresh_server`."""
    if request.node.get_closest_marker("fresh_server") is None:
        yield servers.shared(database_engine)
        return
    with servers.fresh(database_engine) as server:
        yield server


@pytest.fixture
def cli(live: LiveServer) -> Cli:
    """Run the `souq` command as a user would, against the live server's database and Stripe."""
    return cli_for(live)
