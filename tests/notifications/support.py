"""Real parts for the notification tests: an SMTP server (aiosmtpd) and an HTTP receiver,
each on a free port of 127.0.0.1 and started by the test, and a purchase made end to end."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.helpers import StoreTeam
from tests.payments.stripe_helpers import flush, listing, pay, start
from tests.servers import LiveServer


def wait_until(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll `check` until it returns something truthy (the senders run in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Mailbox:
    """What the SMTP server accepted: (envelope recipients, parsed message)."""

    received: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    url: str = ""
    # While set, every message is refused with a permanent error (a broken relay).
    refusing: bool = False

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refusing:
            return "554 relay refused by the test"
        content = envelope.content
        assert isinstance(content, bytes)
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpt, m in self.received if address in rcpt]


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    mailbox.url = f"smtp://127.0.0.1:{port}"
    try:
        yield mailbox
    finally:
        controller.stop()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


@dataclass
class Receiver:
    """An HTTP endpoint that records every request and answers with the next status of
    `statuses` (200 once they are used up)."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self, type_: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if type_ is None or r.json["type"] == type_]


class _HTTPServer6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@contextmanager
def receiver(statuses: list[int] | None = None, *, host: str = "127.0.0.1") -> Iterator[Receiver]:
    """A receiver on a free port of `host` (an IPv4 or IPv6 address)."""
    state = Receiver(statuses=list(statuses or []))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with state.lock:
                state.requests.append(
                    Received({k.lower(): v for k, v in self.headers.items()}, body)
                )
                status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("content-type", "text/plain")
            self.end_headers()
            self.wfile.write(f"answered {status}".encode())

        def log_message(self, *_: Any) -> None:
            pass

    server = (_HTTPServer6 if ":" in host else ThreadingHTTPServer)((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    netloc = f"[{host}]" if ":" in host else host
    state.url = f"http://{netloc}:{server.server_address[1]}/hooks"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def buy(live: LiveServer, team: StoreTeam, buyer: str, *, price: str = "19.99") -> int:
    """A guest buys one item of a new listing, pays, and the webhooks are delivered: the id
    of the paid order."""
    item = listing(team, price=price)
    started = start(live, team, [(item, 1)], email=buyer)
    response = pay(live, started["url"], card="4242424242424242")
    assert response.status_code < 300, response.text
    flush(live)
    order_id: int = started["orderId"]
    status = live.scalar("SELECT payment_status FROM orders WHERE id = :i", i=order_id)
    assert status == "paid", status
    return order_id


def messages(live: LiveServer, **where: Any) -> list[dict[str, Any]]:
    clause = " AND ".join(f"{name} = :{name}" for name in where) or "1 = 1"
    rows = live.rows(
        f"SELECT key, kind, to_email, subject, status, attempts FROM mail_message WHERE {clause} "  # noqa: S608
        "ORDER BY id",
        **where,
    )
    return [dict(row._mapping) for row in rows]
