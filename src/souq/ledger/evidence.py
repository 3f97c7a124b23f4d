"""The store's side of disputes: the lists it sees, and its answer (its text and the order's
own facts, assembled into Stripe's evidence fields and submitted before `evidence_due_by`).

A dispute of an order's own charge is answered by its store and submitted at once. A dispute
of a checkout group's charge is one Stripe dispute for every order of the cart: each store
answers for its own order, and Souq stages the evidence assembled from every answer so far at
Stripe (`submit=false`: the bank sees nothing yet) until every store of the cart has answered,
then submits it. A platform admin may answer for any order of the cart and submit what there
is at any time, and a day before the deadline Souq submits what there is itself (a store that
stays silent must not lose the others' case); a group of one order submits its store's text as
it is.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.models import User
from souq.db import unit_of_work, utcnow
from souq.errors import Conflict, NotFound
from souq.ledger.disputes import EVIDENCE_MAX, OPEN, make_recovery, settle
from souq.ledger.models import Dispute
from souq.ledger.refunds import may_refund
from souq.orders import service as orders
from souq.orders.models import Order
from souq.payments.stripe import StripeGateway, StripeUnavailable
from souq.stores.models import Store
from souq.stores.service import READ_ORDERS, require_store_role

log = logging.getLogger(__name__)

# A cart's staged evidence is submitted this close to its deadline if a store stays silent.
SUBMIT_STAGED_BEFORE = timedelta(hours=24)


def describe(order: Order) -> str:
    items = "; ".join(f"{i.quantity} × {i.title}" for i in order.items)
    paid = order.paid_at.date().isoformat() if order.paid_at else "unknown"
    return f"Order {order.id} paid on {paid}: {items}"


def evidence_of(order: Order, text: str) -> dict[str, str]:
    """Stripe's evidence fields from the store's answer and the order's own facts."""
    return {
        "uncategorized_text": text,
        "customer_email_address": order.customer_email,
        "product_description": describe(order)[:EVIDENCE_MAX],
    }


async def _cart_answers(
    session: AsyncSession, row: Dispute, text: str
) -> list[tuple[Order, Store | None, str | None]]:
    """Every order of the disputed group charge, its store and its answer (this one's new)."""
    rows = (
        await session.execute(
            select(Dispute, Order)
            .join(Order, Order.id == Dispute.order_id)
            .where(Dispute.stripe_dispute_id == row.stripe_dispute_id)
            .order_by(Order.id)
        )
    ).tuples()
    return [
        (
            order,
            await session.get(Store, order.store_id),
            text if dispute.id == row.id else dispute.evidence_text,
        )
        for dispute, order in rows
    ]


async def assemble(
    session: AsyncSession, order: Order, row: Dispute, text: str, by_admin: bool
) -> tuple[dict[str, str], bool]:
    """The evidence to send and whether to submit it now (see the module's docstring)."""
    if order.checkout_group_id is None:
        return evidence_of(order, text), True
    answers = await _cart_answers(session, row, text)
    if len(answers) == 1:
        return evidence_of(order, text), True
    told = [
        f"{store.name if store else 'Store'} (order {o.id}): {answer}"
        for o, store, answer in answers
        if answer
    ]
    evidence = {
        "uncategorized_text": "\n\n".join(told)[:EVIDENCE_MAX],
        "customer_email_address": order.customer_email,
        "product_description": "\n".join(describe(o) for o, _, _ in answers)[:EVIDENCE_MAX],
    }
    return evidence, by_admin or all(answer for _, _, answer in answers)


def _key(stripe_id: str, evidence: dict[str, str], submit: bool) -> str:
    body = "\x00".join(f"{k}={evidence[k]}" for k in sorted(evidence)) + f"|{submit}"
    return f"souq-dispute-{stripe_id}-evidence-{hashlib.sha256(body.encode()).hexdigest()[:16]}"


async def submit_evidence(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    order_id: int,
    dispute_id: int,
    user: User | None,
    text: str,
) -> Dispute:
    """The store answers a dispute: Souq assembles the evidence and submits it to Stripe (a
    cart's dispute once every store answered, or when a platform admin answers)."""
    async with unit_of_work(factory) as session:
        order = await may_refund(session, order_id, user)
        row = await session.get(Dispute, dispute_id)
        if row is None or row.order_id != order.id:
            raise NotFound("dispute not found")
        if row.status not in OPEN:
            raise Conflict(
                f"the dispute is {row.status}: it takes no evidence", code="dispute_closed"
            )
        by_admin = user is not None and user.is_platform_admin
        evidence, submit = await assemble(session, order, row, text, by_admin)
        stripe_id = row.stripe_dispute_id
    return await _send(factory, gateway, dispute_id, stripe_id, evidence, submit, text)


async def _send(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    dispute_id: int,
    stripe_id: str,
    evidence: dict[str, str],
    submit: bool,
    text: str,
) -> Dispute:
    """The evidence to Stripe (staged or submitted), its answer booked on the dispute."""
    dispute = await gateway.submit_dispute_evidence(
        stripe_id, evidence, submit=submit, idempotency_key=_key(stripe_id, evidence, submit)
    )
    async with unit_of_work(factory) as session:
        await settle(session, gateway.settings, dispute)
        row = await session.get_one(Dispute, dispute_id)
        row.evidence_text = text
        row.evidence_submitted_at = utcnow()
    # A recovery the answer made due (the dispute lost) is made now, after the commit, so
    # the store sees it at once; the queued job finds it made (same key, same row).
    try:
        await make_recovery(factory, gateway, dispute_id)
    except StripeUnavailable:
        log.warning("dispute %s: Stripe did not answer; the job recovers later", stripe_id)
    async with unit_of_work(factory) as session:
        return await session.get_one(Dispute, dispute_id)


def open_due_within(window: timedelta) -> Select[Dispute, Order]:
    """Open disputes (with their orders) whose evidence is due within `window` from now."""
    now = utcnow()
    return (
        select(Dispute, Order)
        .join(Order, Order.id == Dispute.order_id)
        .where(
            Dispute.status.in_(OPEN),
            Dispute.evidence_due_by > now,
            Dispute.evidence_due_by <= now + window,
        )
        .order_by(Dispute.id)
    )


async def submit_staged(factory: async_sessionmaker[AsyncSession], gateway: StripeGateway) -> int:
    """Submit the evidence staged for a cart's dispute whose deadline is within
    SUBMIT_STAGED_BEFORE although some of its stores never answered: the answers there are go
    to the bank, so one silent store does not lose the others' case. The hourly reminder job
    runs it. Returns how many disputes were submitted."""
    async with unit_of_work(factory) as session:
        answered = (
            await session.execute(
                open_due_within(SUBMIT_STAGED_BEFORE).where(
                    Order.checkout_group_id.is_not(None), Dispute.evidence_text.is_not(None)
                )
            )
        ).tuples()
        due: dict[str, tuple[int, dict[str, str], str]] = {}
        for row, order in answered:
            if row.stripe_dispute_id not in due and row.evidence_text is not None:
                evidence, _ = await assemble(session, order, row, row.evidence_text, True)
                due[row.stripe_dispute_id] = (row.id, evidence, row.evidence_text)
    for stripe_id, (dispute_id, evidence, text) in due.items():
        await _send(factory, gateway, dispute_id, stripe_id, evidence, True, text)
        log.info("dispute %s: staged evidence submitted before its deadline", stripe_id)
    return len(due)


async def list_disputes(
    session: AsyncSession, order_id: int, user: User | None
) -> Sequence[Dispute]:
    order = await orders.get_order_for(session, order_id, user)
    assert user is not None
    if not await orders.sees_the_split(session, order, user):
        raise NotFound("order not found")
    return (
        (
            await session.execute(
                select(Dispute).where(Dispute.order_id == order.id).order_by(Dispute.id)
            )
        )
        .scalars()
        .all()
    )


async def list_store_disputes(
    session: AsyncSession, store_id: int, user: User | None
) -> Sequence[Dispute]:
    """A store's disputes for its members: those still waiting for an answer first, the
    nearest deadline first, then the settled ones, newest first."""
    await require_store_role(session, store_id, user, READ_ORDERS)
    rows = (
        (
            await session.execute(
                select(Dispute).where(Dispute.store_id == store_id).order_by(Dispute.id.desc())
            )
        )
        .scalars()
        .all()
    )
    waiting = sorted(
        (d for d in rows if d.status in OPEN),
        key=lambda d: (d.evidence_due_by is None, d.evidence_due_by or d.created_at),
    )
    return waiting + [d for d in rows if d.status not in OPEN]
