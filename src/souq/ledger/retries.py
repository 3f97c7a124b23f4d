"""What Souq tries again: the reversals of split-cart refunds that Stripe refused (or that
Souq still has to make for a refund made outside Souq), listed for platform admins and tried
once per run by `souq reconcile` and its periodic job; `try_each` also runs the disputes'
due recoveries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.models import User
from souq.auth.service import require_platform_admin
from souq.db import unit_of_work
from souq.ledger.models import Refund
from souq.ledger.refunds import retry_reversal
from souq.orders.models import Order
from souq.payments.stripe import StripeGateway, StripeUnavailable


def _reversal_refused() -> ColumnElement[bool]:
    """A split-cart refund whose reversal of the store's sent transfer Stripe refused, or
    one made outside Souq whose reversal is Souq's to make (ledger/group_refunds.py), and
    that is not made since (booking the reversal sets its id)."""
    return and_(
        or_(
            Refund.reversal_refusals > 0,
            and_(
                Refund.source == "stripe",
                Refund.order_id.in_(select(Order.id).where(Order.checkout_group_id.is_not(None))),
            ),
        ),
        Refund.stripe_reversal_id.is_(None),
        Refund.held_reduced == 0,
        Refund.transfer_reversed > Refund.commission_refunded,
        Refund.status.not_in(("failed", "canceled")),
    )


async def refused_reversals(factory: async_sessionmaker[AsyncSession]) -> list[int]:
    """The refunds whose reversal `souq reconcile` (and its periodic job) tries again."""
    async with unit_of_work(factory) as session:
        query = select(Refund.id).where(_reversal_refused()).order_by(Refund.id)
        return list((await session.execute(query)).scalars())


async def list_refused_reversals(session: AsyncSession, user: User | None) -> Sequence[Refund]:
    """Refunds whose reversal from the store was refused and is not made yet (platform
    admins): each with Stripe's reason and how often it was refused."""
    require_platform_admin(user)
    query = select(Refund).where(_reversal_refused()).order_by(Refund.id)
    return (await session.execute(query)).scalars().all()


async def try_each(ids: Iterable[int], attempt: Callable[[int], Awaitable[str]]) -> dict[str, int]:
    """Each id tried once (Stripe not answering is an outcome too): a count per outcome."""
    summary: dict[str, int] = {}
    for some_id in ids:
        try:
            outcome = await attempt(some_id)
        except StripeUnavailable:
            outcome = "no answer"
        summary[outcome] = summary.get(outcome, 0) + 1
    return summary


async def retry_refused_reversals(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway
) -> dict[str, int]:
    """Every refused reversal, tried once: a count per outcome."""
    return await try_each(
        await refused_reversals(factory), lambda i: retry_reversal(factory, gateway, i)
    )
