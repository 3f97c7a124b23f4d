"""Disputes of a checkout group's charge (a cart paid once across stores, by separate charges
and transfers): one Stripe dispute on the platform's charge, booked on every order the charge
paid, each with its share.

Each order's dispute row, its `dispute`, `dispute_fee` and `dispute_reinstated` entries carry
its share of the dispute's amount, fee and reinstatement: pro rata to what the order was
charged (`policy.apportion`, the rule the group's processing fee is shared by), so the shares
add up to Stripe's amounts exactly. Every order is marked disputed and its store is told
(keys per order).

What the loss policy takes back from a store is per order, as for an order's own charge
(`disputes.recovery_wanted`), and made the way the store's money stands:
- its transfer was sent: a reversal of that transfer, made after the commit by the job
  `ledger.recover_dispute` with an idempotency key of the dispute and the order, once;
- its transfer was not sent yet (held until fulfilment, pending, or refused): the amount comes
  off the transfer instead (`held_reduced`, applied by `sync.settle_held`), so it is never sent
  for the lost share; no Stripe call.
A dispute won after a recovery gives it back the same way: a transfer from the charge, or the
unsent transfer raised again (and sent, unless held). A dispute Stripe announces before the
cart's payment is in Souq's books is caught up when it is (`catch_up_group`): with the policy
`funds_withdrawn` the transfers are then lowered before they are ever sent.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from souq.carts.models import CheckoutGroup
from souq.config import Settings
from souq.jobs import defer_after_commit
from souq.ledger import service as ledger
from souq.ledger.disputes import (
    AfterPayment,
    apply_dispute,
    follow_status,
    plan_recovery,
    recover_after_commit,
    recovery_wanted,
)
from souq.ledger.models import Dispute
from souq.ledger.policy import apportion
from souq.ledger.refunds import reversed_so_far
from souq.ledger.sync import REFUNDABLE_STATES, lock_transfer, never_asked, settle_held
from souq.orders import service as orders
from souq.orders.models import Order, PaymentStatus
from souq.payments.models import TransferStatus
from souq.payments.stripe import Dispute as StripeDispute

log = logging.getLogger(__name__)

# Orders of a group whose share of a dispute is booked: paid ones (and those disputed).
BOOKED_STATES = (*REFUNDABLE_STATES, PaymentStatus.disputed)


async def group_of_charge(session: AsyncSession, charge_id: str) -> CheckoutGroup | None:
    return (
        await session.execute(
            select(CheckoutGroup).where(CheckoutGroup.stripe_charge_id == charge_id)
        )
    ).scalar_one_or_none()


async def settle_group(
    session: AsyncSession, settings: Settings, group: CheckoutGroup, dispute: StripeDispute
) -> None:
    """Apply a dispute of the group's charge to each of its orders (locked in id order, so
    concurrent handlers never deadlock): its share, its status, its recovery."""
    totals = await ledger.group_totals(session, group.id)
    weights = [total for _, total in totals]
    for index, (order_id, _) in enumerate(totals):
        order = await orders.lock_order(session, order_id)
        if order is None or order.payment_status not in BOOKED_STATES:
            continue

        def share(amount: int, index: int = index) -> int:
            return apportion(amount, weights)[index]

        row = await apply_dispute(session, order, dispute, share)
        await follow_status(session, order)
        if await plan_group_recovery(session, settings, order, row):
            recover_after_commit(session, row)


async def plan_group_recovery(
    session: AsyncSession, settings: Settings, order: Order, row: Dispute
) -> bool:
    """As `disputes.plan_recovery`, for an order of a group: True when a Stripe call is due
    (a reversal of its sent transfer, or its give-back). A transfer not sent yet is lowered
    (or raised again when the dispute is won) here, in the caller's transaction."""
    if row.held_reduced:
        if row.status == "won":
            await _give_back_held(session, order, row)
        return False
    if row.recovery_reversal_id is not None or row.recovery_due > 0:
        return await plan_recovery(session, settings, order, row)
    wanted = await recovery_wanted(session, settings, order, row)
    transfer = await lock_transfer(session, order.id)
    if wanted <= 0 or transfer is None:
        return False
    if never_asked(transfer):
        row.held_reduced = row.recovered_amount = min(wanted, transfer.amount)
        await session.flush()
        await settle_held(session, order, transfer)
        log.warning(
            "dispute %s: %s taken off store %s's held transfer",
            row.stripe_dispute_id,
            row.held_reduced,
            order.store_id,
        )
        return False
    # Sent (or being sent: the job reverses it once its Stripe id is known).
    left = transfer.amount - await reversed_so_far(session, order)
    row.recovery_due = max(0, min(wanted, left))
    await session.flush()
    return row.recovery_due > 0


async def _give_back_held(session: AsyncSession, order: Order, row: Dispute) -> None:
    """Won after its funds were withdrawn: the held transfer carries the share again, if it
    is still unsent (a platform admin released it meanwhile: the reduction stands, shown on
    the row)."""
    transfer = await lock_transfer(session, order.id)
    if transfer is None or not never_asked(transfer):
        return
    row.held_reduced = row.recovered_amount = 0
    await session.flush()
    await settle_held(session, order, transfer)
    if transfer.status == TransferStatus.pending:
        # Imported here: the payments tasks import the group checkout, which imports this.
        from souq.payments.tasks import send_group_transfers, transfers_lock

        group_id = transfer.checkout_group_id
        defer_after_commit(
            session, send_group_transfers, lock=transfers_lock(group_id), group_id=group_id
        )


async def catch_up_group(
    session: AsyncSession, settings: Settings, group: CheckoutGroup, after: AfterPayment | None
) -> None:
    """Disputes Stripe announced before the group was paid in Souq's books (their events
    found no paid group then), read before the transaction; its orders are locked here."""
    for dispute in after.disputes if after is not None else []:
        if dispute.charge_id == group.stripe_charge_id:
            await settle_group(session, settings, group, dispute)
