"""How `souq serve` serves: TCP_NODELAY on every accepted connection, and long-lived
connections spread over the worker processes (one SO_REUSEPORT socket per worker)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from souq.serving import ServerOptions, listening_socket


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def _get(conn: socket.socket) -> bytes:
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    return conn.recv(4096)


def _accepted_socket_option(server_port: int, client: socket.socket) -> int:
    """TCP_NODELAY of the server's end of `client`'s connection, found among this process's
    file descriptors (the server runs in a thread here)."""
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            dup = socket.socket(fileno=os.dup(int(name)))
            with dup:
                if dup.type != socket.SOCK_STREAM or dup.family != socket.AF_INET:
                    continue
                local, peer = dup.getsockname(), dup.getpeername()
                if local[1] == server_port and peer == client.getsockname():
                    return dup.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    raise AssertionError("the server's end of the connection was not found")


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_accepted_connections_have_tcp_nodelay(loop: str) -> None:
    sock = listening_socket("127.0.0.1", 0, reuse_port=True)
    port = sock.getsockname()[1]
    config = ServerOptions(
        "tests.test_serving:hello", factory=False, loop=loop, log_level="warning"
    ).config()
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port)) as client:
            assert _get(client).startswith(b"HTTP/1.1 200")
            # Without TCP_NODELAY every keep-alive request after the first waits on Nagle.
            assert _accepted_socket_option(port, client) == 1
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _socket_owners(pids: list[int]) -> dict[int, int]:
    """Socket inode -> the pid holding it, for the given processes."""
    owners: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        owners[int(target[8:-1])] = pid
    return owners


def _server_inode(server_port: int, client_port: int) -> int:
    """The inode of the server's end of a loopback connection, from /proc/net/tcp."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        remote_port = int(fields[2].split(":")[1], 16)
        if local_port == server_port and remote_port == client_port:
            return int(fields[9])
    raise AssertionError(f"no server socket for client port {client_port}")


@contextlib.contextmanager
def _souq_serve(tmp_path: Path, workers: int) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'souq.sqlite3'}",
        "STRIPE_SECRET_KEY": "sk_test_serving",
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "SECRET_KEY": "serving-test-secret",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "souq.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process, port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _listening_inodes(port: int) -> set[int]:
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":  # LISTEN
            found.add(int(fields[9]))
    return found


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_serve_spreads_long_lived_connections_over_its_workers(tmp_path: Path) -> None:
    with _souq_serve(tmp_path, workers=2) as (process, port):
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        workers = [pid for pid in _children(process.pid) if _socket_owners([pid])]
        assert len(workers) == 2
        # Each worker accepts on a socket of its own (SO_REUSEPORT), not on one shared socket
        # that whichever worker wakes first drains.
        listening = _listening_inodes(port)
        assert len(listening) == 2
        assert all(
            len([pid for pid in workers if inode in _socket_owners([pid])]) == 1
            for inode in listening
        )
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(24)]
        try:
            for client in clients:
                assert _get(client).startswith(b"HTTP/1.1 200")
            owners = _socket_owners(workers)
            served_by = {owners[_server_inode(port, client.getsockname()[1])] for client in clients}
            # One socket per worker: the kernel hashes connections over both (all 24 on one
            # worker would happen with a chance of 2 in 16 million).
            assert len(served_by) == 2
        finally:
            for client in clients:
                client.close()
