"""The cart: a guest's (found by the key in the browser's signed session cookie) or a user's
(a guest's cart is merged into it at the first cart request after logging in), with items
from any number of stores. At checkout every item is judged again against the catalogue: an
item that is gone, repriced or short of stock is reported, never dropped or repriced."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.deps import CART_SESSION_KEY
from souq.auth.models import User
from souq.carts.models import Cart, CartCheckout, CartCheckoutStatus, CartItem
from souq.config import Settings
from souq.db import unit_of_work, utcnow
from souq.errors import Conflict, InvalidInput, NotFound
from souq.listings.models import Listing
from souq.money import format_amount, platform_fee
from souq.orders.models import OPEN_STATES, Order
from souq.payments import checkout, groups
from souq.payments.stripe import StripeGateway
from souq.stores.models import Store


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class CartOwner:
    """Whose cart a request means: the user's, or the guest key from the cookie."""

    user: User | None
    guest_key: str | None


def owner_of(cookie: MutableMapping[str, Any], user: User | None) -> CartOwner:
    key = cookie.get(CART_SESSION_KEY)
    return CartOwner(user=user, guest_key=key if isinstance(key, str) and key else None)


async def _find(session: AsyncSession, owner: CartOwner) -> Cart | None:
    if owner.user is not None:
        query = select(Cart).where(Cart.user_id == owner.user.id)
    elif owner.guest_key is not None:
        query = select(Cart).where(Cart.key_hash == _hash(owner.guest_key))
    else:
        return None
    return (await session.execute(query.with_for_update())).scalar_one_or_none()


async def load_cart(
    session: AsyncSession,
    settings: Settings,
    cookie: MutableMapping[str, Any],
    user: User | None,
    *,
    create: bool,
) -> Cart | None:
    """The caller's cart (made when `create`). A logged-in caller whose cookie still names a
    guest cart gets its items merged into theirs (quantities added, up to the maximum), and
    the guest cart is gone."""
    owner = owner_of(cookie, user)
    cart = await _find(session, owner)
    if user is not None and owner.guest_key is not None:
        guest = await _find(session, CartOwner(user=None, guest_key=owner.guest_key))
        cookie.pop(CART_SESSION_KEY, None)
        if guest is not None:
            if cart is None:
                cart = Cart(user_id=user.id, items=[])
                session.add(cart)
            mine = {item.listing_id: item for item in cart.items}
            for item in guest.items:
                if item.listing_id in mine:
                    kept = mine[item.listing_id]
                    kept.quantity = min(
                        kept.quantity + item.quantity, settings.checkout_max_quantity
                    )
                else:
                    cart.items.append(
                        CartItem(
                            listing_id=item.listing_id,
                            quantity=item.quantity,
                            seen_unit_price=item.seen_unit_price,
                            seen_currency=item.seen_currency,
                        )
                    )
            await session.delete(guest)
            await session.flush()
    if cart is None and create:
        if user is not None:
            cart = Cart(user_id=user.id, items=[])
        else:
            key = secrets.token_urlsafe(32)
            cookie[CART_SESSION_KEY] = key
            cart = Cart(key_hash=_hash(key), items=[])
        session.add(cart)
        await session.flush()
    return cart


async def _listing(session: AsyncSession, listing_id: int) -> Listing:
    listing = await session.get(Listing, listing_id)
    if listing is None or not listing.active:
        raise NotFound(f"listing {listing_id} not found", code="listing_not_found")
    return listing


def _check_quantity(quantity: int, settings: Settings) -> None:
    """At most CHECKOUT_MAX_QUANTITY of a listing per cart: a limit of this marketplace's
    configuration (and of what the cart already holds), so a 409, not a schema error."""
    if quantity > settings.checkout_max_quantity:
        raise Conflict(
            f"at most {settings.checkout_max_quantity} of a listing per cart "
            f"(this would make {quantity})",
            code="quantity_limit",
        )


async def add_item(
    session: AsyncSession, settings: Settings, cart: Cart, listing_id: int, quantity: int
) -> None:
    """Add a listing (or more of it) at its current price, which becomes the price seen."""
    listing = await _listing(session, listing_id)
    existing = next((i for i in cart.items if i.listing_id == listing_id), None)
    total = quantity + (existing.quantity if existing else 0)
    _check_quantity(total, settings)
    if existing is None:
        if len(cart.items) >= checkout.MAX_LINE_ITEMS:
            raise InvalidInput(
                f"at most {checkout.MAX_LINE_ITEMS} different listings per cart",
                code="too_many_items",
            )
        existing = CartItem(listing_id=listing_id, quantity=0)
        cart.items.append(existing)
    existing.quantity = total
    existing.seen_unit_price, existing.seen_currency = listing.price_amount, listing.currency
    cart.updated_at = utcnow()
    await session.flush()


async def set_quantity(
    session: AsyncSession, settings: Settings, cart: Cart | None, listing_id: int, quantity: int
) -> None:
    """Change an item's quantity; the listing's current price becomes the price seen (how a
    buyer accepts a changed price)."""
    item = _item(cart, listing_id)
    _check_quantity(quantity, settings)
    listing = await _listing(session, listing_id)
    item.quantity = quantity
    item.seen_unit_price, item.seen_currency = listing.price_amount, listing.currency
    await session.flush()


async def remove_item(session: AsyncSession, cart: Cart | None, listing_id: int) -> None:
    item = _item(cart, listing_id)
    assert cart is not None
    cart.items.remove(item)
    await session.delete(item)
    await session.flush()


def _item(cart: Cart | None, listing_id: int) -> CartItem:
    item = next((i for i in cart.items if i.listing_id == listing_id), None) if cart else None
    if item is None:
        raise NotFound(f"listing {listing_id} is not in the cart", code="not_in_cart")
    return item


@dataclass
class Line:
    item: CartItem
    listing: Listing | None
    store: Store | None
    problem: tuple[str, str] | None = None  # (code, message)


@dataclass
class CartView:
    lines: list[Line] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)


async def view(session: AsyncSession, cart: Cart | None) -> CartView:
    """Every item with its listing and store as they are now, and what stands in the way of
    checking it out: gone, repriced, short of stock, a store that cannot sell, several
    currencies."""
    result = CartView()
    if cart is None or not cart.items:
        return result
    ids = [item.listing_id for item in cart.items]
    listings = {
        listing.id: listing
        for listing in (await session.execute(select(Listing).where(Listing.id.in_(ids)))).scalars()
    }
    store_ids = {listing.store_id for listing in listings.values()}
    stores = {
        store.id: store
        for store in (await session.execute(select(Store).where(Store.id.in_(store_ids)))).scalars()
    }
    for item in cart.items:
        listing = listings.get(item.listing_id)
        store = stores.get(listing.store_id) if listing else None
        line = Line(item=item, listing=listing, store=store)
        if listing is None or not listing.active:
            line.problem = ("unavailable", "no longer for sale")
        elif (listing.price_amount, listing.currency) != (item.seen_unit_price, item.seen_currency):
            line.problem = (
                "price_changed",
                f"the price changed from {format_amount(item.seen_unit_price, item.seen_currency)}"
                f" {item.seen_currency.upper()} to "
                f"{format_amount(listing.price_amount, listing.currency)} "
                f"{listing.currency.upper()}: update the item to accept it",
            )
        elif listing.stock is not None and listing.stock < item.quantity:
            line.problem = (
                "out_of_stock",
                f"only {listing.stock} left, {item.quantity} in the cart",
            )
        elif store is None or not (store.stripe_account_id and store.stripe_charges_enabled):
            line.problem = ("store_unavailable", "its store cannot take payments now")
        result.lines.append(line)
        if line.problem:
            code, message = line.problem
            result.problems.append(
                {"field": f"items.{item.listing_id}", "code": code, "message": message}
            )
    currencies = sorted({line.item.seen_currency for line in result.lines})
    if len(currencies) > 1:
        result.problems.append(
            {
                "field": "currency",
                "code": "mixed_currencies",
                "message": "one payment is in one currency: this cart holds "
                + ", ".join(c.upper() for c in currencies)
                + "; check out one currency at a time (remove the others)",
            }
        )
    return result


def store_buyer_fee(subtotal: int, settings: Settings, currency: str) -> int:
    return platform_fee(subtotal, settings.buyer_fee_bps, currency)


@dataclass(frozen=True)
class StorePart:
    """One store's items of one currency, with their subtotal and the buyer's service fee."""

    store: Store
    currency: str
    lines: list[Line]
    subtotal: int
    buyer_fee: int


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    subtotal: int
    buyer_fee: int

    @property
    def total(self) -> int:
        return self.subtotal + self.buyer_fee


@dataclass(frozen=True)
class CartSummary:
    """The cart as the buyer reads it (the JSON answer and the cart page): by store, and what
    is paid per currency."""

    judged: CartView
    stores: list[StorePart]
    totals: list[CurrencyTotal]


def summarize(judged: CartView, settings: Settings) -> CartSummary:
    stores: list[StorePart] = []
    totals: dict[str, tuple[int, int]] = {}
    for (_, currency), lines in grouped(judged.lines).items():
        store = lines[0].store
        if store is None:
            continue
        subtotal = sum(line.item.seen_unit_price * line.item.quantity for line in lines)
        fee = store_buyer_fee(subtotal, settings, currency)
        stores.append(StorePart(store, currency, lines, subtotal, fee))
        before = totals.get(currency, (0, 0))
        totals[currency] = (before[0] + subtotal, before[1] + fee)
    return CartSummary(
        judged,
        stores,
        [CurrencyTotal(c, sub, fee) for c, (sub, fee) in sorted(totals.items())],
    )


@dataclass(frozen=True)
class CheckedOut:
    """A cart's checkout: its group (paid at once), and each order with the page that pays
    it (the group's page for all of them under single_payment), the first to pay first."""

    checkout_id: int
    group_id: int | None
    pages: list[tuple[int, str]]

    @property
    def url(self) -> str:
        return self.pages[0][1]


@dataclass(frozen=True)
class _Claimed:
    """This request makes the checkout `checkout_id` of these stores' lines."""

    checkout_id: int
    currency: str
    parts: list[groups.StoreLines]


@dataclass(frozen=True)
class _Waiting:
    """An earlier request is making this cart's checkout, since `since`."""

    checkout_id: int
    patience: timedelta


# How often a double click's second request looks whether the first one's checkout is made.
DUPLICATE_POLL_SECONDS = 0.1


def _patience(settings: Settings, stores: int) -> timedelta:
    """How long a checkout of `stores` stores may take (Stripe's timeouts and retries for
    each of its payment pages): a claim older than this was left by a request that died."""
    return timedelta(seconds=(settings.stripe_timeout_seconds * 3 + 10) * max(stores, 1))


def _done(record: CartCheckout) -> CheckedOut:
    return CheckedOut(
        checkout_id=record.id,
        group_id=record.checkout_group_id,
        pages=[(int(order_id), str(url)) for order_id, url in record.pages],
    )


async def _latest(session: AsyncSession, cart_id: int) -> CartCheckout | None:
    return (
        await session.execute(
            select(CartCheckout)
            .where(CartCheckout.cart_id == cart_id)
            .order_by(CartCheckout.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def _still_open(session: AsyncSession, record: CartCheckout) -> CheckedOut | None:
    """The checkout's orders still waiting for payment, with their pages, if any."""
    found = set(
        (
            await session.execute(
                select(Order.id).where(
                    Order.cart_checkout_id == record.id, Order.payment_status.in_(OPEN_STATES)
                )
            )
        ).scalars()
    )
    made = _done(record)
    pages = [(order_id, url) for order_id, url in made.pages if order_id in found]
    return CheckedOut(made.checkout_id, made.group_id, pages) if pages else None


async def _claim(
    factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    cookie: MutableMapping[str, Any],
    user: User | None,
) -> _Claimed | _Waiting | CheckedOut:
    """Under the cart's row lock: the checkout an earlier request is making (wait for it), the
    one it made if the cart is empty since and some of its orders still wait for payment (a
    double click answered late: those orders), or a new one for this request after judging
    the cart again."""
    async with unit_of_work(factory) as session:
        cart = await load_cart(session, settings, cookie, user, create=False)
        judged = await view(session, cart)
        stores = sorted({line.listing.store_id for line in judged.lines if line.listing})
        latest = await _latest(session, cart.id) if cart is not None else None
        if latest is not None and latest.status == CartCheckoutStatus.started:
            patience = _patience(settings, len(stores))
            if utcnow() - latest.created_at < patience:
                return _Waiting(latest.id, patience)
            latest.status = CartCheckoutStatus.failed  # its request died half-way
        if latest is not None and latest.status == CartCheckoutStatus.ready and not judged.lines:
            still_open = await _still_open(session, latest)
            if still_open is not None:
                return still_open
        if not judged.lines:
            raise Conflict("the cart is empty: add items first", code="empty_cart")
        if judged.problems:
            raise Conflict(
                "the cart changed since items were added: "
                + "; ".join(f"{p['field']}: {p['message']}" for p in judged.problems),
                code="cart_changed",
                details=judged.problems,
            )
        assert cart is not None
        by_store: dict[int, list[checkout.CartLine]] = {}
        for line in judged.lines:
            assert line.listing is not None
            by_store.setdefault(line.listing.store_id, []).append(
                checkout.CartLine(line.item.listing_id, line.item.quantity)
            )
        record = CartCheckout(cart_id=cart.id, split_mode=settings.checkout_split_mode, pages=[])
        session.add(record)
        await session.flush()
        return _Claimed(
            checkout_id=record.id,
            currency=judged.lines[0].item.seen_currency,
            parts=[groups.StoreLines(store_id, by_store[store_id]) for store_id in stores],
        )


async def _wait_for(
    factory: async_sessionmaker[AsyncSession], waiting: _Waiting
) -> CheckedOut | None:
    """The earlier request's checkout once made; None when it failed (this request then
    tries itself, and gets the same refusal if nothing changed)."""
    deadline = asyncio.get_running_loop().time() + waiting.patience.total_seconds()
    while True:
        async with unit_of_work(factory) as session:
            record = await session.get_one(CartCheckout, waiting.checkout_id)
            if record.status == CartCheckoutStatus.ready:
                return _done(record)
            if record.status == CartCheckoutStatus.failed:
                return None
        if asyncio.get_running_loop().time() > deadline:
            raise Conflict(
                "this cart's checkout is still being made: try again in a moment",
                code="checkout_in_progress",
            )
        await asyncio.sleep(DUPLICATE_POLL_SECONDS)


async def checkout_cart(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    cookie: MutableMapping[str, Any],
    *,
    user: User | None,
    customer_email: str,
    client_address: str | None,
) -> CheckedOut:
    """Judge the cart again (409 listing every problem), then make its orders and payment
    pages (`_make`), and take what was checked out from the cart. One checkout per cart at a
    time: a second request (a double click) waits for the first and gets its checkout."""
    claimed: _Claimed | None = None
    while claimed is None:
        found = await _claim(factory, settings, cookie, user)
        if isinstance(found, CheckedOut):
            return found
        if isinstance(found, _Claimed):
            claimed = found
            break
        made = await _wait_for(factory, found)
        if made is not None:
            return made
    try:
        group_id, pages = await _make(
            factory,
            gateway,
            settings,
            claimed,
            user=user,
            customer_email=customer_email,
            client_address=client_address,
        )
    except BaseException:
        async with unit_of_work(factory) as session:
            record = await session.get_one(CartCheckout, claimed.checkout_id)
            record.status = CartCheckoutStatus.failed
        raise
    async with unit_of_work(factory) as session:
        return await _ready(session, claimed, group_id, pages)


async def _ready(
    session: AsyncSession, claimed: _Claimed, group_id: int | None, pages: list[tuple[int, str]]
) -> CheckedOut:
    """The cart's checkout is made: its record ready with its pages, its orders linked to it,
    and what was checked out taken from the cart."""
    record = await session.get_one(CartCheckout, claimed.checkout_id)
    record.status = CartCheckoutStatus.ready
    record.checkout_group_id = group_id
    record.pages = [[order_id, url] for order_id, url in pages]
    await session.execute(
        update(Order)
        .where(Order.id.in_([order_id for order_id, _ in pages]))
        .values(cart_checkout_id=record.id)
    )
    if record.cart_id is not None:
        await _take_out(session, record.cart_id, claimed.parts)
    return _done(record)


async def _make(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    claimed: _Claimed,
    *,
    user: User | None,
    customer_email: str,
    client_address: str | None,
) -> tuple[int | None, list[tuple[int, str]]]:
    """One store: its own checkout (a destination charge, or a group of one when its money
    is held). Several: one group paid once (single_payment), or each store's own checkout
    in turn (per_store); if one of those cannot be made, the ones made are closed again."""
    buyer: dict[str, Any] = {
        "customer_email": customer_email,
        "user": user,
        "client_address": client_address,
    }
    if len(claimed.parts) > 1 and settings.checkout_split_mode == "single_payment":
        group = await groups.start_group_checkout(
            factory, gateway, settings, currency=claimed.currency, stores=claimed.parts, **buyer
        )
        return group.group_id, [(order_id, group.url) for order_id in group.order_ids]
    made: list[groups.StoreCheckout] = []
    try:
        for part in claimed.parts:
            made.append(
                await groups.start_store_checkout(
                    factory,
                    gateway,
                    settings,
                    store_id=part.store_id,
                    currency=claimed.currency,
                    lines=part.lines,
                    **buyer,
                )
            )
    except BaseException:
        for started in made:
            await groups.abandon_store_checkout(factory, gateway, started)
        raise
    group_id = made[0].group_id if len(made) == 1 else None
    return group_id, [(started.order_id, started.url) for started in made]


async def _take_out(
    session: AsyncSession, cart_id: int, parts: Sequence[groups.StoreLines]
) -> None:
    """What was checked out leaves the cart; anything added meanwhile stays."""
    taken = {line.listing_id: line.quantity for part in parts for line in part.lines}
    items = (
        await session.execute(
            select(CartItem).where(CartItem.cart_id == cart_id, CartItem.listing_id.in_(taken))
        )
    ).scalars()
    for item in items:
        item.quantity -= taken[item.listing_id]
        if item.quantity <= 0:
            await session.delete(item)
    await session.flush()


@dataclass(frozen=True)
class NextPayment:
    order: Order
    store: Store
    url: str


async def next_to_pay(session: AsyncSession, order: Order) -> NextPayment | None:
    """After one store's payment of a per_store checkout: the next of its orders still
    waiting for payment, with its page, in the order the checkout gave them."""
    if order.cart_checkout_id is None:
        return None
    record = await session.get(CartCheckout, order.cart_checkout_id)
    if record is None or record.split_mode != "per_store":
        return None
    for order_id, url in _done(record).pages:
        other = await session.get(Order, order_id)
        if other is not None and other.id != order.id and other.payment_status in OPEN_STATES:
            store = await session.get_one(Store, other.store_id)
            return NextPayment(order=other, store=store, url=url)
    return None


def grouped(lines: Sequence[Line]) -> dict[tuple[int, str], list[Line]]:
    """The cart's lines by store and currency, in the cart's order."""
    parts: dict[tuple[int, str], list[Line]] = {}
    for line in lines:
        store_id = line.listing.store_id if line.listing else 0
        parts.setdefault((store_id, line.item.seen_currency), []).append(line)
    return parts
