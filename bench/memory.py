"""Memory: peak RSS per process under each load, and whether memory settles. Three rounds of
the same work against one `souq serve`: checkouts (which make the orders), a webhook storm for
them with 30% duplicates, and the catalogue's JSON and HTML pages under wrk. The RSS after
round 3 should be within 10% of round 1's.

    python -m bench.memory [--quick] [--workers 1]
"""

from __future__ import annotations

from bench import harness, webhooks
from bench.harness import Report, Stack, log

ROUNDS = 3


def main() -> None:
    parser = harness.arguments(__doc__ or "")
    parser.add_argument("--orders", type=int, help="orders (and webhook events) per round")
    args = parser.parse_args()
    orders = args.orders or (100 if args.quick else 600)
    seconds = 2.0 if args.quick else 6.0
    report = Report("Memory")
    rows, settled = [], []
    with Stack() as stack:
        system = harness.start_system(stack, "memory", args)
        db, sandbox, server, procs = system.db, system.sandbox, system.server, system.procs
        market = harness.create_market(db, sandbox)
        harness.load_listings(db, 200, stores=5)
        started = harness.rss(procs)
        for round_no in range(1, ROUNDS + 1):
            phase_peaks = {}
            for proc in procs.values():
                proc.reset_peak()
            log(f"round {round_no}: checkouts")
            batch = webhooks.paid_orders(server, sandbox, market, orders)
            phase_peaks["checkout (8 concurrent)"] = harness.peaks(procs)
            for proc in procs.values():
                proc.reset_peak()
            log(f"round {round_no}: webhook storm")
            harness.run_load(
                server.url,
                webhooks.deliveries(batch, seed=round_no),
                connections=32,
                sign_secret=harness.WEBHOOK_SECRET,
            )
            webhooks.wait_processed(db, db.scalar("SELECT count(*) FROM stripe_event"))
            if webhooks.redeliver(server.url, db, batch):
                webhooks.wait_processed(db, db.scalar("SELECT count(*) FROM stripe_event"))
            webhooks.verify_exactly_once(db, batch)
            phase_peaks["webhooks (32 concurrent)"] = harness.peaks(procs)
            for path in ("/api/listings", "/shop"):
                for proc in procs.values():
                    proc.reset_peak()
                harness.wrk(server.url + path, connections=32, seconds=seconds)
                phase_peaks[f"GET {path} (wrk, 32)"] = harness.peaks(procs)
            after = harness.rss(procs)
            for phase, by_proc in phase_peaks.items():
                rows.append([round_no, phase, *(str(v) for v in by_proc.values())])
            rows.append([round_no, "**RSS after the round**", *(str(v) for v in after.values())])
            settled.append(after)
    first, last = settled[0], settled[-1]
    verdicts = []
    for name in first:
        total_first, total_last = sum(first[name]), sum(last[name])
        change = (total_last - total_first) / total_first if total_first else 0.0
        verdicts.append(
            f"{name}: {total_first} MiB after round 1, {total_last} MiB after round {ROUNDS} "
            f"({change:+.1%}, {'within' if abs(change) <= 0.10 else 'OUTSIDE'} 10%)"
        )
    report.note(
        f"{orders} orders per round; RSS at start (MiB): "
        + ", ".join(f"{k} {v}" for k, v in started.items())
    )
    report.table(
        "Peak RSS (MiB) per process in each phase, and RSS after each round",
        ["round", "phase", *procs],
        rows,
    )
    report.note("Settling: " + "; ".join(verdicts) + ".")
    report.emit()


if __name__ == "__main__":
    main()
