"""The inbox as a work queue: the webhook endpoints only record; jobs process, retry, survive a
dead worker or process; periodic jobs run once per period however many workers; the sweep
finds the events Stripe never delivered."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from souq.payments.models import StripeEvent
from tests.helpers import StoreTeam, anonymous
from tests.payments.stripe_helpers import (
    clear_faults,
    completed_event,
    control,
    listing,
    onboarded_team,
    order,
    pay,
    session_id_of,
    set_faults,
    settle,
    sign,
    start,
    wait_for,
    webhooks_paused,
)
from tests.servers import ENGINES, Cli, LiveServer, Servers, beside, cli_env

POSTGRES = [engine for engine in ENGINES if engine == "postgresql"]


def last_event_id(live: LiveServer) -> int:
    last: int = live.scalar("SELECT coalesce(max(id), 0) FROM stripe_event")
    return last


def deliveries(live: LiveServer) -> list[dict[str, Any]]:
    with httpx.Client(timeout=30) as client:
        log: list[dict[str, Any]] = client.get(
            f"{live.sandbox_url}/_control/webhooks/deliveries"
        ).json()["data"]
    return log


def paid_order(live: LiveServer, team: StoreTeam) -> dict[str, Any]:
    item = listing(team, price="20.00")
    started = start(live, team, [(item, 1)])
    return started


def paid_without_webhooks(
    live: LiveServer, team: StoreTeam
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A checkout paid while the app's endpoint is disabled: its order and the
    checkout.session.completed event that never reached the app."""
    started = paid_order(live, team)
    with webhooks_paused(live):
        assert pay(live, started["url"], card="4242424242424242").status_code == 200
        control(live, "/webhooks/flush")
    return started, completed_event(live, session_id_of(started["url"]))


def test_a_webhook_is_recorded_and_acknowledged_without_asking_stripe(live: LiveServer) -> None:
    """Stripe answering only errors changes nothing for the delivery: it is recorded and
    answered 200; the job fails, keeps the error on the event, and its retry (after the
    backoff) pays the order once Stripe is back."""
    with onboarded_team(live) as team:
        started = paid_order(live, team)
        before = last_event_id(live)
        set_faults(live, api_error_rate=1.0)
        try:
            assert pay(live, started["url"], card="4242424242424242").status_code == 200
            control(live, "/webhooks/flush")
            settle(live)
            rows = live.rows(
                "SELECT stripe_event_id, processed_at, last_error FROM stripe_event "
                "WHERE id > :b AND type = 'checkout.session.completed'",
                b=before,
            )
            assert len(rows) == 1
            event_id, processed_at, last_error = rows[0]
            assert processed_at is None and "StripeUnavailable" in last_error
            answered = [d for d in deliveries(live) if d["event"] == event_id]
            assert answered and all(d["status_code"] == 200 for d in answered), answered
            assert order(live, started["orderId"])["payment_status"] == "pending"
        finally:
            clear_faults(live)
        wait_for(
            "the retried job pays the order",
            lambda: order(live, started["orderId"])["payment_status"] == "paid",
        )
        assert (
            live.scalar(
                "SELECT count(*) FROM order_payment WHERE order_id = :o", o=started["orderId"]
            )
            == 1
        )


@pytest.mark.fresh_server
def test_the_sweep_repairs_an_order_whose_webhooks_never_arrived(
    live: LiveServer, cli: Cli
) -> None:
    with onboarded_team(live) as team:
        started, event = paid_without_webhooks(live, team)
        assert (
            live.scalar(
                "SELECT count(*) FROM stripe_event WHERE stripe_event_id = :e", e=event["id"]
            )
            == 0
        )
        assert order(live, started["orderId"])["payment_status"] == "pending"

        swept = cli("events", "sweep", "--settle", "0")
        assert swept.returncode == 0, swept.stdout + swept.stderr
        assert f"{event['id']}: processed" in swept.stdout
        assert order(live, started["orderId"])["payment_status"] == "paid"
        cursor = live.scalar("SELECT created FROM stripe_event_cursor WHERE account = 'platform'")
        assert cursor >= event["created"]
        # The connected account's events were read too (its cursor), and a second sweep finds
        # nothing new.
        assert live.scalar("SELECT count(*) FROM stripe_event_cursor") == 2
        again = cli("events", "sweep", "--settle", "0")
        assert again.returncode == 0 and "0 missed event(s)" in again.stdout


@pytest.mark.fresh_server
def test_the_periodic_sweep_job_repairs_an_order_whose_webhooks_never_arrived(
    live: LiveServer,
) -> None:
    with onboarded_team(live) as team:
        started, event = paid_without_webhooks(live, team)
        # A second server running the periodic jobs every second. Only the sweep records
        # events in the inbox; the row below is its doing.
        with beside(live, jobs_periodic=True, jobs_period_seconds=1, events_sweep_settle_seconds=0):
            wait_for(
                "the sweep records and processes the missed event",
                lambda: (
                    live.scalar(
                        "SELECT count(*) FROM stripe_event WHERE stripe_event_id = :e "
                        "AND processed_at IS NOT NULL",
                        e=event["id"],
                    )
                    == 1
                ),
            )
        assert order(live, started["orderId"])["payment_status"] == "paid"


def record_unprocessed(live: LiveServer, event: dict[str, Any]) -> None:
    """What a process that died right after recording an event leaves in the inbox."""
    with live.db.begin() as conn:
        conn.execute(
            sa.insert(StripeEvent).values(
                stripe_event_id=event["id"],
                type=event["type"],
                account=None,
                created=event["created"],
                payload=event,
                received_at=sa.func.now(),
                attempts=0,
            )
        )


def test_sqlite_a_restarted_server_processes_what_a_dead_one_recorded(servers: Servers) -> None:
    with servers.fresh("sqlite") as live, onboarded_team(live) as team:
        started, event = paid_without_webhooks(live, team)
        record_unprocessed(live, event)
        assert order(live, started["orderId"])["payment_status"] == "pending"
        # The server running now never queued it; a server starting on the database does.
        with beside(live):
            wait_for(
                "the new process picks the event up at start",
                lambda: order(live, started["orderId"])["payment_status"] == "paid",
            )


@contextmanager
def worker(live: LiveServer, **env: str) -> Iterator[subprocess.Popen[str]]:
    """A `souq worker` process on `live`'s database and sandbox."""
    process = subprocess.Popen(
        [sys.executable, "-m", "souq.cli", "worker"],
        env=cli_env(live, JOBS_HEARTBEAT_SECONDS="0.5", **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def job_status(live: LiveServer, event_id: str) -> list[str]:
    return [
        row[0]
        for row in live.rows(
            "SELECT status::text FROM procrastinate_jobs "
            "WHERE task_name = 'payments.process_stripe_event' AND args->>'event_id' = :e",
            e=event_id,
        )
    ]


@pytest.mark.parametrize("engine", POSTGRES)
def test_postgres_a_killed_workers_job_is_finished_by_another(
    servers: Servers, engine: str
) -> None:
    with servers.fresh(engine, jobs_in_web=False) as live:
        with worker(live) as first, onboarded_team(live) as team:
            started = paid_order(live, team)
            before = last_event_id(live)
            # Stripe slows down: the first worker is inside the handler's Stripe read when
            # it is killed.
            set_faults(live, api_latency_ms=2500)
            assert pay(live, started["url"], card="4242424242424242").status_code == 200
            control(live, "/webhooks/flush")
            event_id = live.scalar(
                "SELECT stripe_event_id FROM stripe_event "
                "WHERE id > :b AND type = 'checkout.session.completed'",
                b=before,
            )
            wait_for(
                "the first worker takes the job", lambda: job_status(live, event_id) == ["doing"]
            )
            first.kill()
            first.wait()
            clear_faults(live)
        assert order(live, started["orderId"])["payment_status"] == "pending"
        assert job_status(live, event_id) == ["doing"]
        with worker(live, JOBS_STALLED_SECONDS="1", JOBS_PERIOD_SECONDS="1"):
            wait_for(
                "the second worker finishes the dead worker's job",
                lambda: order(live, started["orderId"])["payment_status"] == "paid",
            )
            wait_for("the job succeeds", lambda: job_status(live, event_id) == ["succeeded"])
        assert (
            live.scalar(
                "SELECT count(*) FROM order_payment WHERE order_id = :o", o=started["orderId"]
            )
            == 1
        )


@pytest.mark.parametrize("engine", POSTGRES)
def test_postgres_periodic_jobs_run_once_per_period_across_workers(
    servers: Servers, engine: str
) -> None:
    with servers.fresh(engine, jobs_in_web=False) as live:
        env = {"JOBS_PERIODIC": "true", "JOBS_PERIOD_SECONDS": "1"}
        with worker(live, **env), worker(live, **env):
            wait_for(
                "both workers register",
                lambda: live.scalar("SELECT count(*) FROM procrastinate_workers") == 2,
            )
            started = time.monotonic()
            wait_for(
                "five sweeps",
                lambda: (
                    live.scalar(
                        "SELECT count(*) FROM procrastinate_jobs "
                        "WHERE task_name = 'payments.sweep_missed_events' AND status = 'succeeded'"
                    )
                    >= 5
                ),
            )
            elapsed = time.monotonic() - started
        jobs = live.rows(
            "SELECT j.status::text, j.attempts, d.defer_timestamp FROM procrastinate_jobs j "
            "JOIN procrastinate_periodic_defers d ON d.job_id = j.id "
            "WHERE j.task_name = 'payments.sweep_missed_events'"
        )
        timestamps = [row[2] for row in jobs]
        assert len(timestamps) == len(set(timestamps)), "two jobs for one period"
        # One per second however many workers offered to defer it (two would double it).
        assert len(jobs) <= elapsed + 3, (len(jobs), elapsed)
        ran = [row for row in jobs if row[0] == "succeeded"]
        assert all(attempts == 1 for _status, attempts, _t in ran)


@pytest.mark.parametrize("engine", POSTGRES)
def test_postgres_the_ack_records_the_signed_body_and_queues_one_job_per_event(
    servers: Servers, engine: str
) -> None:
    """With no worker running, six concurrent deliveries of one event record it once, as Stripe
    signed it, and leave exactly one job waiting for it; a worker then pays the order once, and a
    delivery after that is a duplicate that queues nothing."""
    with servers.fresh(engine, jobs_in_web=False) as live:
        with worker(live), onboarded_team(live) as team:
            started = paid_order(live, team)
            with webhooks_paused(live):
                assert pay(live, started["url"], card="4242424242424242").status_code == 200
                control(live, "/webhooks/flush")
            event = completed_event(live, session_id_of(started["url"]))
        # Spaced unlike json.dumps's default: the inbox keeps the very bytes it verified.
        body = json.dumps(event, separators=(",", ":")).encode()

        def post() -> httpx.Response:
            with anonymous(live) as client:
                return client.post(
                    "/api/stripe/webhook",
                    content=body,
                    headers={"Stripe-Signature": sign(body, live.webhook_secret)},
                )

        # At once: concurrent deliveries may race for the job's queueing lock; each is a 200.
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(lambda _: post(), range(6)))
        assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
        assert [a.json()["status"] for a in answers] == ["received"] * 6
        stored = live.rows(
            "SELECT payload::text FROM stripe_event WHERE stripe_event_id = :e", e=event["id"]
        )
        assert stored == [(body.decode(),)]
        assert job_status(live, event["id"]) == ["todo"]
        with worker(live):
            wait_for(
                "the worker pays the order",
                lambda: order(live, started["orderId"])["payment_status"] == "paid",
            )
            wait_for("the job succeeds", lambda: job_status(live, event["id"]) == ["succeeded"])
        assert post().json()["status"] == "duplicate"
        assert job_status(live, event["id"]) == ["succeeded"]
        paid = "SELECT count(*) FROM order_payment WHERE order_id = :o"
        assert live.scalar(paid, o=started["orderId"]) == 1
