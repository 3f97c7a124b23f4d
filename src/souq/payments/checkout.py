"""Checkout: price the cart from the database, create the pending order and reserve its stock,
then one Stripe Checkout Session that pays the store (destination charge) minus the platform's
commission. And the one code path that turns a Checkout Session's state into the order's state,
used by the webhook, the success page and `souq reconcile` alike."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.models import User
from souq.config import Settings
from souq.db import unit_of_work
from souq.errors import Conflict, InvalidInput, NotFound
from souq.listings.models import Listing
from souq.money import MAX_AMOUNT, format_amount, minimum_charge, platform_fee
from souq.orders import service as orders
from souq.orders.models import Order, OrderItem, OrderPayment, PaymentStatus
from souq.payments.stripe import StripeFailed, StripeGateway, StripeUnavailable
from souq.payments.webhooks import handles
from souq.stores.models import Store

log = logging.getLogger(__name__)

MAX_LINE_ITEMS = 100  # Stripe's limit for a Checkout Session in payment mode.
# Stripe wants expires_at at least 30 minutes after it creates the session, by its clock; the
# session is created a moment after the order, so the expiry gets this much slack on top.
EXPIRY_SLACK = timedelta(minutes=2)


@dataclass(frozen=True)
class CartLine:
    listing_id: int
    quantity: int


@dataclass(frozen=True)
class CheckoutStarted:
    order_id: int
    url: str


def merge_cart(lines: Sequence[CartLine], max_quantity: int) -> dict[int, int]:
    """Listing id → quantity, a listing named twice merged; refuses empty carts and
    quantities outside 1..max_quantity."""
    if not lines:
        raise InvalidInput("the cart is empty", code="empty_cart")
    merged: dict[int, int] = {}
    for index, line in enumerate(lines):
        if not 1 <= line.quantity <= max_quantity:
            raise InvalidInput(
                f"items[{index}]: quantity must be a whole number from 1 to {max_quantity}",
                code="invalid_quantity",
            )
        merged[line.listing_id] = merged.get(line.listing_id, 0) + line.quantity
    for listing_id, quantity in merged.items():
        if quantity > max_quantity:
            raise InvalidInput(
                f"listing {listing_id}: at most {max_quantity} per order (asked for {quantity})",
                code="invalid_quantity",
            )
    if len(merged) > MAX_LINE_ITEMS:
        raise InvalidInput(
            f"at most {MAX_LINE_ITEMS} different listings per checkout", code="too_many_items"
        )
    return merged


def cancel_token(settings: Settings, order_id: int) -> str:
    """Proves a cancel link came from our own Checkout Session, so nobody can cancel another
    buyer's order by guessing its id."""
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"cancel-order-{order_id}".encode(), hashlib.sha256).hexdigest()[:32]


def verify_cancel_token(settings: Settings, order_id: int, token: str) -> bool:
    return hmac.compare_digest(cancel_token(settings, order_id), token)


async def _create_order(
    session: AsyncSession,
    settings: Settings,
    *,
    store_id: int,
    currency: str,
    cart: dict[int, int],
    customer_email: str,
    user: User | None,
) -> tuple[Order, Store]:
    store = (await session.execute(select(Store).where(Store.id == store_id))).scalar_one_or_none()
    if store is None:
        raise NotFound(f"store {store_id} not found", code="store_not_found")
    if not (store.stripe_account_id and store.stripe_charges_enabled):
        raise Conflict("this store cannot take payments yet", code="store_cannot_take_payments")
    listings = {
        listing.id: listing
        for listing in (
            await session.execute(select(Listing).where(Listing.id.in_(list(cart))))
        ).scalars()
    }
    items: list[OrderItem] = []
    for listing_id, quantity in cart.items():
        listing = listings.get(listing_id)
        if listing is None:
            raise NotFound(f"listing {listing_id} does not exist", code="listing_not_found")
        if listing.store_id != store.id:
            raise InvalidInput(
                f"listing {listing_id} is not sold by store {store.id}", code="listing_wrong_store"
            )
        if not listing.active:
            raise Conflict(f"listing {listing_id} is no longer for sale", code="listing_inactive")
        if listing.currency != currency:
            raise InvalidInput(
                f"listing {listing_id} is priced in {listing.currency.upper()}, "
                f"not {currency.upper()}",
                code="listing_wrong_currency",
            )
        line = listing.price_amount * quantity
        items.append(
            OrderItem(
                listing_id=listing.id,
                title=listing.name,
                quantity=quantity,
                unit_price=listing.price_amount,
                currency=currency,
                line_subtotal=line,
                line_total=line,
            )
        )
    total = sum(item.line_total for item in items)
    if total < minimum_charge(currency):
        raise InvalidInput(
            f"the total {format_amount(total, currency)} {currency.upper()} is below the "
            f"minimum charge of {format_amount(minimum_charge(currency), currency)}",
            code="amount_too_small",
        )
    if total > MAX_AMOUNT:
        raise InvalidInput(
            f"the total {format_amount(total, currency)} {currency.upper()} is above the "
            f"maximum of {format_amount(MAX_AMOUNT, currency)}",
            code="amount_too_large",
        )
    counted = {i: q for i, q in cart.items() if listings[i].stock is not None}
    short = await orders.reserve_stock(session, counted)
    if short:
        names = ", ".join(f"listing {i} ({listings[i].name})" for i in short)
        raise Conflict(f"not enough stock left for {names}", code="out_of_stock")
    bps = (
        store.platform_fee_bps if store.platform_fee_bps is not None else settings.platform_fee_bps
    )
    order = Order(
        store_id=store.id,
        user_id=user.id if user else None,
        customer_email=customer_email,
        currency=currency,
        subtotal_amount=total,
        total_amount=total,
        platform_fee_amount=platform_fee(total, bps, currency),
        payment_status=PaymentStatus.pending,
        items=items,
    )
    session.add(order)
    await session.flush()
    return order, store


def session_params(settings: Settings, order: Order, store: Store) -> dict[str, Any]:
    """The Checkout Session for an order: everything priced from the database; identical on
    every retry (expires_at derives from the order), so the idempotency key always matches."""
    assert store.stripe_account_id is not None
    metadata = {"orderId": str(order.id), "storeId": str(store.id)}
    ttl = timedelta(minutes=settings.checkout_session_ttl_minutes)
    expires_at = order.created_at + ttl + EXPIRY_SLACK
    payment_intent_data: dict[str, Any] = {
        "transfer_data": {"destination": store.stripe_account_id},
        "metadata": metadata,
    }
    if order.platform_fee_amount > 0:
        payment_intent_data["application_fee_amount"] = order.platform_fee_amount
    return {
        "mode": "payment",
        "line_items": [
            {
                "quantity": item.quantity,
                "price_data": {
                    "currency": item.currency,
                    "unit_amount": item.unit_price,
                    "product_data": {"name": item.title},
                },
            }
            for item in order.items
        ],
        "customer_email": order.customer_email,
        "client_reference_id": str(order.id),
        "metadata": metadata,
        "payment_intent_data": payment_intent_data,
        "success_url": f"{settings.app_url}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": (
            f"{settings.app_url}/checkout/cancel?orderId={order.id}"
            f"&token={cancel_token(settings, order.id)}"
        ),
        "expires_at": int(expires_at.timestamp()),
    }


async def start_checkout(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    *,
    store_id: int,
    currency: str,
    lines: Sequence[CartLine],
    customer_email: str,
    user: User | None,
) -> CheckoutStarted:
    """Three short units of work, so no database lock is held while Stripe is asked:
    1. the pending order with its items and reserved stock (all or nothing);
    2. the Checkout Session, with an idempotency key derived from the order;
    3. the session id saved on the order, or, if Stripe failed, the order failed and its
       stock released, so nothing is left pending."""
    cart = merge_cart(lines, settings.checkout_max_quantity)
    async with unit_of_work(factory) as session:
        order, store = await _create_order(
            session,
            settings,
            store_id=store_id,
            currency=currency,
            cart=cart,
            customer_email=customer_email,
            user=user,
        )
        params = session_params(settings, order, store)
    try:
        checkout = await gateway.create_checkout_session(
            params, idempotency_key=f"order-{order.id}-checkout"
        )
    except (StripeUnavailable, StripeFailed):
        async with unit_of_work(factory) as session:
            locked = await orders.lock_order(session, order.id)
            if locked is not None:
                await orders.close_unpaid(session, locked, PaymentStatus.failed)
        raise
    async with unit_of_work(factory) as session:
        locked = await orders.lock_order(session, order.id)
        assert locked is not None
        if locked.stripe_checkout_session_id is None:
            locked.stripe_checkout_session_id = checkout["id"]
    return CheckoutStarted(order_id=order.id, url=str(checkout["url"]))


def _id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return str(value["id"])
    return str(value)


def _payment_failed(payment_intent: Any) -> bool:
    """A delayed payment that Stripe gave up on: the intent went back to needing a payment
    method after a failure, or was canceled."""
    if not isinstance(payment_intent, dict):
        return False
    status = payment_intent.get("status")
    return status == "canceled" or (
        status == "requires_payment_method" and payment_intent.get("last_payment_error") is not None
    )


def _payment_row(order: Order, checkout: dict[str, Any]) -> OrderPayment:
    payment_intent = checkout.get("payment_intent")
    charge = payment_intent.get("latest_charge") if isinstance(payment_intent, dict) else None
    balance_txn = charge.get("balance_transaction") if isinstance(charge, dict) else None
    amount = int(checkout.get("amount_total") or order.total_amount)
    fee = order.platform_fee_amount
    if (
        isinstance(payment_intent, dict)
        and payment_intent.get("application_fee_amount") is not None
    ):
        fee = int(payment_intent["application_fee_amount"])
    if amount != order.total_amount or fee != order.platform_fee_amount:
        log.error(
            "order %s: Stripe charged %s with fee %s, the order says %s with fee %s",
            order.id,
            amount,
            fee,
            order.total_amount,
            order.platform_fee_amount,
        )
    return OrderPayment(
        stripe_checkout_session_id=str(checkout["id"]),
        stripe_payment_intent_id=_id(payment_intent),
        stripe_charge_id=_id(charge),
        amount=amount,
        currency=str(checkout.get("currency") or order.currency),
        platform_fee_amount=fee,
        stripe_fee_amount=(int(balance_txn["fee"]) if isinstance(balance_txn, dict) else None),
        net_amount_to_store=amount - fee,
    )


def _order_id(checkout: dict[str, Any]) -> int | None:
    for raw in (
        checkout.get("client_reference_id"),
        (checkout.get("metadata") or {}).get("orderId"),
    ):
        if raw is not None and str(raw).isdigit():
            return int(raw)
    return None


async def apply_checkout_session(
    session: AsyncSession, checkout: dict[str, Any], *, failed: bool = False
) -> Order | None:
    """Bring the order to the state of its Checkout Session (retrieved from Stripe, with the
    payment intent expanded). Safe to run any number of times, concurrently, in any order:
    the order row is locked, paid is final, and stock is released only by leaving pending."""
    order_id = _order_id(checkout)
    order = await orders.lock_order(session, order_id) if order_id is not None else None
    if order is None:
        log.info("checkout session %s is for no known order", checkout.get("id"))
        return None
    if order.stripe_checkout_session_id not in (None, checkout["id"]):
        log.warning(
            "checkout session %s claims order %s, which has session %s: ignored",
            checkout["id"],
            order.id,
            order.stripe_checkout_session_id,
        )
        return order
    if order.stripe_checkout_session_id is None:
        order.stripe_checkout_session_id = str(checkout["id"])
    status, payment_status = checkout.get("status"), checkout.get("payment_status")
    if status == "complete" and payment_status in ("paid", "no_payment_required"):
        await orders.mark_paid(session, order, _payment_row(order, checkout))
    elif status == "expired":
        await orders.close_unpaid(session, order, PaymentStatus.canceled)
    elif status == "complete" and (failed or _payment_failed(checkout.get("payment_intent"))):
        await orders.close_unpaid(session, order, PaymentStatus.failed)
    await session.flush()
    return order


async def sync_checkout_session(
    session: AsyncSession, gateway: StripeGateway, session_id: str, *, failed: bool = False
) -> Order | None:
    checkout = await gateway.retrieve_checkout_session(session_id)
    return await apply_checkout_session(session, checkout, failed=failed)


@handles(
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)
async def on_checkout_session(
    session: AsyncSession, gateway: StripeGateway, event: dict[str, Any]
) -> None:
    """The event says which session changed; its current state is read back from Stripe, so
    duplicates and out-of-order events all end in the same place."""
    await sync_checkout_session(
        session,
        gateway,
        event["data"]["object"]["id"],
        failed=event["type"] == "checkout.session.async_payment_failed",
    )


@handles("charge.succeeded", "charge.updated")
async def on_charge(session: AsyncSession, gateway: StripeGateway, event: dict[str, Any]) -> None:
    """Store Stripe's processing fee from the charge's balance transaction on the payment row,
    so the platform's real margin is known per order. With asynchronous capture the balance
    transaction arrives later, in charge.updated."""
    charge = event["data"]["object"]
    payment_intent = _id(charge.get("payment_intent"))
    if payment_intent is None:
        return
    payment = (
        await session.execute(
            select(OrderPayment)
            .where(OrderPayment.stripe_payment_intent_id == payment_intent)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if payment is None:
        # Not paid yet in our books: the session's completion reads the fee itself.
        return
    if charge.get("balance_transaction") is None:
        payment.stripe_charge_id = payment.stripe_charge_id or str(charge["id"])
        return
    full = await gateway.retrieve_charge(str(charge["id"]))
    balance_txn = full.get("balance_transaction")
    payment.stripe_charge_id = str(full["id"])
    if isinstance(balance_txn, dict):
        payment.stripe_fee_amount = int(balance_txn["fee"])
    await session.flush()


async def cancel_checkout(session: AsyncSession, gateway: StripeGateway, order: Order) -> None:
    """Expire the order's open session; the order follows the session's state (canceled, or
    paid if the buyer paid after all)."""
    assert order.stripe_checkout_session_id is not None
    try:
        expired = await gateway.expire_checkout_session(order.stripe_checkout_session_id)
    except StripeFailed:
        # Not open any more (paid, or already expired): take whatever state it is in.
        expired = await gateway.retrieve_checkout_session(order.stripe_checkout_session_id)
        await apply_checkout_session(session, expired)
        return
    await sync_checkout_session(session, gateway, str(expired["id"]))
