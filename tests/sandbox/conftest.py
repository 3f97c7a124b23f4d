"""The sandbox over real HTTP: uvicorn in a background thread, the official SDK as its client,
and a small webhook receiver that records what it is sent."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import stripe
import uvicorn
from starlette.types import ASGIApp

from souq.sandbox import Sandbox, SandboxConfig
from tests.sandbox.support import Receiver, SandboxServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bound_socket() -> socket.socket:
    """A socket bound to a free port of 127.0.0.1 and held from then on, so that no other
    process (a parallel test worker) can take the port before uvicorn serves on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def url_of(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


class ThreadedServer:
    """`app` served in a thread, on a bound socket (or on a port, for a server restarted on the
    same port)."""

    def __init__(self, app: ASGIApp, where: int | socket.socket) -> None:
        port = where if isinstance(where, int) else 0
        config = uvicorn.Config(app, port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        sockets = None if isinstance(where, int) else [where]
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": sockets}, daemon=True
        )

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def make_client(url: str, key: str = "sk_test_souq") -> stripe.StripeClient:
    return stripe.StripeClient(
        key,
        base_addresses={"api": url},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
        max_network_retries=0,
    )


def local_sandbox(db_path: Path, url: str = "http://sandbox.test", **config: Any) -> Sandbox:
    """A sandbox of its own (no background delivery unless asked), for tests that need a
    configuration of their own."""
    config.setdefault("deliver_webhooks_in_background", False)
    return Sandbox(SandboxConfig(db_path=db_path, public_url=url, **config))


@contextmanager
def served_sandbox(db_path: Path, **config: Any) -> Iterator[tuple[Sandbox, str]]:
    """`local_sandbox` served over HTTP on a free port: (the sandbox, its URL)."""
    sock = bound_socket()
    url = url_of(sock)
    sandbox = local_sandbox(db_path, url, **config)
    with ThreadedServer(sandbox.app, sock):
        yield sandbox, url


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    sock = bound_socket()
    with ThreadedServer(receiver.app, sock):
        receiver.url = url_of(sock)
        yield receiver


@pytest.fixture(scope="session")
def sandbox_server(
    tmp_path_factory: pytest.TempPathFactory, webhook_receiver: Receiver
) -> Iterator[SandboxServer]:
    sock = bound_socket()
    url = url_of(sock)
    db_path: Path = tmp_path_factory.mktemp("sandbox") / "sandbox.db"
    sandbox = Sandbox(
        SandboxConfig(db_path=db_path, public_url=url, deliver_webhooks_in_background=False)
    )
    with ThreadedServer(sandbox.app, sock):
        server = SandboxServer(
            url=url, client=make_client(url), sandbox=sandbox, receiver=webhook_receiver
        )
        server.platform_secret = sandbox.ensure_webhook_endpoint(
            f"{webhook_receiver.url}/platform", connect=False
        )
        server.connect_secret = sandbox.ensure_webhook_endpoint(
            f"{webhook_receiver.url}/connect", connect=True
        )
        yield server
        server.http.close()


@pytest.fixture(autouse=True)
def _clean_sandbox(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts from an empty sandbox (webhook endpoints survive a reset)."""
    if "sandbox_server" in request.fixturenames:
        server: SandboxServer = request.getfixturevalue("sandbox_server")
        server.sandbox.reset()
        server.receiver.clear()
    yield
