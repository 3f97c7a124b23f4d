"""Paid orders and the checks every money test makes: the ledger's invariant, and Souq's
books against the sandbox's balances."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.helpers import StoreTeam
from tests.payments.stripe_helpers import flush, listing, pay, payments_status, sdk, start
from tests.servers import LiveServer


@dataclass
class PaidOrder:
    id: int
    listing_id: int
    account_id: str


def paid_order(
    live: LiveServer,
    team: StoreTeam,
    *,
    price: str = "19.99",
    quantity: int = 2,
    card: str = "4242424242424242",
    stock: int | None = 10,
) -> PaidOrder:
    item = listing(team, price=price, stock=stock)
    started = start(live, team, [(item, quantity)])
    answer = pay(live, started["url"], card=card)
    assert answer.status_code == 200, answer.text
    flush(live)
    return PaidOrder(started["orderId"], item, payments_status(team)["stripeAccountId"])


def refund(client: httpx.Client, order_id: int, key: str, **body: Any) -> httpx.Response:
    return client.post(
        f"/api/orders/{order_id}/refunds", json=body, headers={"Idempotency-Key": key}
    )


def money(client: httpx.Client, order_id: int) -> dict[str, Any]:
    response = client.get(f"/api/orders/{order_id}/money")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def entry_sum(live: LiveServer, order_id: int, party: str | None = None) -> int:
    query = "SELECT coalesce(sum(amount), 0) FROM ledger_entry WHERE order_id = :id"
    if party is not None:
        query += " AND party = :party"
    total: int = live.scalar(query, id=order_id, party=party)
    return total


def paid_for(live: LiveServer, order_id: int) -> int:
    """What the buyer paid for the order: its own payment, or (a cart's order, paid by the
    checkout group's one charge) its total, its share of the group's charge."""
    paid: int | None = live.scalar(
        "SELECT coalesce((SELECT amount FROM order_payment WHERE order_id = :id "
        "AND review_reason IS NULL), (SELECT total_amount FROM orders WHERE id = :id "
        "AND checkout_group_id IS NOT NULL))",
        id=order_id,
    )
    assert paid is not None
    return paid


def assert_invariant(live: LiveServer, order_id: int) -> None:
    """The entries sum to what the buyer paid minus what went back to them."""
    paid = paid_for(live, order_id)
    refunded: int = live.scalar(
        "SELECT coalesce(sum(amount), 0) FROM refund WHERE order_id = :id "
        "AND status NOT IN ('failed', 'canceled')",
        id=order_id,
    )
    disputed: int = -live.scalar(
        "SELECT coalesce(sum(amount), 0) FROM ledger_entry WHERE order_id = :id "
        "AND kind IN ('dispute', 'dispute_reinstated')",
        id=order_id,
    )
    assert entry_sum(live, order_id) == paid - refunded - disputed


def stripe_balance(live: LiveServer, account_id: str) -> int:
    """The connected account's whole USD balance at the sandbox (pending and available)."""
    balance = sdk(live).v1.balance.retrieve(options={"stripe_account": account_id}).to_dict()
    return sum(
        int(b["amount"])
        for key in ("available", "pending")
        for b in balance[key]
        if b["currency"] == "usd"
    )
