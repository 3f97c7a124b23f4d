"""What every answer carries: a body limit answered 413 before a huge body is read, the
security headers, the methods a path allows, and an OpenAPI description in the error shape."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import anonymous, api_user, error_code

LIMIT = 1_048_576  # REQUEST_MAX_BODY_BYTES (default)


def raw_exchange(live: Any, head: bytes, body_parts: list[bytes]) -> bytes:
    """Send a request by hand (so the body may be a lie about its length, or never end) and
    read the answer the server gives before the body is complete."""
    parts = urlsplit(live.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(head)
        for part in body_parts:
            sock.sendall(part)
        answer = b""
        while b"\r\n\r\n" not in answer or not _complete(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def test_a_50_mb_webhook_is_refused_from_its_content_length(live: Any) -> None:
    head = (
        b"POST /api/stripe/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Stripe-Signature: t=1,v1=00\r\nContent-Length: 52428800\r\n\r\n"
    )
    # Only a few bytes of the promised 50 MB are ever sent: the answer comes anyway.
    answer = raw_exchange(live, head, [b'{"id": "evt_'])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code":"payload_too_large"' in answer
    assert b"x-content-type-options: nosniff" in answer.lower()


def test_a_streamed_body_is_cut_off_at_the_limit(live: Any) -> None:
    head = (
        b"POST /api/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 65536
    # 2 MB sent in chunks and no final chunk: the body never ends, the answer still comes.
    parts = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(32)]
    answer = raw_exchange(live, head, parts)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"code":"payload_too_large"' in answer


@pytest.mark.parametrize("path", ["/api/stores", "/api/stripe/connect/webhook", "/login"])
def test_bodies_over_the_limit_are_413_in_the_one_error_shape(live: Any, path: str) -> None:
    with api_user(live) as account:
        response = account.client.post(
            path, content=b"{" + b" " * LIMIT + b"}", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"


def test_bodies_under_the_limit_are_read(live: Any) -> None:
    with api_user(live) as account:
        description = "d" * 19_000
        response = account.client.post(
            "/api/stores", json={"name": "Under the limit", "country": "GB"}
        )
        assert response.status_code == 201
        listing = account.client.post(
            f"/api/stores/{response.json()['id']}/listings",
            json={"name": "Long", "price": "1.00", "currency": "gbp", "description": description},
        )
        assert listing.status_code == 201, listing.text


@pytest.mark.parametrize(
    "path", ["/", "/login", "/shop", "/api/listings", "/api/me", "/no/such/page", "/healthz"]
)
def test_every_answer_carries_the_security_headers(live: Any, path: str) -> None:
    with anonymous(live) as client:
        response = client.get(path)
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    policy = headers["content-security-policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'none'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ):
        assert directive in policy, policy
    assert "https://checkout.stripe.com" in policy  # our forms lead there through redirects
    if path == "/api/listings":
        # The public catalogue is the same for every caller: kept, but asked again (its ETag).
        assert headers["cache-control"] == "no-cache"
        assert headers["etag"]
    elif path.startswith("/api/"):
        assert headers["cache-control"] == "no-store"


def test_the_sandbox_pages_and_docs_carry_them_too(live: Any) -> None:
    with anonymous(live) as client:
        sandbox = client.get("/_sandbox/checkout/cs_test_nothing")
        docs = client.get("/docs")
    assert sandbox.headers["x-frame-options"] == "DENY"
    # A javascript: link rendered on a sandbox page cannot run: no script may.
    assert "script-src 'none'" in sandbox.headers["content-security-policy"]
    assert docs.status_code == 200
    assert "cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    assert docs.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/stores/1/members", {"GET"}),
        ("DELETE", "/api/stores/1", {"GET", "PATCH"}),
        ("OPTIONS", "/api/listings/1", {"GET", "PATCH", "DELETE"}),
        ("PUT", "/api/auth/tokens", {"GET", "POST"}),
        ("GET", "/api/auth/logout", {"POST"}),
    ],
)
def test_405_names_every_method_the_path_allows(
    live: Any, method: str, path: str, allowed: set[str]
) -> None:
    with anonymous(live) as client:
        response = client.request(method, path)
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"
    assert set(response.headers["allow"].replace(" ", "").split(",")) - {"HEAD"} == allowed


def test_the_openapi_description_documents_errors_in_the_one_shape(live: Any) -> None:
    with anonymous(live) as client:
        spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            if operation.get("parameters") or "requestBody" in operation:
                assert "422" in responses, (method, path)
            if method in ("post", "patch"):
                assert "413" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith("4"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema["$ref"].endswith("/ErrorBody"), (method, path, status)
    checkout = spec["paths"]["/api/stripe/checkout/create"]["post"]["responses"]
    assert {"404", "409", "422", "429", "502", "503"} <= set(checkout)
    # Webhooks speak Stripe's protocol, not the API's: not part of the description.
    assert "/api/stripe/webhook" not in spec["paths"]
