"""The ASGI middleware every request passes: who the client really is (forwarded headers only
from trusted proxies), a cap on the request body, and the security headers of every answer."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from souq.config import proxy_entries
from souq.errors import error_body

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The proxies (addresses, networks or `*`) whose forwarded headers are believed."""

    def __init__(self, spec: str) -> None:
        entries = proxy_entries(spec)
        self.everyone = "*" in entries
        self.networks: list[Network] = [
            ipaddress.ip_network(entry, strict=False) for entry in entries if entry != "*"
        ]

    def __bool__(self) -> bool:
        return self.everyone or bool(self.networks)

    def trusts(self, host: str) -> bool:
        if self.everyone:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str) -> str:
        """The client behind a chain of proxies: walking X-Forwarded-For from the right (the
        hop nearest to us), the first address we do not trust. A client can prepend anything
        to the header, so nothing left of an untrusted hop is believed."""
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer


class ProxyHeadersMiddleware:
    """Sets the request's client address and scheme from X-Forwarded-For / X-Forwarded-Proto,
    but only when the peer is a configured proxy (FORWARDED_ALLOW_IPS). Anyone else's forwarded
    headers are ignored, so they cannot pick their own address to dodge a throttle."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.trusted and scope.get("client"):
            peer_host = scope["client"][0]
            if self.trusted.trusts(peer_host):
                headers = _headers(scope["headers"])
                if forwarded_for := headers.get("x-forwarded-for"):
                    scope = {**scope, "client": (self.trusted.client(peer_host, forwarded_for), 0)}
                proto = headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
                if proto in ("http", "https", "ws", "wss"):
                    scheme = {"http": "ws", "https": "wss"} if scope["type"] == "websocket" else {}
                    scope = {**scope, "scheme": scheme.get(proto, proto)}
        await self.app(scope, receive, send)


def client_address(request: Request) -> str | None:
    """The client's address as the proxy middleware resolved it."""
    return request.client.host if request.client else None


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        # Repeated headers are one comma-separated list (RFC 9110 §5.3).
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def payload_too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the request body is larger than {limit} bytes")


class BodySizeLimitMiddleware:
    """Refuses request bodies over `max_bytes` with 413: at once when Content-Length says so,
    else as soon as the streamed body passes the limit, so a huge body is never read in full.

    While streaming, the limit surfaces as an HTTPException(413) from `receive`, which the
    app's error handlers render in the one error shape."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _headers(scope["headers"]).get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await _send_error(send, payload_too_large(self.max_bytes))
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise payload_too_large(self.max_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await _send_error(send, exc)


async def _send_error(send: Send, exc: HTTPException) -> None:
    body = json.dumps(error_body("payload_too_large", exc.detail), separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is not read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


STRIPE_HOSTED_PAGES = ("https://checkout.stripe.com", "https://connect.stripe.com")
DOCS_PATHS = ("/docs", "/redoc")
# Swagger UI and ReDoc load from a CDN and start with an inline script.
DOCS_CDN = "https://cdn.jsdelivr.net"


def content_security_policy(*, form_targets: Iterable[str], docs: bool = False) -> str:
    """The pages use no scripts and inline styles only; forms post to us or (through our
    redirects) to Stripe's hosted pages. /docs and /redoc get the CDN they load from."""
    scripts = f"'self' 'unsafe-inline' {DOCS_CDN}" if docs else "'none'"
    styles = "'self' 'unsafe-inline'" + (
        f" {DOCS_CDN} https://fonts.googleapis.com" if docs else ""
    )
    directives = {
        "default-src": "'self'",
        "script-src": scripts,
        "style-src": styles,
        "img-src": "'self' data:" + (" https:" if docs else ""),
        "font-src": "'self'" + (" https://fonts.gstatic.com" if docs else ""),
        "worker-src": "'self' blob:" if docs else "'none'",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": " ".join(["'self'", *form_targets]),
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def form_targets(stripe_api_base: str | None) -> list[str]:
    """Where our forms may lead: Stripe's hosted pages, or those of a Stripe-compatible server
    named by STRIPE_API_BASE (a standalone sandbox serves its pages at its own origin)."""
    targets = list(STRIPE_HOSTED_PAGES)
    if stripe_api_base:
        parts = urlsplit(stripe_api_base)
        if parts.scheme and parts.netloc:
            targets.append(f"{parts.scheme}://{parts.netloc}")
    return targets


class SecurityHeadersMiddleware:
    """Adds the security headers to every answer (pages, the JSON API, the sandbox's pages)
    unless a route set its own."""

    def __init__(self, app: ASGIApp, *, https: bool, stripe_api_base: str | None = None) -> None:
        self.app = app
        targets = form_targets(stripe_api_base)
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            # Our URLs carry a checkout session id or a cancel token: never send them on.
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
        ]
        if https:
            common.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        self.headers = [
            *common,
            (b"content-security-policy", content_security_policy(form_targets=targets).encode()),
        ]
        self.docs_headers = [
            *common,
            (
                b"content-security-policy",
                content_security_policy(form_targets=targets, docs=True).encode(),
            ),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        extra = self.docs_headers if path.startswith(DOCS_PATHS) else self.headers
        api = path.startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in extra if n not in present]
                if api and b"cache-control" not in present:
                    # API answers are per caller (tokens, orders): no shared cache keeps them.
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
