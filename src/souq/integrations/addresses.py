"""Where webhooks may go: http(s) only, and (in production, unless WEBHOOK_ALLOW_PRIVATE_ADDRESSES)
never to loopback, link-local, private or otherwise non-public addresses, so an endpoint cannot
make Souq reach into its own network (server-side request forgery). Checked at registration and
again before every delivery.

At delivery the host is resolved once (`pin`), every address it resolves to is checked, and the
request goes to those checked addresses, with the URL's own host in the `Host` header and as the
TLS server name (so certificates are verified against it). A name whose DNS answer changes
between the check and the connection (DNS rebinding) cannot send the request elsewhere: nothing
resolves it a second time. IPv6 literals (`http://[2606:4700::1111]/`) are checked like any
address, including IPv4 addresses embedded in them (`[::ffff:127.0.0.1]`, 6to4, NAT64)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from souq.errors import InvalidInput

MAX_URL_LENGTH = 2000
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 ranges that carry an IPv4 address in their last 32 bits: it must be public too.
_EMBEDDING = tuple(ipaddress.ip_network(n) for n in ("::/96", "64:ff9b::/96", "64:ff9b:1::/48"))


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
    if "[" in parts.netloc:
        try:
            ipaddress.IPv6Address(parts.hostname)
        except ValueError as exc:
            raise InvalidInput(f"not a valid IPv6 address: {exc}", code="bad_url") from exc
    return url


def _embedded(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if any(ip in network for network in _EMBEDDING) and ip != ipaddress.IPv6Address("::"):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def is_public(address: str) -> bool:
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        return all(is_public(str(inner)) for inner in _embedded(ip))
    return True


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order of preference."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Refused(Exception):
    """Why a delivery may not go to its URL."""


@dataclass(frozen=True)
class Pinned:
    """A URL with the checked addresses its host resolved to, to connect to instead of the
    name."""

    url: str
    addresses: list[str]

    @property
    def host(self) -> str:
        hostname = urlsplit(self.url).hostname
        assert hostname is not None
        return hostname

    @property
    def host_header(self) -> str:
        """The URL's host and port as written (what the receiver expects in `Host`)."""
        return urlsplit(self.url).netloc.rsplit("@", 1)[-1]

    def url_at(self, address: str) -> str:
        """The URL with its host replaced by `address` (and its default port made explicit)."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = f"[{address.replace('%', '%25')}]" if ":" in address else address
        return urlunsplit((parts.scheme, f"{host}:{port}", parts.path, parts.query, ""))


async def pin(url: str, allow_private: bool) -> Pinned:
    """Resolve the URL's host once and check every address it resolves to (a name with one
    private address among public ones is refused too). Raises Refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("only http(s) URLs with a host can receive webhooks")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await resolve(parts.hostname, port)
    except OSError as exc:
        raise Refused(f"the host {parts.hostname} does not resolve: {exc}") from exc
    private = [a for a in addresses if not is_public(a)]
    if not addresses or (private and not allow_private):
        raise Refused(
            f"the host {parts.hostname} resolves to a loopback, link-local or private address "
            f"({', '.join(private) or 'none'})"
        )
    return Pinned(url, addresses)


async def refusal(url: str, allow_private: bool) -> str | None:
    """Why a delivery to `url` is refused, or None."""
    if allow_private:
        return None
    try:
        await pin(url, allow_private)
    except Refused as exc:
        return str(exc)
    return None


async def check_url(url: str, allow_private: bool) -> str:
    """Registration: the URL, or a 422 that says why it cannot receive webhooks."""
    check_url_shape(url)
    if reason := await refusal(url, allow_private):
        raise InvalidInput(reason, code="url_not_allowed")
    return url
