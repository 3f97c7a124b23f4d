"""Every kind of email Souq sends: its subject and whether the person may turn it off.

Adding a kind is one entry here, a template pair `web/templates/mail/<kind>.txt` and `.html`,
and one call where the change happens:

    await service.notify(session, "order_refunded_buyer", f"order-{order.id}-refund-{refund.id}",
                         [service.buyer_of(order)], order=order, refund=refund)

The call goes in the transaction that makes the change, after it is flushed; the key names the
message, so a second call with the same key (a duplicate webhook) writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    # A Jinja2 expression over the same context as the templates.
    subject: str
    # Transactional messages (receipts, failures, what a seller must act on) always go; the
    # others can be turned off by each user.
    transactional: bool
    description: str


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "order_paid_buyer",
            "Your receipt for order #{{ order.id }} from {{ store.name }}",
            True,
            "The buyer's receipt when an order is paid.",
        ),
        Kind(
            "order_payment_failed_buyer",
            "Your payment for order #{{ order.id }} did not go through",
            True,
            "The buyer's payment failed.",
        ),
        Kind(
            "order_canceled_buyer",
            "Order #{{ order.id }} from {{ store.name }} was canceled",
            True,
            "The buyer's checkout expired or was canceled before paying.",
        ),
        Kind(
            "order_shipped_buyer",
            "Order #{{ order.id }} from {{ store.name }} "
            "{{ 'was delivered' if order.fulfilment_status == 'delivered' else 'has shipped' }}",
            True,
            "The buyer: the seller marked the order shipped or delivered (carrier, tracking).",
        ),
        Kind(
            "store_order_paid",
            "New paid order #{{ order.id }}: {{ order.total_amount | money(order.currency) }}",
            False,
            "A store's owners and admins: a new paid order.",
        ),
        Kind(
            "store_payouts_enabled",
            "Payouts are enabled for {{ store.name }}",
            False,
            "A store's owners and admins: Stripe enabled payouts.",
        ),
        Kind(
            "store_payouts_disabled",
            "Payouts are disabled for {{ store.name }}",
            True,
            "A store's owners and admins: Stripe disabled payouts.",
        ),
        Kind(
            "store_requirements_due",
            "Stripe needs more information for {{ store.name }}",
            True,
            "A store's owners and admins: Stripe asks for information (account.updated).",
        ),
        Kind(
            "admin_order_needs_review",
            "Order #{{ order.id }} needs review",
            False,
            "Platform admins: a payment that did not match its order is waiting for a decision.",
        ),
        Kind(
            "order_refunded_buyer",
            "A refund of {{ refund.amount | money(refund.currency) }} for order #{{ order.id }}",
            True,
            "The buyer: a refund of their order went through.",
        ),
        Kind(
            "store_order_refunded",
            "Order #{{ order.id }} refunded: {{ refund.amount | money(refund.currency) }}",
            True,
            "A store's owners and admins: a refund of one of its orders went through.",
        ),
        Kind(
            "store_order_disputed",
            "Order #{{ order.id }} is disputed: {{ dispute.amount | money(dispute.currency) }}",
            True,
            "A store's owners and admins: a buyer disputed a payment (with the evidence deadline).",
        ),
        Kind(
            "store_dispute_evidence_due",
            "Evidence for the dispute of order #{{ order.id }} is due soon",
            True,
            "A store's owners and admins: a dispute's evidence deadline is near and none was sent.",
        ),
        Kind(
            "transfer_failed",
            "The transfer to {{ store.name }} for order #{{ order.id }} failed",
            True,
            "A store's owners and admins, and platform admins: Stripe refused a store's transfer.",
        ),
        Kind(
            "payout_failed",
            "A payout of {{ payout.amount | money(payout.currency) }} to {{ store.name }}'s bank "
            "failed",
            True,
            "A store's owners and admins, and platform admins: a payout did not reach the bank.",
        ),
        Kind(
            "admin_stripe_event_failed",
            "Processing Stripe event {{ event.stripe_event_id }} failed",
            True,
            "Platform admins: a Stripe event's processing gave up after its last try.",
        ),
        Kind(
            "webhook_endpoint_disabled",
            "Your webhook endpoint was disabled",
            True,
            "The owner of a webhook endpoint that was disabled after failing again and again.",
        ),
    )
}
