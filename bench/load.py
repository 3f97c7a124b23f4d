"""One load process: `python -m bench.load JOB.json OUT.json` (started by harness.run_load).

A small HTTP/1.1 client on raw asyncio streams (uvloop when installed), keep-alive
connections, one request in flight per connection. It records each request's latency and
status and its own CPU time, so the report can show that the client was not the bottleneck.
Webhook bodies are signed here as Stripe signs them: `t=<unix time>,v1=HMAC-SHA256(secret,
"<t>.<body>")`."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import resource
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit


def encode(job: dict[str, Any], request: dict[str, Any], host: str) -> bytes:
    body = request.get("body")
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode() if body else b""
    headers = {"Host": host, "User-Agent": "souq-bench", **request.get("headers", {})}
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
        headers["Content-Length"] = str(len(raw))
    if job.get("sign_secret") and request.get("sign"):
        stamp = int(time.time())
        digest = hmac.new(
            job["sign_secret"].encode(), f"{stamp}.".encode() + raw, hashlib.sha256
        ).hexdigest()
        headers["Stripe-Signature"] = f"t={stamp},v1={digest}"
    head = f"{request.get('method', 'GET')} {request['path']} HTTP/1.1\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return head.encode() + b"\r\n" + raw


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, keep-alive) after reading the whole response."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked, close = 0, False, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, not close


async def main(job: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(job["url"])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    raw = [encode(job, request, f"{host}:{port}") for request in job["requests"]]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    next_index = 0
    duration = job.get("duration")
    deadline = job["start_at"] + duration if duration else None

    async def connection(offset: int) -> None:
        nonlocal next_index, errors
        reader, writer = await asyncio.open_connection(host, port)
        await asyncio.sleep(max(0.0, job["start_at"] - time.time()))
        position = offset
        while True:
            if deadline is None:
                if next_index >= len(raw):
                    break
                payload, next_index = raw[next_index], next_index + 1
            else:
                if time.time() >= deadline:
                    break
                payload = raw[position % len(raw)]
                position += 1
            started = time.perf_counter()
            try:
                writer.write(payload)
                status, keep_alive = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError):
                errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] += 1
            if not keep_alive:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
        writer.close()

    connections = max(1, job["connections"])
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    tasks = [asyncio.ensure_future(connection(i)) for i in range(connections)]
    await asyncio.sleep(max(0.0, job["start_at"] - time.time()))
    started = time.time()
    await asyncio.gather(*tasks)
    ended = time.time()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "requests": len(latencies),
        "statuses": dict(statuses),
        "latencies_ms": latencies,
        "started": started,
        "ended": ended,
        "cpu": (cpu_after.ru_utime + cpu_after.ru_stime)
        - (cpu_before.ru_utime + cpu_before.ru_stime),
        "errors": errors,
    }


if __name__ == "__main__":
    job = json.loads(open(sys.argv[1]).read())  # noqa: SIM115 - read once, closed at exit
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(main(job))
    with open(sys.argv[2], "w") as out:
        json.dump(result, out)
