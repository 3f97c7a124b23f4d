"""The ledger: append-only entries per party and currency, each caused by one Stripe object.

Entries are written by the same unit of work that changes the order's state, through `post`,
which inserts each (kind, Stripe object, party) once however often it is called: a webhook
handled twice, a page and a webhook racing, a sync after a refund all converge. Every balance,
waterfall and report is a sum over these rows.

The parties: `store` (its connected account), `platform` (the platform's Stripe balance),
`stripe` (fees Stripe keeps) and `bank` (the store's bank account, which its payouts fill).
A destination charge books: payment (platform +amount), transfer (platform −amount, store
+amount), commission (store −fee, platform +fee), processing fee (platform −fee, stripe +fee).
A split cart's order books the same from its share of the group's one charge: payment and its
pro-rata share of the processing fee when the group is paid, transfer and commission when its
store's transfer is sent (see `record_group_sale` and `record_group_transfer`). A payout moves
the store's share to its bank (store −, bank +). Refunds and dispute withdrawals are the only
entries that take money out of the books, so an order's entries sum to what its buyer paid
minus what went back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from souq.auth.models import User
from souq.auth.service import require_platform_admin
from souq.db import utcnow
from souq.errors import NotFound
from souq.ledger.models import Dispute, LedgerEntry, Refund, StoreLossPolicy
from souq.ledger.policy import ChargeState, apportion
from souq.orders.models import Order, OrderPayment
from souq.payments.stripe import Charge
from souq.stores.models import Store
from souq.stores.service import READ_STORE, require_store_role

STORE, PLATFORM, STRIPE = "store", "platform", "stripe"
# The store's bank account: where its payouts take its money (ledger/payouts.py).
BANK = "bank"
# Refund states whose money is (or may be) on its way back to the buyer.
LIVE_REFUNDS = ("requested", "pending", "requires_action", "succeeded")


async def post(
    session: AsyncSession,
    order: Order,
    kind: str,
    stripe_object_id: str,
    moves: Mapping[str, int],
) -> None:
    """Book `moves` (party → signed amount) for `order`, once per (kind, object, party)."""
    rows = [
        {
            "order_id": order.id,
            "store_id": order.store_id,
            "party": party,
            "kind": kind,
            "currency": order.currency,
            "amount": amount,
            "stripe_object_id": stripe_object_id,
        }
        for party, amount in moves.items()
        if amount != 0
    ]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(LedgerEntry).values(rows)
    await session.execute(
        statement.on_conflict_do_nothing(
            index_elements=["kind", "stripe_object_id", "party", "order_id"]
        )
    )


def between(payer: str, payee: str, amount: int) -> dict[str, int]:
    return {payer: -amount, payee: amount}


async def record_sale(
    session: AsyncSession, order: Order, payment: OrderPayment, charge: Charge | None
) -> None:
    """The entries of a paid destination charge, as far as they are known: the processing fee
    arrives with the charge's balance transaction, sometimes later (charge.updated)."""
    charge_id = payment.stripe_charge_id or (charge.id if charge else None)
    if charge_id is None:
        return
    await post(session, order, "payment", charge_id, {PLATFORM: payment.amount})
    if charge is not None and charge.transfer_id is not None:
        await post(
            session, order, "transfer", charge.transfer_id, between(PLATFORM, STORE, payment.amount)
        )
    if charge is not None and charge.application_fee_id is not None:
        await post(
            session,
            order,
            "commission",
            charge.application_fee_id,
            between(STORE, PLATFORM, payment.platform_fee_amount),
        )
    if charge is not None and charge.balance_transaction is not None:
        await post(
            session,
            order,
            "processing_fee",
            charge.balance_transaction.id,
            between(PLATFORM, STRIPE, charge.balance_transaction.fee),
        )


async def group_totals(session: AsyncSession, group_id: int) -> list[tuple[int, int]]:
    """(order id, total) of a checkout group's orders, in id order."""
    rows = await session.execute(
        select(Order.id, Order.total_amount)
        .where(Order.checkout_group_id == group_id)
        .order_by(Order.id)
    )
    return [(order_id, total) for order_id, total in rows.tuples()]


def fee_share(fee: int, totals: Sequence[tuple[int, int]], order_id: int) -> int:
    """An order's share of its group's processing fee: pro rata to its total (`apportion`,
    so the shares add up to the fee)."""
    shares = apportion(fee, [total for _, total in totals])
    return next(share for (oid, _), share in zip(totals, shares, strict=True) if oid == order_id)


async def record_group_sale(session: AsyncSession, order: Order, charge: Charge) -> None:
    """A split cart's order paid from the group's charge: the platform holds its total, and
    Stripe keeps its share of the processing fee once the charge's balance transaction is
    known. Idempotent like every booking."""
    if order.checkout_group_id is None:
        return
    await post(session, order, "payment", charge.id, {PLATFORM: order.total_amount})
    txn = charge.balance_transaction
    if txn is not None:
        totals = await group_totals(session, order.checkout_group_id)
        fee = fee_share(txn.fee, totals, order.id)
        await post(session, order, "processing_fee", txn.id, between(PLATFORM, STRIPE, fee))


async def record_group_transfer(
    session: AsyncSession, order: Order, transfer_id: str, amount: int
) -> None:
    """A split cart's store transfer sent (`amount`, after whatever refunds and lost disputes
    took off it while it was held), booked as a destination charge's would be: the gross
    share the refunds left sent to the store, the commission on it taken back, and what
    disputes took off it as their recovery from the store."""
    refunds = await live_refunds(session, order.id)
    gross = order.total_amount - sum(r.transfer_reversed for r in refunds)
    by_disputes = await held_by_disputes(session, order.id)
    commission = gross - amount - by_disputes
    await post(session, order, "transfer", transfer_id, between(PLATFORM, STORE, gross))
    await post(session, order, "commission", transfer_id, between(STORE, PLATFORM, commission))
    await post(
        session, order, "dispute_recovery", transfer_id, between(STORE, PLATFORM, by_disputes)
    )


async def held_by_disputes(session: AsyncSession, order_id: int) -> int:
    """What disputes' recoveries took off the order's store transfer while it was held."""
    total = await session.scalar(
        select(func.coalesce(func.sum(Dispute.held_reduced), 0)).where(Dispute.order_id == order_id)
    )
    return int(total or 0)


async def live_refunds(session: AsyncSession, order_id: int) -> Sequence[Refund]:
    return (
        (
            await session.execute(
                select(Refund)
                .where(Refund.order_id == order_id, Refund.status.in_(LIVE_REFUNDS))
                .order_by(Refund.id)
            )
        )
        .scalars()
        .all()
    )


async def entries_of(session: AsyncSession, order_id: int) -> Sequence[LedgerEntry]:
    return (
        (
            await session.execute(
                select(LedgerEntry).where(LedgerEntry.order_id == order_id).order_by(LedgerEntry.id)
            )
        )
        .scalars()
        .all()
    )


def kind_total(entries: Sequence[LedgerEntry], party: str, *kinds: str) -> int:
    return sum(e.amount for e in entries if e.party == party and e.kind in kinds)


async def live_refunded(session: AsyncSession, order_id: int) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.order_id == order_id, Refund.status.in_(LIVE_REFUNDS)
        )
    )
    return int(total or 0)


async def charge_state(session: AsyncSession, order: Order) -> ChargeState:
    """What happened to the order's charge so far, from its entries and refund rows."""
    if order.checkout_group_id is not None:
        return await group_charge_state(session, order)
    payment = order.payment
    entries = await entries_of(session, order.id)
    return ChargeState(
        amount=payment.amount if payment else 0,
        refunded=await live_refunded(session, order.id),
        transfer=kind_total(entries, STORE, "transfer"),
        transfer_reversed=-kind_total(entries, STORE, "transfer_reversal", "dispute_recovery"),
        commission=kind_total(entries, PLATFORM, "commission"),
        commission_refunded=-kind_total(entries, PLATFORM, "commission_refund"),
        processing_fee=kind_total(entries, STRIPE, "processing_fee"),
        fee_recovered=int(
            await session.scalar(
                select(func.coalesce(func.sum(Refund.fee_recovered), 0)).where(
                    Refund.order_id == order.id, Refund.status.in_(LIVE_REFUNDS)
                )
            )
            or 0
        ),
    )


async def group_charge_state(session: AsyncSession, order: Order) -> ChargeState:
    """A split cart's order, seen as a destination charge of its total (its transfer the
    whole total, its commission taken back), so the same plan applies. The refunds' planned
    reversals and commission refunds come from their rows: while the transfer was held they
    moved no Stripe object of their own."""
    refunds = await live_refunds(session, order.id)
    entries = await entries_of(session, order.id)
    return ChargeState(
        amount=order.total_amount,
        refunded=sum(r.amount for r in refunds),
        transfer=order.total_amount,
        transfer_reversed=sum(r.transfer_reversed for r in refunds),
        commission=order.platform_fee_amount,
        commission_refunded=sum(r.commission_refunded for r in refunds),
        processing_fee=kind_total(entries, STRIPE, "processing_fee"),
        fee_recovered=sum(r.fee_recovered for r in refunds),
    )


@dataclass(frozen=True)
class Waterfall:
    """An order's money, step by step, from its ledger entries."""

    currency: str
    charged: int
    commission: int
    processing_fee: int
    sent_to_store: int
    reversed_from_store: int
    commission_returned: int
    refunded: int
    disputed: int
    dispute_fees: int
    dispute_reinstated: int
    store_balance: int
    platform_balance: int
    stripe_fees: int
    paid_out: int = 0  # to the store's bank, by its payouts

    @property
    def net_paid(self) -> int:
        """What the buyer paid minus what went back: the sum of every entry."""
        return self.store_balance + self.platform_balance + self.stripe_fees + self.paid_out


def waterfall(currency: str, entries: Sequence[LedgerEntry]) -> Waterfall:
    def of(party: str, *kinds: str) -> int:
        return kind_total(entries, party, *kinds)

    return Waterfall(
        currency=currency,
        charged=of(PLATFORM, "payment"),
        commission=of(PLATFORM, "commission"),
        processing_fee=of(STRIPE, "processing_fee"),
        sent_to_store=of(STORE, "transfer", "dispute_return"),
        reversed_from_store=-of(STORE, "transfer_reversal", "dispute_recovery"),
        commission_returned=of(STORE, "commission_refund"),
        refunded=-of(PLATFORM, "refund", "refund_failure"),
        disputed=-of(PLATFORM, "dispute"),
        dispute_fees=of(STRIPE, "dispute_fee"),
        dispute_reinstated=of(PLATFORM, "dispute_reinstated"),
        store_balance=sum(e.amount for e in entries if e.party == STORE),
        platform_balance=sum(e.amount for e in entries if e.party == PLATFORM),
        stripe_fees=sum(e.amount for e in entries if e.party == STRIPE),
        paid_out=sum(e.amount for e in entries if e.party == BANK),
    )


async def set_store_policy(
    session: AsyncSession, user: User | None, store_id: int, changes: Mapping[str, str | None]
) -> StoreLossPolicy:
    """A platform admin overrides the loss policy for one store (None: follow the platform)."""
    require_platform_admin(user)
    if await session.get(Store, store_id) is None:
        raise NotFound("store not found")
    row = await session.get(StoreLossPolicy, store_id)
    if row is None:
        row = StoreLossPolicy(store_id=store_id)
        session.add(row)
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    await session.flush()
    return row


async def read_store_policy(
    session: AsyncSession, user: User | None, store_id: int
) -> StoreLossPolicy | None:
    """A store's override, for its members and platform admins."""
    if user is None or not user.is_platform_admin:
        await require_store_role(session, store_id, user, READ_STORE)
    elif await session.get(Store, store_id) is None:
        raise NotFound("store not found")
    return await session.get(StoreLossPolicy, store_id)
