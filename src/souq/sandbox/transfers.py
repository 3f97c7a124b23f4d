"""Transfers to connected accounts (each with its `py_` payment on the destination) and their
reversals."""

from __future__ import annotations

from souq.sandbox.accounts import Accounts
from souq.sandbox.core import Core
from souq.sandbox.errors import invalid, missing
from souq.sandbox.ledger import fee_detail
from souq.sandbox.objects import Ctx, J, new_id, template
from souq.sandbox.rules import (
    check_amount,
    check_currency,
    check_metadata,
    format_amount,
    merge_metadata,
)
from souq.sandbox.wire import opt_int, opt_str, req_int, req_str


class Transfers:
    def __init__(self, core: Core, accounts: Accounts) -> None:
        self.core = core
        self.accounts = accounts

    def book(
        self,
        destination: str,
        amount: int,
        currency: str,
        ctx: Ctx,
        *,
        source_charge: J | None,
        transfer_group: str | None,
        available_on: int,
        destination_fee: int = 0,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> J:
        """Move `amount` from the caller's balance to `destination`'s (no event)."""
        transfer_id = new_id("tr_")
        platform_txn = self.core.ledger.book(
            ctx.owner,
            amount=-amount,
            currency=currency,
            type_="transfer",
            source=transfer_id,
            available_on=available_on,
        )
        payment = self._destination_payment(
            destination, transfer_id, amount, currency, available_on, destination_fee
        )
        transfer = template("transfer")
        transfer.update(
            id=transfer_id,
            created=self.core.now(),
            amount=amount,
            amount_reversed=0,
            currency=currency,
            destination=destination,
            destination_payment=payment["id"],
            source_transaction=None if source_charge is None else source_charge["id"],
            transfer_group=transfer_group,
            balance_transaction=platform_txn["id"],
            reversed=False,
            metadata=metadata or {},
            description=description,
            livemode=False,
            source_type="card",
            _available_on=available_on,
        )
        return self.core.put(transfer, ctx.owner)

    def _destination_payment(
        self,
        destination: str,
        transfer_id: str,
        amount: int,
        currency: str,
        available_on: int,
        destination_fee: int,
    ) -> J:
        """The `py_` charge a transfer creates on the connected account. How Stripe splits a
        destination charge there is unverified: the sandbox books one payment with the
        platform's fee taken from it."""
        payment_id = new_id("py_")
        fees = [fee_detail("application", destination_fee, currency)] if destination_fee else []
        txn = self.core.ledger.book(
            destination,
            amount=amount,
            currency=currency,
            type_="payment",
            source=payment_id,
            fees=fees,
            available_on=available_on,
        )
        payment = template("charge")
        payment.update(
            {key: None for key in _PAYMENT_NULLS},
            id=payment_id,
            created=self.core.now(),
            amount=amount,
            amount_captured=amount,
            amount_refunded=0,
            currency=currency,
            status="succeeded",
            paid=True,
            captured=True,
            balance_transaction=txn["id"],
            source_transfer=transfer_id,
            metadata={},
            refunded=False,
            disputed=False,
            livemode=False,
        )
        return self.core.put(payment, destination)

    def create(self, ctx: Ctx, params: J) -> J:
        amount = req_int(params, "amount")
        currency = check_currency(req_str(params, "currency"))
        destination = req_str(params, "destination")
        check_amount(amount, currency, "amount", minimum=False)
        source_id = opt_str(params, "source_transaction")
        group = opt_str(params, "transfer_group")
        with self.core.store.transaction():
            self.accounts.destination(destination, "destination")
            source: J | None = None
            if source_id is not None:
                source = self._source_charge(source_id, amount, currency, ctx)
                group = self._group_from_source(source, group, ctx)
                available_on = int(source.get("_available_on") or self.core.now())
            else:
                if self.core.ledger.available(ctx.owner, currency) < amount:
                    raise invalid(
                        "You have insufficient available funds in your Stripe account. Try "
                        "adding funds directly to your available balance by creating Charges "
                        "using the 4000000000000077 test card.",
                        code="balance_insufficient",
                        param="amount",
                    )
                available_on = self.core.now()
            transfer = self.book(
                destination,
                amount,
                currency,
                ctx,
                source_charge=source,
                transfer_group=group,
                available_on=available_on,
                description=opt_str(params, "description"),
                metadata=check_metadata(params.get("metadata")),
            )
            self.core.emit("transfer.created", transfer, ctx, account=ctx.account)
            return transfer

    def _source_charge(self, source_id: str, amount: int, currency: str, ctx: Ctx) -> J:
        """`source_transaction`: a succeeded charge of the caller's, in the transfer's
        currency, with enough left that was not transferred or refunded already."""
        charge = self.core.get(source_id, "charge", "charge", ctx, param="source_transaction")
        if charge["status"] != "succeeded":
            raise invalid(
                "The source_transaction charge has not succeeded.", param="source_transaction"
            )
        if charge["currency"] != currency:
            raise invalid(
                f"The currency of source_transaction's balance transaction "
                f"({charge['currency']}) must be the same as the transfer currency "
                f"({currency}).",
                param="currency",
            )
        already = sum(
            int(t["amount"]) - int(t["amount_reversed"])
            for t in self.core.children("transfer", "source_transaction", source_id)
        )
        if already + amount > int(charge["amount"]) - int(charge["amount_refunded"]):
            raise invalid(
                "Transfers using this transaction as a source must not exceed the "
                f"source amount of {format_amount(int(charge['amount']), currency)}.",
                param="amount",
            )
        return charge

    def _group_from_source(self, charge: J, group: str | None, ctx: Ctx) -> str | None:
        """The transfer group: the one given, else the charge's, else one named after its
        PaymentIntent, which the charge and the PaymentIntent then take too."""
        if group is None:
            group = charge["transfer_group"]
        if group is None and charge["payment_intent"]:
            group = f"group_{charge['payment_intent']}"
        if charge["transfer_group"] is None and group is not None:
            charge["transfer_group"] = group
            self.core.put(charge, ctx.owner)
            pi = self.core.store.get(charge["payment_intent"] or "")
            if pi is not None and pi["transfer_group"] is None:
                pi["transfer_group"] = group
                self.core.put(pi, ctx.owner)
        return group

    def retrieve(self, ctx: Ctx, params: J, transfer_id: str) -> J:
        return self.get(transfer_id, ctx)

    def get(self, transfer_id: str, ctx: Ctx | None) -> J:
        return self.core.get(transfer_id, "transfer", "transfer", ctx)

    def all(self, ctx: Ctx, params: J) -> list[J]:
        items = self.core.store.query("transfer", owner=ctx.owner)
        for key in ("destination", "transfer_group"):
            if isinstance(params.get(key), str):
                items = [i for i in items if i[key] == params[key]]
        return items

    def update(self, ctx: Ctx, params: J, transfer_id: str) -> J:
        with self.core.store.transaction():
            transfer = self.get(transfer_id, ctx)
            changes: J = {}
            if "description" in params:
                changes["description"] = opt_str(params, "description")
            if "metadata" in params:
                changes["metadata"] = merge_metadata(transfer["metadata"], params["metadata"])
            return self.core.update(transfer, changes, "transfer.updated", ctx)

    def reverse(self, ctx: Ctx, params: J, transfer_id: str) -> J:
        return self.reverse_amount(
            transfer_id,
            opt_int(params, "amount"),
            ctx,
            metadata=check_metadata(params.get("metadata")),
        )

    def reverse_amount(
        self,
        transfer_id: str,
        amount: int | None,
        ctx: Ctx,
        *,
        metadata: dict[str, str] | None = None,
        source_refund: str | None = None,
        check_balance: bool = True,
    ) -> J:
        """Take `amount` (all that is left when None) back from the destination."""
        with self.core.store.transaction():
            transfer = self.get(transfer_id, ctx)
            amount = self._reversible(transfer, amount, check_balance)
            currency = transfer["currency"]
            destination = transfer["destination"]
            reversal_id = new_id("trr_")
            # The destination pays the reversal back to the caller's balance.
            _, txn = self.core.ledger.move(
                destination,
                ctx.owner,
                amount=amount,
                currency=currency,
                source=reversal_id,
                types=("payment_refund", "transfer_refund"),
            )
            reversal = template("transfer_reversal")
            reversal.update(
                id=reversal_id,
                created=self.core.now(),
                amount=amount,
                currency=currency,
                transfer=transfer_id,
                balance_transaction=txn["id"],
                destination_payment_refund=None,
                source_refund=source_refund,
                metadata=metadata or {},
            )
            self.core.put(reversal, ctx.owner)
            transfer["amount_reversed"] = int(transfer["amount_reversed"]) + amount
            transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
            self.core.put(transfer, ctx.owner)
            self.core.emit("transfer.reversed", transfer, ctx, account=ctx.account)
            return reversal

    def _reversible(self, transfer: J, amount: int | None, check_balance: bool) -> int:
        """The amount to reverse (all that is left unless given): positive, not more than is
        left, and (unless a refund pulls it back) covered by the destination's available
        balance."""
        currency = transfer["currency"]
        remaining = int(transfer["amount"]) - int(transfer["amount_reversed"])
        if amount is None:
            amount = remaining
        if amount <= 0 or amount > remaining:
            raise invalid(
                f"You cannot reverse {format_amount(amount, currency)} from "
                f"this transfer: only {format_amount(remaining, currency)} remains.",
                param="amount",
            )
        destination = transfer["destination"]
        if check_balance and self.core.ledger.available(destination, currency) < amount:
            raise invalid(
                "Insufficient funds in the connected account's available balance to "
                "reverse this transfer.",
                code="balance_insufficient",
                param="amount",
            )
        return amount

    def reversals(self, ctx: Ctx, params: J, transfer_id: str) -> list[J]:
        self.get(transfer_id, ctx)
        return self.core.children("transfer_reversal", "transfer", transfer_id)

    def reversal(self, ctx: Ctx, params: J, transfer_id: str, reversal_id: str) -> J:
        self.get(transfer_id, ctx)
        reversal = self.core.store.get(reversal_id)
        if reversal is None or reversal.get("transfer") != transfer_id:
            raise missing("transfer_reversal", reversal_id)
        return reversal


# The destination payment is a charge without a card, a PaymentIntent or Connect terms.
_PAYMENT_NULLS = (
    "payment_intent", "payment_method", "payment_method_details", "application",
    "application_fee", "application_fee_amount", "description", "transfer", "transfer_data",
    "transfer_group", "receipt_url", "outcome", "on_behalf_of", "failure_code", "failure_message",
)  # fmt: skip
