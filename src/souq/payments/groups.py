"""One payment for a cart across stores (separate charges and transfers): one pending order per
store, grouped in a checkout group, one Checkout Session on the platform's account for the
whole cart with `payment_intent_data.transfer_group`; when it is paid, every order is paid and
each store gets one Transfer of its total minus its commission, from the charge
(`source_transaction`). See https://docs.stripe.com/connect/separate-charges-and-transfers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.models import User
from souq.carts.models import CheckoutGroup, GroupStatus
from souq.config import Settings
from souq.db import unit_of_work, utcnow
from souq.errors import Conflict, InvalidInput, NotFound
from souq.jobs import defer_after_commit
from souq.ledger import disputes, group_disputes
from souq.ledger import service as ledger
from souq.orders import service as orders
from souq.orders.models import CLOSED_UNPAID, Order, PaymentStatus
from souq.payments import checkout, limits
from souq.payments.models import StoreTransfer, TransferStatus
from souq.payments.stripe import (
    CheckoutSession,
    Event,
    StripeDataError,
    StripeFailed,
    StripeGateway,
    StripeUnavailable,
)
from souq.payments.webhooks import Apply, Ignored, read_or_ignore
from souq.stores.models import Store
from souq.stores.service import holds_transfers

log = logging.getLogger(__name__)

GROUP_METADATA = "checkoutGroupId"


@dataclass(frozen=True)
class StoreLines:
    store_id: int
    lines: Sequence[checkout.CartLine]


@dataclass(frozen=True)
class GroupStarted:
    group_id: int
    url: str
    order_ids: list[int]


def group_key(group_id: int) -> str:
    """The Stripe idempotency key of a group's one Checkout Session."""
    return f"checkout-group-{group_id}-checkout"


def group_id_of(checkout_session: CheckoutSession) -> int | None:
    raw = checkout_session.metadata.get(GROUP_METADATA)
    return int(raw) if raw is not None and raw.isdigit() and len(raw) < 10 else None


def group_session_params(
    settings: Settings, group: CheckoutGroup, group_orders: Sequence[Order]
) -> dict[str, Any]:
    """The platform's Checkout Session for the whole cart: every store's lines and service
    fee, no destination (the money stays with the platform until the transfers)."""
    metadata = {GROUP_METADATA: str(group.id)}
    ttl = timedelta(minutes=settings.checkout_session_ttl_minutes)
    cancel_token = checkout.cancel_token(settings, group.id, kind="group")
    return {
        "mode": "payment",
        "line_items": [
            line
            for order in group_orders
            for line in checkout.order_lines(order) + checkout.buyer_fee_line(order)
        ],
        "customer_email": group.customer_email,
        "metadata": metadata,
        "payment_intent_data": {"transfer_group": group.transfer_group, "metadata": metadata},
        "success_url": f"{settings.app_url}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{settings.app_url}/checkout/cancel?groupId={group.id}&token={cancel_token}",
        "expires_at": int((group.created_at + ttl + checkout.EXPIRY_SLACK).timestamp()),
    }


async def start_group_checkout(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    *,
    currency: str,
    stores: Sequence[StoreLines],
    customer_email: str,
    user: User | None,
    client_address: str | None = None,
    request_id: int | None = None,
) -> GroupStarted:
    """As `checkout.start_checkout`, for several stores at once (or one whose money is held):
    the attempt counted against the buyer's limits, then (1) the group and one order per
    store, stock reserved, all or nothing (and the caller's Idempotency-Key row linked to the
    first order); (2) one Checkout Session; (3) its id saved, or every order failed (Stripe
    refused) or held as session_unknown (no answer)."""
    buyer = limits.Buyer(customer_email, user.id if user else None, client_address)
    await limits.check_checkout_rate(factory, settings, buyer)
    return await _start_counted_group(
        factory, gateway, settings, currency, stores, buyer, user, request_id
    )


async def _start_counted_group(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    currency: str,
    stores: Sequence[StoreLines],
    buyer: limits.Buyer,
    user: User | None,
    request_id: int | None,
) -> GroupStarted:
    async with unit_of_work(factory) as session:
        group, made = await _create_group(session, settings, currency, stores, buyer, user)
        params = group_session_params(settings, group, made)
        group_id, order_ids = group.id, [order.id for order in made]
        if request_id is not None:
            await checkout.link_request(session, request_id, order_id=order_ids[0])
    url = await _open_group_session(factory, gateway, group_id, params, request_id)
    return GroupStarted(group_id=group_id, url=url, order_ids=order_ids)


async def _create_group(
    session: AsyncSession,
    settings: Settings,
    currency: str,
    stores: Sequence[StoreLines],
    buyer: limits.Buyer,
    user: User | None,
) -> tuple[CheckoutGroup, list[Order]]:
    """The pending group and its orders, each store's with the transfer timing it has now;
    the cart's total and line count within Stripe's limits."""
    group = CheckoutGroup(
        user_id=buyer.user_id, customer_email=buyer.email, currency=currency, total_amount=0
    )
    session.add(group)
    await session.flush()
    made: list[Order] = []
    for part in stores:
        order, store = await checkout.create_order(
            session,
            settings,
            store_id=part.store_id,
            currency=currency,
            lines=part.lines,
            customer_email=buyer.email,
            user=user,
            client_address=buyer.address,
        )
        order.checkout_group_id = group.id
        order.transfer_on_fulfilment = holds_transfers(store, settings)
        made.append(order)
    group.total_amount = sum(order.total_amount for order in made)
    checkout.check_charge_limits(group.total_amount, currency)
    lines = sum(len(o.items) + (o.buyer_fee_amount > 0) for o in made)
    if lines > checkout.STRIPE_MAX_LINE_ITEMS:
        raise InvalidInput(
            f"at most {checkout.MAX_LINE_ITEMS} different listings per checkout",
            code="too_many_items",
        )
    await session.flush()
    return group, made


async def _open_group_session(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    group_id: int,
    params: dict[str, Any],
    request_id: int | None,
) -> str:
    try:
        found = await gateway.create_checkout_session(params, idempotency_key=group_key(group_id))
    except (StripeUnavailable, StripeDataError) as exc:
        async with unit_of_work(factory) as session:
            await _close_group(session, group_id, GroupStatus.session_unknown)
        raise checkout.CheckoutUnconfirmed(
            "Our payment provider did not answer in time. Nothing has been charged; your "
            "orders are held for you while we check. Please try again in a moment."
        ) from exc
    except StripeFailed:
        async with unit_of_work(factory) as session:
            await _close_group(session, group_id, GroupStatus.failed)
        raise
    async with unit_of_work(factory) as session:
        url = await checkout.save_session_id(session, CheckoutGroup, group_id, found, request_id)
        # Back to pending: so are its orders that were held as session_unknown with it (a
        # group that was pending has none; the group's row lock orders this with handlers).
        await session.execute(
            update(Order)
            .where(
                Order.checkout_group_id == group_id,
                Order.payment_status == PaymentStatus.session_unknown,
            )
            .values(payment_status=PaymentStatus.pending)
            .execution_options(synchronize_session=False)
        )
    return url


async def resume_group_checkout(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    group_id: int,
    request_id: int | None,
) -> str:
    """A retry of a group's checkout whose page the caller never got: Stripe is asked again
    with the group's own key, which returns the session it made, never a second."""
    async with unit_of_work(factory) as session:
        group = await _lock_group(session, group_id)
        if group.status not in (GroupStatus.pending, GroupStatus.session_unknown):
            raise Conflict(
                f"the checkout is {group.status.value}: start a new checkout",
                code="checkout_closed",
            )
        params = group_session_params(settings, group, await _group_orders(session, group_id))
    return await _open_group_session(factory, gateway, group_id, params, request_id)


@dataclass(frozen=True)
class StoreCheckout:
    group_id: int | None
    order_id: int
    url: str


async def start_store_checkout(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    *,
    store_id: int,
    currency: str,
    lines: Sequence[checkout.CartLine],
    customer_email: str,
    user: User | None,
    client_address: str | None = None,
    request_id: int | None = None,
) -> StoreCheckout:
    """One store's checkout: the seed's destination charge, unless the store's money is held
    until fulfilment, which a destination charge cannot do (its transfer is made with the
    charge); then a group of one order, paid on the platform's account and transferred later
    (https://docs.stripe.com/connect/separate-charges-and-transfers). The attempt is counted
    against the buyer's limits in the same short unit of work that reads the store's timing."""
    buyer = limits.Buyer(customer_email, user.id if user else None, client_address)
    async with unit_of_work(factory) as session:
        await limits.count_checkout(session, settings, buyer)
        store = await session.get(Store, store_id)
        held = store is not None and holds_transfers(store, settings)
    if held:
        group = await _start_counted_group(
            factory,
            gateway,
            settings,
            currency,
            [StoreLines(store_id, lines)],
            buyer,
            user,
            request_id,
        )
        return StoreCheckout(group.group_id, group.order_ids[0], group.url)
    started = await checkout.start_checkout(
        factory,
        gateway,
        settings,
        store_id=store_id,
        currency=currency,
        lines=lines,
        customer_email=customer_email,
        user=user,
        request_id=request_id,
        client_address=client_address,
    )
    return StoreCheckout(None, started.order_id, started.url)


async def _lock_group(session: AsyncSession, group_id: int) -> CheckoutGroup:
    return (
        await session.execute(
            select(CheckoutGroup)
            .where(CheckoutGroup.id == group_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()


async def _group_orders(session: AsyncSession, group_id: int) -> list[Order]:
    """The group's orders, each locked, in id order (so concurrent handlers never deadlock)."""
    ids = (
        await session.execute(
            select(Order.id).where(Order.checkout_group_id == group_id).order_by(Order.id)
        )
    ).scalars()
    locked = [await orders.lock_order(session, order_id) for order_id in ids]
    return [order for order in locked if order is not None]


async def _close_group(session: AsyncSession, group_id: int, status: GroupStatus) -> None:
    """An unpaid group closes: failed or canceled orders give their stock back (once);
    session_unknown keeps it until reconcile learns what Stripe did."""
    group = await _lock_group(session, group_id)
    if group.status not in (GroupStatus.pending, GroupStatus.session_unknown):
        return
    group.status = status
    for order in await _group_orders(session, group_id):
        if status == GroupStatus.session_unknown:
            if order.payment_status == PaymentStatus.pending:
                order.payment_status = PaymentStatus.session_unknown
        else:
            await orders.close_unpaid(session, order, PaymentStatus(status.value))
    await session.flush()


def group_mismatch(group: CheckoutGroup, checkout_session: CheckoutSession) -> str | None:
    """Why a paid session is not the payment the group asked for, or None."""
    problems = checkout.session_problems(
        checkout_session,
        "group",
        group.stripe_checkout_session_id,
        group.total_amount,
        group.currency,
    )
    intent = checkout_session.payment_intent
    if intent is None or intent.latest_charge_id is None:
        problems.append("no charge to transfer from")
    return "; ".join(problems) or None


async def _pay_group(
    session: AsyncSession, group: CheckoutGroup, checkout_session: CheckoutSession
) -> None:
    """Mark the group and its orders paid, and make each order's transfer row: pending, or
    held until fulfilment when the order was made with its store's money held."""
    intent = checkout_session.payment_intent
    assert intent is not None
    group.status = GroupStatus.paid
    group.stripe_checkout_session_id = checkout_session.id
    group.stripe_payment_intent_id = intent.id
    group.stripe_charge_id = intent.latest_charge_id
    group.paid_at = utcnow()
    for order in await _group_orders(session, group.id):
        if order.payment_status in CLOSED_UNPAID and not await orders.retake_stock(session, order):
            order.payment_status = PaymentStatus.needs_review
            order.review_reason = (
                f"paid in checkout group {group.id} after its stock was given back, and too "
                "little is left to fill it; its store is not paid until an admin decides"
            )
            continue
        order.payment_status = PaymentStatus.paid
        order.paid_at = order.paid_at or group.paid_at
        if intent.latest_charge is not None:
            await ledger.record_group_sale(session, order, intent.latest_charge)
        assert order.destination_account_id is not None
        session.add(
            StoreTransfer(
                order_id=order.id,
                checkout_group_id=group.id,
                store_id=order.store_id,
                destination_account_id=order.destination_account_id,
                amount=order.total_amount - order.platform_fee_amount,
                currency=order.currency,
                status=TransferStatus.held
                if order.transfer_on_fulfilment
                else TransferStatus.pending,
            )
        )
    await session.flush()


async def apply_group_session(
    session: AsyncSession,
    checkout_session: CheckoutSession,
    group_id: int,
    *,
    failed: bool = False,
) -> CheckoutGroup | None:
    """Bring a group and its orders to the state of its Checkout Session; a paid group gets
    its transfer rows, sent by the caller once this transaction committed (Stripe is never
    asked while it is open). Safe to run any number of times, concurrently, in any order:
    the group row is locked, orders and transfer rows move once."""
    group = await session.get(CheckoutGroup, group_id)
    if group is None:
        return None
    group = await _lock_group(session, group_id)
    if checkout_session.paid:
        if group.status not in (GroupStatus.paid, GroupStatus.needs_review):
            reason = group_mismatch(group, checkout_session)
            if reason is None:
                await _pay_group(session, group, checkout_session)
            else:
                group.status = GroupStatus.needs_review
                group.review_reason = reason[:1000]
                for order in await _group_orders(session, group.id):
                    order.payment_status = PaymentStatus.needs_review
                    order.review_reason = f"checkout group {group.id}: {reason}"[:1000]
                log.warning("checkout group %s needs review: %s", group.id, reason)
    elif group.stripe_checkout_session_id in (None, checkout_session.id):
        group.stripe_checkout_session_id = checkout_session.id
        unpaid = (
            GroupStatus.failed
            if group.status == GroupStatus.session_unknown
            else GroupStatus.canceled
        )
        intent = checkout_session.payment_intent
        if checkout_session.status == "expired":
            await _close_group(session, group.id, unpaid)
        elif checkout_session.status == "complete" and (
            failed or (intent is not None and intent.failed)
        ):
            await _close_group(session, group.id, GroupStatus.failed)
    await session.flush()
    return group


async def on_checkout_session(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, event: Event
) -> Apply | Ignored:
    """checkout.session.*: the session is read from Stripe first (no transaction open); a
    group's session then moves the group and sends its transfers, any other moves its order
    (`checkout.apply_checkout_session`)."""
    found = await read_or_ignore(
        gateway.retrieve_checkout_session(event.object_id),
        f"checkout session {event.object_id}",
    )
    if isinstance(found, Ignored):
        return found
    group_id = group_id_of(found)
    failed = event.type == "checkout.session.async_payment_failed"
    # Refunds and disputes Stripe announced before the payment was in our books, read now
    # (only when the charge shows some) so the apply step asks Stripe nothing.
    charge = found.payment_intent.latest_charge if found.payment_intent else None
    after = await read_or_ignore(
        disputes.read_after_payment(gateway, charge), f"checkout session {found.id}"
    )
    if isinstance(after, Ignored):
        return after

    async def apply(session: AsyncSession) -> Ignored | None:
        if group_id is None:
            order = await checkout.apply_checkout_session(session, found, failed=failed)
            if order is None:
                return Ignored(f"checkout session {found.id} is not for an order of ours")
            await disputes.catch_up(session, gateway.settings, order, after)
        else:
            group = await apply_group_session(session, found, group_id, failed=failed)
            if group is None:
                return Ignored(f"checkout session {found.id} is for no checkout group of ours")
            if group.status == GroupStatus.paid:
                await group_disputes.catch_up_group(session, gateway.settings, group, after)
                # Imported here: the jobs module lists this handler's module (a cycle).
                from souq.payments.tasks import send_group_transfers, transfers_lock

                defer_after_commit(
                    session, send_group_transfers, lock=transfers_lock(group.id), group_id=group.id
                )
        return None

    return apply


async def groups_to_reconcile(factory: async_sessionmaker[AsyncSession]) -> list[int]:
    """Open groups (their session may have been paid or expired without a webhook)."""
    async with unit_of_work(factory) as session:
        query = select(CheckoutGroup.id).where(
            CheckoutGroup.status.in_([GroupStatus.pending, GroupStatus.session_unknown])
        )
        return list((await session.execute(query.order_by(CheckoutGroup.id))).scalars())


async def reconcile_group(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    group_id: int,
) -> str:
    """Read (or, when its creation never answered, replay) the group's session and apply it;
    an open session whose creation never answered is expired (the buyer never saw it)."""
    async with unit_of_work(factory) as session:
        group = await session.get(CheckoutGroup, group_id)
        assert group is not None
        session_id, before = group.stripe_checkout_session_id, group.status
        group_orders = await _group_orders(session, group_id)
        params = group_session_params(settings, group, group_orders)
    if session_id is None:
        try:
            session_id = (
                await gateway.create_checkout_session(params, idempotency_key=group_key(group_id))
            ).id
        except StripeFailed:
            async with unit_of_work(factory) as session:
                await _close_group(session, group_id, GroupStatus.failed)
            return "failed"
    found = await gateway.retrieve_checkout_session(session_id)
    if before == GroupStatus.session_unknown and found.status == "open":
        found = await gateway.expire_checkout_session(session_id)
        found = await gateway.retrieve_checkout_session(session_id)
    async with unit_of_work(factory) as session:
        group_after = await apply_group_session(session, found, group_id)
        after = group_after.status if group_after else before
    # Its transfers are sent by reconcile's pass over every unsent transfer, which follows.
    return after.value if after != before else "unchanged"


@dataclass(frozen=True)
class GroupView:
    """A checkout group as its buyer's landing page shows it: every store's order."""

    group: CheckoutGroup
    orders: list[Order]
    stores: dict[int, Store]

    @property
    def confirming(self) -> bool:
        """Still open in our books: the page says the payment is being confirmed."""
        return self.group.status in (GroupStatus.pending, GroupStatus.session_unknown)


async def _view(session: AsyncSession, group_id: int) -> GroupView:
    group = await session.get(CheckoutGroup, group_id)
    assert group is not None
    group_orders = list(
        (
            await session.execute(
                select(Order).where(Order.checkout_group_id == group_id).order_by(Order.id)
            )
        ).scalars()
    )
    ids = {order.store_id for order in group_orders}
    found = (await session.execute(select(Store).where(Store.id.in_(ids)))).scalars()
    return GroupView(group, group_orders, {store.id: store for store in found})


async def _sync(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    group_id: int,
    session_id: str,
) -> None:
    found = await gateway.retrieve_checkout_session(session_id)
    async with unit_of_work(factory) as session:
        await apply_group_session(session, found, group_id)


async def group_status(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    session_id: str,
) -> GroupView | None:
    """The landing page after paying a group (None: the session is no group's). As for one
    order (`checkout.checkout_status`): while the group is open in our books Stripe is read,
    at most once per CHECKOUT_STATUS_POLL_SECONDS, and when it cannot be read the page says
    the payment is being confirmed."""
    async with unit_of_work(factory) as session:
        group = (
            await session.execute(
                select(CheckoutGroup).where(CheckoutGroup.stripe_checkout_session_id == session_id)
            )
        ).scalar_one_or_none()
        if group is None:
            return None
        group_id = group.id
        first = (
            await session.execute(
                select(Order.id).where(Order.checkout_group_id == group_id).order_by(Order.id)
            )
        ).scalar()
        # The first order's last-read time throttles the reads for the whole group.
        due = (
            group.status in (GroupStatus.pending, GroupStatus.session_unknown)
            and first is not None
            and await checkout.claim_stripe_read(
                session, first, settings.checkout_status_poll_seconds
            )
        )
    if due:
        try:
            await _sync(factory, gateway, group_id, session_id)
        except (StripeUnavailable, StripeFailed) as exc:
            log.warning("checkout group %s: Stripe could not be read: %s", group_id, exc)
    async with unit_of_work(factory) as session:
        return await _view(session, group_id)


async def cancel_group(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    group_id: int,
    token: str,
) -> GroupView:
    """The buyer backed out of a group's payment page: expire its session; the orders follow
    the session's state (canceled, stock given back; or paid if the buyer paid after all).
    Only a link from our own session (signed token) cancels anything."""
    async with unit_of_work(factory) as session:
        group = await session.get(CheckoutGroup, group_id)
        if group is None or not checkout.verify_cancel_token(settings, group_id, token, "group"):
            raise NotFound("no such checkout")
        session_id = group.stripe_checkout_session_id
        open_ = group.status == GroupStatus.pending and session_id is not None
    if open_:
        assert session_id is not None
        # Not open any more (paid, or already expired): take whatever state it is in.
        with contextlib.suppress(StripeFailed):
            await gateway.expire_checkout_session(session_id)
        await _sync(factory, gateway, group_id, session_id)
    async with unit_of_work(factory) as session:
        return await _view(session, group_id)


async def abandon_store_checkout(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, started: StoreCheckout
) -> None:
    """Close a store's checkout made as part of a cart's per_store checkout that could not be
    completed: its session expired (unless paid already) and the order brought to the
    session's state, its stock returned once. Best effort: a session left open expires by
    itself, and its webhook closes the order."""
    async with unit_of_work(factory) as session:
        if started.group_id is not None:
            group = await session.get_one(CheckoutGroup, started.group_id)
            session_id = group.stripe_checkout_session_id
        else:
            order = await session.get_one(Order, started.order_id)
            session_id = order.stripe_checkout_session_id
    if session_id is None:
        return
    try:
        with contextlib.suppress(StripeFailed):
            await gateway.expire_checkout_session(session_id)
        found = await gateway.retrieve_checkout_session(session_id)
    except (StripeUnavailable, StripeFailed) as exc:
        log.warning("order %s left to expire by itself: %s", started.order_id, exc.message)
        return
    async with unit_of_work(factory) as session:
        if started.group_id is not None:
            await apply_group_session(session, found, started.group_id)
        else:
            await checkout.apply_checkout_session(session, found)
