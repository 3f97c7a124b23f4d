"""What every benchmark shares: a fresh PostgreSQL database, the processes under test (a
standalone sandbox, `souq serve`, later `souq worker`), the load generators, wrk and pgbench,
CPU and memory from /proc, the machine's description and the printed report.

Every process is started in its own session and stopped by its own process group id, so a
benchmark never touches a process it did not start."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SOUQ = str(BIN / "souq")
ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
STRIPE_KEY = "sk_test_souq_bench"
WEBHOOK_SECRET = "whsec_souq_bench_platform"
CONNECT_WEBHOOK_SECRET = "whsec_souq_bench_connect"
SECRET_KEY = "souq-bench-secret-key-not-a-placeholder"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def arguments(description: str, **defaults: Any) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small and short")
    parser.add_argument(
        "--workers", type=int, default=defaults.get("workers", 1), help="uvicorn worker processes"
    )
    parser.add_argument(
        "--souq-workers",
        type=int,
        default=0,
        help="`souq worker` processes to start beside the server (once that command exists)",
    )
    parser.add_argument(
        "--clients", type=int, default=1, help="load generator processes (asyncio, one each)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the servers with py-spy during each load (bench/results/profile-*.txt)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for `souq serve` (e.g. DATABASE_POOL_SIZE=32), repeatable",
    )
    return parser


def extra_env(pairs: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        env[name] = value
    return env


# /proc: CPU time and memory of a process tree


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; everything after its ")" is split.
    return raw[raw.rindex(")") + 2 :].split()


def children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    children = children_map()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        if (fields := _stat(pid)) is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def memory_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS since start or the last reset) in KiB."""
    values = {"VmRSS": 0, "VmHWM": 0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def reset_peak_rss(pid: int) -> None:
    # Writing 5 to clear_refs resets VmHWM (Linux 4.0+), so each load phase gets its own peak.
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def machine_busy_seconds() -> float:
    """CPU seconds spent by the whole machine (all cores, every process) since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def postgres_backends(database: str) -> list[int]:
    """The PostgreSQL backends serving one database (their process title names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if title.startswith("postgres: ") and f" {database} " in title:
                pids.append(int(entry.name))
    return pids


@dataclass
class Proc:
    """A process this benchmark started, in its own session (group id = its pid)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def pids(self) -> list[int]:
        return tree(self.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pids())

    def memory(self) -> dict[int, tuple[int, int]]:
        return {pid: memory_kib(pid) for pid in self.pids()}

    def reset_peak(self) -> None:
        for pid in self.pids():
            reset_peak_rss(pid)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)


class Stack(contextlib.ExitStack):
    """Owns everything a benchmark starts; closing it stops the processes and drops the
    databases, also when the benchmark fails halfway."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="souq-bench-"))
        self.callback(shutil.rmtree, self.tmp, True)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        log_path = self.tmp / f"{name}.log"
        with log_path.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=self.tmp,
                start_new_session=True,
            )
        proc = Proc(name, popen, log_path)
        self.callback(proc.stop)
        return proc


# PostgreSQL


@dataclass
class Database:
    name: str
    url: str

    def connect(self) -> psycopg.Connection[Any]:
        # The PostgreSQL server is shared with other users' test runs, which now and then
        # take every connection slot for a moment.
        deadline = time.monotonic() + 60
        while True:
            try:
                return psycopg.connect(self.url, autocommit=True)
            except psycopg.OperationalError as exc:
                if "too many clients" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> None:
        with self.connect() as conn:
            conn.execute(sql, params)

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        with self.connect() as conn:
            row = conn.execute(sql, params).fetchone()
            return row[0] if row else None

    def rows(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[Any]:
        with self.connect() as conn:
            return list(conn.execute(sql, params).fetchall())

    def explain(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> str:
        with self.connect() as conn:
            conn.execute("ANALYZE")
            rows = conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql,
                params,
            ).fetchall()
        return "\n".join(row[0] for row in rows)

    def sessions(self) -> int:
        """Connections ever opened to this database (pg_stat_database.sessions, PostgreSQL 14+):
        the difference over a run is the pool's churn."""
        with self.connect() as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = %s", (self.name,)
            ).fetchone()
        return int(row[0]) if row else 0


def database(stack: Stack, label: str, *, migrate: bool = True) -> Database:
    """A fresh database on the local server, migrated to the newest schema, dropped at the end."""
    from sqlalchemy.engine import make_url

    name = f"souq_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    stack.callback(drop)
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    if migrate:
        result = subprocess.run(
            [SOUQ, "db", "upgrade"],
            env={**os.environ, "DATABASE_URL": url},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"souq db upgrade failed:\n{result.stdout}\n{result.stderr}")
    return Database(name, url)


# The processes under test


@dataclass
class Sandbox:
    url: str
    proc: Proc

    def faults(self, **faults: float) -> None:
        httpx.post(f"{self.url}/_control/faults", json=faults, timeout=10).raise_for_status()

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {STRIPE_KEY}"}, timeout=60
        )


def wait_http(url: str, proc: Proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise SystemExit(f"{proc.name} exited early:\n{proc.log_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise SystemExit(f"{proc.name} did not answer {url} in {timeout} s:\n{proc.log_text()[-3000:]}")


def start_sandbox(stack: Stack, *, latency_ms: float = 0) -> Sandbox:
    """A standalone `souq sandbox` on its own state file, with the API latency set."""
    port = free_port()
    proc = stack.start(
        "sandbox",
        [SOUQ, "sandbox", "--port", str(port), "--reset", "--api-key", STRIPE_KEY],
        {"SANDBOX_DB_PATH": str(stack.tmp / "sandbox.sqlite3")},
    )
    sandbox = Sandbox(f"http://127.0.0.1:{port}", proc)
    wait_http(f"{sandbox.url}/_control/faults", proc)
    sandbox.faults(api_latency_ms=latency_ms)
    return sandbox


@dataclass
class Server:
    url: str
    port: int
    proc: Proc
    workers: int


def souq_env(db: Database, sandbox: Sandbox, app_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": db.url,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_API_BASE": sandbox.url,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_CONNECT_WEBHOOK_SECRET": CONNECT_WEBHOOK_SECRET,
        "SECRET_KEY": SECRET_KEY,
        "APP_URL": app_url,
        "ENVIRONMENT": "development",
        # Every buyer of a benchmark comes from 127.0.0.1: the per-address and per-buyer
        # checkout limits still count (their cost is measured) but never refuse.
        "CHECKOUT_RATE_PER_ADDRESS": "100000000",
        "CHECKOUT_RATE_PER_EMAIL": "100000000",
        "CHECKOUT_MAX_HELD_PER_LISTING": "100000000",
        # The load comes through loopback as a proxy would: a buyer's own address is in
        # X-Forwarded-For (bench.checkout gives each buyer one).
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
    }


def wait_workers(proc: Proc, workers: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while proc.log_text().count("Application startup complete") < workers:
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{proc.name} did not start:\n{proc.log_text()[-3000:]}")
        time.sleep(0.2)


def start_serve(
    stack: Stack,
    db: Database,
    sandbox: Sandbox,
    *,
    workers: int,
    env: dict[str, str] | None = None,
    name: str = "serve",
) -> Server:
    """`souq serve` with `workers` uvicorn workers, talking to the standalone sandbox."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = stack.start(
        name,
        [SOUQ, "serve", "--port", str(port), "--workers", str(workers)],
        {**souq_env(db, sandbox, url), "COLUMNS": "200", **(env or {})},
    )
    wait_http(f"{url}/healthz", proc)
    wait_workers(proc, workers)
    return Server(url, port, proc, workers)


def start_bare(stack: Stack, *, workers: int) -> Server:
    """The bare FastAPI baseline (bench/bare.py) with the same worker count."""
    port = free_port()
    proc = stack.start(
        f"bare-w{workers}",
        [sys.executable, "-m", "bench.bare", "--port", str(port), "--workers", str(workers)],
        {"PYTHONPATH": str(ROOT)},
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc)
    wait_workers(proc, workers)
    return Server(url, port, proc, workers)


def start_souq_workers(
    stack: Stack, db: Database, sandbox: Sandbox, count: int, *, first: int = 0
) -> list[Proc]:
    """`souq worker` processes (the job queue's consumers), named worker{first}…"""
    if count == 0:
        return []
    probe = subprocess.run([SOUQ, "worker", "--help"], capture_output=True, check=False)
    if probe.returncode != 0:
        raise SystemExit("--souq-workers: this branch has no `souq worker` command yet")
    return [
        stack.start(f"worker{i}", [SOUQ, "worker"], souq_env(db, sandbox, "http://127.0.0.1"))
        for i in range(first, first + count)
    ]


@dataclass
class System:
    """The parts under test: a fresh database, a standalone sandbox, `souq serve` and any
    `souq worker`s."""

    db: Database
    sandbox: Sandbox
    server: Server
    workers: list[Proc]

    @property
    def procs(self) -> dict[str, Proc]:
        """The processes whose CPU and memory a benchmark reports, by name."""
        return {
            "serve": self.server.proc,
            "sandbox": self.sandbox.proc,
            **{w.name: w for w in self.workers},
        }


def start_system(
    stack: Stack, label: str, args: argparse.Namespace, *, latency_ms: float = 0
) -> System:
    """Database, sandbox, `souq serve --workers args.workers` and `args.souq_workers` job
    workers, as the common options ask."""
    db = database(stack, label)
    sandbox = start_sandbox(stack, latency_ms=latency_ms)
    server = start_serve(stack, db, sandbox, workers=args.workers, env=extra_env(args.env))
    return System(db, sandbox, server, start_souq_workers(stack, db, sandbox, args.souq_workers))


# A marketplace to load: one store with a connected account that can take payments


@dataclass
class Market:
    store_id: int
    listing_id: int
    account_id: str
    owner_token: str


def create_market(db: Database, sandbox: Sandbox, *, price: int = 2500) -> Market:
    """An owner with an API token, a store whose Express account is onboarded in the sandbox,
    and one listing with unlimited stock. Rows are inserted with SQL (argon2 hashing is not
    what is measured); the account is made through the sandbox's own API."""
    with sandbox.api() as api:
        account = api.post(
            "/v1/accounts",
            data={
                "type": "express",
                "country": "US",
                "capabilities[card_payments][requested]": "true",
                "capabilities[transfers][requested]": "true",
            },
        )
        account.raise_for_status()
        account_id = account.json()["id"]
        api.post(
            f"/_control/accounts/{account_id}/onboard", json={"outcome": "complete"}
        ).raise_for_status()
    token = "souq_bench_" + uuid.uuid4().hex
    with db.connect() as conn:
        user_id = conn.execute(
            'INSERT INTO "user" (email, name, password_hash, is_platform_admin, created_at) '
            "VALUES ('owner@bench.test', 'Owner', 'not-a-hash', false, now()) RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO api_token (user_id, name, token_hash, created_at) "
            "VALUES (%s, 'bench', %s, now())",
            (user_id, hashlib.sha256(token.encode()).hexdigest()),
        )
        store_id = conn.execute(
            "INSERT INTO store (name, slug, country, default_currency, stripe_account_id, "
            "stripe_onboarding_complete, stripe_charges_enabled, stripe_payouts_enabled, "
            "stripe_requirements_due, created_at) VALUES ('Bench Store', 'bench-store', 'US', "
            "'usd', %s, true, true, true, '[]', now()) RETURNING id",
            (account_id,),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO store_member (store_id, user_id, role, created_at) "
            "VALUES (%s, %s, 'owner', now())",
            (store_id, user_id),
        )
        listing_id = conn.execute(
            "INSERT INTO listing (store_id, name, description, price_amount, currency, stock, "
            "active, created_at) VALUES (%s, 'Bench mug', 'A mug.', %s, 'usd', NULL, true, now()) "
            "RETURNING id",
            (store_id, price),
        ).fetchone()[0]  # type: ignore[index]
    return Market(store_id, listing_id, account_id, token)


def load_listings(db: Database, count: int, *, stores: int = 50) -> list[int]:
    """`stores` new stores (no Stripe account) and `count` active listings spread over them,
    with bulk SQL; answers the new stores' ids."""
    with db.connect() as conn:
        first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM store").fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO store (name, slug, country, default_currency, stripe_onboarding_complete,"
            " stripe_charges_enabled, stripe_payouts_enabled, stripe_requirements_due, created_at)"
            " SELECT 'Store ' || n, 'store-' || n, 'US', 'usd', false, false, false, '[]', now()"
            " FROM generate_series(%s::int, %s::int) AS n",
            (first, first + stores - 1),
        )
    ids = list(range(first, first + stores))
    load_listings_into(db, count, ids)
    return ids


def load_listings_into(db: Database, count: int, stores: list[int]) -> None:
    """`count` more active listings, dealt round robin over `stores`."""
    with db.connect() as conn:
        if count > 0:
            conn.execute(
                "INSERT INTO listing (store_id, name, description, price_amount, currency, stock,"
                " active, created_at) SELECT (%s::int[])[1 + n %% %s::int], 'Listing ' || n,"
                " 'A listing for the benchmark.', 1000 + n %% 9000, 'usd', NULL, true, now()"
                " FROM generate_series(1, %s::int) AS n",
                (stores, len(stores), count),
            )
        conn.execute("ANALYZE")


def checkout_body(market: Market, n: int = 0) -> dict[str, Any]:
    return {
        "storeId": market.store_id,
        "currency": "usd",
        "items": [{"listingId": market.listing_id, "quantity": 1}],
        "customerEmail": f"buyer{n}@example.com",
    }


# Load


@dataclass
class LoadResult:
    requests: int
    statuses: Counter[int]
    latencies_ms: list[float]
    wall: float
    started: float
    ended: float
    client_cpu: list[float]
    client_wall: list[float]
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.wall if self.wall else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = self.latencies_ms
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    @property
    def client_busy(self) -> float:
        """The busiest load process's CPU share of one core: well under 1.0 means the client
        was not the bottleneck."""
        return max(
            (cpu / wall for cpu, wall in zip(self.client_cpu, self.client_wall, strict=True)),
            default=0.0,
        )

    @property
    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)


def run_load(
    url: str | list[str],
    requests: list[dict[str, Any]],
    *,
    connections: int,
    processes: int = 1,
    duration: float | None = None,
    sign_secret: str | None = None,
) -> LoadResult:
    """Send `requests` over `connections` keep-alive connections from `processes` separate load
    processes (bench/load.py). Without `duration` every request is sent once (the list is
    dealt out round robin); with it each connection cycles through its share until time is up.
    With several URLs (servers), load process i sends to URL i mod their number."""
    urls = [url] if isinstance(url, str) else url
    processes = max(1, min(processes, connections))
    with tempfile.TemporaryDirectory(prefix="souq-load-") as tmp:
        start_at = time.time() + 1.5 + 0.2 * processes
        popens, outs = [], []
        for index in range(processes):
            share = requests[index::processes] if duration is None else requests
            job = {
                "url": urls[index % len(urls)],
                "requests": share,
                "connections": connections // processes + (index < connections % processes),
                "duration": duration,
                "start_at": start_at,
                "sign_secret": sign_secret,
            }
            job_path, out_path = Path(tmp) / f"job{index}.json", Path(tmp) / f"out{index}.json"
            job_path.write_text(json.dumps(job))
            outs.append(out_path)
            popens.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.load", str(job_path), str(out_path)], cwd=ROOT
                )
            )
        for popen in popens:
            if popen.wait() != 0:
                raise SystemExit("a load process failed")
        results = [json.loads(out.read_text()) for out in outs]
    latencies = sorted(lat for r in results for lat in r["latencies_ms"])
    statuses: Counter[int] = Counter()
    for r in results:
        statuses.update({int(k): v for k, v in r["statuses"].items()})
    started = min(r["started"] for r in results)
    ended = max(r["ended"] for r in results)
    return LoadResult(
        requests=sum(r["requests"] for r in results),
        statuses=statuses,
        latencies_ms=latencies,
        wall=ended - started,
        started=started,
        ended=ended,
        client_cpu=[r["cpu"] for r in results],
        client_wall=[r["ended"] - r["started"] for r in results],
        errors=sum(r["errors"] for r in results),
    )


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk is not installed: installing Debian's package (apt-get install wrk)")
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed for the GET benchmarks: apt-get install wrk")
    return found


@dataclass
class WrkResult:
    rate: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: str
    cpu: float = 0.0
    spread: list[int] = field(default_factory=list)


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def connections_per_process(port: int) -> dict[int, int]:
    """Established connections to `port`, by the pid of the process that accepted them."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    counts: Counter[int] = Counter()
    for match in re.finditer(r"pid=(\d+)", out):
        counts[int(match.group(1))] += 1
    return dict(counts)


def wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
    server: Server | None = None,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    """wrk (C, keep-alive) for plain GETs: one thread by default so it takes at most a core.
    With `server`, the spread of wrk's connections over its worker processes is sampled
    halfway through."""
    before = os.times()
    popen = subprocess.Popen(
        [
            ensure_wrk(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "--timeout",
            "10s",
            *(arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")),
            url,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    spread: list[int] = []
    if server is not None:
        time.sleep(max(1.0, seconds / 2))
        spread = sorted(connections_per_process(server.port).values(), reverse=True)
    out, _ = popen.communicate()
    if popen.returncode != 0:
        raise SystemExit(f"wrk failed: {out}")
    after = os.times()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return WrkResult(
        rate,
        p50,
        p99,
        total,
        int(non_2xx.group(1)) if non_2xx else 0,
        errors.group(1) if errors else "none",
        cpu=(after.children_user + after.children_system)
        - (before.children_user + before.children_system),
        spread=spread,
    )


@dataclass
class PgbenchResult:
    tps: float
    latency_ms: float
    transactions: int


def pgbench(
    db: Database,
    script: str,
    *,
    clients: int,
    seconds: float,
    defines: dict[str, str] | None = None,
) -> PgbenchResult:
    """pgbench with prepared statements (as psycopg uses them), `clients` connections."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(script)
    argv = [
        "pgbench",
        "-n",
        "-M",
        "prepared",
        "-c",
        str(clients),
        "-j",
        str(min(clients, 2)),
        "-T",
        str(max(1, round(seconds))),
        "-f",
        handle.name,
    ]
    for name, value in (defines or {}).items():
        argv += ["-D", f"{name}={value}"]
    argv.append(db.url)
    try:
        # The shared server's connection slots are now and then all taken by other users.
        for _ in range(20):
            result = subprocess.run(argv, capture_output=True, text=True, check=False)
            if result.returncode == 0 or "too many clients" not in result.stderr:
                break
            time.sleep(3)
    finally:
        os.unlink(handle.name)
    if result.returncode != 0:
        raise SystemExit(f"pgbench failed:\n{result.stdout}\n{result.stderr}")
    out = result.stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))  # type: ignore[union-attr]
    return PgbenchResult(tps, latency, done)


# Measuring a phase


@dataclass
class Usage:
    """CPU seconds per part of the system over one phase, and the machine's as a whole."""

    wall: float
    cpu: dict[str, float]
    machine: float

    def share(self, name: str) -> float:
        """CPU of a part as a fraction of one core."""
        return self.cpu.get(name, 0.0) / self.wall if self.wall else 0.0

    @property
    def others(self) -> float:
        """CPU that none of this benchmark's processes used (other users of the machine), in
        cores."""
        return max(0.0, self.machine - sum(self.cpu.values())) / self.wall if self.wall else 0.0


@contextlib.contextmanager
def measure(procs: dict[str, Proc], database: str | None = None) -> Iterator[Usage]:
    """CPU of each named process tree, of the database's PostgreSQL backends and of the
    machine over the block. Peak RSS is reset at the start, so `peaks()` afterwards is this
    phase's."""
    for proc in procs.values():
        proc.reset_peak()
    backends = postgres_backends(database) if database else []
    before = {name: proc.cpu() for name, proc in procs.items()}
    pg_before = cpu_seconds(backends)
    machine_before, t0 = machine_busy_seconds(), time.monotonic()
    usage = Usage(0.0, {}, 0.0)
    yield usage
    usage.wall = time.monotonic() - t0
    usage.machine = machine_busy_seconds() - machine_before
    usage.cpu = {name: proc.cpu() - before[name] for name, proc in procs.items()}
    if database:
        # Backends opened during the phase count from their start; backends closed during it
        # are missing (the churn figures show how many there were).
        usage.cpu["postgres"] = max(0.0, cpu_seconds(postgres_backends(database)) - pg_before)


def peaks(procs: dict[str, Proc]) -> dict[str, list[int]]:
    """Peak RSS in MiB of every process of each tree (since the last reset)."""
    return {
        name: [round(hwm / 1024) for _rss, hwm in proc.memory().values() if hwm]
        for name, proc in procs.items()
    }


def rss(procs: dict[str, Proc]) -> dict[str, list[int]]:
    return {
        name: [round(current / 1024) for current, _hwm in proc.memory().values() if current]
        for name, proc in procs.items()
    }


# Profiles


@contextlib.contextmanager
def profiled(proc: Proc, name: str, enabled: bool = True) -> Iterator[None]:
    """py-spy samples `proc` and its worker processes over the block; the collapsed stacks go
    to bench/results/profile-<name>.txt and a summary (where the time goes) beside it."""
    if not enabled:
        yield
        return
    spy = shutil.which("py-spy") or str(BIN / "py-spy")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    raw = out / f"profile-{name}.txt"
    popen = subprocess.Popen(
        [
            spy,
            "record",
            "--format",
            "raw",
            "--subprocesses",
            # Only the thread holding the GIL: where the CPU goes, not where threads wait.
            "--gil",
            "--nonblocking",
            "--rate",
            "200",
            "-o",
            str(raw),
            "-p",
            str(proc.pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    try:
        yield
    finally:
        popen.send_signal(signal.SIGINT)
        popen.wait(timeout=60)
        if raw.exists():
            (out / f"profile-{name}.summary.txt").write_text(summarise(raw.read_text()))


@contextlib.contextmanager
def profiled_all(procs: Sequence[Proc], name: str, enabled: bool = True) -> Iterator[None]:
    """`profiled` for each of `procs` (the `souq worker`s), named after `name` and the process."""
    with contextlib.ExitStack() as stack:
        for proc in procs:
            stack.enter_context(profiled(proc, f"{name}-{proc.name}", enabled))
        yield


# Where the samples land, coarsely: which library (or Souq module) a frame belongs to.
BUCKETS = [
    ("sqlalchemy/orm", "SQLAlchemy ORM"),
    ("sqlalchemy", "SQLAlchemy Core/engine"),
    ("psycopg", "psycopg"),
    ("stripe/", "stripe SDK"),
    ("httpx", "httpx/httpcore"),
    ("httpcore", "httpx/httpcore"),
    ("pydantic", "pydantic"),
    ("fastapi", "FastAPI"),
    ("starlette", "Starlette"),
    ("jinja2", "Jinja2 and Babel"),
    ("markupsafe", "Jinja2 and Babel"),
    (".html", "Jinja2 and Babel"),
    ("babel", "Jinja2 and Babel"),
    ("uvicorn", "uvicorn"),
    ("h11", "h11 (HTTP parser)"),
    ("httptools", "httptools"),
    ("asyncio", "asyncio event loop"),
    ("selectors.py", "asyncio event loop"),
    ("uvloop", "uvloop"),
    ("concurrent/futures", "thread pool"),
    ("anyio", "anyio (thread pool)"),
    ("threading.py", "thread pool"),
    ("souq/", "Souq's own code"),
    ("json/", "json"),
    ("typing.py", "typing and abc checks"),
    ("_collections_abc", "typing and abc checks"),
    ("importlib", "imports"),
]


# Library calls worth seeing inclusive of what they call.
MARKERS = (
    "Session.commit",
    "Session.flush",
    "Session.execute",
    "_connect_gen",
    "AsyncConnection.close",
    "convert_to_stripe_object",
    "construct_event",
    "construct_from",
    "TemplateResponse",
    "Template.render",
    "SessionMiddleware.__call__",
    "run_in_threadpool",
    "run_sync",
    "serialize_response",
    "_request_async",
    "AsyncClient.send",
    "pool_pre_ping",
    "_do_ping",
    "do_ping",
    "json.loads",
    "loads (json",
    "dumps (json",
)


def summarise(collapsed: str, top: int = 25) -> str:
    """From py-spy's collapsed stacks: the share of samples by library of the innermost frame
    (self time), and the functions most often on the stack (inclusive time)."""
    total = 0
    by_bucket: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        # One entry per function: line numbers would split a function into many rows.
        frames = [re.sub(r":\d+\)$", ")", f) for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        # py-spy leaves idle threads out unless --idle; this catches what remains.
        idle = any(word in leaf for word in ("select (selectors.py", "wait (threading.py"))
        bucket = (
            "idle (waiting for I/O)"
            if idle
            else next((label for key, label in BUCKETS if key in leaf), "other")
        )
        by_bucket[bucket] += count
        self_time[leaf] += count
        for frame in set(frames):
            inclusive[frame] += count
    busy = total - by_bucket["idle (waiting for I/O)"]
    lines = [f"{total} samples, {busy} busy", "", "Self time by library (share of busy samples):"]
    for bucket, count in by_bucket.most_common():
        if bucket != "idle (waiting for I/O)":
            lines.append(f"  {count / max(1, busy):6.1%}  {bucket}")
    lines += ["", "Souq's functions and notable library calls on the stack (inclusive):"]
    shown = [
        (frame, count)
        for frame, count in inclusive.most_common()
        if "souq/" in frame or any(marker in frame for marker in MARKERS)
    ]
    for frame, count in shown[: top * 2]:
        lines.append(f"  {count / max(1, busy):6.1%}  {frame}")
    lines += ["", "Hottest leaf functions:"]
    for frame, count in self_time.most_common(top):
        lines.append(f"  {count / max(1, busy):6.1%}  {frame}")
    return "\n".join(lines) + "\n"


# The machine and the report


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("uvicorn", "uvloop", "httptools", "fastapi", "sqlalchemy", "psycopg"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    with psycopg.connect(ADMIN_URL) as conn:
        found["postgresql"] = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    return found


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


@dataclass
class Report:
    title: str
    command: str = field(default_factory=lambda: _command())
    sections: list[str] = field(default_factory=list)
    load_at_start: tuple[float, float, float] = field(default_factory=os.getloadavg)

    def table(self, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        lines = [f"**{title}**", "", "| " + " | ".join(headers) + " |"]
        lines.append("|" + "---|" * len(headers))
        lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
        self.sections.append("\n".join(lines))
        print("\n" + self.sections[-1] + "\n", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        self.sections.append(text)
        print(text, file=sys.stderr, flush=True)

    def code(self, title: str, text: str) -> None:
        self.sections.append(f"**{title}**\n\n```\n{text}\n```")

    def render(self) -> str:
        v = versions()
        machine = (
            f"{os.cpu_count()} cores ({cpu_model()}), "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**30} GiB; "
            + ", ".join(f"{k} {val}" for k, val in v.items())
        )
        load = os.getloadavg()
        return "\n\n".join(
            [
                f"## {self.title}",
                f"`{self.command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
                f"Machine: {machine}. Load average at start "
                f"{self.load_at_start[0]:.2f}, at end {load[0]:.2f}.",
                *self.sections,
            ]
        )

    def emit(self) -> None:
        text = self.render()
        print(text)
        out = ROOT / "bench" / "results"
        out.mkdir(exist_ok=True)
        stem = self.command.split()[2].removeprefix("bench.").removesuffix(".py")
        (out / f"{stem}-{time.strftime('%Y%m%dT%H%M%S')}.md").write_text(text + "\n")


def _command() -> str:
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    module = spec.name if spec else Path(sys.argv[0]).stem
    return " ".join(["python -m", module, *sys.argv[1:]])


def fmt(cell: Any) -> str:
    if isinstance(cell, float):
        if cell != cell:  # NaN
            return "–"
        if abs(cell) >= 100:
            return f"{cell:,.0f}"
        if abs(cell) >= 10:
            return f"{cell:.1f}"
        return f"{cell:.2f}"
    if isinstance(cell, int):
        return f"{cell:,}"
    return str(cell)


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else float("nan")
