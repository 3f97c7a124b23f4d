from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from souq.ledger.models import Dispute, LedgerEntry, Refund
from souq.ledger.payouts import OrderPayout
from souq.ledger.policy import LossPolicy
from souq.ledger.refunds import Preview
from souq.ledger.service import Waterfall
from souq.money import format_amount
from souq.schemas import ApiInput, ApiModel

AMOUNT_PATTERN = r"^[0-9]{1,12}([.][0-9]{1,3})?$"
StripeReason = Literal["duplicate", "fraudulent", "requested_by_customer"]


class RefundIn(ApiInput):
    amount: str | None = Field(
        default=None,
        pattern=AMOUNT_PATTERN,
        description='In the order\'s currency ("12.50"); all that is left when omitted',
    )
    reason: StripeReason | None = None
    restock: bool = False


class PreviewIn(ApiInput):
    amount: str | None = Field(default=None, pattern=AMOUNT_PATTERN)


class BuyerRefundOut(ApiModel):
    id: int
    order_id: int
    amount: str
    currency: str
    status: str
    created_at: datetime

    @classmethod
    def of(cls, refund: Refund) -> BuyerRefundOut:
        return cls(
            id=refund.id,
            order_id=refund.order_id,
            amount=format_amount(refund.amount, refund.currency),
            currency=refund.currency,
            status=refund.status,
            created_at=refund.created_at,
        )


class RefundOut(BuyerRefundOut):
    reason: str | None
    stripe_refund_id: str | None
    commission_refunded: str
    transfer_reversed: str
    fee_recovered: str
    held_transfer_reduced: str
    stripe_reversal_id: str | None
    restock: bool
    source: str
    error: str | None

    @classmethod
    def of(cls, refund: Refund) -> RefundOut:
        c = refund.currency
        return cls(
            **BuyerRefundOut.of(refund).model_dump(),
            reason=refund.reason,
            stripe_refund_id=refund.stripe_refund_id,
            commission_refunded=format_amount(refund.commission_refunded, c),
            transfer_reversed=format_amount(refund.transfer_reversed, c),
            fee_recovered=format_amount(refund.fee_recovered, c),
            held_transfer_reduced=format_amount(refund.held_reduced, c),
            stripe_reversal_id=refund.stripe_reversal_id,
            restock=refund.restock,
            source=refund.source,
            error=refund.error,
        )


class RefundList(ApiModel):
    data: list[RefundOut] | list[BuyerRefundOut]


class RefusedReversalOut(RefundOut):
    """A split-cart refund whose reversal of the store's transfer Stripe refused (`error`
    says why) and that is not made yet; `souq reconcile` tries it again."""

    store_id: int
    reversal_refusals: int

    @classmethod
    def of(cls, refund: Refund) -> RefusedReversalOut:
        return cls(
            **RefundOut.of(refund).model_dump(),
            store_id=refund.store_id,
            reversal_refusals=refund.reversal_refusals,
        )


class RefusedReversalList(ApiModel):
    data: list[RefusedReversalOut]


class LossPolicyOut(ApiModel):
    refund_commission: str
    processing_fee_bearer: str
    dispute_amount_bearer: str
    dispute_fee_bearer: str
    dispute_recovery_on: str

    @classmethod
    def of(cls, policy: LossPolicy) -> LossPolicyOut:
        return cls.model_validate(policy)


class PreviewOut(ApiModel):
    """Signed amounts: what each party gains (+) or pays (−)."""

    order_id: int
    currency: str
    refundable: str
    amount: str
    buyer: str
    store: str
    platform: str
    transfer_reversal: str
    commission_refund: str
    stripe_transfer_reversal: str = Field(
        description="What Stripe's reversal of the store's transfer moves: a destination "
        "charge's reverse_transfer (its commission then goes back by the fee refund), or a "
        "split cart's reversal of the store's sent transfer (already net of the commission)"
    )
    held_transfer_reduced: str = Field(
        description="A split cart's order whose store's transfer is not sent yet: what comes "
        "off that transfer instead of a reversal"
    )
    processing_fee: str
    processing_fee_borne_by_store: str
    processing_fee_borne_by_platform: str
    policy: LossPolicyOut

    @classmethod
    def of(cls, preview: Preview) -> PreviewOut:
        c = preview.order.currency
        plan = preview.plan
        return cls(
            order_id=preview.order.id,
            currency=c,
            refundable=format_amount(preview.refundable, c),
            amount=format_amount(plan.amount, c),
            buyer=format_amount(plan.amount, c),
            store=format_amount(plan.store, c),
            platform=format_amount(plan.platform, c),
            transfer_reversal=format_amount(plan.transfer_reversal, c),
            commission_refund=format_amount(plan.commission_refund, c),
            stripe_transfer_reversal=format_amount(preview.stripe_reversal, c),
            held_transfer_reduced=format_amount(preview.held_reduced, c),
            processing_fee=format_amount(plan.processing_fee, c),
            processing_fee_borne_by_store=format_amount(plan.fee_recovered, c),
            processing_fee_borne_by_platform=format_amount(plan.fee_borne_by_platform, c),
            policy=LossPolicyOut.of(preview.policy),
        )


class LedgerEntryOut(ApiModel):
    id: int
    party: str
    kind: str
    amount: str
    currency: str
    stripe_object_id: str
    created_at: datetime

    @classmethod
    def of(cls, entry: LedgerEntry) -> LedgerEntryOut:
        return cls(
            id=entry.id,
            party=entry.party,
            kind=entry.kind,
            amount=format_amount(entry.amount, entry.currency),
            currency=entry.currency,
            stripe_object_id=entry.stripe_object_id,
            created_at=entry.created_at,
        )


class OrderPayoutOut(ApiModel):
    """Part of the order's money paid out to the store's bank: in payout `stripePayoutId`,
    arriving (or arrived, when paid) on `arrivalDate`. A `failed` payout did not reach the
    bank (`failureCode`, `failureMessage`): its amount is back in the store's balance and a
    later payout carries it."""

    stripe_payout_id: str
    amount: str
    currency: str
    status: str
    arrival_date: datetime
    failure_code: str | None = None
    failure_message: str | None = None

    @classmethod
    def of(cls, payout: OrderPayout) -> OrderPayoutOut:
        return cls(
            stripe_payout_id=payout.stripe_payout_id,
            amount=format_amount(payout.amount, payout.currency),
            currency=payout.currency,
            status=payout.status,
            arrival_date=payout.arrival_date,
            failure_code=payout.failure_code,
            failure_message=payout.failure_message,
        )


class MoneyOut(ApiModel):
    """An order's waterfall: charged → commission → processing fee → sent to the store →
    reversed → refunded → disputed → paid out to the store's bank; and each party's balance
    from this order (the store's: what is still on its Stripe balance)."""

    order_id: int
    currency: str
    charged: str
    commission: str
    processing_fee: str
    sent_to_store: str
    reversed_from_store: str
    commission_returned: str
    refunded: str
    disputed: str
    dispute_fees: str
    dispute_reinstated: str
    store_balance: str
    platform_balance: str
    stripe_fees: str
    paid_out: str
    net_paid: str
    payouts: list[OrderPayoutOut]
    entries: list[LedgerEntryOut]
    refunds: list[RefundOut]

    @classmethod
    def of(
        cls,
        order_id: int,
        flow: Waterfall,
        entries: list[LedgerEntry],
        refunds: list[Refund],
        payouts: list[OrderPayout],
    ) -> MoneyOut:
        c = flow.currency
        amounts = {
            name: format_amount(getattr(flow, name), c)
            for name in (
                "charged",
                "commission",
                "processing_fee",
                "sent_to_store",
                "reversed_from_store",
                "commission_returned",
                "refunded",
                "disputed",
                "dispute_fees",
                "dispute_reinstated",
                "store_balance",
                "platform_balance",
                "stripe_fees",
                "paid_out",
                "net_paid",
            )
        }
        return cls(
            order_id=order_id,
            currency=c,
            **amounts,
            payouts=[OrderPayoutOut.of(p) for p in payouts],
            entries=[LedgerEntryOut.of(e) for e in entries],
            refunds=[RefundOut.of(r) for r in refunds],
        )


class LossPolicyIn(ApiInput):
    """A store's overrides; null (or left out) follows the platform's setting."""

    refund_commission: Literal["returned", "kept"] | None = None
    processing_fee_bearer: Literal["platform", "store"] | None = None
    dispute_amount_bearer: Literal["store", "platform"] | None = None
    dispute_fee_bearer: Literal["platform", "store"] | None = None
    dispute_recovery_on: Literal["lost", "funds_withdrawn"] | None = None


class StoreLossPolicyOut(ApiModel):
    store_id: int
    effective: LossPolicyOut
    overrides: LossPolicyIn


class EvidenceIn(ApiInput):
    text: str = Field(min_length=1, max_length=20_000, description="The store's answer")


class DisputeOut(ApiModel):
    id: int
    order_id: int
    stripe_dispute_id: str
    amount: str
    currency: str
    fee: str
    reason: str
    status: str
    evidence_due_by: datetime | None
    evidence_submitted_at: datetime | None
    recovered_from_store: str
    recovery_due: str = Field(
        description="What the loss policy takes back from the store (fixed once the "
        "recovery fell due); made by a background job after the dispute was applied"
    )
    held_transfer_reduced: str = Field(
        description="A cart's order whose store transfer was not sent yet: what the recovery "
        "took off that transfer instead of reversing it (part of recoveredFromStore)"
    )
    recovery_attempts: int = Field(description="How often Stripe refused the recovery")
    recovery_error: str | None

    @classmethod
    def of(cls, dispute: Dispute) -> DisputeOut:
        c = dispute.currency
        return cls(
            id=dispute.id,
            order_id=dispute.order_id,
            stripe_dispute_id=dispute.stripe_dispute_id,
            amount=format_amount(dispute.amount, c),
            currency=c,
            fee=format_amount(dispute.fee, c),
            reason=dispute.reason,
            status=dispute.status,
            evidence_due_by=dispute.evidence_due_by,
            evidence_submitted_at=dispute.evidence_submitted_at,
            recovered_from_store=format_amount(dispute.recovered_amount, c),
            recovery_due=format_amount(dispute.recovery_due, c),
            held_transfer_reduced=format_amount(dispute.held_reduced, c),
            recovery_attempts=dispute.recovery_attempts,
            recovery_error=dispute.recovery_error,
        )


class DisputeList(ApiModel):
    data: list[DisputeOut]


class RecoveryOut(ApiModel):
    """What trying a dispute's recovery again did: recovered (the store's transfer reversed),
    returned (a won dispute's recovery given back), refused (kept on the dispute with Stripe's
    reason), or nothing (none due)."""

    outcome: str
    dispute: DisputeOut


class FeeRowOut(ApiModel):
    """Amounts in minor units of `currency`."""

    day: str
    currency: str
    store_id: int
    gross_volume: int
    commission_earned: int
    processing_fees: int
    refunds: int
    commissions_returned: int
    disputes: int
    dispute_fees: int
    recovered_from_stores: int
    net_margin: int


class FeeReport(ApiModel):
    data: list[FeeRowOut]


class StatementRowOut(ApiModel):
    """Amounts in minor units of `currency`."""

    day: str
    currency: str
    orders: int
    gross: int
    commission: int
    commission_returned: int
    transfers: int
    reversals: int
    net: int
    payouts: int = Field(description="Paid out to the store's bank that day (not in net)")


class StatementPayoutOut(ApiModel):
    """One of the store's payouts to its bank: the orders whose money it carried, their sum
    (`fromOrders`) and what no order explains (`unattributed`); minor units."""

    stripe_payout_id: str
    status: str
    arrival_date: str
    currency: str
    amount: int
    orders: int
    from_orders: int
    unattributed: int
    failure_code: str | None = Field(None, description="Why a failed payout failed (Stripe's)")


class AdminPayoutOut(ApiModel):
    """A store's payout to its bank as Stripe last told it (minor units); a `failed` one's
    money is back on the store's balance and a later payout carries it."""

    id: int
    store_id: int
    stripe_payout_id: str
    amount: int
    currency: str
    status: str
    arrival_date: datetime
    unattributed: int
    failure_code: str | None
    failure_message: str | None
    created_at: datetime
    updated_at: datetime


class AdminPayoutPage(ApiModel):
    data: list[AdminPayoutOut]
    has_more: bool
    next_before: int | None


class Statement(ApiModel):
    data: list[StatementRowOut]
    payouts: list[StatementPayoutOut]
