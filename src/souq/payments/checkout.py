"""Checkout: price the cart from the database, create the pending order and reserve its stock,
then one Stripe Checkout Session that pays the store (destination charge) minus the platform's
commission. And the one code path that turns a Checkout Session's state into the order's state,
used by the webhook, the success page and `souq reconcile` alike: an order is paid only by a
payment that is exactly the one it asked for; any other payment is recorded and held for a
platform admin."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from souq.auth.models import User
from souq.carts.models import CheckoutGroup
from souq.config import Settings
from souq.db import unit_of_work, utcnow
from souq.errors import Conflict, InvalidInput, NotFound, SouqError
from souq.ledger import service as ledger
from souq.listings.models import Listing
from souq.money import MAX_AMOUNT, format_amount, minimum_charge, order_fees
from souq.notifications import triggers
from souq.orders import service as orders
from souq.orders.models import (
    CLOSED_UNPAID,
    OPEN_STATES,
    Order,
    OrderItem,
    OrderPayment,
    PaymentStatus,
)
from souq.payments import limits
from souq.payments.models import CheckoutRequest
from souq.payments.stripe import (
    Charge,
    CheckoutSession,
    Event,
    StripeDataError,
    StripeFailed,
    StripeGateway,
    StripeUnavailable,
)
from souq.payments.webhooks import Apply, Ignored, read_or_ignore
from souq.stores.models import Store
from souq.stores.service import commission_rule

log = logging.getLogger(__name__)

# Stripe's limit for a Checkout Session in payment mode is 100 line items; one is kept for the
# buyer's service fee.
STRIPE_MAX_LINE_ITEMS = 100
MAX_LINE_ITEMS = STRIPE_MAX_LINE_ITEMS - 1
# Stripe wants expires_at at least 30 minutes after it creates the session, by its clock; the
# session is created a moment after the order, so the expiry gets this much slack on top.
EXPIRY_SLACK = timedelta(minutes=2)


class CheckoutUnconfirmed(SouqError):
    """Stripe did not say whether it made the Checkout Session (a timeout, a 5xx): the order
    is held, with its stock, until a retry or `souq reconcile` learns the answer."""

    status_code = 503
    code = "payment_provider_unavailable"


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


def cancel_token(settings: Settings, order_id: int, kind: str = "order") -> str:
    """Proves a cancel link came from our own Checkout Session, so nobody can cancel another
    buyer's order (or checkout group, `kind="group"`) by guessing its id."""
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"cancel-{kind}-{order_id}".encode(), hashlib.sha256).hexdigest()[:32]


def verify_cancel_token(settings: Settings, order_id: int, token: str, kind: str = "order") -> bool:
    return hmac.compare_digest(cancel_token(settings, order_id, kind), token)


def check_charge_limits(total: int, currency: str) -> None:
    """Stripe's smallest and largest charge in the currency; outside them is a 422."""
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


async def create_order(
    session: AsyncSession,
    settings: Settings,
    *,
    store_id: int,
    currency: str,
    lines: Sequence[CartLine],
    customer_email: str,
    user: User | None,
    client_address: str | None = None,
) -> tuple[Order, Store]:
    """The pending order of one store's cart, priced from the database with the store's
    commission rule as it is in this transaction (frozen on the order), its stock reserved
    and the buyer's hold limit checked; `order.created` written with it."""
    store = await _selling_store(session, store_id)
    # The cart is judged only for a store that can sell: what is wrong with a cart depends on
    # that store's listings, so a request for no such store is a 404 whatever its cart.
    cart = merge_cart(lines, settings.checkout_max_quantity)
    listings = await _priced_listings(session, store.id, currency, cart)
    items = [
        OrderItem(
            listing_id=listing.id,
            title=listing.name,
            quantity=cart[listing.id],
            unit_price=listing.price_amount,
            currency=currency,
            line_subtotal=listing.price_amount * cart[listing.id],
            line_total=listing.price_amount * cart[listing.id],
        )
        for listing in listings.values()
    ]
    subtotal = sum(item.line_total for item in items)
    rule = commission_rule(store, settings, currency)
    fees = order_fees(subtotal, rule, currency)
    check_charge_limits(subtotal + fees.buyer_fee, currency)
    buyer = limits.Buyer(customer_email, user.id if user else None, client_address)
    await _hold_stock(session, settings, buyer, cart, listings)
    order = Order(
        store_id=store.id,
        user_id=buyer.user_id,
        customer_email=customer_email,
        client_address=client_address,
        currency=currency,
        subtotal_amount=subtotal,
        total_amount=subtotal + fees.buyer_fee,
        platform_fee_amount=fees.application_fee,
        commission_bps=rule.bps,
        commission_fixed_amount=rule.fixed,
        commission_minimum_amount=rule.minimum,
        buyer_fee_bps=rule.buyer_bps,
        buyer_fee_amount=fees.buyer_fee,
        payment_status=PaymentStatus.pending,
        destination_account_id=store.stripe_account_id,
        holds_stock=True,
        items=items,
        payments=[],
    )
    session.add(order)
    await session.flush()
    # A new order has no transfer yet: say so, rather than let a read of it load lazily.
    set_committed_value(order, "transfer", None)
    await triggers.order_created(session, order)
    return order, store


async def _selling_store(session: AsyncSession, store_id: int) -> Store:
    """The store, if it exists (404) and can take payments (409)."""
    store = (await session.execute(select(Store).where(Store.id == store_id))).scalar_one_or_none()
    if store is None:
        raise NotFound(f"store {store_id} not found", code="store_not_found")
    if not (store.stripe_account_id and store.stripe_charges_enabled):
        raise Conflict("this store cannot take payments yet", code="store_cannot_take_payments")
    return store


@dataclass(frozen=True)
class _Listing:
    """What pricing an order reads of a listing."""

    id: int
    name: str
    price_amount: int
    stock: int | None


async def _priced_listings(
    session: AsyncSession, store_id: int, currency: str, cart: dict[int, int]
) -> dict[int, _Listing]:
    """The cart's listings in the cart's order, in one query of the columns pricing needs;
    each must exist (404), be the store's (422), for sale (409) and in the currency (422)."""
    rows = {
        row.id: row
        for row in await session.execute(
            select(
                Listing.id,
                Listing.store_id,
                Listing.name,
                Listing.active,
                Listing.currency,
                Listing.price_amount,
                Listing.stock,
            ).where(Listing.id.in_(list(cart)))
        )
    }
    priced: dict[int, _Listing] = {}
    for listing_id in cart:
        row = rows.get(listing_id)
        if row is None:
            raise NotFound(f"listing {listing_id} does not exist", code="listing_not_found")
        if row.store_id != store_id:
            raise InvalidInput(
                f"listing {listing_id} is not sold by store {store_id}", code="listing_wrong_store"
            )
        if not row.active:
            raise Conflict(f"listing {listing_id} is no longer for sale", code="listing_inactive")
        if row.currency != currency:
            raise InvalidInput(
                f"listing {listing_id} is priced in {row.currency.upper()}, not {currency.upper()}",
                code="listing_wrong_currency",
            )
        priced[listing_id] = _Listing(row.id, row.name, row.price_amount, row.stock)
    return priced


async def _hold_stock(
    session: AsyncSession,
    settings: Settings,
    buyer: limits.Buyer,
    cart: dict[int, int],
    listings: dict[int, _Listing],
) -> None:
    """Reserve the counted listings' stock (409 when any is short), then check the buyer's
    hold limit while their rows are locked."""
    counted = {i: q for i, q in cart.items() if listings[i].stock is not None}
    short = await orders.reserve_stock(session, counted)
    if short:
        names = ", ".join(f"listing {i} ({listings[i].name})" for i in short)
        raise Conflict(f"not enough stock left for {names}", code="out_of_stock")
    await limits.check_holding(session, settings, buyer, counted)


SERVICE_FEE_NAME = "Service fee"


def order_lines(order: Order) -> list[dict[str, Any]]:
    """The order's items as Checkout Session line items, priced from the order."""
    return [
        {
            "quantity": item.quantity,
            "price_data": {
                "currency": item.currency,
                "unit_amount": item.unit_price,
                "product_data": {"name": item.title},
            },
        }
        for item in order.items
    ]


def buyer_fee_line(order: Order) -> list[dict[str, Any]]:
    """The buyer's service fee as a line of its own on Stripe's page (none when zero)."""
    if order.buyer_fee_amount <= 0:
        return []
    return [
        {
            "quantity": 1,
            "price_data": {
                "currency": order.currency,
                "unit_amount": order.buyer_fee_amount,
                "product_data": {"name": SERVICE_FEE_NAME},
            },
        }
    ]


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
        "line_items": order_lines(order) + buyer_fee_line(order),
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


def checkout_key(order_id: int) -> str:
    """The Stripe idempotency key of an order's one Checkout Session."""
    return f"order-{order_id}-checkout"


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
    request_id: int | None = None,
    client_address: str | None = None,
) -> CheckoutStarted:
    """Three short units of work, so no database lock is held while Stripe is asked (the
    caller, `groups.start_store_checkout`, counted the attempt against the buyer's limits):
    1. the pending order with its items and reserved stock (all or nothing), linked to the
       caller's idempotency key when there is one;
    2. the Checkout Session, with an idempotency key derived from the order;
    3. the session id saved on the order; if Stripe refused, the order failed and its stock
       released; if Stripe's answer never came, the order held as session_unknown."""
    async with unit_of_work(factory) as session:
        order, store = await create_order(
            session,
            settings,
            store_id=store_id,
            currency=currency,
            lines=lines,
            customer_email=customer_email,
            user=user,
            client_address=client_address,
        )
        params = session_params(settings, order, store)
        if request_id is not None:
            await link_request(session, request_id, order_id=order.id)
    return await _open_session(factory, gateway, order.id, params, request_id)


async def link_request(session: AsyncSession, request_id: int, **values: int | str) -> None:
    """Record on the caller's Idempotency-Key row the order it made, or its payment page."""
    await session.execute(
        update(CheckoutRequest).where(CheckoutRequest.id == request_id).values(**values)
    )


async def _open_session(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    order_id: int,
    params: dict[str, Any],
    request_id: int | None,
) -> CheckoutStarted:
    try:
        found = await gateway.create_checkout_session(
            params, idempotency_key=checkout_key(order_id)
        )
    except (StripeUnavailable, StripeDataError) as exc:
        # No answer, or one Souq cannot read: Stripe may have made the session either way.
        async with unit_of_work(factory) as session:
            order = await orders.lock_order(session, order_id)
            if order is not None and order.payment_status == PaymentStatus.pending:
                order.payment_status = PaymentStatus.session_unknown
        log.warning("order %s: Stripe's answer to the checkout never came; held", order_id)
        raise CheckoutUnconfirmed(
            "Our payment provider did not answer in time. Nothing has been charged; "
            f"order {order_id} is held for you while we check. Please try again in a moment."
        ) from exc
    except StripeFailed:
        async with unit_of_work(factory) as session:
            order = await orders.lock_order(session, order_id)
            if order is not None:
                await orders.close_unpaid(session, order, PaymentStatus.failed)
        raise
    async with unit_of_work(factory) as session:
        url = await save_session_id(session, Order, order_id, found, request_id)
    return CheckoutStarted(order_id=order_id, url=url)


async def save_session_id(
    session: AsyncSession,
    owner: type[Order] | type[CheckoutGroup],
    owner_id: int,
    found: CheckoutSession,
    request_id: int | None,
) -> str:
    """Save a new Checkout Session's id on the order (or checkout group) it was made for,
    unless it has one, and take it from session_unknown back to pending (Stripe answered after
    all); its page URL, also on the caller's Idempotency-Key row. One UPDATE, which locks the
    row as `lock_order` would. 409 when it closed meanwhile (or Stripe gave no URL)."""
    state = Order.payment_status if owner is Order else CheckoutGroup.status
    status = (
        await session.execute(
            update(owner)
            .where(owner.id == owner_id)
            .values(
                {
                    owner.stripe_checkout_session_id: func.coalesce(
                        owner.stripe_checkout_session_id, found.id
                    ),
                    state: case(
                        (state == PaymentStatus.session_unknown.value, PaymentStatus.pending.value),
                        else_=state,
                    ),
                }
            )
            .returning(state)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one()
    if status != PaymentStatus.pending.value or found.url is None:
        what = f"order {owner_id}" if owner is Order else "the checkout"
        raise Conflict(f"{what} is {status.value}: start a new checkout", code="checkout_closed")
    if request_id is not None:
        await link_request(session, request_id, url=found.url)
    return found.url


async def resume_checkout(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    order_id: int,
    request_id: int | None,
) -> CheckoutStarted:
    """A retry of a checkout whose order exists but whose payment page the caller never got
    (Stripe did not answer): ask Stripe again with the order's own idempotency key, which
    returns the session it made, if it made one, and never a second."""
    async with unit_of_work(factory) as session:
        order = await orders.lock_order(session, order_id)
        if order is None or order.payment_status not in OPEN_STATES:
            status = order.payment_status.value if order else "gone"
            raise Conflict(
                f"order {order_id} is {status}: start a new checkout", code="checkout_closed"
            )
        store = await session.get(Store, order.store_id)
        if store is None or not store.stripe_account_id:
            await orders.close_unpaid(session, order, PaymentStatus.failed)
            raise Conflict("this store cannot take payments yet", code="store_cannot_take_payments")
        params = session_params(settings, order, store)
    return await _open_session(factory, gateway, order_id, params, request_id)


def _payment_row(order: Order, checkout: CheckoutSession) -> OrderPayment:
    intent = checkout.payment_intent
    charge = intent.latest_charge if intent else None
    balance_txn = charge.balance_transaction if charge else None
    amount = checkout.amount_total or 0
    fee = (intent.application_fee_amount or 0) if intent else 0
    return OrderPayment(
        stripe_checkout_session_id=checkout.id,
        stripe_payment_intent_id=checkout.payment_intent_id,
        stripe_charge_id=intent.latest_charge_id if intent else None,
        amount=amount,
        currency=checkout.currency or order.currency,
        platform_fee_amount=fee,
        stripe_fee_amount=balance_txn.fee if balance_txn else None,
        net_amount_to_store=amount - fee,
    )


def session_problems(
    checkout: CheckoutSession, whose: str, own_session: str | None, total: int, currency: str
) -> list[str]:
    """How a paid session differs from the one an order (or checkout group) asked for: another
    session than its own, another amount or currency."""
    problems: list[str] = []
    if own_session not in (None, checkout.id):
        problems.append(
            f"paid through checkout session {checkout.id}, not the {whose}'s own {own_session}"
        )
    if checkout.amount_total != total:
        problems.append(f"amount {checkout.amount_total} instead of {total}")
    if checkout.currency != currency:
        problems.append(f"currency {checkout.currency} instead of {currency}")
    return problems


def mismatch(order: Order, checkout: CheckoutSession) -> str | None:
    """Why a paid session is not exactly the payment the order asked for, or None: its own
    session, its total, currency, application fee and destination account."""
    problems = session_problems(
        checkout, "order", order.stripe_checkout_session_id, order.total_amount, order.currency
    )
    intent = checkout.payment_intent
    if intent is None:
        problems.append("no payment intent")
    else:
        fee = intent.application_fee_amount or 0
        if fee != order.platform_fee_amount:
            problems.append(f"application fee {fee} instead of {order.platform_fee_amount}")
        if intent.destination != order.destination_account_id:
            problems.append(
                f"paid to {intent.destination} instead of {order.destination_account_id}"
            )
    return "; ".join(problems) or None


async def _apply_payment(session: AsyncSession, order: Order, checkout: CheckoutSession) -> None:
    recorded = (
        await session.execute(
            select(OrderPayment.id).where(OrderPayment.stripe_checkout_session_id == checkout.id)
        )
    ).first()
    if recorded is not None:
        return
    reason = mismatch(order, checkout)
    if reason is None and order.stripe_checkout_session_id is None:
        order.stripe_checkout_session_id = checkout.id
    if reason is None and order.payment is not None:
        reason = (
            "a second payment: the order was already paid through checkout session "
            f"{order.payment.stripe_checkout_session_id}"
        )
    if reason is None and order.payment_status in CLOSED_UNPAID:
        if await orders.retake_stock(session, order):
            log.warning(
                "order %s was %s when Stripe took its payment: its stock is taken back",
                order.id,
                order.payment_status.value,
            )
        else:
            reason = (
                f"the order was {order.payment_status.value} and its stock given back before "
                "this payment arrived, and too little is left to fill it"
            )
    payment = _payment_row(order, checkout)
    if reason is None:
        await orders.mark_paid(session, order, payment)
        intent = checkout.payment_intent
        await ledger.record_sale(session, order, payment, intent.latest_charge if intent else None)
    else:
        await orders.hold_for_review(session, order, payment, reason)


async def apply_checkout_session(
    session: AsyncSession, checkout: CheckoutSession, *, failed: bool = False
) -> Order | None:
    """Bring the order to the state of its Checkout Session (retrieved from Stripe, with the
    payment intent expanded). Safe to run any number of times, concurrently, in any order:
    the order row is locked, each session's payment is recorded once, and stock moves only
    with `holds_stock`. Returns None when the session is for no order of ours."""
    order_id = checkout.order_id
    order = await orders.lock_order(session, order_id) if order_id is not None else None
    if order is None:
        log.info("checkout session %s is for no known order", checkout.id)
        return None
    if checkout.paid:
        await _apply_payment(session, order, checkout)
    elif order.stripe_checkout_session_id not in (None, checkout.id):
        log.warning(
            "checkout session %s claims order %s, which has session %s: ignored",
            checkout.id,
            order.id,
            order.stripe_checkout_session_id,
        )
    else:
        if order.stripe_checkout_session_id is None:
            order.stripe_checkout_session_id = checkout.id
        # A session whose creation never answered reached no buyer: its order failed.
        unpaid = (
            PaymentStatus.failed
            if order.payment_status == PaymentStatus.session_unknown
            else PaymentStatus.canceled
        )
        intent = checkout.payment_intent
        if checkout.status == "expired":
            await orders.close_unpaid(session, order, unpaid)
        elif checkout.status == "complete" and (failed or (intent is not None and intent.failed)):
            await orders.close_unpaid(session, order, PaymentStatus.failed)
    await session.flush()
    return order


async def sync_checkout_session(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    session_id: str,
) -> Order | None:
    """Read the session from Stripe (no transaction open), then apply it in a short one."""
    checkout = await gateway.retrieve_checkout_session(session_id)
    async with unit_of_work(factory) as session:
        return await apply_checkout_session(session, checkout)


async def _payment_for_intent(
    session: AsyncSession, payment_intent_id: str, *, lock: bool
) -> OrderPayment | None:
    query = select(OrderPayment).where(OrderPayment.stripe_payment_intent_id == payment_intent_id)
    return (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()


async def on_charge(
    factory: async_sessionmaker[AsyncSession], gateway: StripeGateway, event: Event
) -> Apply | Ignored:
    """Store Stripe's processing fee from the charge's balance transaction on the payment row,
    so the platform's real margin is known per order. With asynchronous capture the balance
    transaction arrives later, in charge.updated. The charge is read from Stripe only for a
    payment of ours, and before the payment row is locked."""
    charge = event.charge()
    intent_id = charge.payment_intent_id
    if intent_id is None:
        return Ignored(f"charge {charge.id} has no payment intent")
    async with unit_of_work(factory) as session:
        known = await _payment_for_intent(session, intent_id, lock=False) is not None
    if not known:
        # Not Souq's, or not paid yet in our books: the session's completion reads the fee.
        return Ignored(f"no payment of ours for payment intent {intent_id} (yet)")
    full: Charge | None = None
    if charge.balance_transaction_id is not None:
        read = await read_or_ignore(gateway.retrieve_charge(charge.id), f"charge {charge.id}")
        if isinstance(read, Ignored):
            return read
        full = read

    async def apply(session: AsyncSession) -> Ignored | None:
        payment = await _payment_for_intent(session, intent_id, lock=True)
        if payment is None:
            return Ignored(f"no payment of ours for payment intent {intent_id} (yet)")
        if full is None:
            payment.stripe_charge_id = payment.stripe_charge_id or charge.id
            return None
        payment.stripe_charge_id = full.id
        if full.balance_transaction is not None:
            payment.stripe_fee_amount = full.balance_transaction.fee
        if payment.review_reason is None:
            order = await session.get(Order, payment.order_id)
            if order is not None:
                await ledger.record_sale(session, order, payment, full)
        await session.flush()
        return None

    return apply


async def cancel_checkout(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    order_id: int,
    token: str,
) -> tuple[Order, Store | None]:
    """The buyer backed out: expire the order's open session; the order follows the session's
    state (canceled, or paid if the buyer paid after all). Only a link from our own session
    (signed token) cancels anything."""
    async with unit_of_work(factory) as session:
        order = await session.get(Order, order_id)
        if order is None or not verify_cancel_token(settings, order_id, token):
            raise NotFound("no such order")
        session_id = order.stripe_checkout_session_id
        open_ = order.payment_status == PaymentStatus.pending and session_id is not None
    if open_:
        assert session_id is not None
        # Not open any more (paid, or already expired): take whatever state it is in.
        with contextlib.suppress(StripeFailed):
            await gateway.expire_checkout_session(session_id)
        await sync_checkout_session(factory, gateway, session_id)
    async with unit_of_work(factory) as session:
        order = await orders.lock_order(session, order_id)
        assert order is not None
        return order, await session.get(Store, order.store_id)


@dataclass(frozen=True)
class CheckoutStatus:
    order: Order
    store: Store | None

    @property
    def confirming(self) -> bool:
        """Still open in our books: the page says the payment is being confirmed."""
        return self.order.payment_status in OPEN_STATES


async def claim_stripe_read(session: AsyncSession, order_id: int, interval: float) -> bool:
    """Whether this request may ask Stripe about the order now: one conditional update, so of
    many concurrent page loads within `interval` seconds exactly one wins."""
    now = utcnow()
    result = await session.execute(
        update(Order)
        .where(Order.id == order_id)
        .where(
            (Order.stripe_checked_at.is_(None))
            | (Order.stripe_checked_at <= now - timedelta(seconds=interval))
        )
        .values(stripe_checked_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def checkout_status(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    session_id: str,
) -> CheckoutStatus:
    """The buyer's landing page after paying. While the order is open in our books (the
    webhook may be late) Stripe is read, at most once per CHECKOUT_STATUS_POLL_SECONDS per
    order, and the webhook's transition applied; when Stripe cannot be read the page says the
    payment is being confirmed, never that nothing was charged."""
    async with unit_of_work(factory) as session:
        order_id = (
            await session.execute(
                select(Order.id).where(Order.stripe_checkout_session_id == session_id)
            )
        ).scalar_one_or_none()
        if order_id is None:
            raise NotFound("no such checkout")
        status = (
            await session.execute(select(Order.payment_status).where(Order.id == order_id))
        ).scalar_one()
        due = status in OPEN_STATES and await claim_stripe_read(
            session, order_id, settings.checkout_status_poll_seconds
        )
    if due:
        try:
            await sync_checkout_session(factory, gateway, session_id)
        except (StripeUnavailable, StripeFailed) as exc:
            log.warning(
                "order %s: Stripe could not be read for its success page: %s", order_id, exc
            )
    async with unit_of_work(factory) as session:
        order = await session.get(Order, order_id)
        assert order is not None
        return CheckoutStatus(order=order, store=await session.get(Store, order.store_id))
