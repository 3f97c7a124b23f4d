"""Sharing one amount of a cart's charge among its orders (`policy.apportion`)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from souq.ledger.policy import apportion


def test_the_cents_left_over_go_to_the_largest_orders() -> None:
    # 1500 × (2000, 1000, 1333) / 4333 = 692.37, 346.18, 461.45: one cent left, to 2000.
    assert apportion(1500, [2000, 1000, 1333]) == [693, 346, 461]
    # 1000 × the same = 461.57, 230.78, 307.64: two cents left, to 2000 then 1333.
    assert apportion(1000, [2000, 1000, 1333]) == [462, 230, 308]
    assert apportion(-1000, [2000, 1000, 1333]) == [-462, -230, -308]
    # Equal orders: the earlier takes the cent.
    assert apportion(100, [1, 1, 1]) == [34, 33, 33]


def test_an_order_with_nothing_left_gets_nothing() -> None:
    assert apportion(999, [0, 500, 0, 500]) == [0, 500, 0, 499]
    assert apportion(10, [0, 0]) == [0, 0]


@given(
    total=st.integers(min_value=-(10**9), max_value=10**9),
    weights=st.lists(st.integers(min_value=0, max_value=10**8), min_size=1, max_size=12),
)
def test_shares_add_up_exactly_and_never_exceed_a_weight(total: int, weights: list[int]) -> None:
    shares = apportion(total, weights)
    if sum(weights) == 0:
        assert shares == [0] * len(weights)
        return
    assert sum(shares) == total
    for share, weight in zip(shares, weights, strict=True):
        if weight == 0:
            assert share == 0
        if abs(total) <= sum(weights):
            assert abs(share) <= weight
