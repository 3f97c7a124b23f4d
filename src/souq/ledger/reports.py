"""Reports as sums of the ledger: the platform's fee report and a store's statement, per
currency, store and day, as rows a JSON answer, a CSV file and the terminal all print."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from souq.auth.models import User
from souq.auth.service import require_platform_admin
from souq.errors import InvalidInput
from souq.ledger.models import LedgerEntry
from souq.ledger.payouts import payouts_of_store
from souq.ledger.service import BANK, PLATFORM, STORE, STRIPE
from souq.stores.service import READ_ORDERS, require_store_role


@dataclass
class FeeRow:
    """The platform's money for one day, currency and store (minor units)."""

    day: str
    currency: str
    store_id: int
    gross_volume: int = 0
    commission_earned: int = 0
    processing_fees: int = 0
    refunds: int = 0
    commissions_returned: int = 0
    disputes: int = 0
    dispute_fees: int = 0
    recovered_from_stores: int = 0
    net_margin: int = 0


@dataclass
class StatementRow:
    """A store's money for one day and currency (minor units)."""

    day: str
    currency: str
    orders: int = 0
    gross: int = 0
    commission: int = 0
    commission_returned: int = 0
    transfers: int = 0
    reversals: int = 0
    net: int = 0
    # Paid out to the store's bank that day (a failed payout's money back counts against it);
    # not part of net, which is what the store earned.
    payouts: int = 0


@dataclass
class PayoutLine:
    """One of a store's payouts: the orders whose money it carried and their sum."""

    stripe_payout_id: str
    status: str
    arrival_date: str
    currency: str
    amount: int
    orders: int
    from_orders: int
    unattributed: int
    failure_code: str | None = None


def _window(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """[from, to] as whole days, `to` included."""
    if start is not None and end is not None and end < start:
        raise InvalidInput("from must not be after to", code="invalid_period")
    low = datetime.combine(start, time.min, tzinfo=UTC) if start else None
    high = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC) if end else None
    return low, high


async def _entries(
    session: AsyncSession,
    *,
    start: date | None,
    end: date | None,
    currency: str | None,
    store_id: int | None,
) -> Sequence[LedgerEntry]:
    low, high = _window(start, end)
    query = select(LedgerEntry)
    if low is not None:
        query = query.where(LedgerEntry.created_at >= low)
    if high is not None:
        query = query.where(LedgerEntry.created_at < high)
    if currency is not None:
        query = query.where(LedgerEntry.currency == currency.lower())
    if store_id is not None:
        query = query.where(LedgerEntry.store_id == store_id)
    return (await session.execute(query.order_by(LedgerEntry.id))).scalars().all()


# (kind, party) → the FeeRow column it adds to, with its sign as the platform sees it.
_FEES = {
    ("payment", PLATFORM): ("gross_volume", 1),
    ("commission", PLATFORM): ("commission_earned", 1),
    ("processing_fee", STRIPE): ("processing_fees", 1),
    ("refund", PLATFORM): ("refunds", -1),
    ("refund_failure", PLATFORM): ("refunds", -1),
    ("commission_refund", STORE): ("commissions_returned", 1),
    ("dispute", PLATFORM): ("disputes", -1),
    ("dispute_reinstated", PLATFORM): ("disputes", -1),
    ("dispute_fee", STRIPE): ("dispute_fees", 1),
    ("dispute_recovery", PLATFORM): ("recovered_from_stores", 1),
    ("dispute_return", PLATFORM): ("recovered_from_stores", 1),
}


async def fee_report(
    session: AsyncSession,
    user: User | None,
    *,
    start: date | None = None,
    end: date | None = None,
    currency: str | None = None,
    store_id: int | None = None,
) -> list[FeeRow]:
    """Gross volume, commission, fees, refunds, disputes and net margin per day, currency and
    store (platform admins only); net margin is the sum of the platform's entries."""
    require_platform_admin(user)
    return await fee_rows(session, start=start, end=end, currency=currency, store_id=store_id)


async def fee_rows(
    session: AsyncSession,
    *,
    start: date | None = None,
    end: date | None = None,
    currency: str | None = None,
    store_id: int | None = None,
) -> list[FeeRow]:
    rows: dict[tuple[str, str, int], FeeRow] = {}
    for e in await _entries(session, start=start, end=end, currency=currency, store_id=store_id):
        key = (e.created_at.date().isoformat(), e.currency, e.store_id)
        row = rows.setdefault(key, FeeRow(*key))
        column = _FEES.get((e.kind, e.party))
        if column is not None:
            name, sign = column
            setattr(row, name, getattr(row, name) + sign * e.amount)
        if e.party == PLATFORM:
            row.net_margin += e.amount
    return [rows[k] for k in sorted(rows)]


def fee_totals_per_day(rows: Sequence[FeeRow]) -> dict[str, list[FeeRow]]:
    """The fee report summed over stores: per currency, one row per day (store_id 0), in
    order of day; what the back office's chart and its table show."""
    amounts = [f.name for f in fields(FeeRow) if f.name not in ("day", "currency", "store_id")]
    days: dict[tuple[str, str], FeeRow] = {}
    for row in rows:
        total = days.setdefault((row.currency, row.day), FeeRow(row.day, row.currency, 0))
        for name in amounts:
            setattr(total, name, getattr(total, name) + getattr(row, name))
    per_currency: dict[str, list[FeeRow]] = defaultdict(list)
    for (currency, _), total in sorted(days.items()):
        per_currency[currency].append(total)
    return dict(per_currency)


async def statement(
    session: AsyncSession,
    user: User | None,
    store_id: int,
    *,
    start: date | None = None,
    end: date | None = None,
) -> tuple[list[StatementRow], list[PayoutLine]]:
    """A store's orders, gross, commission, transfers, reversals, net (the sum of the store's
    entries but its payouts) and payouts per day and currency, and its payouts in the period
    (its members)."""
    await require_store_role(session, store_id, user, READ_ORDERS)
    rows = await statement_rows(session, store_id, start=start, end=end)
    return rows, await statement_payouts(session, store_id, start=start, end=end)


async def statement_rows(
    session: AsyncSession, store_id: int, *, start: date | None = None, end: date | None = None
) -> list[StatementRow]:
    rows: dict[tuple[str, str], StatementRow] = {}
    orders: dict[tuple[str, str], set[int]] = defaultdict(set)
    for e in await _entries(session, start=start, end=end, currency=None, store_id=store_id):
        key = (e.created_at.date().isoformat(), e.currency)
        row = rows.setdefault(key, StatementRow(*key))
        if e.kind == "payment" and e.order_id is not None:
            orders[key].add(e.order_id)
            row.gross += e.amount
        if e.party != STORE:
            continue
        if e.kind in ("payout", "payout_failure"):
            row.payouts -= e.amount
            continue
        row.net += e.amount
        if e.kind == "commission":
            row.commission -= e.amount
        elif e.kind == "commission_refund":
            row.commission_returned += e.amount
        elif e.kind in ("transfer", "dispute_return"):
            row.transfers += e.amount
        elif e.kind in ("transfer_reversal", "dispute_recovery"):
            row.reversals -= e.amount
    for key, row in rows.items():
        row.orders = len(orders[key])
    return [rows[k] for k in sorted(rows)]


async def statement_payouts(
    session: AsyncSession, store_id: int, *, start: date | None = None, end: date | None = None
) -> list[PayoutLine]:
    """The store's payouts made in the period, each with the orders it paid out."""
    low, high = _window(start, end)
    lines = []
    for payout in await payouts_of_store(session, store_id, low, high):
        shares = (
            await session.execute(
                select(LedgerEntry.order_id, LedgerEntry.amount).where(
                    LedgerEntry.stripe_object_id == payout.stripe_payout_id,
                    LedgerEntry.kind == "payout",
                    LedgerEntry.party == BANK,
                )
            )
        ).all()
        lines.append(
            PayoutLine(
                stripe_payout_id=payout.stripe_payout_id,
                status=payout.status,
                arrival_date=payout.arrival_date.date().isoformat(),
                currency=payout.currency,
                amount=payout.amount,
                orders=len({order_id for order_id, _ in shares}),
                from_orders=sum(amount for _, amount in shares),
                unattributed=payout.unattributed,
                failure_code=payout.failure_code,
            )
        )
    return lines


def to_csv(
    rows: Sequence[FeeRow] | Sequence[StatementRow] | Sequence[PayoutLine], kind: type
) -> str:
    """The rows as CSV, one header line of the column names (amounts in minor units)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = [f.name for f in fields(kind)]
    writer.writerow(names)
    for row in rows:
        writer.writerow([getattr(row, name) for name in names])
    return out.getvalue()
