"""Growth: how the cost of the hot paths grows with the data. The catalogue at 100, 10,000 and
100,000 listings; a store's orders by status at 1,000 and 100,000 orders; webhooks with 1,000,
10,000 and 100,000 events in the inbox; and the EXPLAIN (ANALYZE) plans of the hot queries at
the largest size, sequential scans flagged. Data is bulk-loaded with SQL.

    python -m bench.growth [--quick] [--workers 1]
"""

from __future__ import annotations

import json
from typing import Any

from bench import harness, webhooks
from bench.harness import Database, Report, Server, Stack, log

CONNECTIONS = 32
STORES = 50


def get(server: Server, path: str, seconds: float, token: str | None = None) -> list[Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    with harness.measure({"serve": server.proc}) as usage:
        result = harness.wrk(
            server.url + path, connections=CONNECTIONS, seconds=seconds, headers=headers
        )
    if result.non_2xx:
        raise SystemExit(f"{path}: {result.non_2xx} non-2xx answers")
    cpu_ms = usage.cpu["serve"] * 1000 / max(result.requests, 1)
    return [result.rate, result.p50_ms, result.p99_ms, cpu_ms]


def fill_orders(db: Database, count: int, stores: list[int], payload: dict[str, Any]) -> None:
    """`count` more orders over `stores` (70% paid with a payment row, 20% pending, 10%
    canceled), one item each."""
    with db.connect() as conn:
        first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM orders").fetchone()[0]  # type: ignore[index]
        listing = conn.execute("SELECT min(id) FROM listing").fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO orders (id, store_id, customer_email, currency, subtotal_amount,"
            " total_amount, platform_fee_amount, payment_status, stripe_checkout_session_id,"
            " paid_at, created_at)"
            " SELECT n, (%s::int[])[1 + n %% %s::int], 'b@example.com', 'usd', 2500, 2500, 125,"
            " CASE WHEN n %% 10 < 7 THEN 'paid' WHEN n %% 10 < 9 THEN 'pending' ELSE 'canceled'"
            " END, 'cs_fill_' || n, now(), now() FROM generate_series(%s::int, %s::int) AS n",
            (stores, len(stores), first, first + count - 1),
        )
        conn.execute("SELECT setval('orders_id_seq', (SELECT max(id) FROM orders))")
        conn.execute(
            "INSERT INTO order_item (order_id, listing_id, title, quantity, unit_price, currency,"
            " line_subtotal, line_total) SELECT n, %s, 'Listing', 1, 2500, 'usd', 2500, 2500"
            " FROM generate_series(%s::int, %s::int) AS n",
            (listing, first, first + count - 1),
        )
        conn.execute(
            "INSERT INTO order_payment (order_id, stripe_checkout_session_id,"
            " stripe_payment_intent_id, stripe_charge_id, amount, currency, platform_fee_amount,"
            " stripe_fee_amount, net_amount_to_store, created_at)"
            " SELECT id, stripe_checkout_session_id, 'pi_fill_' || id, 'ch_fill_' || id, 2500,"
            " 'usd', 125, 103, 2375, now() FROM orders"
            " WHERE id >= %s AND payment_status = 'paid'",
            (first,),
        )
        conn.execute("ANALYZE")
    del payload


def fill_events(db: Database, total: int, payload: dict[str, Any]) -> None:
    """Processed events in the inbox up to `total` rows, each with a real event's payload."""
    with db.connect() as conn:
        have = conn.execute("SELECT count(*) FROM stripe_event").fetchone()[0]  # type: ignore[index]
        if total > have:
            conn.execute(
                "INSERT INTO stripe_event (stripe_event_id, type, account, created, payload,"
                " received_at, processed_at, attempts) SELECT 'evt_fill_' || n,"
                " 'checkout.session.completed', NULL, 0, %s::json, now(), now(), 1"
                " FROM generate_series(%s::int, %s::int) AS n",
                (json.dumps(payload), have + 1, total),
            )
        conn.execute("ANALYZE")


HOT_QUERIES: list[tuple[str, str]] = [
    (
        "GET /api/listings (listings/service.py:list_catalogue)",
        "SELECT * FROM listing WHERE active IS true ORDER BY id DESC LIMIT 21",
    ),
    (
        "GET /api/listings?storeId= (list_catalogue)",
        "SELECT * FROM listing WHERE active IS true AND store_id = {store} "
        "ORDER BY id DESC LIMIT 21",
    ),
    (
        "GET /api/listings?storeId= of a quiet store (list_catalogue)",
        "SELECT * FROM listing WHERE active IS true AND store_id = {quiet} "
        "ORDER BY id DESC LIMIT 21",
    ),
    (
        "GET /api/listings?storeId=&cursor= (list_catalogue, a later page)",
        "SELECT * FROM listing WHERE active IS true AND store_id = {store} AND id < {mid} "
        "ORDER BY id DESC LIMIT 21",
    ),
    (
        "GET /shop (orders/pages.py:shop)",
        "SELECT listing.*, store.* FROM listing JOIN store ON store.id = listing.store_id "
        "WHERE listing.active IS true ORDER BY listing.id DESC LIMIT 101",
    ),
    (
        "GET /shop?storeId=&after= (a later page of one store)",
        "SELECT listing.*, store.* FROM listing JOIN store ON store.id = listing.store_id "
        "WHERE listing.active IS true AND listing.store_id = {store} AND listing.id < {mid} "
        "ORDER BY listing.id DESC LIMIT 101",
    ),
    (
        "GET /api/stores/{id}/orders?status=paid (orders/service.py:list_store_orders)",
        "SELECT * FROM orders WHERE store_id = {market} AND payment_status = 'paid' "
        "ORDER BY id DESC LIMIT 20",
    ),
    (
        "GET /api/stores/{id}/orders?status=paid of a quiet store (list_store_orders)",
        "SELECT * FROM orders WHERE store_id = {quiet} AND payment_status = 'paid' "
        "ORDER BY id DESC LIMIT 20",
    ),
    (
        "GET /api/stores/{id}/orders (list_store_orders, no status)",
        "SELECT * FROM orders WHERE store_id = {quiet} ORDER BY id DESC LIMIT 20",
    ),
    (
        "a buyer's held units on checkout (payments/limits.py:check_holding)",
        "SELECT order_item.listing_id, sum(order_item.quantity) FROM order_item "
        "JOIN orders ON orders.id = order_item.order_id WHERE orders.payment_status = 'pending' "
        "AND order_item.listing_id IN (SELECT min(id) FROM listing) AND "
        "(lower(orders.customer_email) = 'new@example.com' OR orders.client_address = '10.9.0.1' "
        "OR orders.user_id = 1) GROUP BY order_item.listing_id",
    ),
    (
        "charge.* webhooks (payments/checkout.py:on_charge)",
        "SELECT * FROM order_payment WHERE stripe_payment_intent_id = 'pi_fill_{mid_order}' "
        "FOR UPDATE",
    ),
    (
        "webhook inbox row (payments/webhooks.py:process_event)",
        "SELECT * FROM stripe_event WHERE stripe_event_id = 'evt_fill_{mid_event}' FOR UPDATE",
    ),
    (
        "lock the order (orders/service.py:lock_order)",
        "SELECT * FROM orders WHERE id = {mid_order} FOR UPDATE",
    ),
]


def plans(db: Database, values: dict[str, int], report: Report) -> list[list[Any]]:
    summary = []
    for label, sql in HOT_QUERIES:
        plan = db.explain(sql.format(**values))
        seq = [line.strip() for line in plan.splitlines() if "Seq Scan" in line]
        time_line = next(line for line in plan.splitlines() if "Execution Time" in line)
        access = "**SEQ SCAN: " + "; ".join(seq) + "**" if seq else "index"
        summary.append([label, access, time_line.split(":")[1].strip()])
        report.code(f"{label}", f"{sql.format(**values)}\n\n{plan}")
    return summary


def main() -> None:
    parser = harness.arguments(__doc__ or "")
    parser.add_argument("--storm", type=int, help="unique events per webhook storm")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else 5.0
    listing_sizes = [100, 1_000, 10_000] if args.quick else [100, 10_000, 100_000]
    order_sizes = [1_000, 10_000] if args.quick else [1_000, 100_000]
    event_sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    storm = args.storm or (100 if args.quick else 400)
    report = Report("Growth")
    catalogue, orders_rows, webhook_rows = [], [], []
    with Stack() as stack:
        system = harness.start_system(stack, "growth", args)
        db, sandbox, server = system.db, system.sandbox, system.server
        market = harness.create_market(db, sandbox)
        # A quiet store: a few of the oldest listings and orders, so finding its page means
        # walking past everything newer when no index leads to it.
        quiet = harness.load_listings(db, 10, stores=1)[0]
        db.execute(
            "INSERT INTO store_member (store_id, user_id, role, created_at) SELECT %s, user_id,"
            " 'owner', now() FROM store_member WHERE store_id = %s",
            (quiet, market.store_id),
        )
        stores = harness.load_listings(db, 0, stores=STORES)
        busy = stores[len(stores) // 2]
        have = 11
        for size in listing_sizes:
            harness.load_listings_into(db, size - have, stores)
            have = size
            paths = [
                "/api/listings",
                f"/api/listings?storeId={busy}",
                f"/api/listings?storeId={quiet}",
                "/shop",
            ]
            for path in paths:
                log(f"catalogue {size} listings: {path}")
                catalogue.append([f"{size:,}", path, *get(server, path, seconds)])
        store_ids = [market.store_id, *stores]
        sample = webhooks.paid_orders(server, sandbox, market, 1)[0].event
        fill_orders(db, 30, [quiet], sample)
        have = 31
        for size in order_sizes:
            fill_orders(db, size - have, store_ids, sample)
            have = size
            for store_id in (market.store_id, quiet):
                path = f"/api/stores/{store_id}/orders?status=paid&limit=20"
                log(f"store orders at {size} orders: {path}")
                with harness.profiled(
                    server.proc, f"growth-orders-{size}-store{store_id}", args.profile
                ):
                    measured = get(server, path, seconds, market.owner_token)
                orders_rows.append([f"{size:,}", path, *measured])
        for size in event_sizes:
            fill_events(db, size, sample)
            batch = webhooks.paid_orders(server, sandbox, market, storm)
            for kind in ("checkout.session.completed", "charge.succeeded"):
                requests = webhooks.deliveries(batch, seed=size, charges=kind == "charge.succeeded")
                log(f"{kind} storm with {size} events in the inbox")
                watched = {"serve": server.proc, **{w.name: w for w in system.workers}}
                with harness.measure(watched) as usage:
                    load = harness.run_load(
                        server.url, requests, connections=8, sign_secret=harness.WEBHOOK_SECRET
                    )
                    webhooks.wait_processed(db, db.scalar("SELECT count(*) FROM stripe_event"))
                worker_cpu = sum(usage.cpu[w.name] for w in system.workers)
                webhook_rows.append(
                    [
                        f"{db.scalar('SELECT count(*) FROM stripe_event'):,}",
                        kind,
                        load.rate,
                        load.percentile(50),
                        load.percentile(99),
                        usage.cpu["serve"] * 1000 / load.requests,
                        webhooks.e2e_rate(db, batch, load) if kind.startswith("checkout") else "",
                        worker_cpu * 1000 / len(batch),
                    ]
                )
            if webhooks.redeliver(server.url, db, batch):
                webhooks.wait_processed(db, db.scalar("SELECT count(*) FROM stripe_event"))
            webhooks.verify_exactly_once(db, batch)
        mid_order = db.scalar("SELECT min(id) + (max(id) - min(id)) / 2 FROM order_payment")
        values = {
            "store": busy,
            "quiet": quiet,
            "mid": db.scalar("SELECT max(id) / 2 FROM listing"),
            "market": market.store_id,
            "mid_order": db.scalar(
                "SELECT order_id FROM order_payment WHERE id >= %s LIMIT 1", (mid_order,)
            ),
            "mid_event": db.scalar("SELECT count(*) / 2 FROM stripe_event"),
        }
        summary = plans(db, values, report)
    headers = ["req/s", "p50 ms", "p99 ms", "serve CPU ms/req"]
    report.sections.insert(
        0,
        "Sizes: catalogue "
        + ", ".join(f"{s:,}" for s in listing_sizes)
        + f" listings over {STORES} stores; store orders "
        + ", ".join(f"{s:,}" for s in order_sizes)
        + " orders (70% paid); inbox "
        + ", ".join(f"{s:,}" for s in event_sizes)
        + f" events (each storm: {storm} events + 30% duplicates at concurrency 8). "
        f"{args.workers} uvicorn worker(s); wrk at {CONNECTIONS} connections, {seconds:g} s.",
    )
    report.table("Catalogue", ["listings", "path", *headers], catalogue)
    report.table("A store's orders by status", ["orders", "path", *headers], orders_rows)
    report.table(
        "Webhooks as the inbox grows",
        [
            "inbox rows",
            "event",
            "deliveries/s",
            "p50 ms",
            "p99 ms",
            "serve CPU ms/delivery",
            "processed events/s",
            "worker CPU ms/event",
        ],
        webhook_rows,
    )
    report.table("Hot query plans at the largest sizes", ["query", "access", "execution"], summary)
    report.emit()


if __name__ == "__main__":
    main()
