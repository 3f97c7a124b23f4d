"""The payments JSON API: Connect onboarding, the store's payment status, and the two Stripe
webhook endpoints (platform and Connect)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request

from souq.auth.deps import OptionalUser
from souq.deps import SessionDep, SessionFactoryDep, SettingsDep
from souq.errors import NotAuthenticated
from souq.middleware import client_address
from souq.money import format_amount
from souq.payments import balances, checkout, checkout_requests, onboarding, webhooks
from souq.payments.deps import CallerDep, StripeDep
from souq.payments.handlers import HANDLERS
from souq.payments.schemas import (
    MAX_ID,
    CheckoutIn,
    CheckoutOut,
    ConnectedAccount,
    CurrencyBalanceOut,
    LinkOut,
    NextStepOut,
    PaymentsStatusOut,
    StoreBalanceOut,
    StoreRef,
    WebhookAck,
)
from souq.payments.tasks import enqueue_event, enqueue_event_sql
from souq.schemas import currency_input, error_responses
from souq.stores.models import Store

router = APIRouter(tags=["payments"])


def status_out(store: Store) -> PaymentsStatusOut:
    step = onboarding.next_step(store)
    return PaymentsStatusOut(
        store_id=store.id,
        has_account=store.stripe_account_id is not None,
        stripe_account_id=store.stripe_account_id,
        onboarding_complete=store.stripe_onboarding_complete,
        charges_enabled=store.stripe_charges_enabled,
        payouts_enabled=store.stripe_payouts_enabled,
        requirements_due=list(store.stripe_requirements_due),
        disabled_reason=store.stripe_disabled_reason,
        disconnected=store.stripe_deauthorized_at is not None and not store.stripe_account_id,
        next_step=NextStepOut(action=step.action, label=step.label, explanation=step.explanation),
    )


@router.post(
    "/api/stripe/connect/create-account",
    response_model=ConnectedAccount,
    responses=error_responses(401, 403, 404, 422, 502, 503),
)
async def create_account(
    body: StoreRef,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
    stripe: StripeDep,
) -> ConnectedAccount:
    """Create the store's Stripe Express account (once; owners and admins)."""
    account_id = await onboarding.create_account(session, stripe, settings, body.store_id, user)
    return ConnectedAccount(stripe_account_id=account_id)


@router.post(
    "/api/stripe/connect/account-link",
    response_model=LinkOut,
    responses=error_responses(401, 403, 404, 409, 422, 502, 503),
)
async def account_link(
    body: StoreRef,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
    stripe: StripeDep,
) -> LinkOut:
    """A fresh Stripe-hosted onboarding link for the store's account (owners and admins)."""
    return LinkOut(
        url=await onboarding.account_link(session, stripe, settings, body.store_id, user)
    )


@router.post(
    "/api/stripe/connect/login-link",
    response_model=LinkOut,
    responses=error_responses(401, 403, 404, 409, 422, 502, 503),
)
async def login_link(
    body: StoreRef,
    user: OptionalUser,
    session: SessionDep,
    settings: SettingsDep,
    stripe: StripeDep,
) -> LinkOut:
    """A link into the store's Stripe Express dashboard, once onboarding is complete."""
    return LinkOut(url=await onboarding.login_link(session, stripe, settings, body.store_id, user))


@router.get(
    "/api/stores/{store_id}/payments",
    response_model=PaymentsStatusOut,
    responses=error_responses(401, 404, 422),
)
async def payments_status(
    store_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: OptionalUser, session: SessionDep
) -> PaymentsStatusOut:
    """The store's payment status and its next step (members only)."""
    store, _member = await onboarding.payments_status(session, store_id, user)
    return status_out(store)


@router.get(
    "/api/stores/{store_id}/balance",
    response_model=StoreBalanceOut,
    responses=error_responses(401, 404, 422),
)
async def store_balance(
    store_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    user: CallerDep,
    factory: SessionFactoryDep,
    stripe: StripeDep,
) -> StoreBalanceOut:
    """The store's money per currency: held until fulfilment, waiting to be sent, released
    to its Stripe account, and paid out to its bank (members only)."""
    found = await balances.store_balance(factory, stripe, store_id, user)
    return StoreBalanceOut(
        store_id=found.store_id,
        paid_out_known=found.paid_out_known,
        currencies=[
            CurrencyBalanceOut(
                currency=c.currency,
                held=format_amount(c.held, c.currency),
                waiting=format_amount(c.waiting, c.currency),
                released=format_amount(c.released, c.currency),
                paid_out=None if c.paid_out is None else format_amount(c.paid_out, c.currency),
            )
            for c in found.currencies
        ],
    )


async def _receive(
    request: Request, factory: SessionFactoryDep, stripe: StripeDep, *, connect: bool
) -> WebhookAck:
    outcome = await webhooks.receive(
        factory,
        stripe,
        enqueue_event,
        await request.body(),
        request.headers.get("stripe-signature"),
        connect=connect,
        handled=HANDLERS,
        enqueue_sql=enqueue_event_sql,
    )
    return WebhookAck(event_id=outcome.event_id, status=outcome.status, reason=outcome.reason)


# The webhook endpoints speak Stripe's protocol (signed raw bodies, see README), not the API's.
@router.post("/api/stripe/webhook", response_model=WebhookAck, include_in_schema=False)
async def platform_webhook(
    request: Request, factory: SessionFactoryDep, stripe: StripeDep
) -> WebhookAck:
    """Stripe's platform events, verified with STRIPE_WEBHOOK_SECRET."""
    return await _receive(request, factory, stripe, connect=False)


@router.post("/api/stripe/connect/webhook", response_model=WebhookAck, include_in_schema=False)
async def connect_webhook(
    request: Request, factory: SessionFactoryDep, stripe: StripeDep
) -> WebhookAck:
    """Stripe's Connect events (connected accounts), verified with STRIPE_CONNECT_WEBHOOK_SECRET."""
    return await _receive(request, factory, stripe, connect=True)


@router.post(
    "/api/stripe/checkout/create",
    response_model=CheckoutOut,
    responses=error_responses(401, 403, 404, 409, 422, 429, 502, 503),
)
async def create_checkout(
    body: CheckoutIn,
    request: Request,
    user: CallerDep,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    stripe: StripeDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            description="Makes a retry or a double click land on the same order and URL; "
            "the same key with another body is a 409",
            # Documented as checkout_requests.check_key enforces it (with its own error code).
            json_schema_extra={"pattern": f"^{checkout_requests.KEY.pattern}$"},
        ),
    ] = None,
) -> CheckoutOut:
    """Price the cart from the database, create the pending order and its Checkout Session."""
    if user is None and not body.customer_email:
        # Who the buyer is depends on who is asking: a guest must say (or log in), hence 401.
        raise NotAuthenticated(
            "customerEmail is required to check out as a guest (or log in)", code="email_required"
        )
    started = await checkout_requests.checkout(
        factory,
        stripe,
        settings,
        key=idempotency_key,
        user=user,
        store_id=body.store_id,
        currency=currency_input(body.currency),
        lines=[checkout.CartLine(i.listing_id, i.quantity) for i in body.items],
        customer_email=str(body.customer_email) if body.customer_email else None,
        client_address=client_address(request),
    )
    return CheckoutOut(url=started.url, order_id=started.order_id)
