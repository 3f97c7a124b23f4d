from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from souq.money import format_amount
from souq.orders.models import FulfilmentStatus, Order, OrderPayment, PaymentStatus
from souq.payments.models import StoreTransfer, TransferStatus
from souq.schemas import ApiInput, ApiModel


class OrderItemOut(ApiModel):
    listing_id: int
    title: str
    quantity: int
    unit_price: str
    line_total: str


class OrderPaymentOut(ApiModel):
    stripe_checkout_session_id: str
    stripe_payment_intent_id: str | None
    stripe_charge_id: str | None
    amount: str
    currency: str
    platform_fee: str
    stripe_fee: str | None
    net_to_store: str
    platform_margin: str | None
    created_at: datetime


class FeeRuleOut(ApiModel):
    """The rule that priced the order's fees, frozen when the order was made."""

    bps: int
    fixed: str
    minimum: str
    buyer_fee_bps: int


class TransferOut(ApiModel):
    """A checkout group's order: the store's share, sent by its own Stripe transfer."""

    status: TransferStatus = Field(
        description="held: kept by the platform until the order is fulfilled or its holding "
        "time is over (failureReason says why a due one stays held); pending: not sent yet; "
        "failed: Stripe refused, retried by reconcile; sent; canceled: refunded in full "
        "while held, never sent (a partial refund while held lowers its amount instead)"
    )
    amount: str
    currency: str
    stripe_transfer_id: str | None
    failure_reason: str | None
    attempts: int
    sent_at: datetime | None

    @classmethod
    def of(cls, transfer: StoreTransfer) -> TransferOut:
        return cls(
            status=transfer.status,
            amount=format_amount(transfer.amount, transfer.currency),
            currency=transfer.currency,
            stripe_transfer_id=transfer.stripe_transfer_id,
            failure_reason=transfer.failure_reason,
            attempts=transfer.attempts,
            sent_at=transfer.sent_at,
        )


TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"


class FulfilmentIn(ApiInput):
    status: FulfilmentStatus = Field(description="shipped or delivered")
    carrier: str | None = Field(default=None, max_length=100, pattern=TEXT_PATTERN)
    tracking_number: str | None = Field(default=None, max_length=100, pattern=TEXT_PATTERN)


class FulfilmentOut(ApiModel):
    status: FulfilmentStatus
    carrier: str | None
    tracking_number: str | None
    fulfilled_at: datetime | None = Field(description="When it was first marked")

    @classmethod
    def of(cls, order: Order) -> FulfilmentOut | None:
        if order.fulfilment_status is None:
            return None
        return cls(
            status=order.fulfilment_status,
            carrier=order.fulfilment_carrier,
            tracking_number=order.fulfilment_tracking_number,
            fulfilled_at=order.fulfilled_at,
        )


class StoreShareOut(ApiModel):
    """Where the store's share of a paid order is: held by the platform until fulfilment,
    waiting to be sent (refused or unanswered, retried), or released to the store's Stripe
    account (its transfer, or its destination charge)."""

    held: str
    waiting: str
    released: str

    @classmethod
    def of(cls, order: Order) -> StoreShareOut | None:
        c, transfer, payment = order.currency, order.transfer, order.payment
        amounts = {"held": 0, "waiting": 0, "released": 0}
        if transfer is not None:
            status = transfer.status
            where = {"held": "held", "sent": "released"}.get(status.value, "waiting")
            amounts[where] = transfer.amount
        elif payment is not None and order.checkout_group_id is None:
            amounts["released"] = payment.net_amount_to_store
        else:
            return None
        return cls(**{k: format_amount(v, c) for k, v in amounts.items()})


class OrderOut(ApiModel):
    id: int
    store_id: int
    customer_email: str
    currency: str
    subtotal: str
    total: str
    platform_fee: str
    commission: str
    buyer_fee: str
    fee_rule: FeeRuleOut | None = Field(
        description="Null for orders made before fee rules were recorded."
    )
    net_to_store: str
    payment_status: PaymentStatus
    stripe_checkout_session_id: str | None
    paid_at: datetime | None
    created_at: datetime
    items: list[OrderItemOut]
    payment: OrderPaymentOut | None
    checkout_group_id: int | None = Field(
        description="Paid with other stores' orders in one payment (then `transfer` says "
        "whether the store's share was sent)"
    )
    transfer: TransferOut | None
    transfer_on_fulfilment: bool = Field(
        description="The store's share is held until the order is fulfilled (or "
        "TRANSFER_RELEASE_DAYS after the payment)"
    )
    fulfilment: FulfilmentOut | None
    store_share: StoreShareOut | None = Field(
        description="Null until the order is paid (or while its payment awaits review)."
    )

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        c = order.currency
        payment = order.payment
        return cls(
            id=order.id,
            store_id=order.store_id,
            customer_email=order.customer_email,
            currency=c,
            subtotal=format_amount(order.subtotal_amount, c),
            total=format_amount(order.total_amount, c),
            platform_fee=format_amount(order.platform_fee_amount, c),
            commission=format_amount(order.commission_amount, c),
            buyer_fee=format_amount(order.buyer_fee_amount, c),
            fee_rule=None
            if order.commission_bps is None
            else FeeRuleOut(
                bps=order.commission_bps,
                fixed=format_amount(order.commission_fixed_amount or 0, c),
                minimum=format_amount(order.commission_minimum_amount or 0, c),
                buyer_fee_bps=order.buyer_fee_bps or 0,
            ),
            net_to_store=format_amount(order.total_amount - order.platform_fee_amount, c),
            payment_status=order.payment_status,
            stripe_checkout_session_id=order.stripe_checkout_session_id,
            checkout_group_id=order.checkout_group_id,
            transfer=None if order.transfer is None else TransferOut.of(order.transfer),
            transfer_on_fulfilment=order.transfer_on_fulfilment,
            fulfilment=FulfilmentOut.of(order),
            store_share=StoreShareOut.of(order),
            paid_at=order.paid_at,
            created_at=order.created_at,
            items=[
                OrderItemOut(
                    listing_id=item.listing_id,
                    title=item.title,
                    quantity=item.quantity,
                    unit_price=format_amount(item.unit_price, c),
                    line_total=format_amount(item.line_total, c),
                )
                for item in order.items
            ],
            payment=None
            if payment is None
            else OrderPaymentOut(
                stripe_checkout_session_id=payment.stripe_checkout_session_id,
                stripe_payment_intent_id=payment.stripe_payment_intent_id,
                stripe_charge_id=payment.stripe_charge_id,
                amount=format_amount(payment.amount, payment.currency),
                currency=payment.currency,
                platform_fee=format_amount(payment.platform_fee_amount, payment.currency),
                stripe_fee=None
                if payment.stripe_fee_amount is None
                else format_amount(payment.stripe_fee_amount, payment.currency),
                net_to_store=format_amount(payment.net_amount_to_store, payment.currency),
                platform_margin=None
                if payment.stripe_fee_amount is None
                else format_amount(
                    payment.platform_fee_amount - payment.stripe_fee_amount, payment.currency
                ),
                created_at=payment.created_at,
            ),
        )


class OrderPage(ApiModel):
    data: list[OrderOut]
    has_more: bool
    next_before: int | None


class BuyerPaymentOut(ApiModel):
    amount: str
    currency: str
    created_at: datetime


class BuyerOrderOut(ApiModel):
    """An order as its buyer sees it: what was bought and paid, not how the money is split
    between the store, the platform and Stripe."""

    id: int
    store_id: int
    customer_email: str
    currency: str
    subtotal: str
    buyer_fee: str
    total: str
    payment_status: str
    paid_at: datetime | None
    created_at: datetime
    items: list[OrderItemOut]
    payment: BuyerPaymentOut | None
    fulfilment: FulfilmentOut | None

    @classmethod
    def of(cls, order: Order) -> BuyerOrderOut:
        full = OrderOut.of(order)
        payment = order.payment
        return cls(
            **full.model_dump(include=set(cls.model_fields) - {"payment"}),
            payment=None
            if payment is None
            else BuyerPaymentOut(
                amount=format_amount(payment.amount, payment.currency),
                currency=payment.currency,
                created_at=payment.created_at,
            ),
        )


class HeldPaymentOut(ApiModel):
    """A payment Stripe took for the order; `reviewReason` is set when it is not counted."""

    stripe_checkout_session_id: str
    stripe_payment_intent_id: str | None
    amount: str
    currency: str
    platform_fee: str
    review_reason: str | None

    @classmethod
    def of(cls, payment: OrderPayment) -> HeldPaymentOut:
        return cls(
            stripe_checkout_session_id=payment.stripe_checkout_session_id,
            stripe_payment_intent_id=payment.stripe_payment_intent_id,
            amount=format_amount(payment.amount, payment.currency),
            currency=payment.currency,
            platform_fee=format_amount(payment.platform_fee_amount, payment.currency),
            review_reason=payment.review_reason,
        )


class AdminOrderOut(OrderOut):
    """An order as a platform admin sees it: why it needs review, and every payment."""

    review_reason: str | None
    payments: list[HeldPaymentOut]

    @classmethod
    def of(cls, order: Order) -> AdminOrderOut:
        return cls(
            **OrderOut.of(order).model_dump(),
            review_reason=order.review_reason,
            payments=[HeldPaymentOut.of(p) for p in order.payments],
        )


class AdminOrderPage(ApiModel):
    data: list[AdminOrderOut]
    has_more: bool
    next_before: int | None


class ResolveIn(ApiInput):
    resolution: Literal["paid", "canceled"] = Field(
        description="paid: count the order's payment as the sale; canceled: you refunded its "
        "payments in Stripe, and its stock goes back on the shelf"
    )
    note: str = Field(min_length=1, max_length=500, description="Why, for the record")
