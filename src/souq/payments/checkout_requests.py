"""Idempotent checkout: a caller's `Idempotency-Key` (the API header, or the Buy form's one-time
key) makes a double click, a retry or a concurrent duplicate land on one order and one URL.

A key is scoped to its caller: a logged-in user's keys are theirs alone; a guest's key is bound
to the body it was first sent with. The same key with another body is a 409. A key is kept in
the database (`checkout_request`) until it expires (CHECKOUT_IDEMPOTENCY_HOURS).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import EmailStr, TypeAdapter, ValidationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from souq.auth.models import User
from souq.config import Settings
from souq.db import unit_of_work, utcnow
from souq.errors import Conflict, InvalidInput
from souq.orders.models import OPEN_STATES, Order, PaymentStatus
from souq.payments import checkout as checkout_service
from souq.payments import groups
from souq.payments.checkout import CartLine, CheckoutStarted, CheckoutUnconfirmed
from souq.payments.models import CheckoutRequest
from souq.payments.stripe import StripeGateway

# Printable ASCII without spaces, as Stripe's own keys; at most 255 characters.
KEY = re.compile(r"[\x21-\x7e]{1,255}")
POLL_SECONDS = 0.1
# A claim with no order this old was abandoned (its request died before making one).
ABANDONED = timedelta(seconds=60)

Start = Callable[[int | None], Awaitable[CheckoutStarted]]


def check_key(key: str) -> str:
    if not KEY.fullmatch(key):
        raise InvalidInput(
            "Idempotency-Key must be 1 to 255 printable characters without spaces",
            code="invalid_idempotency_key",
        )
    return key


def fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def scope_of(user: User | None) -> str:
    return f"user:{user.id}" if user is not None else "guest"


@dataclass(frozen=True)
class _Seen:
    """What an earlier request with the same key got to."""

    request_id: int
    order_id: int | None
    url: str | None
    order_status: PaymentStatus | None
    order_has_session: bool
    fresh: bool  # this request made the claim and must do the work
    young: bool  # the earlier request may still be working on it


async def _claim(
    factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    scope: str,
    key: str,
    body_print: str,
) -> _Seen:
    now = utcnow()
    async with unit_of_work(factory) as session:
        row = (
            await session.execute(
                select(CheckoutRequest)
                .where(CheckoutRequest.scope == scope, CheckoutRequest.key == key)
                .with_for_update()
            )
        ).scalar_one_or_none()
        if row is not None and row.expires_at <= now:
            await session.delete(row)
            await session.flush()
            row = None
        if row is None:
            row = CheckoutRequest(
                scope=scope,
                key=key,
                fingerprint=body_print,
                created_at=now,
                expires_at=now + timedelta(hours=settings.checkout_idempotency_hours),
            )
            session.add(row)
            await session.flush()
            return _Seen(row.id, None, None, None, False, fresh=True, young=True)
        if row.fingerprint != body_print:
            raise Conflict(
                "This Idempotency-Key was already used for a different checkout; send a new "
                "key for a new checkout.",
                code="idempotency_key_reused",
            )
        order = await session.get(Order, row.order_id) if row.order_id is not None else None
        if order is None and now - row.created_at > ABANDONED:
            row.created_at = now  # the earlier request died before making an order: take over
            return _Seen(row.id, None, None, None, False, fresh=True, young=True)
        patience = timedelta(seconds=settings.stripe_timeout_seconds * 3 + 10)
        return _Seen(
            row.id,
            row.order_id,
            row.url,
            order.payment_status if order else None,
            bool(order and order.stripe_checkout_session_id),
            fresh=False,
            young=now - row.created_at < patience,
        )


async def _release(factory: async_sessionmaker[AsyncSession], request_id: int) -> None:
    async with unit_of_work(factory) as session:
        await session.execute(delete(CheckoutRequest).where(CheckoutRequest.id == request_id))


async def idempotent_checkout(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    *,
    key: str,
    user: User | None,
    body: dict[str, Any],
    start: Start,
) -> CheckoutStarted:
    """Run `start(request_id)` once per key and body; every other request with the same key
    and body gets the same order and URL (waiting while the first is still talking to
    Stripe). A request that changed nothing (refused input, no stock, Stripe refused) frees
    the key; one whose Stripe answer never came keeps it, so a retry asks Stripe again for
    that order's session instead of making a second order."""
    scope, body_print = scope_of(user), fingerprint(body)
    deadline = asyncio.get_running_loop().time() + settings.stripe_timeout_seconds * 3 + 10
    while True:
        try:
            seen = await _claim(factory, settings, scope=scope, key=key, body_print=body_print)
        except IntegrityError:
            continue  # a concurrent request inserted the same key first: read what it did
        if seen.fresh:
            try:
                return await start(seen.request_id)
            except CheckoutUnconfirmed:
                raise
            except BaseException:
                await _release(factory, seen.request_id)
                raise
        if seen.url is not None and seen.order_id is not None:
            return CheckoutStarted(order_id=seen.order_id, url=seen.url)
        in_flight = seen.order_id is None or (
            seen.order_status == PaymentStatus.pending and not seen.order_has_session
        )
        if not (in_flight and seen.young):
            if seen.order_id is None or seen.order_status not in OPEN_STATES:
                raise Conflict(
                    "The checkout started with this Idempotency-Key was closed; send a new key "
                    "to start again.",
                    code="checkout_closed",
                )
            return await _resume(factory, gateway, settings, seen.order_id, seen.request_id)
        if asyncio.get_running_loop().time() > deadline:
            raise Conflict(
                "A checkout with this Idempotency-Key is still in progress; retry in a moment.",
                code="idempotency_key_in_use",
            )
        await asyncio.sleep(POLL_SECONDS)


async def _resume(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    order_id: int,
    request_id: int,
) -> CheckoutStarted:
    """The page of an earlier request's order: its own session, or its group's (a store whose
    money is held is paid by a group of one)."""
    async with unit_of_work(factory) as session:
        group_id = await session.scalar(select(Order.checkout_group_id).where(Order.id == order_id))
    if group_id is None:
        return await checkout_service.resume_checkout(
            factory, gateway, settings, order_id, request_id
        )
    url = await groups.resume_group_checkout(factory, gateway, settings, group_id, request_id)
    return CheckoutStarted(order_id=order_id, url=url)


_EMAIL: TypeAdapter[str] = TypeAdapter(EmailStr)


def buyer_email(given: str | None, user: User | None) -> str:
    """The email Stripe's receipt goes to: the one given (it must be an address), else the
    logged-in buyer's; a guest must give one."""
    if given is not None and given.strip():
        try:
            return str(_EMAIL.validate_python(given.strip()))
        except ValidationError:
            message = f"{given.strip()[:80]!r} is not an email address"
            raise InvalidInput(
                message,
                code="invalid_email",
                details=[{"field": "customerEmail", "message": message}],
            ) from None
    if user is not None:
        return user.email
    raise InvalidInput(
        "An email address is required to check out as a guest",
        code="email_required",
        details=[{"field": "customerEmail", "message": "required for guests"}],
    )


async def checkout(
    factory: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    *,
    key: str | None,
    user: User | None,
    store_id: int,
    currency: str,
    lines: Sequence[CartLine],
    customer_email: str | None,
    client_address: str | None = None,
) -> CheckoutStarted:
    """A checkout from the API or the Buy form, idempotent when the caller sent a key."""
    email = buyer_email(customer_email, user)

    async def start(request_id: int | None) -> CheckoutStarted:
        started = await groups.start_store_checkout(
            factory,
            gateway,
            settings,
            store_id=store_id,
            currency=currency,
            lines=lines,
            customer_email=email,
            user=user,
            request_id=request_id,
            client_address=client_address,
        )
        return CheckoutStarted(order_id=started.order_id, url=started.url)

    if key is None:
        return await start(None)
    body = {
        "storeId": store_id,
        "currency": currency,
        "items": [[line.listing_id, line.quantity] for line in lines],
        "customerEmail": email,
    }
    return await idempotent_checkout(
        factory, gateway, settings, key=check_key(key), user=user, body=body, start=start
    )
