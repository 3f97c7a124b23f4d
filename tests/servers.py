"""Another server of the app next to the session's `live` one: the same database and the same
Stripe sandbox, with some settings changed, for tests of what a setting does."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from souq.app import create_app
from souq.config import Settings


@contextmanager
def serve(make_settings: Callable[[str], Settings]) -> Iterator[str]:
    """Serve create_app(make_settings(url)) on a free port; yields its URL. uvicorn's own
    proxy handling is off, as `souq serve` has it unless FORWARDED_ALLOW_IPS is set: the app
    alone decides whom to believe."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(make_settings(url))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", proxy_headers=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        thread.join(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def beside(live: Any, **overrides: Any) -> Iterator[str]:
    """A server like `live` (its database, and its Stripe sandbox through the SDK) with
    `overrides` to its settings."""

    def settings(url: str) -> Settings:
        changed: Settings = live.settings.model_copy(update={"app_url": url, **overrides})
        return changed

    with serve(settings) as url:
        yield url
