"""Refunds made outside Souq (Stripe's dashboard, the API with the platform's key) on a
checkout group's charge: shared among the cart's orders and moved like Souq's own split-cart
refunds.

Such a refund names no order. When its webhook (or any re-read of the group's charge) finds
it, it is shared among the group's orders once, under every order's row lock (taken in id
order): pro rata to what each order has left to refund (`policy.apportion`, so the shares add
up to the refund exactly), one refund row per order with its share. Stripe's dashboard refund
reverses no transfer, so each store's part is then moved as Souq's own refunds of a split
cart move it, by the loss policy (`refunds.split_plan`): taken off the store's transfer while
it is not sent, or by a reversal of the sent transfer, made after the commit by the job
`ledger.reverse_for_refund` (idempotency key from the row) and retried by `souq reconcile`.
The rows are found again by (Stripe refund, order), so duplicated and shuffled events, and
Souq's own refunds in between, book each share once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from souq.config import Settings
from souq.errors import Conflict
from souq.jobs import defer_after_commit
from souq.ledger import service as ledger
from souq.ledger.models import Refund
from souq.ledger.policy import apportion, plan_refund
from souq.ledger.refunds import Preview, split_plan, store_policy
from souq.ledger.sync import REFUND_KEY, REFUNDABLE_STATES
from souq.orders.models import Order
from souq.payments.stripe import Refund as StripeRefund

log = logging.getLogger(__name__)


def made_outside(refund: StripeRefund) -> bool:
    """A refund Souq did not ask for: it carries neither Souq's refund id nor an order."""
    return REFUND_KEY not in refund.metadata and "order_id" not in refund.metadata


async def _shared(session: AsyncSession, refund_id: str) -> bool:
    found = await session.scalar(
        select(Refund.id).where(Refund.stripe_refund_id == refund_id).limit(1)
    )
    return found is not None


async def share_outside_refunds(
    session: AsyncSession,
    settings: Settings,
    group_orders: Sequence[Order],
    refunds: Sequence[StripeRefund],
) -> None:
    """Share each refund of the group's charge made outside Souq among `group_orders` (every
    order of the group, locked by the caller in id order), once, oldest first."""
    for refund in sorted(refunds, key=lambda r: (r.created, r.id)):
        if not made_outside(refund) or await _shared(session, refund.id):
            continue
        left = [
            order.total_amount - await ledger.live_refunded(session, order.id)
            if order.payment_status in REFUNDABLE_STATES
            else 0
            for order in group_orders
        ]
        shares = apportion(refund.amount, [max(0, amount) for amount in left])
        for order, part in zip(group_orders, shares, strict=True):
            if part > 0:
                await _book_share(session, settings, order, refund, part)
        log.warning("refund %s on a checkout group's charge was made outside Souq", refund.id)


async def _book_share(
    session: AsyncSession, settings: Settings, order: Order, refund: StripeRefund, part: int
) -> None:
    """The order's row for its share, planned as Souq's own split-cart refund of `part`."""
    state = await ledger.charge_state(session, order)
    policy = await store_policy(session, settings, order.store_id)
    plan = plan_refund(state, min(part, state.refundable), policy)
    try:
        preview = await split_plan(session, order, state.refundable, plan, policy)
    except Conflict:
        # Its transfer is being sent: reversed (by reconcile) once Stripe has made it.
        preview = Preview(order, state.refundable, plan, policy, stripe_reversal=0)
    row = Refund(
        order_id=order.id,
        store_id=order.store_id,
        currency=refund.currency,
        amount=part,
        status=refund.status,
        stripe_refund_id=refund.id,
        commission_refunded=preview.plan.commission_refund,
        transfer_reversed=preview.plan.transfer_reversal,
        fee_recovered=preview.plan.fee_recovered,
        held_reduced=preview.held_reduced,
        source="stripe",
    )
    session.add(row)
    await session.flush()
    if preview.stripe_reversal > 0:
        # Imported here: the ledger's tasks module imports the refunds service.
        from souq.ledger.tasks import reverse_for_refund

        defer_after_commit(
            session, reverse_for_refund, lock=f"refund-{row.id}-reversal", refund_id=row.id
        )
