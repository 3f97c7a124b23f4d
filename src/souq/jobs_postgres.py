"""The PostgreSQL engine of `souq.jobs`: procrastinate, in Souq's own database.

Each `souq.jobs.Task` becomes a procrastinate task of the same name with a retry strategy of
exponential backoff; a periodic one is also declared with a cron of its period, so every worker
offers to defer it and procrastinate keeps one job per period. A job's `lock` is procrastinate's
queueing lock: at most one job with it waits in the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.engine import make_url

from souq.db import is_pooled
from souq.jobs import DeferSql, JobContext, Task, load_tasks, period_of

log = logging.getLogger(__name__)

RETRY_STALLED = "souq.jobs.retry_stalled"
RETRY_STALLED_SECONDS = 60


def conninfo(database_url: str) -> str:
    """libpq's form of the database URL (sslmode and the other query options kept)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def cron_for(seconds: int) -> str:
    """A cron line for "every `seconds`" (procrastinate's sixth column is seconds)."""
    if seconds < 60:
        return f"* * * * * */{seconds}"
    if seconds < 3600:
        return f"*/{max(seconds // 60, 1)} * * * *"
    return f"0 */{min(max(seconds // 3600, 1), 23)} * * *"


def connector(database_url: str, *, pooled: bool | None, max_size: int) -> Any:
    options: dict[str, Any] = {}
    if is_pooled(make_url(database_url), pooled):
        options["prepare_threshold"] = None
    return procrastinate.PsycopgConnector(
        conninfo=conninfo(database_url), min_size=1, max_size=max_size, kwargs=options
    )


def build_app(ctx: JobContext) -> procrastinate.App:
    settings = ctx.settings
    app = procrastinate.App(
        connector=connector(
            settings.database_url,
            pooled=settings.database_pooled,
            max_size=settings.jobs_concurrency + 2,
        )
    )
    for declared in load_tasks().values():
        _declare(app, ctx, declared)

    async def retry_stalled(context: procrastinate.JobContext, timestamp: int) -> None:
        """Jobs whose worker stopped sending heartbeats (killed, lost) go back to the queue."""
        manager = context.app.job_manager
        stalled = await manager.get_stalled_jobs(
            seconds_since_heartbeat=settings.jobs_stalled_seconds
        )
        for job in stalled:
            log.warning(
                "job %s (%s) was left by a dead worker: queued again", job.id, job.task_name
            )
            await manager.retry_job(job)

    stalled_task = app.task(name=RETRY_STALLED, pass_context=True, queueing_lock=RETRY_STALLED)(
        retry_stalled
    )
    app.periodic(
        cron=cron_for(settings.jobs_period_seconds or RETRY_STALLED_SECONDS),
        periodic_id=RETRY_STALLED,
    )(stalled_task)
    return app


def _declare(app: procrastinate.App, ctx: JobContext, declared: Task) -> None:
    async def run(timestamp: int | None = None, **kwargs: Any) -> None:
        # `timestamp` is the period a periodic job was deferred for.
        await declared.run(ctx, **kwargs)

    registered = app.task(
        name=declared.name,
        retry=procrastinate.RetryStrategy(
            max_attempts=declared.max_attempts, exponential_wait=ctx.settings.jobs_backoff_base
        ),
    )(run)
    period = period_of(ctx.settings, declared)
    if period is not None:
        app.periodic(cron=cron_for(period), periodic_id=declared.name)(registered)


# `when` is SQL of Souq's own (a condition on the caller's statement), never input.
_DEFER_SQL = (
    "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(:job_queue, :job_task, :job_priority, "
    "NULL, :job_lock, CAST(:job_args AS jsonb), NULL)::procrastinate_job_to_defer_v1]) "
    "WHERE ({when}) AND NOT EXISTS (SELECT FROM procrastinate_jobs "
    "WHERE queueing_lock = :job_lock AND status = 'todo')"
)


class ProcrastinateQueue:
    def __init__(self, ctx: JobContext, *, worker: bool) -> None:
        self.ctx = ctx
        self.app = build_app(ctx)
        self.worker = worker
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.app.open_async()
        if self.worker:
            self._worker = asyncio.create_task(self.run_worker(install_signal_handlers=False))

    async def run_worker(self, *, install_signal_handlers: bool) -> None:
        settings = self.ctx.settings
        await self.app.run_worker_async(
            concurrency=settings.jobs_concurrency,
            install_signal_handlers=install_signal_handlers,
            update_heartbeat_interval=settings.jobs_heartbeat_seconds,
            fetch_job_polling_interval=settings.jobs_poll_seconds,
            stalled_worker_timeout=settings.jobs_stalled_seconds,
            shutdown_graceful_timeout=10,
        )

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self.app.close_async()

    async def defer(self, task: Task, kwargs: dict[str, Any], lock: str | None) -> None:
        registered = self.app.tasks[task.name]
        with contextlib.suppress(AlreadyEnqueued):
            await registered.configure(queueing_lock=lock).defer_async(**kwargs)

    def defer_sql(self, task: Task, kwargs: dict[str, Any], lock: str, when: str) -> DeferSql:
        # procrastinate's own defer function (what `defer_async` runs), in the caller's
        # statement; the guard keeps its queueing lock from failing the caller's transaction.
        job = self.app.tasks[task.name].configure(queueing_lock=lock).job
        return DeferSql(
            _DEFER_SQL.format(when=when),
            {
                "job_queue": job.queue,
                "job_task": job.task_name,
                "job_priority": job.priority,
                "job_lock": lock,
                "job_args": json.dumps(kwargs),
            },
        )


async def apply_schema(database_url: str) -> bool:
    """Create procrastinate's tables, types and functions unless they exist; True if created."""
    app = procrastinate.App(connector=connector(database_url, pooled=None, max_size=1))
    async with app.open_async():
        found = await app.connector.execute_query_one_async(
            "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present"
        )
        if found["present"]:
            return False
        await app.schema_manager.apply_schema_async()
        return True


# What `apply_schema` creates, found in the catalogue, and how each kind is dropped.
_SCHEMA_OBJECTS = (
    (
        "SELECT quote_ident(tablename) FROM pg_tables "
        "WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate%'",
        "DROP TABLE IF EXISTS {} CASCADE",
    ),
    (
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%'",
        "DROP FUNCTION IF EXISTS {} CASCADE",
    ),
    (
        "SELECT quote_ident(t.typname) FROM pg_type t "
        "JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate%' "
        "AND t.typtype IN ('e', 'c')",
        "DROP TYPE IF EXISTS {} CASCADE",
    ),
)


async def drop_schema(database_url: str) -> None:
    """Drop everything `apply_schema` created: every procrastinate_* table (with its triggers),
    function and type."""
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(conninfo(database_url)) as conn:
        for find, drop in _SCHEMA_OBJECTS:
            found = await (await conn.execute(find)).fetchall()
            for (name,) in found:
                # Names come quoted from the catalogue itself.
                await conn.execute(sql.SQL(drop.format(name)))
