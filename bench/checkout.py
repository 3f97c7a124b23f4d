"""Checkout: 100 concurrent buyers, the sandbox answering after 300 ms, `souq serve` with 2 and
1 workers; orders/s against Little's law (100 buyers / 0.3 s = 333/s), and Souq's own CPU per
checkout. The sandbox's own ceiling (the same Checkout Session created directly, at the same
concurrency and latency) is measured in the same run, since a Python stand-in for Stripe can
be the limit here where Stripe would not be.

    python -m bench.checkout [--quick] [--buyers 100] [--latency 300] [--workers-list 2 1]
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from bench import harness
from bench.harness import Market, Report, Stack, checkout_body, log, ratio


def session_form(market: Market, n: int) -> str:
    """A Checkout Session like the one Souq creates for a one-item order (form-encoded)."""
    return urlencode(
        {
            "mode": "payment",
            "line_items[0][quantity]": "1",
            "line_items[0][price_data][currency]": "usd",
            "line_items[0][price_data][unit_amount]": "2500",
            "line_items[0][price_data][product_data][name]": "Bench mug",
            "customer_email": f"buyer{n}@example.com",
            "client_reference_id": str(n),
            "metadata[orderId]": str(n),
            "payment_intent_data[transfer_data][destination]": market.account_id,
            "payment_intent_data[application_fee_amount]": "125",
            "success_url": "http://127.0.0.1/checkout/success?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://127.0.0.1/checkout/cancel",
            "expires_at": str(int(time.time()) + 3600),
        }
    )


def settled_orders(db: harness.Database, before: int) -> tuple[int, int, int]:
    """Orders made after `before`: how many, with a session, pending; once they stop changing
    (a checkout whose buyer stopped waiting still finishes)."""
    last: tuple[int, int, int] | None = None
    for _ in range(60):
        row = db.rows(
            "SELECT count(*), count(stripe_checkout_session_id), "
            "count(*) FILTER (WHERE payment_status = 'pending') FROM orders WHERE id > %s",
            (before,),
        )[0]
        now = (int(row[0]), int(row[1]), int(row[2]))
        if now == last:
            return now
        last = now
        time.sleep(1.0)
    assert last is not None
    return last


def figures(
    who: int | str, latency: float, load: harness.LoadResult, ideal: float, cpu_ms: float
) -> list[Any]:
    """One row of the main table: throughput and latency against Little's law."""
    rate = load.ok / load.wall
    return [
        who,
        f"{latency:g} ms",
        rate,
        load.percentile(50),
        load.percentile(99),
        ideal,
        ratio(rate, ideal),
        cpu_ms,
    ]


def main() -> None:
    parser = harness.arguments(__doc__ or "")
    parser.add_argument("--buyers", type=int, default=100)
    parser.add_argument("--latency", type=float, nargs="+", default=None, help="sandbox ms")
    parser.add_argument("--workers-list", type=int, nargs="+", default=[2, 1])
    args = parser.parse_args()
    seconds = 5.0 if args.quick else 15.0
    latencies = args.latency or ([300.0] if args.quick else [300.0, 0.0])
    report = Report("Checkout")

    def buyers(url: str, requests: list[dict[str, Any]]) -> harness.LoadResult:
        """The buyers, each a keep-alive connection checking out again and again."""
        return harness.run_load(
            url, requests, connections=args.buyers, processes=args.clients, duration=seconds
        )

    rows, usage_rows, memory_rows, notes = [], [], [], []
    with Stack() as stack:
        db = harness.database(stack, "checkout")
        sandbox = harness.start_sandbox(stack)
        market = None
        for latency in latencies:
            sandbox.faults(api_latency_ms=latency)
            ideal = args.buyers / (latency / 1000) if latency else float("nan")
            requests = [
                {
                    "method": "POST",
                    "path": "/v1/checkout/sessions",
                    "headers": {
                        "Authorization": f"Bearer {harness.STRIPE_KEY}",
                        "Content-Type": "application/x-www-form-urlencoded",
                    },
                    "body": "",
                }
            ]
            for workers in args.workers_list if latency else [1]:
                server = harness.start_serve(
                    stack,
                    db,
                    sandbox,
                    workers=workers,
                    env=harness.extra_env(args.env),
                    name=f"serve-w{workers}-l{latency:g}",
                )
                if market is None:
                    market = harness.create_market(db, sandbox)
                    requests[0]["body"] = session_form(market, 0)
                    log(f"the sandbox alone: {args.buyers} concurrent session creations")
                # 100 emails and addresses, as 100 different buyers would have.
                bodies = [
                    {
                        "method": "POST",
                        "path": "/api/stripe/checkout/create",
                        "body": checkout_body(market, n),
                        "headers": {"X-Forwarded-For": f"10.9.{n // 250}.{n % 250 + 1}"},
                    }
                    for n in range(args.buyers)
                ]
                before = db.scalar("SELECT coalesce(max(id), 0) FROM orders")
                sessions_before = db.sessions()
                procs = {"serve": server.proc, "sandbox": sandbox.proc}
                log(f"{args.buyers} buyers, {workers} worker(s), sandbox latency {latency:g} ms")
                with (
                    harness.measure(procs, db.name) as usage,
                    harness.profiled(
                        server.proc, f"checkout-w{workers}-l{latency:g}", args.profile
                    ),
                ):
                    load = buyers(server.url, bodies)
                churn = db.sessions() - sessions_before
                # Checkouts still running when the buyers stopped finish without a listener:
                # wait for them, then every order made must have its session and be pending.
                made, with_session, pending = settled_orders(db, before)
                if not (with_session == pending >= load.ok):
                    raise SystemExit(
                        f"checkout state is wrong: {load.ok} answered 200, {made} orders made, "
                        f"{with_session} with a session, {pending} pending"
                    )
                notes.append(
                    f"{workers} worker(s), {latency:g} ms: {load.ok} answered 200, each with its "
                    f"pending order and own Checkout Session; {made} orders made in all, "
                    f"{with_session} with a session; answers by status {dict(load.statuses)}"
                )
                peak = harness.peaks(procs)
                server.proc.stop()
                rows.append(
                    figures(
                        workers, latency, load, ideal, usage.cpu["serve"] * 1000 / max(1, load.ok)
                    )
                )
                usage_rows.append(
                    [
                        workers,
                        f"{latency:g} ms",
                        usage.share("serve"),
                        usage.share("postgres"),
                        usage.share("sandbox"),
                        load.client_busy,
                        usage.others,
                        churn,
                    ]
                )
                memory_rows.append([workers, f"{latency:g} ms", *map(str, peak.values())])
            if latency:
                with harness.measure({"sandbox": sandbox.proc}) as alone:
                    direct = buyers(sandbox.url, requests)
                rows.append(figures("sandbox alone", latency, direct, ideal, float("nan")))
                notes.append(
                    f"sandbox alone at {latency:g} ms: {alone.share('sandbox'):.2f} cores busy"
                )
    report.table(
        f"{args.buyers} concurrent buyers for {seconds:g} s (closed loop, keep-alive)",
        [
            "uvicorn workers",
            "sandbox latency",
            "orders/s",
            "p50 ms",
            "p99 ms",
            "Little's law ideal/s",
            "ratio (goal ≥ 0.8)",
            "serve CPU ms per checkout (goal < 3)",
        ],
        rows,
    )
    report.table(
        "Cores busy during each run, and connections opened by the pool",
        [
            "uvicorn workers",
            "sandbox latency",
            "souq serve",
            "postgres (this db)",
            "sandbox",
            "load client (busiest)",
            "other users",
            "connections opened",
        ],
        usage_rows,
    )
    report.table(
        "Peak RSS per process (MiB)",
        ["uvicorn workers", "sandbox latency", "serve", "sandbox"],
        memory_rows,
    )
    report.note("Verified: " + "; ".join(notes) + ".")
    report.emit()


if __name__ == "__main__":
    main()
