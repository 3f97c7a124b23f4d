"""A store's payouts to its bank, and each order's money in them.

Stripe pays a connected account's available balance out to its bank on the account's schedule
and announces it with the Connect events `payout.created`, `payout.paid` and `payout.failed`.
The handler reads (no transaction open) the payout and every balance transaction it paid out
(`GET /v1/balance_transactions?payout=po_…` with Stripe-Account, sources expanded); then, in
one short transaction, it records the payout row and books, per order, a `payout` entry of the
order's share (store → bank), keyed by the payout's id, so a replay or a later event books
nothing twice. Each balance transaction is traced to its order by what caused it: a transfer's
payment names the transfer (`source_transfer`), a reversal or a fee refund is the object the
ledger already booked for that order. What no order explains is kept on the row as
`unattributed`. A failed payout puts each order's share back (`payout_failure`), as Stripe puts
the money back on the balance, and tells the store and platform admins. The payout that later
carries that money (Stripe's `payout_failure` balance transaction, its source the failed payout)
is traced through the failed payout's own balance transactions, read from Stripe, so the order
in which the events arrive does not matter. See https://docs.stripe.com/payouts/reconciliation
and https://docs.stripe.com/api/payouts/failures.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.db import unit_of_work, utcnow
from souq.ledger import service as ledger
from souq.ledger.models import LedgerEntry, StorePayout
from souq.ledger.service import BANK, STORE
from souq.notifications import triggers
from souq.notifications.service import insert_once
from souq.orders.models import Order
from souq.payments.stripe import Event, PaidOutLine, Payout, StripeGateway
from souq.payments.webhooks import Apply, Ignored, read_or_ignore
from souq.stores.models import Store

log = logging.getLogger(__name__)

# Stripe's payout states in which the money did not reach the bank.
RETURNED = ("failed", "canceled")
# How many payouts one payout's money is traced back through (failed ones carried onwards).
MAX_TRACED = 20


@dataclass(frozen=True)
class OrderPayout:
    """An order's money in one payout, for the order's money view."""

    stripe_payout_id: str
    amount: int
    currency: str
    status: str
    arrival_date: datetime
    failure_code: str | None = None
    failure_message: str | None = None


async def _store_of(factory: async_sessionmaker[AsyncSession], account: str) -> int | None:
    async with unit_of_work(factory) as session:
        return await session.scalar(select(Store.id).where(Store.stripe_account_id == account))


async def on_payout(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, event: Event
) -> Apply | Ignored:
    """payout.created/paid/failed on a connected account: read the payout and what it paid
    out, then record it and link each order's money to it."""
    account = event.account
    if account is None:
        return Ignored(f"payout {event.object_id} is the platform's own")
    store_id = await _store_of(factory, account)
    if store_id is None:
        return Ignored(f"no store of ours has account {account}")
    payout = await read_or_ignore(
        gateway.retrieve_payout(account, event.object_id), f"payout {event.object_id}"
    )
    if isinstance(payout, Ignored):
        return payout
    # Stripe lists what a payout paid out for automatic payouts only.
    lines: list[PaidOutLine] = []
    if payout.automatic:
        listed = await _read_lines(gateway, account, payout.id)
        if isinstance(listed, Ignored):
            return listed
        lines = _traced(payout.id, listed[payout.id], listed)

    async def apply(session: AsyncSession) -> Ignored | None:
        row = await apply_payout(session, store_id, payout, lines)
        if payout.status in RETURNED:
            await triggers.payout_failed(session, row)
        return None

    return apply


async def _read_lines(
    gateway: StripeGateway, account: str, payout_id: str
) -> dict[str, list[PaidOutLine]] | Ignored:
    """What the payout paid out, and what each earlier failed payout whose money came back
    into it had taken (and so on back), by payout id."""
    found: dict[str, list[PaidOutLine]] = {}
    todo = [payout_id]
    while todo and len(found) < MAX_TRACED:
        current = todo.pop()
        listed = await read_or_ignore(gateway.list_paid_out(account, current), f"payout {current}")
        if isinstance(listed, Ignored):
            return listed
        found[current] = listed
        todo += [o for o in _returned_payouts(current, listed) if o not in found]
    return found


def _returned_payouts(payout_id: str, lines: Sequence[PaidOutLine]) -> list[str]:
    return [
        line.source_id
        for line in lines
        if line.type == "payout_failure" and line.source_id and line.source_id != payout_id
    ]


def _traced(
    payout_id: str, lines: Sequence[PaidOutLine], known: dict[str, list[PaidOutLine]]
) -> list[PaidOutLine]:
    """The payout's lines with each failed payout's money back (`payout_failure`) replaced by
    the lines that failed payout had taken, so the money is traced to the same orders again.
    A payout's own failure is money back on the balance, not paid out: it is left out."""
    traced: list[PaidOutLine] = []
    for line in lines:
        if line.source_id == payout_id and line.type != "payout":
            continue
        earlier = known.get(line.source_id or "") if line.type == "payout_failure" else None
        if earlier is None:
            traced.append(line)
        else:
            traced += _traced(str(line.source_id), earlier, known)
    return traced


async def _lock_payout(session: AsyncSession, store_id: int, payout: Payout) -> StorePayout:
    await insert_once(
        session,
        StorePayout,
        "stripe_payout_id",
        store_id=store_id,
        stripe_payout_id=payout.id,
        amount=payout.amount,
        currency=payout.currency,
        status=payout.status,
        arrival_date=datetime.fromtimestamp(payout.arrival_date, UTC),
        unattributed=0,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    return (
        await session.execute(
            select(StorePayout)
            .where(StorePayout.stripe_payout_id == payout.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()


async def _orders_of(session: AsyncSession, store_id: int, ids: set[str]) -> dict[str, int]:
    """The order each Stripe object id was booked for on the store's side."""
    if not ids:
        return {}
    rows = await session.execute(
        select(LedgerEntry.stripe_object_id, LedgerEntry.order_id).where(
            LedgerEntry.store_id == store_id,
            LedgerEntry.party == STORE,
            LedgerEntry.stripe_object_id.in_(ids),
            LedgerEntry.order_id.is_not(None),
        )
    )
    return {object_id: order_id for object_id, order_id in rows.tuples() if order_id is not None}


async def shares(
    session: AsyncSession, store_id: int, lines: Sequence[PaidOutLine]
) -> tuple[dict[int, int], int]:
    """Each order's share of a payout (the nets of its balance transactions), and what no
    order explains."""
    money = [line for line in lines if line.type != "payout"]
    ids = {line.source_transfer_id or line.source_id for line in money} - {None}
    owners = await _orders_of(session, store_id, {i for i in ids if i is not None})
    per_order: dict[int, int] = defaultdict(int)
    unattributed = 0
    for line in money:
        order_id = owners.get(line.source_transfer_id or line.source_id or "")
        # A failed payout's money back that was not traced (`_traced`) names no one order.
        if order_id is None or line.type == "payout_failure":
            unattributed += line.net
        else:
            per_order[order_id] += line.net
    return dict(per_order), unattributed


async def apply_payout(
    session: AsyncSession, store_id: int, payout: Payout, lines: Sequence[PaidOutLine]
) -> StorePayout:
    """The payout row as Stripe has it now, and each order's `payout` entry (once), put back
    once if the payout failed."""
    row = await _lock_payout(session, store_id, payout)
    row.amount = payout.amount
    row.status = payout.status
    row.arrival_date = datetime.fromtimestamp(payout.arrival_date, UTC)
    row.failure_code = payout.failure_code
    row.failure_message = payout.failure_message
    row.updated_at = utcnow()
    per_order, unattributed = await shares(session, store_id, lines)
    if lines:
        row.unattributed = unattributed
    for order_id, amount in sorted(per_order.items()):
        order = await session.get(Order, order_id)
        if order is None:
            continue
        await ledger.post(session, order, "payout", payout.id, ledger.between(STORE, BANK, amount))
        if payout.status in RETURNED:
            await ledger.post(
                session, order, "payout_failure", payout.id, ledger.between(BANK, STORE, amount)
            )
    if unattributed:
        log.warning("payout %s: %s not explained by any order", payout.id, unattributed)
    await session.flush()
    return row


async def payouts_of_order(session: AsyncSession, order_id: int) -> list[OrderPayout]:
    """The payouts that paid the order's money out, with its share of each."""
    rows = await session.execute(
        select(LedgerEntry.amount, StorePayout)
        .join(StorePayout, StorePayout.stripe_payout_id == LedgerEntry.stripe_object_id)
        .where(
            LedgerEntry.order_id == order_id,
            LedgerEntry.kind == "payout",
            LedgerEntry.party == BANK,
        )
        .order_by(StorePayout.arrival_date, StorePayout.id)
    )
    return [
        OrderPayout(
            p.stripe_payout_id,
            amount,
            p.currency,
            p.status,
            p.arrival_date,
            p.failure_code,
            p.failure_message,
        )
        for amount, p in rows.tuples()
    ]


async def payouts_of_store(
    session: AsyncSession, store_id: int, low: datetime | None, high: datetime | None
) -> Sequence[StorePayout]:
    """A store's payouts created in [low, high)."""
    query = select(StorePayout).where(StorePayout.store_id == store_id)
    if low is not None:
        query = query.where(StorePayout.created_at >= low)
    if high is not None:
        query = query.where(StorePayout.created_at < high)
    return (await session.execute(query.order_by(StorePayout.id))).scalars().all()


async def list_payouts(
    session: AsyncSession,
    *,
    status: str | None,
    store_id: int | None,
    limit: int,
    before: int | None,
) -> Sequence[StorePayout]:
    """Every store's payouts (or one store's), newest first; `status=failed` the ones whose
    money came back."""
    query = select(StorePayout)
    if status is not None:
        query = query.where(StorePayout.status == status)
    if store_id is not None:
        query = query.where(StorePayout.store_id == store_id)
    if before is not None:
        query = query.where(StorePayout.id < before)
    found = await session.execute(query.order_by(StorePayout.id.desc()).limit(limit))
    return found.scalars().all()
