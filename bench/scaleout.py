"""Scale-out: two `souq serve` processes on different ports over one PostgreSQL database and
`souq worker`s (--souq-workers, shared out per server: with 2 and 2 servers, the one-server
round has one worker and the two-server round two), a webhook storm split across them with
30% duplicates (a duplicate often reaches the other server at the same moment). Exactly-once
must still hold. The same storm against one server, in the same run, is the comparison.

    python -m bench.scaleout [--quick] [--workers 1] [--servers 2] [--souq-workers 2]
"""

from __future__ import annotations

from bench import harness, webhooks
from bench.harness import Report, Stack, log, ratio

CONCURRENCY = 32


def main() -> None:
    parser = harness.arguments(__doc__ or "")
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--events", type=int, help="unique events per storm")
    args = parser.parse_args()
    count = args.events or (150 if args.quick else 1000)
    report = Report("Scale-out")
    rows, notes = [], []
    with Stack() as stack:
        db = harness.database(stack, "scaleout")
        sandbox = harness.start_sandbox(stack)
        servers = [
            harness.start_serve(
                stack,
                db,
                sandbox,
                workers=args.workers,
                env=harness.extra_env(args.env),
                name=f"serve{i}",
            )
            for i in range(args.servers)
        ]
        workers: list[harness.Proc] = []
        market = harness.create_market(db, sandbox)
        baseline_rate = 0.0
        for used in (1, args.servers):
            wanted = args.souq_workers * used // args.servers
            workers += harness.start_souq_workers(
                stack, db, sandbox, wanted - len(workers), first=len(workers)
            )
            batch = webhooks.paid_orders(servers[0], sandbox, market, count)
            requests = webhooks.deliveries(batch, seed=used)
            targets = [server.url for server in servers[:used]]
            procs = {f"serve{i}": s.proc for i, s in enumerate(servers[:used])}
            procs.update({"sandbox": sandbox.proc, **{w.name: w for w in workers}})
            log(f"storm over {used} server(s)")
            sessions_before = db.sessions()
            with harness.measure(procs, db.name) as usage:
                load = harness.run_load(
                    targets,
                    requests,
                    connections=CONCURRENCY,
                    processes=max(args.clients, used),
                    sign_secret=harness.WEBHOOK_SECRET,
                )
                webhooks.wait_processed(db, db.scalar("SELECT count(*) FROM stripe_event"))
            retried = webhooks.redeliver(targets, db, batch)
            if retried:
                webhooks.wait_processed(db, db.scalar("SELECT count(*) FROM stripe_event"))
            verified = webhooks.verify_exactly_once(db, batch) + f" ({retried} redelivered)"
            e2e = webhooks.e2e_rate(db, batch, load)
            baseline_rate = baseline_rate or e2e
            serve_cores = sum(usage.share(name) for name in procs if name.startswith("serve"))
            rows.append(
                [
                    used,
                    f"{len(batch)} + {len(requests) - len(batch)}",
                    load.rate,
                    load.percentile(50),
                    load.percentile(99),
                    e2e,
                    ratio(e2e, baseline_rate),
                    len(workers),
                    serve_cores,
                    sum(usage.share(w.name) for w in workers),
                    usage.share("postgres"),
                    usage.share("sandbox"),
                    load.client_busy,
                    usage.others,
                    usage.machine / usage.wall,
                    db.sessions() - sessions_before,
                    f"{load.ok}/{load.requests}",
                ]
            )
            notes.append(f"{used} server(s): {verified}")
    report.table(
        f"Webhook storm at concurrency {CONCURRENCY}, split over the servers "
        f"({args.workers} uvicorn worker(s) each, {args.souq_workers} souq worker(s) in all)",
        [
            "servers",
            "events + duplicates",
            "ack/s",
            "p50 ms",
            "p99 ms",
            "processed events/s",
            "vs one server",
            "souq workers",
            "souq serve (cores)",
            "souq workers (cores)",
            "postgres",
            "sandbox",
            "load client (busiest)",
            "other users",
            "machine busy (of 2 cores)",
            "db connections opened",
            "2xx",
        ],
        rows,
    )
    report.note("Exactly-once verified: " + "; ".join(notes) + ".")
    report.emit()


if __name__ == "__main__":
    main()
