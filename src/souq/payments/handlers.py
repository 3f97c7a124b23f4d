"""Which function handles which Stripe event: one explicit table.

Souq's webhook endpoints subscribe to exactly the keys of HANDLERS (SUBSCRIBED_EVENTS), so an
event type is either handled here or never sent. Every handler has the same signature,
`(factory, gateway, event) -> Apply | Ignored`: it reads Stripe with no transaction open and
returns the step that applies what it read, which `webhooks.process_event` runs in the one
short transaction that marks the event processed. Handlers are idempotent and
order-independent.
"""

from __future__ import annotations

from souq.ledger import disputes, payouts, sync
from souq.payments import checkout, groups, onboarding
from souq.payments.webhooks import Handler

HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": groups.on_checkout_session,
    "checkout.session.async_payment_succeeded": groups.on_checkout_session,
    "checkout.session.async_payment_failed": groups.on_checkout_session,
    "checkout.session.expired": groups.on_checkout_session,
    "charge.succeeded": checkout.on_charge,
    "charge.updated": checkout.on_charge,
    "charge.refunded": sync.on_refund,
    "charge.refund.updated": sync.on_refund,
    "refund.created": sync.on_refund,
    "refund.updated": sync.on_refund,
    "refund.failed": sync.on_refund,
    "charge.dispute.created": disputes.on_dispute,
    "charge.dispute.updated": disputes.on_dispute,
    "charge.dispute.closed": disputes.on_dispute,
    "charge.dispute.funds_withdrawn": disputes.on_dispute,
    "charge.dispute.funds_reinstated": disputes.on_dispute,
    "payout.created": payouts.on_payout,
    "payout.paid": payouts.on_payout,
    "payout.failed": payouts.on_payout,
    "account.updated": onboarding.on_account_updated,
    "account.application.deauthorized": onboarding.on_deauthorized,
}

# The `enabled_events` of Souq's webhook endpoints (platform and Connect alike).
SUBSCRIBED_EVENTS: tuple[str, ...] = tuple(HANDLERS)
