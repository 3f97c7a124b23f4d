"""Random sales, loss policies and partial refunds run through Souq and the sandbox (bounded
for CI): the ledger's invariant holds after every step, each refund moves what its preview
said, and the store's books equal its balance at Stripe to the cent."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from souq.money import format_amount
from tests.ledger.money_helpers import (
    assert_invariant,
    entry_sum,
    paid_order,
    refund,
    stripe_balance,
)
from tests.payments.stripe_helpers import flush, onboarded_team, platform_admin
from tests.servers import LiveServer

POLICY = st.fixed_dictionaries(
    {
        "refundCommission": st.sampled_from(["returned", "kept"]),
        "processingFeeBearer": st.sampled_from(["platform", "store"]),
    }
)


@pytest.mark.slow
@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    cents=st.integers(100, 50_000),
    quantity=st.integers(1, 3),
    policy=POLICY,
    shares=st.lists(st.integers(1, 100), min_size=1, max_size=3),
)
def test_random_refunds_keep_every_book_exact(
    live: LiveServer, cents: int, quantity: int, policy: dict[str, Any], shares: list[int]
) -> None:
    with onboarded_team(live) as team, platform_admin(live) as admin:
        put = admin.client.put(f"/api/admin/stores/{team.id}/loss-policy", json=policy)
        assert put.status_code == 200, put.text
        paid = paid_order(live, team, price=f"{cents // 100}.{cents % 100:02d}", quantity=quantity)
        total = cents * quantity
        owner = team.owner.client
        for share in shares:
            left = total - live.scalar(
                "SELECT coalesce(sum(amount), 0) FROM refund WHERE order_id = :id", id=paid.id
            )
            amount = max(1, left * share // 100)
            if left <= 0:
                break
            body = {"amount": f"{amount // 100}.{amount % 100:02d}"}
            preview = owner.post(f"/api/orders/{paid.id}/refunds/preview", json=body)
            assert preview.status_code == 200, preview.text
            store_before = entry_sum(live, paid.id, "store")
            made = refund(owner, paid.id, uuid.uuid4().hex, **body)
            assert made.status_code == 201, made.text
            flush(live)
            moved = entry_sum(live, paid.id, "store") - store_before
            assert format_amount(moved, "usd") == preview.json()["store"]
            assert_invariant(live, paid.id)
            assert stripe_balance(live, paid.account_id) == entry_sum(live, paid.id, "store")
