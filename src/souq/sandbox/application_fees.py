"""Application fees (the platform's cut of a Connect charge) and their refunds."""

from __future__ import annotations

from souq.sandbox.core import Core
from souq.sandbox.errors import invalid, missing
from souq.sandbox.objects import APPLICATION_ID, PLATFORM, Ctx, J, new_id, template
from souq.sandbox.rules import check_metadata, format_amount
from souq.sandbox.wire import opt_int


class ApplicationFees:
    def __init__(self, core: Core) -> None:
        self.core = core

    def book(
        self,
        amount: int,
        currency: str,
        account: str,
        charge: J,
        fee_charge: str,
        available_on: int,
    ) -> J:
        """The platform's fee on `charge`, collected from `account` (no event)."""
        fee_id = new_id("fee_")
        txn = self.core.ledger.book(
            PLATFORM,
            amount=amount,
            currency=currency,
            type_="application_fee",
            source=fee_id,
            available_on=available_on,
        )
        fee = template("application_fee")
        fee.update(
            id=fee_id,
            created=self.core.now(),
            amount=amount,
            amount_refunded=0,
            currency=currency,
            account=account,
            application=APPLICATION_ID,
            balance_transaction=txn["id"],
            charge=fee_charge,
            originating_transaction=charge["id"],
            refunded=False,
            livemode=False,
        )
        return self.core.put(fee, PLATFORM)

    def retrieve(self, ctx: Ctx | None, params: J, fee_id: str) -> J:
        return self.get(fee_id)

    def get(self, fee_id: str) -> J:
        return self.core.get(fee_id, "application_fee", "application fee", None)

    def all(self, ctx: Ctx, params: J) -> list[J]:
        items = self.core.store.query("application_fee")
        charge = params.get("charge")
        if isinstance(charge, str):
            items = [i for i in items if charge in (i["charge"], i["originating_transaction"])]
        return items

    def refund(self, ctx: Ctx, params: J, fee_id: str) -> J:
        with self.core.store.transaction():
            fee = self.get(fee_id)
            remaining = int(fee["amount"]) - int(fee["amount_refunded"])
            amount = opt_int(params, "amount")
            if amount is None:
                amount = remaining
            if remaining <= 0:
                raise invalid(
                    "Application fee has already been refunded.",
                    code="charge_already_refunded",
                    param="amount",
                )
            if amount <= 0 or amount > remaining:
                raise invalid(
                    f"Refund amount ({format_amount(amount, fee['currency'])}) is greater than "
                    f"unrefunded amount on fee ({format_amount(remaining, fee['currency'])})",
                    param="amount",
                    code="amount_too_large",
                )
            return self.book_refund(fee, amount, ctx, check_metadata(params.get("metadata")))

    def book_refund(self, fee: J, amount: int, ctx: Ctx, metadata: dict[str, str]) -> J:
        """Give `amount` of the fee back to the connected account."""
        refund_id = new_id("fr_")
        currency = fee["currency"]
        txn, _ = self.core.ledger.move(
            PLATFORM,
            fee["account"],
            amount=amount,
            currency=currency,
            source=refund_id,
            types=("application_fee_refund", "application_fee_refund"),
        )
        refund = template("fee_refund")
        refund.update(
            id=refund_id,
            created=self.core.now(),
            amount=amount,
            currency=currency,
            fee=fee["id"],
            balance_transaction=txn["id"],
            metadata=metadata,
        )
        self.core.put(refund, PLATFORM)
        fee["amount_refunded"] = int(fee["amount_refunded"]) + amount
        fee["refunded"] = fee["amount_refunded"] == fee["amount"]
        self.core.put(fee, PLATFORM)
        self.core.emit("application_fee.refunded", fee, ctx)
        return refund

    def refunds(self, ctx: Ctx, params: J, fee_id: str) -> list[J]:
        self.get(fee_id)
        return self.core.children("fee_refund", "fee", fee_id)

    def refund_of(self, ctx: Ctx, params: J, fee_id: str, refund_id: str) -> J:
        self.get(fee_id)
        refund = self.core.store.get(refund_id)
        if refund is None or refund.get("fee") != fee_id:
            raise missing("fee_refund", refund_id)
        return refund
