"""PaymentIntents: Connect terms, confirmation with test PaymentMethods, 3D Secure, bank debits
that settle later, cancellation."""

from __future__ import annotations

from collections.abc import Callable

from souq.sandbox.accounts import Accounts
from souq.sandbox.cards import CARDS, TEST_PAYMENT_METHODS, card_for
from souq.sandbox.charges import Charges
from souq.sandbox.core import Core
from souq.sandbox.errors import StripeError, invalid
from souq.sandbox.objects import Ctx, J, new_id, template
from souq.sandbox.rules import check_amount, check_currency, check_metadata
from souq.sandbox.wire import opt_bool, opt_int, opt_str, req_int, req_str, sub

DELAYED_SETTLE_SECONDS = 60
_BANK_ACCOUNT = {
    "bank_name": "STRIPE TEST BANK",
    "last4": "6789",
    "routing_number": "110000000",
    "account_holder_type": "individual",
    "account_type": "checking",
    "fingerprint": "sandbox",
}
_FINAL = ("succeeded", "canceled", "processing")


class PaymentIntents:
    def __init__(self, core: Core, accounts: Accounts, charges: Charges) -> None:
        self.core = core
        self.accounts = accounts
        self.charges = charges

    def terms(self, data: J, amount: int, ctx: Ctx, *, prefix: str) -> J:
        """Validate the Connect terms shared by checkout's payment_intent_data and
        PaymentIntent creation: application fee, destination, transfer group."""

        def p(name: str) -> str:
            return f"{prefix}[{name}]" if prefix else name

        capture = opt_str(data, "capture_method", p("capture_method")) or "automatic"
        if capture == "manual":
            raise invalid(
                "The sandbox does not simulate manual capture.", param=p("capture_method")
            )
        fee = opt_int(data, "application_fee_amount", p("application_fee_amount"))
        given = sub(data, "transfer_data")
        destination = opt_str(given, "destination", p("transfer_data") + "[destination]")
        self._check_fee(fee, amount, destination is not None, ctx, p("application_fee_amount"))
        transfer_data = self._transfer_data(given, amount, fee, ctx, p)
        on_behalf_of = opt_str(data, "on_behalf_of", p("on_behalf_of"))
        if on_behalf_of is not None:
            obo = self.accounts.usable(on_behalf_of, p("on_behalf_of"))
            if obo["capabilities"].get("card_payments") != "active":
                raise invalid(
                    "The on_behalf_of account needs the card_payments capability.",
                    param=p("on_behalf_of"),
                )
        return {
            "application_fee_amount": fee,
            "transfer_data": transfer_data,
            "on_behalf_of": on_behalf_of,
            "transfer_group": opt_str(data, "transfer_group", p("transfer_group")),
            "metadata": check_metadata(data.get("metadata"), p("metadata")),
            "description": opt_str(data, "description", p("description")),
            "receipt_email": opt_str(data, "receipt_email", p("receipt_email")),
        }

    @staticmethod
    def _check_fee(fee: int | None, amount: int, destination: bool, ctx: Ctx, param: str) -> None:
        if fee is None:
            return
        if fee < 0:
            raise invalid("application_fee_amount must be non-negative.", param=param)
        if not destination and ctx.account is None:
            raise invalid(
                "Can only apply an application_fee_amount when the PaymentIntent is "
                "attempting a direct payment (using an OAuth key or Stripe-Account header) "
                "or destination payment (using `transfer_data[destination]`).",
                param=param,
            )
        if fee > amount:
            raise invalid(
                "The application fee amount cannot be greater than the amount.", param=param
            )

    def _transfer_data(
        self, data: J, amount: int, fee: int | None, ctx: Ctx, p: Callable[[str], str]
    ) -> J | None:
        param = p("transfer_data")
        destination = opt_str(data, "destination", f"{param}[destination]")
        transfer_amount = opt_int(data, "amount", f"{param}[amount]")
        if not data:
            return None
        if destination is None:
            raise invalid(
                f"Missing required param: {param}[destination].",
                param=f"{param}[destination]",
                code="parameter_missing",
            )
        if ctx.account is not None:
            raise invalid(
                "Destination charges cannot be created on behalf of a connected account.",
                param=f"{param}[destination]",
            )
        self.accounts.destination(destination, f"{param}[destination]")
        if transfer_amount is not None and transfer_amount > amount:
            raise invalid(
                "transfer_data[amount] cannot be greater than the amount.",
                param=f"{param}[amount]",
            )
        if transfer_amount is not None and fee is not None:
            raise invalid(
                "You cannot set both application_fee_amount and transfer_data[amount].",
                param=p("application_fee_amount"),
            )
        result: J = {"destination": destination}
        if transfer_amount is not None:
            result["amount"] = transfer_amount
        return result

    def new(self, amount: int, currency: str, terms: J, ctx: Ctx) -> J:
        """A PaymentIntent waiting for a payment method (no event)."""
        pi_id = new_id("pi_")
        pi = template("payment_intent")
        pi.update(
            id=pi_id,
            created=self.core.now(),
            amount=amount,
            currency=currency,
            amount_received=0,
            amount_capturable=0,
            canceled_at=None,
            application_fee_amount=terms.get("application_fee_amount"),
            transfer_data=terms.get("transfer_data"),
            on_behalf_of=terms.get("on_behalf_of"),
            transfer_group=terms.get("transfer_group"),
            metadata=terms.get("metadata") or {},
            description=terms.get("description"),
            receipt_email=terms.get("receipt_email"),
            client_secret=f"{pi_id}_secret_{new_id('', 24)}",
            status="requires_payment_method",
            latest_charge=None,
            last_payment_error=None,
            next_action=None,
            payment_method=None,
            capture_method="automatic",
            automatic_payment_methods=None,
            livemode=False,
        )
        return self.core.put(pi, ctx.owner)

    def create(self, ctx: Ctx, params: J) -> J:
        amount = req_int(params, "amount")
        currency = check_currency(req_str(params, "currency"))
        check_amount(amount, currency, "amount", minimum=True)
        terms = self.terms(params, amount, ctx, prefix="")
        confirm = opt_bool(params, "confirm") or False
        pm = opt_str(params, "payment_method")
        with self.core.store.transaction():
            pi = self.new(amount, currency, terms, ctx)
            if pm is not None:
                pi.update(payment_method=pm, status="requires_confirmation")
                self.core.put(pi, ctx.owner)
            self.core.emit("payment_intent.created", pi, ctx, account=ctx.account)
        if confirm:
            return self.confirm(ctx, {}, pi["id"])
        return pi

    def retrieve(self, ctx: Ctx, params: J, pi_id: str) -> J:
        return self.get(pi_id, ctx)

    def get(self, pi_id: str, ctx: Ctx | None) -> J:
        return self.core.get(pi_id, "payment_intent", "payment_intent", ctx)

    def all(self, ctx: Ctx, params: J) -> list[J]:
        return self.core.store.query("payment_intent", owner=ctx.owner)

    def confirm(self, ctx: Ctx, params: J, pi_id: str) -> J:
        """Confirm with a test PaymentMethod (pm_card_visa, pm_card_chargeDeclined, …)."""
        with self.core.store.transaction():
            pi = self.get(pi_id, ctx)
            if pi["status"] not in ("requires_payment_method", "requires_confirmation"):
                raise invalid(
                    f"You cannot confirm this PaymentIntent because it has a status of "
                    f"{pi['status']}.",
                    code="payment_intent_unexpected_state",
                    param="intent",
                )
            pm = opt_str(params, "payment_method") or pi["payment_method"]
            if pm is None:
                raise invalid(
                    "You cannot confirm this PaymentIntent because it's missing a payment method.",
                    param="payment_method",
                    code="payment_intent_unexpected_state",
                )
            number = TEST_PAYMENT_METHODS.get(pm)
            if number is None:
                raise invalid(
                    f"No such PaymentMethod: '{pm}'",
                    param="payment_method",
                    code="resource_missing",
                )
            error = self.attempt(pi, number, ctx)
            pi["payment_method"] = pm
            self.core.put(pi, ctx.owner)
        if error is not None:
            raise error
        return pi

    def cancel(self, ctx: Ctx, params: J, pi_id: str) -> J:
        with self.core.store.transaction():
            pi = self.get(pi_id, ctx)
            if pi["status"] in _FINAL:
                raise invalid(
                    f"You cannot cancel this PaymentIntent because it has a status of "
                    f"{pi['status']}.",
                    code="payment_intent_unexpected_state",
                )
            reason = opt_str(params, "cancellation_reason") or "requested_by_customer"
            self.abandon(pi, ctx, reason=reason)
            return pi

    def abandon(self, pi: J, ctx: Ctx, *, reason: str = "abandoned") -> None:
        """Cancel a PaymentIntent that can still be canceled (an expired checkout's)."""
        if pi["status"] in _FINAL:
            return
        pi.update(status="canceled", canceled_at=self.core.now(), cancellation_reason=reason)
        self.core.save(pi)
        self.core.emit("payment_intent.canceled", pi, ctx, account=self.core.account_of(pi))

    def attempt(
        self, pi: J, number: str, ctx: Ctx, *, authenticated: bool = False
    ) -> StripeError | None:
        """Pay with a card number: succeeds, is declined (the error), or asks for 3D Secure."""
        card = card_for(number)
        pi["payment_method"] = new_id("pm_")
        pi["_card"] = card.number
        if card.outcome == "authenticate" and not authenticated:
            pi.update(
                status="requires_action",
                last_payment_error=None,
                next_action={
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": ""},
                },
            )
            self.core.put(pi, ctx.owner)
            self.core.emit("payment_intent.requires_action", pi, ctx, account=ctx.account)
            return None
        if card.outcome == "declined":
            return self.charges.decline(pi, card, ctx)
        self.charges.succeed(pi, card, ctx)
        return None

    def authenticate(self, pi: J, approve: bool, ctx: Ctx) -> StripeError | None:
        """The customer's answer to a 3D Secure challenge."""
        if approve:
            pi["next_action"] = None
            self.charges.succeed(pi, card_for(pi["_card"]), ctx)
            return None
        error: J = {
            "type": "invalid_request_error",
            "code": "payment_intent_authentication_failure",
            "message": "The provided PaymentMethod has failed authentication. You can provide "
            "payment_method_data or a new PaymentMethod to attempt to fulfill this "
            "PaymentIntent again.",
            "payment_method": self.charges.payment_method(pi),
        }
        pi.update(status="requires_payment_method", next_action=None, last_payment_error=error)
        self.core.put(pi, ctx.owner)
        self.core.emit("payment_intent.payment_failed", pi, ctx, account=ctx.account)
        return StripeError(
            400,
            error["message"],
            code="payment_intent_authentication_failure",
            extra={"payment_intent": self.core.render(pi)},
        )

    def start_bank_debit(self, pi: J, ctx: Ctx, job: J) -> None:
        """A delayed-notification payment: processing now, settled by the clock later (the
        `settle_delayed` job, which carries `job` as well)."""
        charge = self.charges.build(pi, CARDS["4242424242424242"], "pending")
        charge["payment_method_details"] = {
            "type": "us_bank_account",
            "us_bank_account": dict(_BANK_ACCOUNT),
        }
        charge.update(paid=False, captured=True, amount_captured=pi["amount"])
        self.core.put(charge, ctx.owner)
        pi.update(
            status="processing",
            latest_charge=charge["id"],
            payment_method=new_id("pm_"),
            payment_method_types=["us_bank_account"],
        )
        self.core.put(pi, ctx.owner)
        self.core.emit("charge.pending", charge, ctx, account=ctx.account)
        self.core.emit("payment_intent.processing", pi, ctx, account=ctx.account)
        payload = {"payment_intent": pi["id"], "charge": charge["id"], "account": ctx.account}
        self.core.schedule(DELAYED_SETTLE_SECONDS, "settle_delayed", {**payload, **job})

    def settle_bank_debit(self, job: J) -> bool | None:
        """Settle a processing bank debit as the job says; None if there was nothing to do,
        else whether it succeeded."""
        ctx = Ctx(account=job["account"])
        pi = self.core.store.get(job["payment_intent"])
        charge = self.core.store.get(job["charge"])
        if pi is None or charge is None or pi["status"] != "processing":
            return None
        if job["outcome"] == "succeeded":
            self.charges.succeed(pi, CARDS["4242424242424242"], ctx, charge=charge)
            return True
        charge.update(
            status="failed",
            failure_code="insufficient_funds",
            failure_message="The customer's account has insufficient funds.",
            captured=False,
            amount_captured=0,
        )
        self.core.put(charge, ctx.owner)
        pi.update(
            status="requires_payment_method",
            last_payment_error={
                "type": "invalid_request_error",
                "code": "payment_method_provider_decline",
                "message": "The customer's bank declined the payment.",
            },
        )
        self.core.put(pi, ctx.owner)
        self.core.emit("charge.failed", charge, ctx, account=ctx.account)
        self.core.emit("payment_intent.payment_failed", pi, ctx, account=ctx.account)
        return False
