"""Where webhooks may go: http(s) only, and (in production, unless WEBHOOK_ALLOW_PRIVATE_ADDRESSES)
never to loopback, link-local, private or otherwise non-public addresses, so an endpoint cannot
make Souq reach into its own network (server-side request forgery). Checked at registration and
again before every delivery, on the addresses the name resolves to then."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from souq.errors import InvalidInput

MAX_URL_LENGTH = 2000


def check_url_shape(url: str) -> str:
    """The URL, if it is an absolute http(s) URL with a host and no credentials."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"the URL is longer than {MAX_URL_LENGTH} characters", code="bad_url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidInput(f"not a valid URL: {exc}", code="bad_url") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("only http:// and https:// URLs can receive webhooks", code="bad_url")
    if not parts.hostname:
        raise InvalidInput("the URL has no host", code="bad_url")
    if parts.username or parts.password:
        raise InvalidInput("the URL must not carry credentials", code="bad_url")
    return url


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return sorted({str(info[4][0]) for info in infos})


async def refusal(url: str, allow_private: bool) -> str | None:
    """Why a delivery to `url` is refused, or None. Every address the host resolves to must be
    public (a name with one private address among public ones is refused too)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "only http(s) URLs with a host can receive webhooks"
    if allow_private:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await resolve(parts.hostname, port)
    except OSError as exc:
        return f"the host {parts.hostname} does not resolve: {exc}"
    private = [a for a in addresses if not is_public(a)]
    if private or not addresses:
        return (
            f"the host {parts.hostname} resolves to a loopback, link-local or private address "
            f"({', '.join(private) or 'none'})"
        )
    return None


async def check_url(url: str, allow_private: bool) -> str:
    """Registration: the URL, or a 422 that says why it cannot receive webhooks."""
    check_url_shape(url)
    if reason := await refusal(url, allow_private):
        raise InvalidInput(reason, code="url_not_allowed")
    return url
