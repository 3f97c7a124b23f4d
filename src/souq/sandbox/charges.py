"""Charges: the card's answer, and for a success the money it moves (the charge's balance
transaction with the simulated Stripe fee, and for Connect the Transfer and ApplicationFee)."""

from __future__ import annotations

from souq.sandbox.application_fees import ApplicationFees
from souq.sandbox.cards import Card, card_for
from souq.sandbox.core import Core
from souq.sandbox.disputes import Disputes
from souq.sandbox.errors import StripeError
from souq.sandbox.ledger import fee_detail
from souq.sandbox.objects import APPLICATION_ID, DAY, Ctx, J, new_id, template
from souq.sandbox.rules import stripe_fee
from souq.sandbox.transfers import Transfers

PENDING_DAYS = 2

_BILLING_DETAILS: J = {
    "address": {
        "city": None,
        "country": None,
        "line1": None,
        "line2": None,
        "postal_code": None,
        "state": None,
    },
    "email": None,
    "name": None,
    "phone": None,
}


def _outcome(network: str, reason: str | None, message: str, type_: str) -> J:
    return {
        "network_status": network,
        "reason": reason,
        "risk_level": "normal",
        "risk_score": 20,
        "seller_message": message,
        "type": type_,
    }


class Charges:
    def __init__(
        self, core: Core, transfers: Transfers, fees: ApplicationFees, disputes: Disputes
    ) -> None:
        self.core = core
        self.transfers = transfers
        self.fees = fees
        self.disputes = disputes

    def retrieve(self, ctx: Ctx, params: J, charge_id: str) -> J:
        return self.get(charge_id, ctx)

    def get(self, charge_id: str, ctx: Ctx | None, param: str = "id") -> J:
        return self.core.get(charge_id, "charge", "charge", ctx, param=param)

    def all(self, ctx: Ctx, params: J) -> list[J]:
        items = self.core.store.query("charge", owner=ctx.owner)
        for key in ("payment_intent", "transfer_group"):
            if isinstance(params.get(key), str):
                items = [i for i in items if i[key] == params[key]]
        return items

    def build(self, pi: J, card: Card, status: str) -> J:
        """A new charge of the PaymentIntent's amount on this card (not stored)."""
        charge = template("charge")
        charge["payment_method_details"]["card"].update(
            brand=card.brand,
            last4=card.number[-4:],
            network=card.brand,
            exp_month=12,
            exp_year=2034,
        )
        succeeded = status == "succeeded"
        charge.update(
            id=new_id("ch_"),
            created=self.core.now(),
            amount=pi["amount"],
            currency=pi["currency"],
            amount_captured=pi["amount"] if succeeded else 0,
            amount_refunded=0,
            captured=succeeded,
            paid=succeeded,
            status=status,
            payment_intent=pi["id"],
            payment_method=pi["payment_method"],
            description=pi["description"],
            metadata=dict(pi["metadata"]),
            application_fee=None,
            application_fee_amount=pi["application_fee_amount"],
            transfer=None,
            transfer_data=pi["transfer_data"],
            transfer_group=pi["transfer_group"],
            on_behalf_of=pi["on_behalf_of"],
            balance_transaction=None,
            refunded=False,
            disputed=False,
            failure_code=None,
            failure_message=None,
            receipt_email=pi.get("receipt_email"),
            receipt_url=None,
            livemode=False,
            billing_details=dict(_BILLING_DETAILS, address=dict(_BILLING_DETAILS["address"])),
            outcome=_outcome("approved_by_network", None, "Payment complete.", "authorized"),
            application=APPLICATION_ID if pi["application_fee_amount"] is not None else None,
            source_transfer=None,
        )
        return charge

    def payment_method(self, pi: J) -> J:
        """The PaymentMethod object an error carries."""
        card = card_for(str(pi.get("_card") or "4242424242424242"))
        pm = template("payment_method")
        pm.update(id=pi["payment_method"], created=self.core.now(), type="card", livemode=False)
        if isinstance(pm.get("card"), dict):
            pm["card"].update(brand=card.brand, last4=card.number[-4:])
        return pm

    def decline(self, pi: J, card: Card, ctx: Ctx) -> StripeError:
        """A failed charge; the PaymentIntent goes back to requires_payment_method."""
        charge = self.build(pi, card, "failed")
        charge.update(
            failure_code=card.code,
            failure_message=card.message,
            outcome=_outcome(
                "declined_by_network",
                card.decline_code,
                "The bank did not return any further details.",
                "issuer_declined",
            ),
        )
        self.core.put(charge, ctx.owner)
        error = {
            "type": "card_error",
            "code": card.code,
            "decline_code": card.decline_code,
            "message": card.message,
            "charge": charge["id"],
            "payment_method": self.payment_method(pi),
            "doc_url": f"https://stripe.com/docs/error-codes/{str(card.code).replace('_', '-')}",
        }
        pi.update(
            status="requires_payment_method",
            latest_charge=charge["id"],
            last_payment_error=error,
            next_action=None,
        )
        self.core.put(pi, ctx.owner)
        self.core.emit("charge.failed", charge, ctx, account=ctx.account)
        self.core.emit("payment_intent.payment_failed", pi, ctx, account=ctx.account)
        return StripeError(
            402,
            str(card.message),
            type_="card_error",
            code=card.code,
            decline_code=card.decline_code,
            extra={"charge": charge["id"], "payment_intent": self.core.render(pi)},
        )

    def succeed(self, pi: J, card: Card, ctx: Ctx, *, charge: J | None = None) -> J:
        """Money moves: the Charge, its balance transaction with the simulated Stripe fee, and
        for destination charges the Transfer of the full amount and the ApplicationFee."""
        if charge is None:
            charge = self.build(pi, card, "succeeded")
        else:
            charge.update(
                status="succeeded", paid=True, captured=True, amount_captured=charge["amount"]
            )
        now = self.core.now()
        available_on = now if card.available_now else now + PENDING_DAYS * DAY
        charge["_available_on"] = available_on
        charge["_card"] = card.number
        self._book(pi, charge, ctx, available_on)
        transfer, fee = self._route_funds(pi, charge, ctx, available_on)
        self.core.put(charge, ctx.owner)
        pi.update(
            status="succeeded",
            amount_received=pi["amount"],
            latest_charge=charge["id"],
            last_payment_error=None,
            next_action=None,
        )
        self.core.put(pi, ctx.owner)
        self._announce(pi, charge, ctx, transfer, fee)
        if card.dispute is not None:
            self.disputes.open(charge, card.dispute, ctx)
        return charge

    def _book(self, pi: J, charge: J, ctx: Ctx, available_on: int) -> None:
        amount, currency = int(pi["amount"]), str(pi["currency"])
        processing = stripe_fee(amount, self.core.fee_bps, self.core.fee_fixed)
        fees = [fee_detail("processing", processing, currency)]
        application_fee = pi["application_fee_amount"]
        if pi["transfer_data"] is None and ctx.account is not None and application_fee:
            # Direct charge: the connected account pays both the Stripe fee and the platform's.
            fees.append(fee_detail("application", application_fee, currency))
        txn = self.core.ledger.book(
            ctx.owner,
            amount=amount,
            currency=currency,
            type_="charge",
            source=charge["id"],
            fees=fees,
            available_on=available_on,
            description=pi["description"],
        )
        charge["balance_transaction"] = txn["id"]

    def _route_funds(
        self, pi: J, charge: J, ctx: Ctx, available_on: int
    ) -> tuple[J | None, J | None]:
        """A destination charge's Transfer and ApplicationFee, or a direct charge's fee."""
        amount, currency = int(pi["amount"]), str(pi["currency"])
        fee_amount = pi["application_fee_amount"]
        transfer_data = pi["transfer_data"]
        transfer: J | None = None
        fee: J | None = None
        if transfer_data is not None:
            if pi["transfer_group"] is None:
                pi["transfer_group"] = f"group_{pi['id']}"
                charge["transfer_group"] = pi["transfer_group"]
            destination = transfer_data["destination"]
            transfer = self.transfers.book(
                destination,
                transfer_data.get("amount") or amount,
                currency,
                ctx,
                source_charge=charge,
                transfer_group=pi["transfer_group"],
                available_on=available_on,
                destination_fee=fee_amount or 0,
            )
            charge["transfer"] = transfer["id"]
            if fee_amount:
                fee = self.fees.book(
                    fee_amount,
                    currency,
                    destination,
                    charge,
                    transfer["destination_payment"],
                    available_on,
                )
        elif ctx.account is not None and fee_amount:
            fee = self.fees.book(
                fee_amount, currency, ctx.account, charge, charge["id"], available_on
            )
        if fee is not None:
            charge["application_fee"] = fee["id"]
        return transfer, fee

    def _announce(self, pi: J, charge: J, ctx: Ctx, transfer: J | None, fee: J | None) -> None:
        account = ctx.account
        emit = self.core.emit
        if self.core.async_capture:
            # Asynchronous capture: the first payloads lack the money fields, which arrive with
            # charge.updated (https://docs.stripe.com/payments/payment-intents/asynchronous-capture).
            early = dict(self.core.render(charge), balance_transaction=None, application_fee=None)
            early.pop("transfer", None)  # not nullable in the 2023-08-16 schema: absent instead
            emit("charge.succeeded", charge, ctx, account=account, snapshot=early)
            emit("payment_intent.succeeded", pi, ctx, account=account)
        else:
            pi_view = self.core.render(pi)
            emit("charge.succeeded", charge, ctx, account=account)
            emit("payment_intent.succeeded", pi, ctx, account=account, snapshot=pi_view)
        if transfer is not None:
            emit("transfer.created", transfer, ctx)
        if fee is not None:
            emit("application_fee.created", fee, ctx, account=None)
        if self.core.async_capture:
            emit(
                "charge.updated",
                charge,
                ctx,
                account=account,
                previous={"balance_transaction": None, "transfer": None, "application_fee": None},
            )
