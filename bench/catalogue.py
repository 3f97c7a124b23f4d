"""Catalogue: `GET /api/listings` and `/shop` against a bare FastAPI route under the same server
code with the same worker count (bench/bare.py), with wrk at 32 keep-alive connections.

    python -m bench.catalogue [--quick] [--listings 100] [--workers-list 1 2]
"""

from __future__ import annotations

from bench import harness
from bench.harness import Report, Server, Stack, WrkResult, log, ratio

CONNECTIONS = 32


def hit(
    server: Server,
    path: str,
    seconds: float,
    database: str | None = None,
    profile: str | None = None,
) -> WrkResult:
    """wrk against one path; the result carries the server's CPU ms per request."""
    with (
        harness.measure({"server": server.proc}, database) as usage,
        harness.profiled(server.proc, profile or "", profile is not None),
    ):
        result = harness.wrk(
            server.url + path, connections=CONNECTIONS, seconds=seconds, server=server
        )
    result.cpu_per_request_ms = usage.cpu["server"] * 1000 / max(1, result.requests)  # type: ignore[attr-defined]
    result.others = usage.others  # type: ignore[attr-defined]
    result.client_share = result.cpu / usage.wall  # type: ignore[attr-defined]
    return result


def main() -> None:
    parser = harness.arguments(__doc__ or "")
    parser.add_argument("--listings", type=int, default=100)
    parser.add_argument("--workers-list", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    seconds = 3.0 if args.quick else 10.0
    report = Report("Catalogue")
    rows = []
    with Stack() as stack:
        db = harness.database(stack, "catalogue")
        sandbox = harness.start_sandbox(stack)
        stores = harness.load_listings(db, args.listings, stores=5)
        for workers in args.workers_list:
            bare = harness.start_bare(stack, workers=workers)
            log(f"bare FastAPI, {workers} worker(s)")
            baseline = hit(bare, "/api/listings", seconds)
            bare.proc.stop()
            server = harness.start_serve(
                stack, db, sandbox, workers=workers, env=harness.extra_env(args.env)
            )
            for path in ("/api/listings", f"/api/listings?storeId={stores[0]}", "/shop"):
                log(f"souq {path}, {workers} worker(s)")
                churn_before = db.sessions()
                slug = path.strip("/").replace("/", "-").replace("?", "-").replace("=", "")
                result = hit(
                    server,
                    path,
                    seconds,
                    db.name,
                    f"catalogue-w{workers}-{slug}" if args.profile else None,
                )
                churn = db.sessions() - churn_before
                rows.append(
                    [
                        workers,
                        path,
                        result.rate,
                        result.p50_ms,
                        result.p99_ms,
                        result.cpu_per_request_ms,  # type: ignore[attr-defined]
                        baseline.rate,
                        ratio(result.rate, baseline.rate),
                        "/".join(map(str, result.spread)),
                        churn,
                        f"{result.non_2xx} / {result.socket_errors}",
                        result.client_share,  # type: ignore[attr-defined]
                        result.others,  # type: ignore[attr-defined]
                    ]
                )
            rows.append(
                [
                    workers,
                    "bare FastAPI",
                    baseline.rate,
                    baseline.p50_ms,
                    baseline.p99_ms,
                    baseline.cpu_per_request_ms,  # type: ignore[attr-defined]
                    baseline.rate,
                    1.0,
                    "/".join(map(str, baseline.spread)),
                    0,
                    f"{baseline.non_2xx} / {baseline.socket_errors}",
                    baseline.client_share,  # type: ignore[attr-defined]
                    baseline.others,  # type: ignore[attr-defined]
                ]
            )
            server.proc.stop()
    report.table(
        f"wrk, {CONNECTIONS} keep-alive connections, {seconds:g} s per row, "
        f"{args.listings} listings",
        [
            "workers",
            "path",
            "req/s",
            "p50 ms",
            "p99 ms",
            "server CPU ms/req",
            "bare FastAPI req/s",
            "ratio (goal ≥ 0.5)",
            "connections per worker",
            "db connections opened",
            "non-2xx / socket errors",
            "wrk CPU (cores)",
            "other users (cores)",
        ],
        rows,
    )
    report.emit()


if __name__ == "__main__":
    main()
