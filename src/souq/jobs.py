"""Background jobs: one small API over two engines.

A job is an async function `(ctx: JobContext, **kwargs)` declared with `@task(...)` in a
feature's `tasks.py`, whose module is listed in TASK_MODULES. `await my_task.defer(x=1)` queues
it; arguments must be JSON values. Every job must be idempotent: it may run twice, concurrently,
or again after a worker died half-way.

- On PostgreSQL the engine is procrastinate (its tables live in Souq's database, applied by
  `souq db upgrade`): `souq worker` processes run the jobs, as many as wanted on as many hosts;
  a failing job is retried with exponential backoff up to its `max_attempts`; periodic jobs are
  deferred once per period across all workers (procrastinate's periodic defers are unique per
  task and timestamp); a worker that died mid-job stops sending heartbeats and the periodic
  `souq.jobs.retry_stalled` puts its jobs back in the queue.
- On SQLite (the embedded default) `souq serve` runs the same functions in-process
  (`InProcessQueue`): retries with the same backoff, periodic jobs on a timer, and the tasks
  marked `at_start` run when the process starts. Its queue is memory only: work whose record is
  in a table (the webhook inbox) is found again at start by an `at_start` job, so nothing a
  crash interrupts is lost; anything else must be re-derivable the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from souq.config import Settings
from souq.payments.stripe import StripeGateway

log = logging.getLogger(__name__)

# The modules whose `@task`s the workers run: a feature adds its own `tasks.py` here.
TASK_MODULES: tuple[str, ...] = (
    "souq.payments.tasks",
    "souq.notifications.tasks",
    "souq.ledger.tasks",
)
# Waits between tries: base**2, base**3, … seconds (procrastinate's exponential_wait, with
# base = Settings.jobs_backoff_base), at most this.
BACKOFF_MAX_SECONDS = 600


@dataclass(frozen=True)
class JobContext:
    """What every job gets: the settings, a session factory, the Stripe gateway."""

    settings: Settings
    factory: async_sessionmaker[AsyncSession]
    gateway: StripeGateway


JobFunction = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class DeferSql:
    """A SELECT that queues a job (see `Task.defer_sql`), with its bound parameters."""

    select: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Task:
    name: str
    function: JobFunction
    max_attempts: int
    # Periodic: deferred every so many seconds (once per period across all workers).
    every_seconds: int | None = None
    # In-process engine only: also run when the process starts (recovery after a crash).
    at_start: bool = False

    async def defer(self, *, lock: str | None = None, **kwargs: Any) -> None:
        """Queue the job. With `lock`, a job with the same lock still waiting in the queue
        makes this a no-op (one pending job per object)."""
        await current().defer(self, kwargs, lock)

    def defer_sql(self, *, lock: str, when: str, **kwargs: Any) -> DeferSql | None:
        """The job's queueing as one SQL SELECT to run inside the caller's own transaction and
        statement, queueing it only `when` (an SQL condition) holds and no job with `lock`
        waits; None where the queue is not in the database (in-process, or no queue)."""
        if not queue_running():
            return None
        return current().defer_sql(self, kwargs, lock, when)

    async def run(self, ctx: JobContext, **kwargs: Any) -> None:
        """Run the job's function here and now (tests, `souq` commands)."""
        await self.function(ctx, **kwargs)


TASKS: dict[str, Task] = {}


def task(
    name: str, *, max_attempts: int = 8, every_seconds: int | None = None, at_start: bool = False
) -> Callable[[JobFunction], Task]:
    """Declare a job: `@task("orders.send_receipt")` over `async def f(ctx, *, order_id)`."""

    def declare(function: JobFunction) -> Task:
        if name in TASKS:
            raise RuntimeError(f"two jobs are named {name}")
        declared = Task(name, function, max_attempts, every_seconds, at_start)
        TASKS[name] = declared
        return declared

    return declare


def load_tasks() -> dict[str, Task]:
    for module in TASK_MODULES:
        importlib.import_module(module)
    return TASKS


def backoff_seconds(attempt: int, base: int) -> float:
    """The wait after the `attempt`-th failed try (1-based)."""
    return float(min(base ** (attempt + 1), BACKOFF_MAX_SECONDS))


def period_of(settings: Settings, task: Task) -> int | None:
    if task.every_seconds is None or not settings.jobs_periodic:
        return None
    return settings.jobs_period_seconds or task.every_seconds


class Queue(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def defer(self, task: Task, kwargs: dict[str, Any], lock: str | None) -> None: ...

    def defer_sql(
        self, task: Task, kwargs: dict[str, Any], lock: str, when: str
    ) -> DeferSql | None: ...


# The queue of each event loop: one per process in production; the test suite runs several
# servers in one process, each on its own loop and database.
_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Queue] = weakref.WeakKeyDictionary()


def current() -> Queue:
    queue = _queues.get(asyncio.get_running_loop())
    if queue is None:
        raise RuntimeError("no job queue is running on this event loop")
    return queue


def queue_running() -> bool:
    """Whether a job queue runs on this event loop (a server or worker, not a one-off command)."""
    return asyncio.get_running_loop() in _queues


# Defers scheduled by `defer_after_commit`, kept until done (the loop holds tasks weakly).
_after_commit: set[asyncio.Task[None]] = set()


def defer_after_commit(session: AsyncSession, task: Task, *, lock: str, **kwargs: Any) -> None:
    """Queue `task` once `session` commits (never if it rolls back), so the job sees what the
    transaction wrote. Without a job queue on this loop (a one-off command) nothing is queued:
    the work must be found again in the tables (reconcile, a periodic job)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if not queue_running():
        return

    def committed(_session: Session) -> None:
        deferring = loop.create_task(_defer_logged(task, lock, kwargs))
        _after_commit.add(deferring)
        deferring.add_done_callback(_after_commit.discard)

    event.listen(session.sync_session, "after_commit", committed, once=True)


async def _defer_logged(task: Task, lock: str, kwargs: dict[str, Any]) -> None:
    try:
        await task.defer(lock=lock, **kwargs)
    except Exception:
        log.exception("queueing %s failed; its periodic recovery does the work", task.name)


def runs_in_process(settings: Settings) -> bool:
    """Whether this web process runs jobs itself: always on SQLite, on request on PostgreSQL."""
    if not is_postgres(settings):
        return True
    return bool(settings.jobs_in_web)


def is_postgres(settings: Settings) -> bool:
    return make_url(settings.database_url).get_backend_name() == "postgresql"


@contextlib.asynccontextmanager
async def running(ctx: JobContext, *, worker: bool) -> AsyncIterator[Queue]:
    """The process's job queue while the block runs: procrastinate on PostgreSQL (with a worker
    in this process when `worker`), the in-process runner on SQLite."""
    queue: Queue
    if is_postgres(ctx.settings):
        from souq.jobs_postgres import ProcrastinateQueue

        queue = ProcrastinateQueue(ctx, worker=worker)
    else:
        queue = InProcessQueue(ctx)
    loop = asyncio.get_running_loop()
    _queues[loop] = queue
    try:
        await queue.start()
        yield queue
    finally:
        _queues.pop(loop, None)
        await queue.stop()


@dataclass
class InProcessQueue:
    """SQLite's engine: jobs as asyncio tasks of this process, at most `jobs_concurrency` at
    once, each tried up to its `max_attempts` with backoff."""

    ctx: JobContext
    _locks: set[str] = field(default_factory=set)
    _running: set[asyncio.Task[None]] = field(default_factory=set)
    _slots: asyncio.Semaphore | None = None

    async def start(self) -> None:
        self._slots = asyncio.Semaphore(self.ctx.settings.jobs_concurrency)
        for declared in load_tasks().values():
            if declared.at_start:
                await self.defer(declared, {}, declared.name)
            period = period_of(self.ctx.settings, declared)
            if period is not None:
                self._spawn(self._every(declared, period))

    async def stop(self) -> None:
        for job in list(self._running):
            job.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        self._running.clear()

    async def defer(self, task: Task, kwargs: dict[str, Any], lock: str | None) -> None:
        if lock is not None:
            if lock in self._locks:
                return
            self._locks.add(lock)
        self._spawn(self._attempts(task, kwargs, lock))

    def defer_sql(
        self, task: Task, kwargs: dict[str, Any], lock: str, when: str
    ) -> DeferSql | None:
        return None

    def _spawn(self, work: Awaitable[None]) -> None:
        job = asyncio.ensure_future(work)
        self._running.add(job)
        job.add_done_callback(self._running.discard)

    async def _every(self, task: Task, period: int) -> None:
        while True:
            await asyncio.sleep(period)
            await self.defer(task, {}, task.name)

    async def _attempts(self, task: Task, kwargs: dict[str, Any], lock: str | None) -> None:
        assert self._slots is not None
        held = lock
        try:
            for attempt in range(1, task.max_attempts + 1):
                async with self._slots:
                    if held is not None:
                        # From here on a new defer queues another run, as procrastinate does.
                        self._locks.discard(held)
                        held = None
                    try:
                        await task.run(self.ctx, **kwargs)
                        return
                    except Exception:
                        log.exception(
                            "job %s failed (try %s of %s)", task.name, attempt, task.max_attempts
                        )
                if attempt < task.max_attempts:
                    base = self.ctx.settings.jobs_backoff_base
                    await asyncio.sleep(backoff_seconds(attempt, base))
            log.error("job %s gave up after %s tries", task.name, task.max_attempts)
        finally:
            if held is not None:
                self._locks.discard(held)
