"""A store's money by where it is: held by the platform until fulfilment, waiting to be sent
(a transfer not made yet, or refused and to be retried), released to the store's Stripe
account (its transfers sent, and its destination charges' share), and paid out by Stripe from
that account to the store's bank. Sums per currency, gross of later refunds and reversals
(the ledger has those)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.models import User
from souq.db import unit_of_work
from souq.orders.models import Order, OrderPayment
from souq.payments.models import StoreTransfer, TransferStatus
from souq.payments.stripe import StripeFailed, StripeGateway, StripeUnavailable
from souq.stores.service import READ_STORE, require_store_role

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CurrencyBalance:
    currency: str
    held: int
    waiting: int
    released: int
    # None: Stripe could not be asked just now.
    paid_out: int | None


@dataclass(frozen=True)
class StoreBalance:
    store_id: int
    currencies: list[CurrencyBalance]
    paid_out_known: bool


async def _sums(session: AsyncSession, store_id: int) -> dict[str, dict[str, int]]:
    """currency → {held, waiting, released} from the store's transfers and destination
    charges (a counted payment of an order paid alone)."""
    sums: dict[str, dict[str, int]] = {}

    def add(currency: str, what: str, amount: int) -> None:
        row = sums.setdefault(currency, {"held": 0, "waiting": 0, "released": 0})
        row[what] += amount

    transfers = await session.execute(
        select(StoreTransfer.currency, StoreTransfer.status, func.sum(StoreTransfer.amount))
        .where(StoreTransfer.store_id == store_id)
        .group_by(StoreTransfer.currency, StoreTransfer.status)
    )
    for currency, status, amount in transfers:
        what = {TransferStatus.held: "held", TransferStatus.sent: "released"}.get(status, "waiting")
        add(currency, what, int(amount))
    charges = await session.execute(
        select(OrderPayment.currency, func.sum(OrderPayment.net_amount_to_store))
        .join(Order, Order.id == OrderPayment.order_id)
        .where(
            Order.store_id == store_id,
            Order.checkout_group_id.is_(None),
            OrderPayment.review_reason.is_(None),
        )
        .group_by(OrderPayment.currency)
    )
    for currency, amount in charges:
        add(currency, "released", int(amount))
    return sums


async def store_balance(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    store_id: int,
    user: User | None,
) -> StoreBalance:
    """The store's balance for any of its members: the database's sums, then what Stripe
    paid out from its account, read with no transaction open."""
    async with unit_of_work(factory) as session:
        store, _member = await require_store_role(session, store_id, user, READ_STORE)
        account = store.stripe_account_id
        sums = await _sums(session, store_id)
    paid: dict[str, int] | None = {}
    if account is not None:
        try:
            paid = await gateway.paid_out(account)
        except (StripeUnavailable, StripeFailed) as exc:
            log.warning("store %s: its payouts could not be read: %s", store_id, exc.message)
            paid = None
    currencies = sorted(set(sums) | set(paid or {}))
    return StoreBalance(
        store_id=store_id,
        paid_out_known=paid is not None,
        currencies=[
            CurrencyBalance(
                currency=currency,
                held=sums.get(currency, {}).get("held", 0),
                waiting=sums.get(currency, {}).get("waiting", 0),
                released=sums.get(currency, {}).get("released", 0),
                paid_out=None if paid is None else paid.get(currency, 0),
            )
            for currency in currencies
        ],
    )
