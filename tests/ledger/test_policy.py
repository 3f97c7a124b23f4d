"""The loss policy's arithmetic, over random charges, policies and refund sequences."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from souq.ledger.policy import ChargeState, LossPolicy, plan_refund

policies = st.builds(
    LossPolicy,
    refund_commission=st.sampled_from(["returned", "kept"]),
    processing_fee_bearer=st.sampled_from(["platform", "store"]),
    dispute_amount_bearer=st.sampled_from(["store", "platform"]),
    dispute_fee_bearer=st.sampled_from(["platform", "store"]),
    dispute_recovery_on=st.sampled_from(["lost", "funds_withdrawn"]),
)


@st.composite
def charges_and_refunds(draw: st.DrawFn) -> tuple[ChargeState, list[int]]:
    amount = draw(st.integers(50, 99_999_999))
    commission = draw(st.integers(0, amount))
    fee = draw(st.integers(0, amount // 10 + 30))
    cuts = sorted(draw(st.sets(st.integers(1, amount - 1), max_size=6))) if amount > 1 else []
    edges = [0, *cuts, amount]
    refunds = [b - a for a, b in pairwise(edges)]
    state = ChargeState(
        amount=amount,
        refunded=0,
        transfer=amount,
        transfer_reversed=0,
        commission=commission,
        commission_refunded=0,
        processing_fee=fee,
    )
    return state, refunds


@settings(max_examples=300, deadline=None)
@given(charges_and_refunds(), policies)
def test_refunds_in_any_pieces_return_exactly_the_charge(
    case: tuple[ChargeState, list[int]], policy: LossPolicy
) -> None:
    state, refunds = case
    returned_commission = recovered = 0
    for amount in refunds:
        plan = plan_refund(state, amount, policy)
        # Every cent the buyer gets comes from the store or the platform, none twice.
        assert plan.store + plan.platform == -amount
        assert 0 <= plan.transfer_reversal <= state.transfer - state.transfer_reversed
        assert 0 <= plan.commission_refund <= state.commission - state.commission_refunded
        assert 0 <= plan.fee_recovered <= plan.processing_fee
        if policy.refund_commission == "kept":
            assert plan.commission_refund == 0 and plan.fee_recovered == 0
        if policy.processing_fee_bearer == "platform":
            assert plan.fee_recovered == 0
        returned_commission += plan.commission_refund
        recovered += plan.fee_recovered
        state = replace(
            state,
            refunded=state.refunded + amount,
            transfer_reversed=state.transfer_reversed + plan.transfer_reversal,
            commission_refunded=state.commission_refunded + plan.commission_refund,
            fee_recovered=state.fee_recovered + plan.fee_recovered,
        )
    # Refunded in full: the whole transfer is back, and the commission was returned in full
    # (less the processing fee the store bears) or kept.
    assert state.transfer_reversed == state.transfer
    if policy.refund_commission == "returned":
        assert returned_commission + recovered == state.commission
