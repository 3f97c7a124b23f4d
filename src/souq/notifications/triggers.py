"""What each change tells whom: the emails and the outgoing webhook events of a change, written
in the transaction that makes it. The state transitions call these (orders/service.py,
payments/onboarding.py, ledger/sync.py and disputes.py, payments/transfers.py and webhooks.py);
each writes by key, so a transition applied twice tells nobody twice.
"""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from souq.integrations import service as integrations
from souq.ledger.models import Dispute, Refund, StorePayout
from souq.notifications import service
from souq.orders.models import Order, PaymentStatus
from souq.orders.schemas import OrderOut, TransferOut
from souq.payments.models import StoreTransfer, StripeEvent
from souq.stores.models import Store


async def _order_data(session: AsyncSession, order: Order) -> dict[str, object]:
    # An order created in this transaction has not loaded its (selectin) relationships.
    unloaded = inspect(order).unloaded & {"items", "payments", "transfer"}
    if unloaded:
        await session.refresh(order, sorted(unloaded))
    return OrderOut.of(order).model_dump(mode="json")


async def _store(session: AsyncSession, order: Order) -> Store:
    return await session.get_one(Store, order.store_id)


async def order_created(session: AsyncSession, order: Order) -> None:
    await integrations.emit(
        session,
        "order.created",
        f"order-{order.id}-created",
        store_id=order.store_id,
        data=await _order_data(session, order),
    )


async def order_paid(session: AsyncSession, order: Order) -> None:
    """The buyer's receipt, the store's managers' new order, and `order.paid`."""
    store = await _store(session, order)
    key = f"order-{order.id}-paid"
    await service.notify(
        session, "order_paid_buyer", f"{key}-buyer", [service.buyer_of(order)],
        order=order, store=store,
    )  # fmt: skip
    await service.notify(
        session, "store_order_paid", f"{key}-store",
        await service.store_managers(session, order.store_id), order=order, store=store,
    )  # fmt: skip
    await integrations.emit(
        session, "order.paid", key, store_id=order.store_id, data=await _order_data(session, order)
    )


async def order_closed(session: AsyncSession, order: Order) -> None:
    """An order that closed unpaid: failed or canceled (expired, or canceled by the buyer or
    a platform admin)."""
    store = await _store(session, order)
    failed = order.payment_status == PaymentStatus.failed
    status = "failed" if failed else "canceled"
    key = f"order-{order.id}-{status}"
    await service.notify(
        session,
        "order_payment_failed_buyer" if failed else "order_canceled_buyer",
        f"{key}-buyer",
        [service.buyer_of(order)],
        order=order,
        store=store,
    )
    await integrations.emit(
        session,
        f"order.{status}",
        key,
        store_id=order.store_id,
        data=await _order_data(session, order),
    )


async def order_fulfilled(session: AsyncSession, order: Order) -> None:
    """The seller marked the order shipped or delivered: the buyer (with the carrier and
    tracking number) and `order.fulfilled`, once per status (a corrected tracking number under
    the same status tells nobody again)."""
    assert order.fulfilment_status is not None
    key = f"order-{order.id}-{order.fulfilment_status.value}"
    await service.notify(
        session, "order_shipped_buyer", f"{key}-buyer", [service.buyer_of(order)],
        order=order, store=await _store(session, order),
    )  # fmt: skip
    await integrations.emit(
        session, "order.fulfilled", key, store_id=order.store_id,
        data=await _order_data(session, order),
    )  # fmt: skip


async def order_needs_review(session: AsyncSession, order: Order) -> None:
    await _tell_admins(
        session,
        "admin_order_needs_review",
        f"order-{order.id}-review-{len(order.payments)}",
        order=order,
        store=await _store(session, order),
    )


async def store_payments_changed(
    session: AsyncSession, store: Store, changes: list[str], version: str
) -> None:
    """After Stripe's view of a store's account was applied: `changes` names the store's
    columns that changed, `version` the state applied (the account.updated event's time)."""
    if not changes:
        return
    managers = await service.store_managers(session, store.id)
    key = f"store-{store.id}-{version}"
    if "stripe_payouts_enabled" in changes:
        kind = "store_payouts_enabled" if store.stripe_payouts_enabled else "store_payouts_disabled"
        await service.notify(session, kind, f"{key}-payouts", managers, store=store)
    if "stripe_requirements_due" in changes and store.stripe_requirements_due:
        await service.notify(
            session, "store_requirements_due", f"{key}-requirements", managers, store=store
        )
    await integrations.emit(
        session,
        "store.payments_status_changed",
        f"{key}-payments-status",
        store_id=store.id,
        data={
            "id": store.id,
            "name": store.name,
            "stripeAccountId": store.stripe_account_id,
            "onboardingComplete": store.stripe_onboarding_complete,
            "chargesEnabled": store.stripe_charges_enabled,
            "payoutsEnabled": store.stripe_payouts_enabled,
            "requirementsDue": list(store.stripe_requirements_due),
            "disabledReason": store.stripe_disabled_reason,
            "changed": changes,
        },
    )


def per_order(key: str, order: Order) -> str:
    """One Stripe refund or dispute of a checkout group's charge concerns every order of the
    cart: each order's store is told once, under its own key."""
    return key if order.checkout_group_id is None else f"{key}-order-{order.id}"


async def refund_succeeded(session: AsyncSession, order: Order, refund: Refund) -> None:
    """A refund of the order went through at Stripe: the buyer, the store's managers and
    `order.refunded`, keyed by the Stripe refund (a refund is told once, however it arrives)."""
    store = await _store(session, order)
    key = per_order(f"refund-{refund.stripe_refund_id or refund.id}", order) + "-succeeded"
    context = {"order": order, "store": store, "refund": refund}
    await service.notify(
        session, "order_refunded_buyer", f"{key}-buyer", [service.buyer_of(order)], **context
    )
    await service.notify(
        session,
        "store_order_refunded",
        f"{key}-store",
        await service.store_managers(session, order.store_id),
        **context,
    )
    from souq.ledger.schemas import RefundOut  # ledger.schemas imports the refunds service

    data = await _order_data(session, order)
    data["refund"] = RefundOut.of(refund).model_dump(mode="json")
    await integrations.emit(session, "order.refunded", key, store_id=order.store_id, data=data)


async def dispute_opened(session: AsyncSession, order: Order, dispute: Dispute) -> None:
    """A payment of the order was disputed: the store's managers (with the evidence deadline)
    and `order.disputed`, keyed by the Stripe dispute."""
    store = await _store(session, order)
    key = per_order(f"dispute-{dispute.stripe_dispute_id}", order) + "-opened"
    await service.notify(
        session,
        "store_order_disputed",
        f"{key}-store",
        await service.store_managers(session, order.store_id),
        order=order,
        store=store,
        dispute=dispute,
    )
    from souq.ledger.schemas import DisputeOut  # ledger.schemas imports the refunds service

    data = await _order_data(session, order)
    data["dispute"] = DisputeOut.of(dispute).model_dump(mode="json")
    await integrations.emit(session, "order.disputed", key, store_id=order.store_id, data=data)


async def dispute_evidence_due(session: AsyncSession, order: Order, dispute: Dispute) -> int:
    """The reminder before a dispute's evidence deadline (once per dispute)."""
    return await service.notify(
        session,
        "store_dispute_evidence_due",
        per_order(f"dispute-{dispute.stripe_dispute_id}", order) + "-evidence-due",
        await service.store_managers(session, order.store_id),
        order=order,
        store=await _store(session, order),
        dispute=dispute,
    )


async def transfer_failed(session: AsyncSession, order: Order, transfer: StoreTransfer) -> None:
    """Stripe refused a store's transfer: the store's managers, platform admins and
    `transfer.failed`, keyed by the transfer and its refusal count (each refusal once)."""
    store = await _store(session, order)
    key = f"transfer-{transfer.id}-failed-{transfer.refusals}"
    recipients = [
        *await service.store_managers(session, order.store_id),
        *await service.platform_admins(session),
    ]
    await service.notify(
        session, "transfer_failed", key, recipients, order=order, store=store, transfer=transfer
    )
    data = TransferOut.of(transfer).model_dump(mode="json")
    data.update(orderId=order.id, storeId=order.store_id, refusals=transfer.refusals)
    await integrations.emit(session, "transfer.failed", key, store_id=order.store_id, data=data)


async def payout_failed(session: AsyncSession, payout: StorePayout) -> None:
    """A store's payout did not reach its bank and the money is back on its balance: the
    store's managers, platform admins and `payout.failed`, once per payout."""
    store = await session.get_one(Store, payout.store_id)
    key = f"payout-{payout.stripe_payout_id}-failed"
    recipients = [
        *await service.store_managers(session, payout.store_id),
        *await service.platform_admins(session),
    ]
    await service.notify(session, "payout_failed", key, recipients, store=store, payout=payout)
    data = {
        "storeId": payout.store_id,
        "stripePayoutId": payout.stripe_payout_id,
        "amount": payout.amount,
        "currency": payout.currency,
        "status": payout.status,
        "failureCode": payout.failure_code,
        "failureMessage": payout.failure_message,
    }
    await integrations.emit(session, "payout.failed", key, store_id=payout.store_id, data=data)


async def stripe_event_failed(session: AsyncSession, event: StripeEvent) -> None:
    """The processing of a Stripe event gave up: platform admins, once per event."""
    await _tell_admins(
        session, "admin_stripe_event_failed", f"stripe-event-{event.stripe_event_id}-failed",
        event=event,
    )  # fmt: skip


async def _tell_admins(session: AsyncSession, kind: str, key: str, **context: object) -> None:
    await service.notify(session, kind, key, await service.platform_admins(session), **context)
