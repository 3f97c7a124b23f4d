"""The senders as jobs: `send_outbox` sends every mail message and webhook delivery that is due.
It is queued after each commit that wrote some (one waiting job at a time), and runs every 30
seconds to send what came due later (retries after a backoff, leases run out)."""

from __future__ import annotations

import asyncio
import logging

from souq import jobs
from souq.jobs import JobContext, task
from souq.senders import send_all

log = logging.getLogger(__name__)

SEND_LOCK = "notifications.send_outbox"
SEND_EVERY_SECONDS = 30

# The defers scheduled by `start_sending`, kept until done (the loop holds tasks weakly).
_deferring: set[asyncio.Task[None]] = set()


@task("notifications.send_outbox", max_attempts=3, every_seconds=SEND_EVERY_SECONDS)
async def send_outbox(ctx: JobContext) -> None:
    await send_all(ctx.factory, ctx.settings)


def start_sending() -> None:
    """The session hook run after a commit that wrote messages or deliveries
    (notifications.service.AFTER_OUTBOX_COMMIT): queue `send_outbox`. Deferring is async and the
    hook is not, so the defer is scheduled on the running loop. Without a job queue on it (a
    one-off command) nothing is queued: the periodic run or `souq notifications send` sends."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if not jobs.queue_running():
        return
    deferring = loop.create_task(_defer())
    _deferring.add(deferring)
    deferring.add_done_callback(_deferring.discard)


async def _defer() -> None:
    try:
        await send_outbox.defer(lock=SEND_LOCK)
    except Exception:
        log.exception("queueing the senders failed; their periodic run sends the messages")
