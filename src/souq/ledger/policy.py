"""Who bears which loss: the platform's loss policy, a store's override, and the exact plan of
what a refund or a lost dispute moves. Pure functions over integers of minor units.

Pro-rata shares round half up and the refund that completes a charge takes whatever is left,
the same rule the Stripe API applies to `reverse_transfer` and `refund_application_fee` (its
rounding is not documented; Souq and its sandbox share this reading), so the preview and the
refund agree to the cent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from souq.config import Settings
from souq.ledger.models import StoreLossPolicy

CommissionRule = Literal["returned", "kept"]
Bearer = Literal["platform", "store"]
RecoveryMoment = Literal["lost", "funds_withdrawn"]


@dataclass(frozen=True)
class LossPolicy:
    refund_commission: str  # returned (pro rata) | kept
    processing_fee_bearer: str  # platform | store
    dispute_amount_bearer: str  # store | platform
    dispute_fee_bearer: str  # platform | store
    dispute_recovery_on: str  # lost | funds_withdrawn


FIELDS = (
    "refund_commission",
    "processing_fee_bearer",
    "dispute_amount_bearer",
    "dispute_fee_bearer",
    "dispute_recovery_on",
)


def platform_policy(settings: Settings) -> LossPolicy:
    return LossPolicy(**{name: getattr(settings, name) for name in FIELDS})


def policy_for(settings: Settings, override: StoreLossPolicy | None) -> LossPolicy:
    """The platform's policy with a store's overrides on top."""
    base = platform_policy(settings)
    if override is None:
        return base
    values = {name: getattr(override, name) or getattr(base, name) for name in FIELDS}
    return LossPolicy(**values)


def pro_rata(total: int, part: int, whole: int) -> int:
    """`total × part / whole`, rounded half up."""
    if whole <= 0:
        return 0
    return (2 * total * part + whole) // (2 * whole)


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split pro rata to `weights`: each share rounded down (towards zero), then the
    minor units left over one each to the largest weights (the earlier first on a tie), so
    the shares add up to `total` exactly; a weight of 0 gets nothing. How one charge's money
    (its processing fee, a dispute, a refund made in Stripe's dashboard) is shared among the
    orders of a checkout group."""
    whole = sum(weights)
    if whole <= 0 or any(weight < 0 for weight in weights):
        return [0] * len(weights)
    size = abs(total)
    shares = [size * weight // whole for weight in weights]
    largest = sorted(range(len(weights)), key=lambda i: -weights[i])
    for index in largest[: size - sum(shares)]:
        shares[index] += 1
    return [-s for s in shares] if total < 0 else shares


def share(total: int, done: int, part: int, whole: int, *, last: bool) -> int:
    """The share of `total` (of which `done` already went) that goes with `part` of `whole`:
    pro rata, and all that is left on the last part."""
    left = total - done
    return left if last else min(left, pro_rata(total, part, whole))


@dataclass(frozen=True)
class ChargeState:
    """What happened to an order's charge so far, as the ledger knows it."""

    amount: int
    refunded: int  # refunds not failed (or still being asked for)
    transfer: int
    transfer_reversed: int
    commission: int
    commission_refunded: int
    processing_fee: int
    # Commission kept back from earlier refunds for the processing fee the store bore.
    fee_recovered: int = 0

    @property
    def refundable(self) -> int:
        return self.amount - self.refunded


@dataclass(frozen=True)
class RefundPlan:
    """Exactly what a refund moves: the buyer gets `amount`, the store and the platform move
    by `store` and `platform` (negative: they pay), Stripe keeps `processing_fee`."""

    amount: int
    transfer_reversal: int  # reverse_transfer: the store's transfer, pro rata
    commission_refund: int  # the platform's commission given back to the store
    refund_application_fee: bool  # whether Stripe's pro-rata refund_application_fee does it
    processing_fee: int  # Stripe's fee on the refunded part, which Stripe does not return
    fee_recovered: int  # the part of it the store bears (kept from its commission refund)

    @property
    def store(self) -> int:
        return self.commission_refund - self.transfer_reversal

    @property
    def platform(self) -> int:
        return -self.amount - self.store

    @property
    def fee_borne_by_platform(self) -> int:
        return self.processing_fee - self.fee_recovered


def plan_refund(state: ChargeState, amount: int, policy: LossPolicy) -> RefundPlan:
    """The refund of `amount` (1..refundable) under `policy`."""
    if not 0 < amount <= state.refundable:
        raise ValueError("amount must be within what is left to refund")
    last = amount == state.refundable
    reversal = share(state.transfer, state.transfer_reversed, amount, state.amount, last=last)
    commission = 0
    if policy.refund_commission == "returned":
        commission = share(
            state.commission,
            state.commission_refunded + state.fee_recovered,
            amount,
            state.amount,
            last=last,
        )
    fee = share(
        state.processing_fee,
        pro_rata(state.processing_fee, state.refunded, state.amount),
        amount,
        state.amount,
        last=last,
    )
    # The store bears the fee out of the commission it would get back: a further reversal
    # of its transfer would need its available balance, which Stripe may not have.
    recovered = min(fee, commission) if policy.processing_fee_bearer == "store" else 0
    return RefundPlan(
        amount=amount,
        transfer_reversal=reversal,
        commission_refund=commission - recovered,
        refund_application_fee=commission > 0 and recovered == 0,
        processing_fee=fee,
        fee_recovered=recovered,
    )


def dispute_recovery(policy: LossPolicy, state: ChargeState, *, amount: int, fee: int) -> int:
    """What a lost dispute of `amount` (Stripe's dispute fee `fee`) takes back from the store's
    transfer under `policy`: the store's net share of the amount (the commission on it goes
    back as on a refund, unless the policy keeps commissions) and the fee if the store bears
    it, never more than is left of the transfer."""
    wanted = 0
    if policy.dispute_amount_bearer == "store":
        wanted = amount
        if policy.refund_commission == "returned":
            wanted -= pro_rata(state.commission, amount, state.amount)
    if policy.dispute_fee_bearer == "store":
        wanted += fee
    return max(0, min(wanted, state.transfer - state.transfer_reversed))
