"""Balance transactions: the one place money is booked, and the balances summed from them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from souq.sandbox.objects import APPLICATION_ID, J, new_id, template

if TYPE_CHECKING:
    from souq.sandbox.core import Core

# The kinds of fee a balance transaction itemizes in `fee_details`.
_FEE_KINDS = {
    "processing": (None, "Stripe processing fees", "stripe_fee"),
    "application": (APPLICATION_ID, "Application fee", "application_fee"),
    "dispute": (None, "Dispute fee", "stripe_fee"),
}


def fee_detail(kind: str, amount: int, currency: str) -> J:
    application, description, type_ = _FEE_KINDS[kind]
    return {
        "amount": amount,
        "application": application,
        "currency": currency,
        "description": description,
        "type": type_,
    }


class Ledger:
    def __init__(self, core: Core) -> None:
        self.core = core

    def book(
        self,
        owner: str,
        *,
        amount: int,
        currency: str,
        type_: str,
        source: str,
        fees: list[J] | None = None,
        available_on: int | None = None,
        description: str | None = None,
        category: str | None = None,
    ) -> J:
        """One balance transaction on `owner`'s balance; its fee is the sum of `fees`."""
        now = self.core.now()
        fee = sum(int(f["amount"]) for f in fees or [])
        txn = template("balance_transaction")
        txn.update(
            id=new_id("txn_"),
            created=now,
            amount=amount,
            currency=currency,
            fee=fee,
            fee_details=fees or [],
            net=amount - fee,
            type=type_,
            source=source,
            available_on=available_on if available_on is not None else now,
            description=description,
            exchange_rate=None,
            reporting_category=category or type_,
            status="pending",
        )
        return self.core.put(txn, owner)

    def move(
        self,
        payer: str,
        payee: str,
        *,
        amount: int,
        currency: str,
        source: str,
        types: tuple[str, str],
    ) -> tuple[J, J]:
        """Money from one balance to another, available now: the payer's balance transaction
        (of type `types[0]`, minus the amount) and the payee's (`types[1]`, plus)."""
        paid = self.book(payer, amount=-amount, currency=currency, type_=types[0], source=source)
        received = self.book(payee, amount=amount, currency=currency, type_=types[1], source=source)
        return paid, received

    def balance_parts(self, owner: str) -> tuple[dict[str, int], dict[str, int]]:
        """Sums of net amounts per currency: (available now, still pending)."""
        available: dict[str, int] = {}
        pending: dict[str, int] = {}
        for currency, is_available, total in self.core.store.execute(
            "SELECT json_extract(data, '$.currency'), "
            "json_extract(data, '$.available_on') <= ?, SUM(json_extract(data, '$.net')) "
            "FROM objects WHERE type = 'balance_transaction' AND owner = ? GROUP BY 1, 2",
            (self.core.now(), owner),
        ).fetchall():
            bucket = available if is_available else pending
            bucket[str(currency)] = int(total)
        return available, pending

    def available(self, owner: str, currency: str) -> int:
        return self.balance_parts(owner)[0].get(currency, 0)
