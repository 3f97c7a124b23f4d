"""How `souq serve` runs uvicorn: sockets bound here, one per worker process.

Two things uvicorn's own multi-worker mode gets wrong for us, both measured in bench/:

- Its listening socket is made with protocol 0, so asyncio does not recognise the accepted
  connections as TCP and never sets TCP_NODELAY on them (uvicorn binds the socket itself only
  when `workers > 1`). A keep-alive client then waits for Nagle's algorithm and delayed ACKs,
  ~40 ms per request after the first. Here every listening socket is created as IPPROTO_TCP with
  TCP_NODELAY set, in both modes.
- All workers accept from one shared socket, and whichever worker wakes first takes every
  pending connection, so a few long-lived connections (a proxy's keep-alive pool, a load
  balancer) often all land on one worker while the others idle. Here each worker has its own
  socket bound to the same address with SO_REUSEPORT, and the kernel spreads new connections
  over them by a hash of their addresses.

The supervisor keeps a worker's socket open in the parent, so connections that arrive while a
worker restarts wait in its queue instead of being refused.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn

log = logging.getLogger("uvicorn.error")

# uvicorn's exit code when the app cannot start (import error, bad settings, lifespan
# failure): restarting such a worker would only fail again, so the server stops.
STARTUP_FAILURE = 3


# uvicorn's default accept queue.
BACKLOG = 2048


def listening_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A listening TCP socket for uvicorn (created as IPPROTO_TCP so accepted connections get
    TCP_NODELAY; with `reuse_port`, one of several bound to the same address). It listens from
    here on, so connections the kernel assigns to it queue while its worker (re)starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


@dataclass(frozen=True)
class ServerOptions:
    """What every worker's uvicorn is configured with."""

    app: str
    factory: bool = True
    # The fast event loop and HTTP parser (both pinned dependencies).
    loop: str = "uvloop"
    http: str = "httptools"
    proxy_headers: bool = True
    forwarded_allow_ips: str | None = None
    log_level: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app,
            factory=self.factory,
            loop=self.loop,
            http=self.http,
            proxy_headers=self.proxy_headers,
            forwarded_allow_ips=self.forwarded_allow_ips,
            log_level=self.log_level,
            **self.extra,
        )


def _run_worker(options: ServerOptions, sock: socket.socket) -> None:
    uvicorn.Server(options.config()).run(sockets=[sock])


def serve(options: ServerOptions, host: str, port: int, workers: int) -> None:
    """Serve `options.app` on host:port with `workers` processes (1 = in this process)."""
    if workers <= 1:
        sock = listening_socket(host, port, reuse_port=False)
        uvicorn.Server(options.config()).run(sockets=[sock])
        return
    options.config()  # configures logging for the supervisor's own messages
    sockets = [listening_socket(host, port, reuse_port=True) for _ in range(workers)]
    Supervisor(options, sockets).run()


class Supervisor:
    """Starts one worker per socket, restarts a worker that dies, and stops them all on
    SIGINT or SIGTERM."""

    def __init__(self, options: ServerOptions, sockets: list[socket.socket]) -> None:
        self.options = options
        self.sockets = sockets
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[BaseProcess] = []
        self.stopping = threading.Event()

    def _start(self, sock: socket.socket) -> BaseProcess:
        process = self.context.Process(target=_run_worker, args=(self.options, sock))
        process.start()
        log.info("Started worker process [%s]", process.pid)
        return process

    def run(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        log.info("Started parent process [%s]", os.getpid())
        self.workers = [self._start(sock) for sock in self.sockets]
        failed = False
        while not self.stopping.wait(0.5):
            for index, process in enumerate(self.workers):
                if process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error(
                        "Worker process [%s] exited at startup (code %s); stopping",
                        process.pid,
                        process.exitcode,
                    )
                    failed = True
                    self.stopping.set()
                    break
                log.warning(
                    "Worker process [%s] died (code %s); restarting it",
                    process.pid,
                    process.exitcode,
                )
                self.workers[index] = self._start(self.sockets[index])
        self._stop_all()
        if failed:
            raise SystemExit(STARTUP_FAILURE)

    def _stop_all(self) -> None:
        for process in self.workers:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.workers:
            process.join(timeout=max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for sock in self.sockets:
            sock.close()
        log.info("Stopped parent process [%s]", os.getpid())
