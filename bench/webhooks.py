"""Webhook ingest and processing: N signed `checkout.session.completed` events for N pending
orders, plus 30% duplicates, shuffled, at concurrency 8 and 32, against pgbench running the same
statements at the same concurrency.

    python -m bench.webhooks [--quick] [--workers 1] [--souq-workers 0] [--clients 1]
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench import harness
from bench.harness import (
    Database,
    LoadResult,
    Market,
    Report,
    Sandbox,
    Server,
    Stack,
    checkout_body,
    log,
    ratio,
)

DUPLICATES = 0.3
SETUP_CONCURRENCY = 8


@dataclass
class PaidOrder:
    order_id: int
    event: dict[str, Any]
    charge_event: dict[str, Any] | None = None


async def _gather_limited(count: int, limit: int, make: Any) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(index: int) -> Any:
        async with semaphore:
            return await make(index)

    return await asyncio.gather(*(one(i) for i in range(count)))


def paid_orders(server: Server, sandbox: Sandbox, market: Market, count: int) -> list[PaidOrder]:
    """`count` orders made through Souq's own checkout (so each has a real Checkout Session),
    paid in the sandbox, and the `checkout.session.completed` event of each as Stripe would
    deliver it. Nothing is delivered yet: the standalone sandbox has no webhook endpoint."""
    started = time.monotonic()

    async def run() -> list[tuple[int, str]]:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=60) as app,
            httpx.AsyncClient(
                base_url=sandbox.url,
                timeout=60,
                headers={"Authorization": f"Bearer {harness.STRIPE_KEY}"},
            ) as stripe,
        ):

            async def buy(index: int) -> tuple[int, str]:
                answer = await app.post(
                    "/api/stripe/checkout/create", json=checkout_body(market, index)
                )
                if answer.status_code != 200:
                    raise SystemExit(f"checkout failed: {answer.status_code} {answer.text}")
                order_id = answer.json()["orderId"]
                session_id = answer.json()["url"].rstrip("/").rsplit("/", 1)[-1]
                paid = await stripe.post(
                    f"/_control/checkout/sessions/{session_id}/pay",
                    json={"card": "4242424242424242"},
                )
                paid.raise_for_status()
                return order_id, session_id

            return await _gather_limited(count, SETUP_CONCURRENCY, buy)

    bought = asyncio.run(run())
    by_session = {session_id: order_id for order_id, session_id in bought}
    events = _events(sandbox, "checkout.session.completed", by_session)
    missing = set(by_session.values()) - set(events)
    if missing:
        raise SystemExit(f"the sandbox has no completed event for orders {sorted(missing)[:5]}…")
    by_intent = {
        events[order_id]["data"]["object"]["payment_intent"]: order_id for order_id in events
    }
    charges = _events(sandbox, "charge.succeeded", by_intent, key="payment_intent")
    log(f"{count} paid orders and their events in {time.monotonic() - started:.1f} s")
    return [
        PaidOrder(order_id, events[order_id], charges.get(order_id)) for order_id in sorted(events)
    ]


def _events(
    sandbox: Sandbox, event_type: str, wanted: dict[str, int], key: str = "id"
) -> dict[int, dict[str, Any]]:
    """The sandbox's events of a type whose object's `key` is in `wanted`, by order id."""
    found: dict[int, dict[str, Any]] = {}
    with sandbox.api() as api:
        after: str | None = None
        while len(found) < len(wanted):
            params = {"type": event_type, "limit": "100"}
            if after:
                params["starting_after"] = after
            page = api.get("/v1/events", params=params)
            page.raise_for_status()
            data = page.json()["data"]
            for event in data:
                order_id = wanted.get(event["data"]["object"].get(key))
                if order_id is not None:
                    found[order_id] = event
            if not page.json()["has_more"] or not data:
                break
            after = data[-1]["id"]
    return found


def deliveries(
    orders: list[PaidOrder], seed: int, *, charges: bool = False
) -> list[dict[str, Any]]:
    """Each event once, 30% of them twice, shuffled: a signed POST each (the orders'
    `charge.succeeded` events instead of their `checkout.session.completed` with `charges`)."""
    rng = random.Random(seed)
    requests = [
        {
            "method": "POST",
            "path": "/api/stripe/webhook",
            "body": json.dumps(order.charge_event if charges else order.event),
            "sign": True,
        }
        for order in orders
    ]
    requests += rng.sample(requests, int(len(requests) * DUPLICATES))
    rng.shuffle(requests)
    return requests


def wait_processed(db: Database, count: int, timeout: float = 300) -> None:
    """Until the inbox holds `count` processed events (at once today; with a job queue, when
    the workers have caught up)."""
    deadline = time.monotonic() + timeout
    # One connection for the whole wait, so the churn figures count Souq's connections only.
    with db.connect() as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM stripe_event WHERE processed_at IS NOT NULL"
            ).fetchone()
            if row is not None and row[0] >= count:
                return
            if time.monotonic() > deadline:
                raise SystemExit("events were still unprocessed after the timeout")
            time.sleep(0.2)


def redeliver(urls: str | list[str], db: Database, orders: list[PaidOrder]) -> int:
    """Send again, as Stripe retries a delivery that was not answered 2xx, every event of
    `orders` the inbox does not hold (a server refused it: on this shared machine, usually a
    PostgreSQL server with every connection slot taken by other users), until all are there.
    Returns how many redeliveries it took."""
    sent = 0
    for _ in range(10):
        have = {
            row[0]
            for row in db.rows(
                "SELECT stripe_event_id FROM stripe_event WHERE stripe_event_id = ANY(%s)",
                ([order.event["id"] for order in orders],),
            )
        }
        missing = [order for order in orders if order.event["id"] not in have]
        if not missing:
            return sent
        time.sleep(2)
        sent += len(missing)
        harness.run_load(
            urls,
            [
                {"method": "POST", "path": "/api/stripe/webhook", "sign": True,
                 "body": json.dumps(order.event)}
                for order in missing
            ],
            connections=4,
            sign_secret=harness.WEBHOOK_SECRET,
        )  # fmt: skip
    raise SystemExit(f"events still missing after {sent} redeliveries")


def verify_exactly_once(db: Database, orders: list[PaidOrder]) -> str:
    """Every order paid once with one payment row of the right amount; every event recorded
    once and processed."""
    ids = [order.order_id for order in orders]
    event_ids = [order.event["id"] for order in orders]
    paid = db.scalar(
        "SELECT count(*) FROM orders WHERE id = ANY(%s) AND payment_status = 'paid'", (ids,)
    )
    payments = db.scalar(
        "SELECT count(*) FROM order_payment p JOIN orders o ON o.id = p.order_id "
        "WHERE o.id = ANY(%s) AND p.amount = o.total_amount",
        (ids,),
    )
    recorded = db.scalar(
        "SELECT count(*) FROM stripe_event WHERE stripe_event_id = ANY(%s) "
        "AND processed_at IS NOT NULL",
        (event_ids,),
    )
    rows = db.scalar(
        "SELECT count(*) FROM stripe_event WHERE stripe_event_id = ANY(%s)", (event_ids,)
    )
    problems = []
    if paid != len(ids):
        problems.append(f"{len(ids) - paid} orders not paid")
    if payments != len(ids):
        problems.append(f"{payments} payment rows for {len(ids)} orders")
    if rows != len(ids) or recorded != len(ids):
        problems.append(f"{rows} inbox rows, {recorded} processed, for {len(ids)} events")
    if problems:
        raise SystemExit("exactly-once FAILED: " + "; ".join(problems))
    return f"{len(ids)} orders paid once, {payments} payment rows, {rows} inbox rows all processed"


def e2e_rate(db: Database, orders: list[PaidOrder], load: LoadResult) -> float:
    """Unique events processed per second, from the first delivery to the last processing."""
    last = db.scalar(
        "SELECT extract(epoch FROM max(processed_at)) FROM stripe_event "
        "WHERE stripe_event_id = ANY(%s)",
        ([order.event["id"] for order in orders],),
    )
    return len(orders) / max(1e-6, float(last) - load.started)


INBOX_INSERT = """
INSERT INTO stripe_event (stripe_event_id, type, account, created, payload, received_at, attempts)
VALUES ('evt_pgb_' || md5(random()::text || clock_timestamp()::text),
        'checkout.session.completed', NULL, 0, :payload, now(), 0)
ON CONFLICT (stripe_event_id) DO NOTHING;
"""

# Souq's two transactions for one event: record it; then lock it, lock the order, mark the order
# paid, insert its payment row and mark the event processed.
FULL_SET = """
SELECT nextval('pgbench_order') AS oid \\gset
INSERT INTO stripe_event (stripe_event_id, type, account, created, payload, received_at, attempts)
VALUES ('evt_pgb_' || :oid, 'checkout.session.completed', NULL, 0, :payload, now(), 0)
ON CONFLICT (stripe_event_id) DO NOTHING;
BEGIN;
SELECT id, type, payload, processed_at, attempts FROM stripe_event
WHERE stripe_event_id = 'evt_pgb_' || :oid FOR UPDATE;
SELECT id, store_id, payment_status, stripe_checkout_session_id, total_amount,
       platform_fee_amount FROM orders WHERE id = :oid FOR UPDATE;
UPDATE orders SET payment_status = 'paid', paid_at = now(),
       stripe_checkout_session_id = 'cs_pgb_' || :oid WHERE id = :oid;
INSERT INTO order_payment (order_id, stripe_checkout_session_id, stripe_payment_intent_id,
       stripe_charge_id, amount, currency, platform_fee_amount, stripe_fee_amount,
       net_amount_to_store, created_at)
VALUES (:oid, 'cs_pgb_' || :oid, 'pi_pgb_' || :oid, 'ch_pgb_' || :oid, 2500, 'usd', 125, 103,
        2375, now());
UPDATE stripe_event SET processed_at = now(), attempts = attempts + 1, last_error = NULL
WHERE stripe_event_id = 'evt_pgb_' || :oid;
END;
"""


def pgbench_baselines(
    stack: Stack, payload: dict[str, Any], concurrency: int, seconds: float
) -> tuple[harness.PgbenchResult, harness.PgbenchResult]:
    """pgbench on a fresh database of the same schema: the inbox insert alone, and the full
    statement set, each `seconds` long at `concurrency` clients."""
    db = harness.database(stack, f"pgb{concurrency}")
    orders = 400_000 if seconds > 5 else 100_000
    db.execute(
        "INSERT INTO store (name, slug, country, default_currency, stripe_onboarding_complete, "
        "stripe_charges_enabled, stripe_payouts_enabled, stripe_requirements_due, created_at) "
        "VALUES ('s', 's', 'US', 'usd', true, true, true, '[]', now())"
    )
    db.execute(
        "INSERT INTO orders (store_id, customer_email, currency, subtotal_amount, total_amount, "
        "platform_fee_amount, payment_status, created_at) "
        "SELECT 1, 'b@bench.test', 'usd', 2500, 2500, 125, 'pending', now() "
        f"FROM generate_series(1, {orders})"
    )
    db.execute("CREATE SEQUENCE pgbench_order")
    db.execute("VACUUM ANALYZE")
    defines = {"payload": json.dumps(payload)}
    insert = harness.pgbench(
        db, INBOX_INSERT, clients=concurrency, seconds=seconds, defines=defines
    )
    full = harness.pgbench(db, FULL_SET, clients=concurrency, seconds=seconds, defines=defines)
    if full.transactions >= orders:
        raise SystemExit("pgbench ran out of pending orders: raise their number")
    return insert, full


def floor_ack(
    stack: Stack, requests: list[dict[str, Any]], concurrency: int, clients: int
) -> tuple[LoadResult, float]:
    """The same deliveries against the bare ack route (bench/bare_webhook.py: signature, JSON,
    one INSERT) on a fresh database of the same schema: its rate and CPU ms per delivery."""
    db = harness.database(stack, f"floor{concurrency}")
    port = harness.free_port()
    proc = stack.start(
        f"floor{concurrency}",
        [sys.executable, "-m", "bench.bare_webhook", "--port", str(port)],
        {
            "PYTHONPATH": str(harness.ROOT),
            "DATABASE_URL": db.url,
            "STRIPE_WEBHOOK_SECRET": harness.WEBHOOK_SECRET,
        },
    )
    url = f"http://127.0.0.1:{port}"
    harness.wait_http(f"{url}/healthz", proc)
    with harness.measure({"floor": proc}) as usage:
        load = harness.run_load(
            url,
            requests,
            connections=concurrency,
            processes=clients,
            sign_secret=harness.WEBHOOK_SECRET,
        )
    proc.stop()
    return load, usage.cpu["floor"] * 1000 / len(requests)


def main() -> None:
    parser = harness.arguments(__doc__ or "")
    parser.add_argument("--events", type=int, help="unique events per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args()
    count = args.events or (150 if args.quick else 1000)
    seconds = 3.0 if args.quick else 10.0
    report = Report("Webhook ingest and processing")
    rows, usage_rows, memory_rows, notes = [], [], [], []
    with Stack() as stack:
        system = harness.start_system(stack, "webhooks", args)
        db, sandbox, server, procs = system.db, system.sandbox, system.server, system.procs
        market = harness.create_market(db, sandbox)
        batches = {c: paid_orders(server, sandbox, market, count) for c in args.concurrency}
        for concurrency, orders in batches.items():
            requests = deliveries(orders, seed=concurrency)
            log(f"storm: {len(requests)} deliveries at concurrency {concurrency}")
            sessions_before = db.sessions()
            with (
                harness.measure(procs, db.name) as usage,
                harness.profiled(server.proc, f"webhooks-c{concurrency}", args.profile),
                harness.profiled_all(system.workers, f"webhooks-c{concurrency}", args.profile),
            ):
                load = harness.run_load(
                    server.url,
                    requests,
                    connections=concurrency,
                    processes=args.clients,
                    sign_secret=harness.WEBHOOK_SECRET,
                )
                wait_processed(db, db.scalar("SELECT count(*) FROM stripe_event"))
            churn = db.sessions() - sessions_before
            retried = redeliver(server.url, db, orders)
            if retried:
                wait_processed(db, db.scalar("SELECT count(*) FROM stripe_event"))
            verified = verify_exactly_once(db, orders) + f" ({retried} redelivered)"
            e2e = e2e_rate(db, orders, load)
            log(f"pgbench baselines at concurrency {concurrency}")
            insert, full = pgbench_baselines(stack, orders[0].event, concurrency, seconds)
            log(f"bare ack route at concurrency {concurrency}")
            floor, floor_cpu = floor_ack(stack, requests, concurrency, args.clients)
            rows.append(
                [
                    concurrency,
                    f"{len(orders)} + {len(requests) - len(orders)}",
                    load.rate,
                    load.percentile(50),
                    load.percentile(99),
                    insert.tps,
                    ratio(load.rate, insert.tps),
                    e2e,
                    full.tps,
                    ratio(e2e, full.tps),
                    f"{load.ok}/{load.requests}",
                    floor.rate,
                    floor.percentile(99),
                    ratio(floor.rate, insert.tps),
                ]
            )
            usage_rows.append(
                [
                    concurrency,
                    usage.share("serve"),
                    usage.share("postgres"),
                    usage.share("sandbox"),
                    sum(usage.share(w.name) for w in system.workers),
                    load.client_busy,
                    usage.others,
                    usage.cpu["serve"] * 1000 / len(requests),
                    floor_cpu,
                    sum(usage.cpu[w.name] for w in system.workers) * 1000 / len(orders),
                    churn,
                    churn * 10 / usage.wall,
                ]
            )
            memory_rows.append([concurrency, *map(str, harness.peaks(procs).values())])
            notes.append(f"concurrency {concurrency}: {verified}.")
    report.table(
        f"Souq ({args.workers} uvicorn worker(s), {args.souq_workers} souq worker(s), sandbox "
        "latency 0) vs pgbench of the same statements at the same concurrency",
        [
            "concurrency",
            "events + duplicates",
            "ack/s",
            "ack p50 ms",
            "ack p99 ms",
            "pgbench inbox insert tps",
            "ratio (goal ≥ 0.5)",
            "processed events/s",
            "pgbench full set tps",
            "ratio (goal ≥ 0.3)",
            "2xx",
            "bare ack route/s",
            "its p99 ms",
            "its ratio to the insert",
        ],
        rows,
    )
    report.table(
        "Where the CPU went (cores busy over the storm) and the pool's connection churn",
        [
            "concurrency",
            "souq serve",
            "postgres (this db)",
            "sandbox",
            "souq workers",
            "load client (busiest process)",
            "other users of the machine",
            "serve CPU ms per delivery",
            "bare ack route CPU ms per delivery",
            "worker CPU ms per event",
            "connections opened",
            "per 10 s",
        ],
        usage_rows,
    )
    report.table(
        "Peak RSS per process (MiB) during each storm",
        ["concurrency", *procs],
        memory_rows,
    )
    report.note("Verified: " + " ".join(notes))
    report.emit()


if __name__ == "__main__":
    main()
