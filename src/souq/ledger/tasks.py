"""The ledger's jobs: the reminder before a dispute's evidence deadline (and a cart's staged
evidence submitted a day before it), and the recovery of a
lost dispute from the store (queued after the commit that made it due, and tried again every
RECOVER_EVERY_SECONDS while Stripe refuses it)."""

from __future__ import annotations

import logging
from datetime import timedelta

from souq.db import unit_of_work
from souq.jobs import JobContext, task
from souq.ledger.disputes import make_due_recoveries, make_recovery
from souq.ledger.evidence import open_due_within, submit_staged
from souq.ledger.models import Dispute
from souq.ledger.refunds import retry_reversal
from souq.notifications import triggers

log = logging.getLogger(__name__)

RECOVER_EVERY_SECONDS = 3600
# A dispute still without evidence this close to its deadline gets one reminder.
REMIND_BEFORE = timedelta(hours=48)


async def remind_disputes(ctx: JobContext) -> int:
    """Remind the store's managers of every open dispute without evidence whose deadline is
    within REMIND_BEFORE (once per dispute, by key). Returns how many messages were written."""
    written = 0
    async with unit_of_work(ctx.factory) as session:
        due = (
            await session.execute(
                open_due_within(REMIND_BEFORE).where(Dispute.evidence_submitted_at.is_(None))
            )
        ).all()
        for dispute, order in due:
            written += await triggers.dispute_evidence_due(session, order, dispute)
    if written:
        log.info("%s dispute reminder(s) written", written)
    return written


@task("ledger.remind_disputes", every_seconds=3600)
async def remind_disputes_job(ctx: JobContext) -> None:
    await remind_disputes(ctx)
    await submit_staged(ctx.factory, ctx.gateway)


@task("ledger.recover_dispute", max_attempts=8)
async def recover_dispute(ctx: JobContext, *, dispute_id: int) -> None:
    await make_recovery(ctx.factory, ctx.gateway, dispute_id)


@task("ledger.reverse_for_refund", max_attempts=8)
async def reverse_for_refund(ctx: JobContext, *, refund_id: int) -> None:
    """The store's share of a refund made outside Souq on a cart's charge, reversed from its
    sent transfer (ledger/group_refunds.py); a refusal is retried by reconcile."""
    await retry_reversal(ctx.factory, ctx.gateway, refund_id)


@task("ledger.recover_disputes", every_seconds=RECOVER_EVERY_SECONDS, at_start=True)
async def recover_disputes(ctx: JobContext) -> None:
    summary = await make_due_recoveries(ctx.factory, ctx.gateway)
    if summary:
        log.info("dispute recoveries: %s", summary)
