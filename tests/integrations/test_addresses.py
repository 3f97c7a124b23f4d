"""Where a delivery connects: the host is resolved once, every address is checked, and the
request goes to a checked address with the URL's own Host, so a DNS answer that changes after
the check (DNS rebinding) cannot send it elsewhere. A resolver that answers differently on
each call cannot run in a test without taking over the machine's DNS, so these tests put one
in front of `socket.getaddrinfo` (what the event loop's resolver calls) and send through the
real delivery code to a real receiver."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import threading
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from standardwebhooks import Webhook

from souq.config import Settings
from souq.errors import InvalidInput
from souq.integrations import addresses
from souq.integrations.delivery import Request, Result, send
from souq.integrations.schemas import URL_PATTERN
from souq.integrations.signing import new_secret
from tests.integrations.test_webhooks import verified
from tests.notifications.support import Receiver, receiver

T = TypeVar("T")
REBINDING = "rebinding.example"
real_getaddrinfo = socket.getaddrinfo


class Resolver:
    """Answers for REBINDING from `answers`, one list per call (the last repeats); every other
    name goes to the real resolver."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != REBINDING:
            return real_getaddrinfo(host, port, *args, **kwargs)
        self.calls += 1
        addresses_ = self.answers[min(self.calls, len(self.answers)) - 1]
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (a, int(port), 0, 0) if ":" in a else (a, int(port)),
            )
            for a in addresses_
        ]


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


def run(work: Coroutine[Any, Any, T]) -> T:
    # The standard loop: its getaddrinfo calls socket.getaddrinfo, where the resolver sits.
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        return runner.run(work)


def settings(*, production: bool) -> Settings:
    return Settings(
        _env_file=None, environment="test", webhook_allow_private_addresses=not production
    )


def deliver(url: str, secret: str, *, production: bool = False) -> Result:
    request = Request(1, 1, "token", url, b'{"id":"evt_1","type":"order.paid"}', [secret], "evt_1")
    return run(send(request, settings(production=production)))


def test_a_delivery_connects_to_the_address_it_checked(
    hooks: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Checked: the receiver's address. Any later answer: an address where nothing listens.
    resolver = Resolver(["127.0.0.1"], ["127.0.0.2"])
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    port = int(hooks.url.split(":")[2].split("/")[0])
    secret = new_secret()
    result = deliver(f"http://{REBINDING}:{port}/hooks", secret)
    assert result.ok, result
    assert resolver.calls == 1
    [got] = hooks.events()
    assert got.headers["host"] == f"{REBINDING}:{port}"
    assert verified(secret, got)["id"] == "evt_1"


def test_every_resolved_address_is_checked_and_none_is_contacted_if_one_is_private(
    hooks: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = Resolver(["93.184.216.34", "127.0.0.1"])
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    port = int(hooks.url.split(":")[2].split("/")[0])
    result = deliver(f"http://{REBINDING}:{port}/hooks", new_secret(), production=True)
    assert result.error is not None and result.error.startswith(
        f"refused: the host {REBINDING} resolves to a loopback, link-local or private address "
        "(127.0.0.1)"
    )
    assert result.status_code is None and hooks.events() == []
    with pytest.raises(InvalidInput) as refused:
        run(addresses.check_url(f"https://{REBINDING}/hooks", allow_private=False))
    assert refused.value.code == "url_not_allowed"


def test_the_next_checked_address_is_tried_when_one_does_not_connect(
    hooks: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", Resolver(["127.0.0.2", "127.0.0.1"]))
    port = int(hooks.url.split(":")[2].split("/")[0])
    secret = new_secret()
    assert deliver(f"http://{REBINDING}:{port}/hooks", secret).ok
    assert verified(secret, hooks.events()[0])["type"] == "order.paid"


def test_an_ipv6_literal_receiver_gets_signed_deliveries_where_loopback_is_allowed() -> None:
    with receiver(host="::1") as hooks6:
        secret = new_secret()
        result = deliver(hooks6.url, secret)
        assert result.ok, result
        [got] = hooks6.events()
        assert got.headers["host"] == hooks6.url.split("/")[2]
        assert Webhook(secret).verify(got.body, got.headers)["id"] == "evt_1"
        refused = deliver(hooks6.url, secret, production=True)
        assert (
            refused.error == "refused: the host ::1 resolves to a loopback, link-local or "
            "private address (::1)"
        )
        assert len(hooks6.events()) == 1


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, REBINDING)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_a_https_delivery_names_the_host_for_tls_not_the_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TLS server at the checked address is asked for the URL's host (SNI), which is what
    the certificate is verified against; this one is self-signed, so the delivery fails."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(tmp_path))
    asked: list[str | None] = []
    context.sni_callback = lambda _sock, name, _ctx: asked.append(name)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one() -> None:
        connection, _ = listener.accept()
        with contextlib.suppress(OSError), context.wrap_socket(connection, server_side=True):
            pass

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    monkeypatch.setattr(socket, "getaddrinfo", Resolver(["127.0.0.1"], ["127.0.0.2"]))
    try:
        result = deliver(f"https://{REBINDING}:{port}/hooks", new_secret())
        thread.join(10)
    finally:
        listener.close()
    assert asked == [REBINDING]
    assert result.error is not None and "CERTIFICATE_VERIFY_FAILED" in result.error


@examples(max_examples=300, deadline=None)
@given(st.from_regex(URL_PATTERN, fullmatch=True))
def test_every_bracketed_host_the_schema_admits_is_an_ipv6_address(url: str) -> None:
    """What the OpenAPI pattern lets through is never refused later as a malformed address."""
    rest = url.split("://", 1)[1]
    if rest.startswith("["):
        ipaddress.IPv6Address(rest[1 : rest.index("]")])
