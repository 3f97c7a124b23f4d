"""Money movement: PaymentIntents and Charges, destination charges with their Transfer and
ApplicationFee, separate transfers and reversals, refunds, disputes, balances."""

from __future__ import annotations

from souq.sandbox.accounts import Accounts
from souq.sandbox.base import APPLICATION_ID, CONTROL, PLATFORM, Ctx, J, new_id, template
from souq.sandbox.cards import CARDS, TEST_PAYMENT_METHODS, Card, declined_card, luhn_ok
from souq.sandbox.errors import StripeError, invalid, missing
from souq.sandbox.rules import (
    check_amount,
    check_currency,
    check_metadata,
    format_amount,
    merge_metadata,
    proportional,
    stripe_fee,
)
from souq.sandbox.wire import opt_bool, opt_int, opt_str, req_int, req_str, sub

PENDING_DAYS = 2
DISPUTE_FEE = 1500
DELAYED_SETTLE_SECONDS = 60


class Payments(Accounts):
    def _payment_intent_terms(
        self, data: J, amount: int, currency: str, ctx: Ctx, *, prefix: str
    ) -> J:
        """Validate the Connect terms shared by checkout's payment_intent_data and
        PaymentIntent creation: application fee, destination, transfer group."""

        def p(name: str) -> str:
            return f"{prefix}[{name}]" if prefix else name

        fee = opt_int(data, "application_fee_amount", p("application_fee_amount"))
        transfer_data = sub(data, "transfer_data")
        destination = opt_str(transfer_data, "destination", p("transfer_data") + "[destination]")
        transfer_amount = opt_int(transfer_data, "amount", p("transfer_data") + "[amount]")
        on_behalf_of = opt_str(data, "on_behalf_of", p("on_behalf_of"))
        capture = opt_str(data, "capture_method", p("capture_method")) or "automatic"
        if capture == "manual":
            raise invalid(
                "The sandbox does not simulate manual capture.", param=p("capture_method")
            )
        if fee is not None:
            if fee < 0:
                raise invalid(
                    "application_fee_amount must be non-negative.",
                    param=p("application_fee_amount"),
                )
            if destination is None and ctx.account is None:
                raise invalid(
                    "Can only apply an application_fee_amount when the PaymentIntent is "
                    "attempting a direct payment (using an OAuth key or Stripe-Account header) "
                    "or destination payment (using `transfer_data[destination]`).",
                    param=p("application_fee_amount"),
                )
            if fee > amount:
                raise invalid(
                    "The application fee amount cannot be greater than the amount.",
                    param=p("application_fee_amount"),
                )
        if transfer_data and destination is None:
            raise invalid(
                f"Missing required param: {p('transfer_data')}[destination].",
                param=p("transfer_data") + "[destination]",
                code="parameter_missing",
            )
        if destination is not None:
            if ctx.account is not None:
                raise invalid(
                    "Destination charges cannot be created on behalf of a connected account.",
                    param=p("transfer_data") + "[destination]",
                )
            self._check_destination(destination, p("transfer_data") + "[destination]")
            if transfer_amount is not None and transfer_amount > amount:
                raise invalid(
                    "transfer_data[amount] cannot be greater than the amount.",
                    param=p("transfer_data") + "[amount]",
                )
            if transfer_amount is not None and fee is not None:
                raise invalid(
                    "You cannot set both application_fee_amount and transfer_data[amount].",
                    param=p("application_fee_amount"),
                )
        if on_behalf_of is not None:
            obo = self._usable_account(on_behalf_of, p("on_behalf_of"))
            if obo["capabilities"].get("card_payments") != "active":
                raise invalid(
                    "The on_behalf_of account needs the card_payments capability.",
                    param=p("on_behalf_of"),
                )
        return {
            "application_fee_amount": fee,
            "transfer_data": None
            if destination is None
            else {"destination": destination}
            | ({} if transfer_amount is None else {"amount": transfer_amount}),
            "on_behalf_of": on_behalf_of,
            "transfer_group": opt_str(data, "transfer_group", p("transfer_group")),
            "metadata": check_metadata(data.get("metadata"), p("metadata")),
            "description": opt_str(data, "description", p("description")),
            "receipt_email": opt_str(data, "receipt_email", p("receipt_email")),
        }

    def _new_payment_intent(self, amount: int, currency: str, terms: J, ctx: Ctx) -> J:
        pi = template("payment_intent")
        pi_id = new_id("pi_")
        transfer_group = terms.get("transfer_group")
        pi.update(
            id=pi_id,
            created=self.now(),
            amount=amount,
            currency=currency,
            amount_received=0,
            amount_capturable=0,
            canceled_at=None,
            application_fee_amount=terms.get("application_fee_amount"),
            transfer_data=terms.get("transfer_data"),
            on_behalf_of=terms.get("on_behalf_of"),
            transfer_group=transfer_group,
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
        return self._put(pi, ctx.owner)

    def _card(self, number: str) -> Card:
        card = CARDS.get(number)
        if card is not None:
            return card
        if not luhn_ok(number):
            return declined_card(number, "incorrect_number", None, "Your card number is incorrect.")
        return declined_card(
            number,
            "card_declined",
            "test_mode_live_card",
            "Your card was declined. Your request was in test mode, but used a non test card. "
            "For a list of valid test cards, visit: https://stripe.com/docs/testing.",
        )

    def _attempt(
        self, pi: J, number: str, ctx: Ctx, *, authenticated: bool = False
    ) -> StripeError | None:
        card = self._card(number)
        pm_id = new_id("pm_")
        pi["payment_method"] = pm_id
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
            self._put(pi, ctx.owner)
            self.emit("payment_intent.requires_action", pi, ctx, account=ctx.account)
            return None
        if card.outcome == "declined":
            return self._decline(pi, card, ctx)
        self._succeed(pi, card, ctx)
        return None

    def _authenticate(self, pi: J, approve: bool, ctx: Ctx) -> StripeError | None:
        card = self._card(pi["_card"])
        if approve:
            pi["next_action"] = None
            self._succeed(pi, card, ctx)
            return None
        error: J = {
            "type": "invalid_request_error",
            "code": "payment_intent_authentication_failure",
            "message": "The provided PaymentMethod has failed authentication. You can provide "
            "payment_method_data or a new PaymentMethod to attempt to fulfill this "
            "PaymentIntent again.",
            "payment_method": self._pm_object(pi),
        }
        pi.update(status="requires_payment_method", next_action=None, last_payment_error=error)
        self._put(pi, ctx.owner)
        self.emit("payment_intent.payment_failed", pi, ctx, account=ctx.account)
        return StripeError(
            400,
            error["message"],
            code="payment_intent_authentication_failure",
            extra={"payment_intent": self.render(pi)},
        )

    def _charge_object(self, pi: J, card: Card, status: str) -> J:
        charge = template("charge")
        details = charge["payment_method_details"]
        details["card"].update(
            brand=card.brand,
            last4=card.number[-4:],
            network=card.brand,
            exp_month=12,
            exp_year=2034,
        )
        charge.update(
            id=new_id("ch_"),
            created=self.now(),
            amount=pi["amount"],
            currency=pi["currency"],
            amount_captured=pi["amount"] if status == "succeeded" else 0,
            amount_refunded=0,
            captured=status == "succeeded",
            paid=status == "succeeded",
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
            billing_details={
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
            },
            outcome={
                "network_status": "approved_by_network",
                "reason": None,
                "risk_level": "normal",
                "risk_score": 20,
                "seller_message": "Payment complete.",
                "type": "authorized",
            },
            application=APPLICATION_ID if pi["application_fee_amount"] is not None else None,
            source_transfer=None,
        )
        return charge

    def _pm_object(self, pi: J) -> J:
        card = self._card(str(pi.get("_card") or "4242424242424242"))
        pm = template("payment_method")
        pm.update(id=pi["payment_method"], created=self.now(), type="card", livemode=False)
        if isinstance(pm.get("card"), dict):
            pm["card"].update(brand=card.brand, last4=card.number[-4:])
        return pm

    def _decline(self, pi: J, card: Card, ctx: Ctx) -> StripeError:
        charge = self._charge_object(pi, card, "failed")
        charge.update(
            failure_code=card.code,
            failure_message=card.message,
            outcome={
                "network_status": "declined_by_network",
                "reason": card.decline_code,
                "risk_level": "normal",
                "risk_score": 20,
                "seller_message": "The bank did not return any further details.",
                "type": "issuer_declined",
            },
        )
        self._put(charge, ctx.owner)
        error = {
            "type": "card_error",
            "code": card.code,
            "decline_code": card.decline_code,
            "message": card.message,
            "charge": charge["id"],
            "payment_method": self._pm_object(pi),
            "doc_url": f"https://stripe.com/docs/error-codes/{str(card.code).replace('_', '-')}",
        }
        pi.update(
            status="requires_payment_method",
            latest_charge=charge["id"],
            last_payment_error=error,
            next_action=None,
        )
        self._put(pi, ctx.owner)
        self.emit("charge.failed", charge, ctx, account=ctx.account)
        self.emit("payment_intent.payment_failed", pi, ctx, account=ctx.account)
        return StripeError(
            402,
            str(card.message),
            type_="card_error",
            code=card.code,
            decline_code=card.decline_code,
            extra={"charge": charge["id"], "payment_intent": self.render(pi)},
        )

    def _txn(
        self,
        owner: str,
        *,
        amount: int,
        currency: str,
        type_: str,
        source: str,
        fee: int = 0,
        fee_details: list[J] | None = None,
        available_on: int | None = None,
        description: str | None = None,
        category: str | None = None,
    ) -> J:
        txn = template("balance_transaction")
        txn.update(
            id=new_id("txn_"),
            created=self.now(),
            amount=amount,
            currency=currency,
            fee=fee,
            fee_details=fee_details or [],
            net=amount - fee,
            type=type_,
            source=source,
            available_on=available_on if available_on is not None else self.now(),
            description=description,
            exchange_rate=None,
            reporting_category=category or type_,
            status="pending",
        )
        return self._put(txn, owner)

    def _succeed(self, pi: J, card: Card, ctx: Ctx, *, charge: J | None = None) -> J:
        """Money moves: the Charge, its balance transaction with the simulated Stripe fee, and
        for destination charges the Transfer of the full amount and the ApplicationFee."""
        owner = ctx.owner
        if charge is None:
            charge = self._charge_object(pi, card, "succeeded")
        else:
            charge.update(
                status="succeeded", paid=True, captured=True, amount_captured=charge["amount"]
            )
        amount, currency = int(pi["amount"]), str(pi["currency"])
        available_on = self.now() if card.available_now else self.now() + PENDING_DAYS * 86_400
        charge["_available_on"] = available_on
        charge["_card"] = card.number
        processing = stripe_fee(amount, self.fee_bps, self.fee_fixed)
        fee_amount = pi["application_fee_amount"]
        transfer_data = pi["transfer_data"]
        fee_details: list[J] = [
            {
                "amount": processing,
                "application": None,
                "currency": currency,
                "description": "Stripe processing fees",
                "type": "stripe_fee",
            }
        ]
        if transfer_data is None and ctx.account is not None and fee_amount:
            # Direct charge: the connected account pays both the Stripe fee and the platform's.
            fee_details.append(
                {
                    "amount": fee_amount,
                    "application": APPLICATION_ID,
                    "currency": currency,
                    "description": "Application fee",
                    "type": "application_fee",
                }
            )
        txn = self._txn(
            owner,
            amount=amount,
            currency=currency,
            type_="charge",
            source=charge["id"],
            fee=sum(int(f["amount"]) for f in fee_details),
            fee_details=fee_details,
            available_on=available_on,
            description=pi["description"],
        )
        charge["balance_transaction"] = txn["id"]
        if transfer_data is not None and pi["transfer_group"] is None:
            pi["transfer_group"] = f"group_{pi['id']}"
            charge["transfer_group"] = pi["transfer_group"]
        transfer: J | None = None
        fee_obj: J | None = None
        if transfer_data is not None:
            destination = transfer_data["destination"]
            transfer_amount = transfer_data.get("amount") or amount
            transfer = self._transfer(
                destination,
                transfer_amount,
                currency,
                ctx,
                source_charge=charge,
                transfer_group=pi["transfer_group"],
                available_on=available_on,
                destination_fee=fee_amount or 0,
            )
            charge["transfer"] = transfer["id"]
            if fee_amount:
                fee_obj = self._application_fee(
                    fee_amount,
                    currency,
                    destination,
                    charge,
                    transfer["destination_payment"],
                    available_on,
                )
        elif ctx.account is not None and fee_amount:
            fee_obj = self._application_fee(
                fee_amount, currency, ctx.account, charge, charge["id"], available_on
            )
        if fee_obj is not None:
            charge["application_fee"] = fee_obj["id"]
        self._put(charge, owner)
        pi.update(
            status="succeeded",
            amount_received=amount,
            latest_charge=charge["id"],
            last_payment_error=None,
            next_action=None,
        )
        self._put(pi, owner)
        account = ctx.account
        charge_view = self.render(charge)
        pi_view = self.render(pi)
        if self.async_capture:
            # BEHAVIOUR.md "Asynchronous capture": the first payloads lack the money fields,
            # which arrive with charge.updated.
            early = dict(charge_view, balance_transaction=None, application_fee=None)
            early.pop("transfer", None)  # not nullable in the 2023-08-16 schema: absent instead
            self.emit("charge.succeeded", charge, ctx, account=account, snapshot=early)
            self.emit("payment_intent.succeeded", pi, ctx, account=account)
        else:
            self.emit("charge.succeeded", charge, ctx, account=account)
            self.emit("payment_intent.succeeded", pi, ctx, account=account, snapshot=pi_view)
        if transfer is not None:
            self.emit("transfer.created", transfer, ctx)
        if fee_obj is not None:
            self.emit("application_fee.created", fee_obj, ctx, account=None)
        if self.async_capture:
            self.emit(
                "charge.updated",
                charge,
                ctx,
                account=account,
                previous={"balance_transaction": None, "transfer": None, "application_fee": None},
            )
        if card.dispute is not None:
            self._open_dispute(charge, card.dispute, ctx)
        return charge

    def _transfer(
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
        transfer = template("transfer")
        transfer_id = new_id("tr_")
        payment = template("charge")
        payment_id = new_id("py_")
        platform_txn = self._txn(
            ctx.owner,
            amount=-amount,
            currency=currency,
            type_="transfer",
            source=transfer_id,
            available_on=available_on,
        )
        fee_details = (
            []
            if not destination_fee
            else [
                {
                    "amount": destination_fee,
                    "application": APPLICATION_ID,
                    "currency": currency,
                    "description": "Application fee",
                    "type": "application_fee",
                }
            ]
        )
        # How Stripe splits this on the connected account is UNVERIFIED: the sandbox books the
        # payment with the platform's fee taken from it.
        dest_txn = self._txn(
            destination,
            amount=amount,
            currency=currency,
            type_="payment",
            source=payment_id,
            fee=destination_fee,
            fee_details=fee_details,
            available_on=available_on,
        )
        payment.update(
            id=payment_id,
            created=self.now(),
            amount=amount,
            amount_captured=amount,
            amount_refunded=0,
            currency=currency,
            status="succeeded",
            paid=True,
            captured=True,
            balance_transaction=dest_txn["id"],
            payment_intent=None,
            payment_method=None,
            payment_method_details=None,
            source_transfer=transfer_id,
            application=None,
            application_fee=None,
            application_fee_amount=None,
            description=None,
            metadata={},
            transfer=None,
            transfer_data=None,
            transfer_group=None,
            refunded=False,
            disputed=False,
            receipt_url=None,
            outcome=None,
            livemode=False,
            on_behalf_of=None,
            failure_code=None,
            failure_message=None,
            billing_details=template("charge")["billing_details"],
        )
        self._put(payment, destination)
        transfer.update(
            id=transfer_id,
            created=self.now(),
            amount=amount,
            amount_reversed=0,
            currency=currency,
            destination=destination,
            destination_payment=payment_id,
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
        return self._put(transfer, ctx.owner)

    def _application_fee(
        self,
        amount: int,
        currency: str,
        account: str,
        charge: J,
        fee_charge: str,
        available_on: int,
    ) -> J:
        fee = template("application_fee")
        fee_id = new_id("fee_")
        txn = self._txn(
            PLATFORM,
            amount=amount,
            currency=currency,
            type_="application_fee",
            source=fee_id,
            available_on=available_on,
        )
        fee.update(
            id=fee_id,
            created=self.now(),
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
        return self._put(fee, PLATFORM)

    def _start_delayed(self, pi: J, outcome: str, ctx: Ctx, session_id: str | None) -> None:
        card = CARDS["4242424242424242"]
        charge = self._charge_object(pi, card, "pending")
        charge["payment_method_details"] = {
            "type": "us_bank_account",
            "us_bank_account": {
                "bank_name": "STRIPE TEST BANK",
                "last4": "6789",
                "routing_number": "110000000",
                "account_holder_type": "individual",
                "account_type": "checking",
                "fingerprint": "sandbox",
            },
        }
        charge.update(paid=False, captured=True, amount_captured=pi["amount"])
        self._put(charge, ctx.owner)
        pi.update(
            status="processing",
            latest_charge=charge["id"],
            payment_method=new_id("pm_"),
            payment_method_types=["us_bank_account"],
        )
        self._put(pi, ctx.owner)
        self.emit("charge.pending", charge, ctx, account=ctx.account)
        self.emit("payment_intent.processing", pi, ctx, account=ctx.account)
        self.store.add_job(
            self.now_f() + DELAYED_SETTLE_SECONDS,
            "settle_delayed",
            {
                "payment_intent": pi["id"],
                "charge": charge["id"],
                "outcome": outcome,
                "session": session_id,
                "account": ctx.account,
            },
        )

    def _settle_delayed(self, job: J) -> None:
        ctx = Ctx(account=job["account"])
        pi = self.store.get(job["payment_intent"])
        charge = self.store.get(job["charge"])
        if pi is None or charge is None or pi["status"] != "processing":
            return
        session = self.store.get(job["session"]) if job.get("session") else None
        if job["outcome"] == "succeeded":
            self._succeed(pi, CARDS["4242424242424242"], ctx, charge=charge)
            if session is not None:
                session["payment_status"] = "paid"
                self._put(session, session["_owner"])
                self.emit(
                    "checkout.session.async_payment_succeeded",
                    session,
                    CONTROL,
                    account=self._acct(session),
                )
        else:
            charge.update(
                status="failed",
                failure_code="insufficient_funds",
                failure_message="The customer's account has insufficient funds.",
                captured=False,
                amount_captured=0,
            )
            self._put(charge, ctx.owner)
            pi.update(
                status="requires_payment_method",
                last_payment_error={
                    "type": "invalid_request_error",
                    "code": "payment_method_provider_decline",
                    "message": "The customer's bank declined the payment.",
                },
            )
            self._put(pi, ctx.owner)
            self.emit("charge.failed", charge, ctx, account=ctx.account)
            self.emit("payment_intent.payment_failed", pi, ctx, account=ctx.account)
            if session is not None:
                self.emit(
                    "checkout.session.async_payment_failed",
                    session,
                    CONTROL,
                    account=self._acct(session),
                )

    def create_payment_intent(self, params: J, ctx: Ctx) -> J:
        amount = req_int(params, "amount")
        currency = check_currency(req_str(params, "currency"))
        check_amount(amount, currency, "amount", minimum=True)
        terms = self._payment_intent_terms(params, amount, currency, ctx, prefix="")
        terms["metadata"] = check_metadata(params.get("metadata"))
        confirm = opt_bool(params, "confirm") or False
        pm = opt_str(params, "payment_method")
        with self.store.transaction():
            pi = self._new_payment_intent(amount, currency, terms, ctx)
            if pm is not None:
                pi["payment_method"] = pm
                pi["status"] = "requires_confirmation"
                self._put(pi, ctx.owner)
            self.emit("payment_intent.created", pi, ctx, account=ctx.account)
        if confirm:
            return self.confirm_payment_intent(pi["id"], {}, ctx)
        return pi

    def get_payment_intent(self, pi_id: str, ctx: Ctx | None) -> J:
        return self._get(pi_id, "payment_intent", "payment_intent", ctx)

    def confirm_payment_intent(self, pi_id: str, params: J, ctx: Ctx) -> J:
        """Confirm with a test PaymentMethod (pm_card_visa, pm_card_chargeDeclined, …)."""
        with self.store.transaction():
            pi = self.get_payment_intent(pi_id, ctx)
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
            error = self._attempt(pi, number, ctx)
            pi["payment_method"] = pm
            self._put(pi, ctx.owner)
        if error is not None:
            raise error
        return pi

    def cancel_payment_intent(self, pi_id: str, params: J, ctx: Ctx) -> J:
        with self.store.transaction():
            pi = self.get_payment_intent(pi_id, ctx)
            if pi["status"] in ("succeeded", "canceled", "processing"):
                raise invalid(
                    f"You cannot cancel this PaymentIntent because it has a status of "
                    f"{pi['status']}.",
                    code="payment_intent_unexpected_state",
                )
            pi.update(
                status="canceled",
                canceled_at=self.now(),
                cancellation_reason=opt_str(params, "cancellation_reason")
                or "requested_by_customer",
            )
            self._put(pi, ctx.owner)
            self.emit("payment_intent.canceled", pi, ctx, account=ctx.account)
            return pi

    def get_charge(self, charge_id: str, ctx: Ctx | None) -> J:
        return self._get(charge_id, "charge", "charge", ctx)

    def create_transfer(self, params: J, ctx: Ctx) -> J:
        amount = req_int(params, "amount")
        currency = check_currency(req_str(params, "currency"))
        destination = req_str(params, "destination")
        check_amount(amount, currency, "amount", minimum=False)
        source_id = opt_str(params, "source_transaction")
        group = opt_str(params, "transfer_group")
        with self.store.transaction():
            self._check_destination(destination, "destination")
            if source_id is not None:
                charge = self.store.get(source_id)
                if (
                    charge is None
                    or charge.get("object") != "charge"
                    or self.store.owner_of(source_id) != ctx.owner
                ):
                    raise missing("charge", source_id, param="source_transaction")
                if charge["status"] != "succeeded":
                    raise invalid(
                        "The source_transaction charge has not succeeded.",
                        param="source_transaction",
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
                    for t in self.store.query(
                        "transfer",
                        where="json_extract(data, '$.source_transaction') = ?",
                        args=(source_id,),
                    )
                )
                if already + amount > int(charge["amount"]) - int(charge["amount_refunded"]):
                    raise invalid(
                        "Transfers using this transaction as a source must not exceed the "
                        f"source amount of {format_amount(int(charge['amount']), currency)}.",
                        param="amount",
                    )
                if group is None:
                    group = charge["transfer_group"]
                if group is None and charge["payment_intent"]:
                    group = f"group_{charge['payment_intent']}"
                if charge["transfer_group"] is None and group is not None:
                    charge["transfer_group"] = group
                    self._put(charge, ctx.owner)
                    pi = self.store.get(charge["payment_intent"] or "")
                    if pi is not None and pi["transfer_group"] is None:
                        pi["transfer_group"] = group
                        self._put(pi, ctx.owner)
                available_on = int(charge.get("_available_on") or self.now())
            else:
                if self.available(ctx.owner, currency) < amount:
                    raise invalid(
                        "You have insufficient available funds in your Stripe account. Try "
                        "adding funds directly to your available balance by creating Charges "
                        "using the 4000000000000077 test card.",
                        code="balance_insufficient",
                        param="amount",
                    )
                available_on = self.now()
            transfer = self._transfer(
                destination,
                amount,
                currency,
                ctx,
                source_charge=self.store.get(source_id) if source_id else None,
                transfer_group=group,
                available_on=available_on,
                description=opt_str(params, "description"),
                metadata=check_metadata(params.get("metadata")),
            )
            self.emit("transfer.created", transfer, ctx, account=ctx.account)
            return transfer

    def get_transfer(self, transfer_id: str, ctx: Ctx | None) -> J:
        return self._get(transfer_id, "transfer", "transfer", ctx)

    def update_transfer(self, transfer_id: str, params: J, ctx: Ctx) -> J:
        with self.store.transaction():
            transfer = self.get_transfer(transfer_id, ctx)
            changes: J = {}
            if "description" in params:
                changes["description"] = opt_str(params, "description")
            if "metadata" in params:
                changes["metadata"] = merge_metadata(transfer["metadata"], params["metadata"])
            return self._update_with_event(transfer, changes, "transfer.updated", ctx)

    def reverse_transfer(
        self,
        transfer_id: str,
        params: J,
        ctx: Ctx,
        *,
        source_refund: str | None = None,
        check_balance: bool = True,
    ) -> J:
        with self.store.transaction():
            transfer = self.get_transfer(transfer_id, ctx)
            remaining = int(transfer["amount"]) - int(transfer["amount_reversed"])
            amount = opt_int(params, "amount")
            if amount is None:
                amount = remaining
            if amount <= 0 or amount > remaining:
                raise invalid(
                    f"You cannot reverse {format_amount(amount, transfer['currency'])} from "
                    f"this transfer: only {format_amount(remaining, transfer['currency'])} "
                    "remains.",
                    param="amount",
                )
            destination = transfer["destination"]
            currency = transfer["currency"]
            if check_balance and self.available(destination, currency) < amount:
                raise invalid(
                    "Insufficient funds in the connected account's available balance to "
                    "reverse this transfer.",
                    code="balance_insufficient",
                    param="amount",
                )
            reversal = template("transfer_reversal")
            reversal_id = new_id("trr_")
            txn = self._txn(
                ctx.owner,
                amount=amount,
                currency=currency,
                type_="transfer_refund",
                source=reversal_id,
            )
            self._txn(
                destination,
                amount=-amount,
                currency=currency,
                type_="payment_refund",
                source=reversal_id,
            )
            reversal.update(
                id=reversal_id,
                created=self.now(),
                amount=amount,
                currency=currency,
                transfer=transfer_id,
                balance_transaction=txn["id"],
                destination_payment_refund=None,
                source_refund=source_refund,
                metadata=check_metadata(params.get("metadata")),
            )
            self._put(reversal, ctx.owner)
            transfer["amount_reversed"] = int(transfer["amount_reversed"]) + amount
            transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
            self._put(transfer, ctx.owner)
            self.emit("transfer.reversed", transfer, ctx, account=ctx.account)
            return reversal

    def list_reversals(self, transfer_id: str, ctx: Ctx) -> list[J]:
        self.get_transfer(transfer_id, ctx)
        return self.store.query(
            "transfer_reversal", where="json_extract(data, '$.transfer') = ?", args=(transfer_id,)
        )

    def get_application_fee(self, fee_id: str) -> J:
        return self._get(fee_id, "application_fee", "application fee", None)

    def refund_application_fee(self, fee_id: str, params: J, ctx: Ctx) -> J:
        with self.store.transaction():
            fee = self.get_application_fee(fee_id)
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
            return self._fee_refund(fee, amount, ctx, check_metadata(params.get("metadata")))

    def _fee_refund(self, fee: J, amount: int, ctx: Ctx, metadata: dict[str, str]) -> J:
        refund = template("fee_refund")
        refund_id = new_id("fr_")
        txn = self._txn(
            PLATFORM,
            amount=-amount,
            currency=fee["currency"],
            type_="application_fee_refund",
            source=refund_id,
        )
        self._txn(
            fee["account"],
            amount=amount,
            currency=fee["currency"],
            type_="application_fee_refund",
            source=refund_id,
        )
        refund.update(
            id=refund_id,
            created=self.now(),
            amount=amount,
            currency=fee["currency"],
            fee=fee["id"],
            balance_transaction=txn["id"],
            metadata=metadata,
        )
        self._put(refund, PLATFORM)
        fee["amount_refunded"] = int(fee["amount_refunded"]) + amount
        fee["refunded"] = fee["amount_refunded"] == fee["amount"]
        self._put(fee, PLATFORM)
        self.emit("application_fee.refunded", fee, ctx)
        return refund

    def list_fee_refunds(self, fee_id: str) -> list[J]:
        self.get_application_fee(fee_id)
        return self.store.query(
            "fee_refund", where="json_extract(data, '$.fee') = ?", args=(fee_id,)
        )

    def create_refund(self, params: J, ctx: Ctx) -> J:
        charge_id = opt_str(params, "charge")
        pi_id = opt_str(params, "payment_intent")
        reason = opt_str(params, "reason")
        if reason is not None and reason not in (
            "duplicate",
            "fraudulent",
            "requested_by_customer",
        ):
            raise invalid(f"Invalid reason: {reason}", param="reason")
        reverse = opt_bool(params, "reverse_transfer") or False
        refund_fee = opt_bool(params, "refund_application_fee") or False
        with self.store.transaction():
            if charge_id is None and pi_id is None:
                raise invalid(
                    "One of the following params should be provided for this "
                    "request: payment_intent or charge.",
                    param="charge",
                    code="parameter_missing",
                )
            if charge_id is not None and pi_id is not None:
                raise invalid(
                    "You cannot pass both charge and payment_intent.", param="payment_intent"
                )
            if pi_id is not None:
                pi = self.get_payment_intent(pi_id, ctx)
                if pi["status"] != "succeeded" or pi["latest_charge"] is None:
                    raise invalid(
                        f"This PaymentIntent ({pi_id}) does not have a successful charge to "
                        "refund.",
                        param="payment_intent",
                    )
                charge_id = str(pi["latest_charge"])
            assert charge_id is not None
            charge = self._get(charge_id, "charge", "charge", ctx, param="charge")
            if charge["status"] != "succeeded":
                raise invalid(
                    f"Charge {charge_id} has not succeeded and cannot be refunded.", param="charge"
                )
            total = int(charge["amount"])
            remaining = total - int(charge["amount_refunded"])
            currency = charge["currency"]
            if remaining <= 0:
                raise invalid(
                    f"Charge {charge_id} has already been refunded.",
                    code="charge_already_refunded",
                    param="charge",
                )
            amount = opt_int(params, "amount")
            if amount is None:
                amount = remaining
            if amount <= 0:
                raise invalid("Refund amount must be positive.", param="amount")
            if amount > remaining:
                raise invalid(
                    f"Refund amount ({format_amount(amount, currency)}) is greater than "
                    f"unrefunded amount on charge ({format_amount(remaining, currency)})",
                    param="amount",
                    code="amount_too_large",
                )
            if refund_fee and not reverse and charge["transfer"] is not None:
                # Inferred from BEHAVIOUR.md: a fee refund only alongside a transfer reversal.
                raise invalid(
                    "refund_application_fee requires reverse_transfer for destination charges.",
                    param="refund_application_fee",
                )
            if reverse and charge["transfer"] is None:
                raise invalid("This charge has no transfer to reverse.", param="reverse_transfer")
            card = self._card(str(charge.get("_card") or "4242424242424242"))
            refund = template("refund")
            refund_id = new_id("re_")
            status = {"pending": "pending", "fails": "succeeded"}.get(card.refund, "succeeded")
            txn = self._txn(
                ctx.owner,
                amount=-amount,
                currency=currency,
                type_="refund",
                source=refund_id,
                description="REFUND FOR CHARGE",
            )
            refund.update(
                id=refund_id,
                created=self.now(),
                amount=amount,
                currency=currency,
                charge=charge_id,
                payment_intent=charge["payment_intent"],
                reason=reason,
                status=status,
                metadata=check_metadata(params.get("metadata")),
                balance_transaction=txn["id"],
                transfer_reversal=None,
                source_transfer_reversal=None,
            )
            now_full = int(charge["amount_refunded"]) + amount == total
            if reverse:
                transfer = self.store.get(charge["transfer"])
                assert transfer is not None
                left = int(transfer["amount"]) - int(transfer["amount_reversed"])
                share = (
                    left
                    if now_full
                    else min(left, proportional(int(transfer["amount"]), amount, total))
                )
                if share > 0:
                    reversal = self.reverse_transfer(
                        transfer["id"],
                        {"amount": share},
                        ctx,
                        source_refund=refund_id,
                        check_balance=False,
                    )
                    refund["transfer_reversal"] = reversal["id"]
            if refund_fee and charge["application_fee"] is not None:
                fee = self.store.get(charge["application_fee"])
                assert fee is not None
                left = int(fee["amount"]) - int(fee["amount_refunded"])
                share = (
                    left if now_full else min(left, proportional(int(fee["amount"]), amount, total))
                )
                if share > 0:
                    self._fee_refund(fee, share, ctx, {})
            self._put(refund, ctx.owner)
            charge["amount_refunded"] = int(charge["amount_refunded"]) + amount
            charge["refunded"] = charge["amount_refunded"] == total
            self._put(charge, ctx.owner)
            self.emit("refund.created", refund, ctx, account=ctx.account)
            self.emit("charge.refunded", charge, ctx, account=ctx.account)
            if card.refund == "pending":
                self.store.add_job(
                    self.now_f() + 60,
                    "refund_status",
                    {"refund": refund_id, "status": "succeeded", "account": ctx.account},
                )
            elif card.refund == "fails":
                self.store.add_job(
                    self.now_f() + 60,
                    "refund_status",
                    {"refund": refund_id, "status": "failed", "account": ctx.account},
                )
            return refund

    def _refund_status(self, job: J) -> None:
        ctx = Ctx(account=job["account"])
        refund = self.store.get(job["refund"])
        if refund is None:
            return
        before = self.render(refund)
        refund["status"] = job["status"]
        if job["status"] == "failed":
            refund["failure_reason"] = "expired_or_canceled_card"
            txn = self._txn(
                ctx.owner,
                amount=int(refund["amount"]),
                currency=refund["currency"],
                type_="refund_failure",
                source=refund["id"],
            )
            refund["failure_balance_transaction"] = txn["id"]
            charge = self.store.get(refund["charge"])
            if charge is not None:
                charge["amount_refunded"] = int(charge["amount_refunded"]) - int(refund["amount"])
                charge["refunded"] = False
                self._put(charge, ctx.owner)
        self._put(refund, ctx.owner)
        prev = self.diff(before, self.render(refund))
        self.emit("refund.updated", refund, ctx, account=ctx.account, previous=prev)
        if job["status"] == "failed":
            self.emit("refund.failed", refund, ctx, account=ctx.account)

    def get_refund(self, refund_id: str, ctx: Ctx) -> J:
        return self._get(refund_id, "refund", "refund", ctx)

    def _open_dispute(self, charge: J, reason: str, ctx: Ctx) -> None:
        dispute = template("dispute")
        dispute_id = new_id("du_")
        amount, currency = int(charge["amount"]), charge["currency"]
        txn = self._txn(
            ctx.owner,
            amount=-amount,
            currency=currency,
            type_="adjustment",
            source=dispute_id,
            fee=DISPUTE_FEE,
            fee_details=[
                {
                    "amount": DISPUTE_FEE,
                    "application": None,
                    "currency": currency,
                    "description": "Dispute fee",
                    "type": "stripe_fee",
                }
            ],
            description=f"Chargeback withdrawal for {charge['id']}",
            category="dispute",
        )
        dispute.update(
            id=dispute_id,
            created=self.now(),
            amount=amount,
            currency=currency,
            charge=charge["id"],
            payment_intent=charge["payment_intent"],
            reason=reason,
            status="needs_response",
            balance_transactions=[self.render(txn)],
            is_charge_refundable=False,
            metadata={},
            livemode=False,
            evidence_details={
                "due_by": self.now() + 7 * 86_400,
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
            },
        )
        self._put(dispute, ctx.owner)
        charge["disputed"] = True
        self._put(charge, ctx.owner)
        self.emit("charge.dispute.created", dispute, ctx, account=ctx.account)
        self.emit("charge.dispute.funds_withdrawn", dispute, ctx, account=ctx.account)

    def get_dispute(self, dispute_id: str, ctx: Ctx) -> J:
        return self._get(dispute_id, "dispute", "dispute", ctx)

    def update_dispute(self, dispute_id: str, params: J, ctx: Ctx) -> J:
        with self.store.transaction():
            dispute = self.get_dispute(dispute_id, ctx)
            if dispute["status"] in ("won", "lost", "warning_closed"):
                raise invalid("This dispute is already closed.", param="dispute")
            evidence = sub(params, "evidence")
            changes: J = {}
            if evidence:
                merged = dict(dispute["evidence"])
                merged.update({k: v for k, v in evidence.items() if isinstance(v, str)})
                changes["evidence"] = merged
                details = dict(dispute["evidence_details"], has_evidence=True)
                changes["evidence_details"] = details
            if "metadata" in params:
                changes["metadata"] = merge_metadata(dispute["metadata"], params["metadata"])
            submit = opt_bool(params, "submit")
            text = (changes.get("evidence") or dispute["evidence"]).get("uncategorized_text")
            if submit is None or submit:
                if text == "winning_evidence":
                    changes["status"] = "won"
                elif text == "losing_evidence":
                    changes["status"] = "lost"
                elif evidence:
                    changes["status"] = "under_review"
            self._update_with_event(
                dispute, changes, "charge.dispute.updated", ctx, account=ctx.account
            )
            if dispute["status"] in ("won", "lost"):
                self._close_dispute(dispute, ctx)
            return dispute

    def _close_dispute(self, dispute: J, ctx: Ctx) -> None:
        if dispute["status"] == "won":
            txn = self._txn(
                ctx.owner,
                amount=int(dispute["amount"]),
                currency=dispute["currency"],
                type_="adjustment",
                source=dispute["id"],
                category="dispute_reversal",
                description=f"Chargeback reversal for {dispute['charge']}",
            )
            dispute["balance_transactions"] = [*dispute["balance_transactions"], self.render(txn)]
            self._put(dispute, ctx.owner)
            self.emit("charge.dispute.closed", dispute, ctx, account=ctx.account)
            self.emit("charge.dispute.funds_reinstated", dispute, ctx, account=ctx.account)
        else:
            self.emit("charge.dispute.closed", dispute, ctx, account=ctx.account)

    def close_dispute(self, dispute_id: str, ctx: Ctx) -> J:
        with self.store.transaction():
            dispute = self.get_dispute(dispute_id, ctx)
            if dispute["status"] in ("won", "lost", "warning_closed"):
                raise invalid("This dispute is already closed.", param="dispute")
            dispute["status"] = "lost"
            dispute["is_charge_refundable"] = False
            self._put(dispute, ctx.owner)
            self._close_dispute(dispute, ctx)
            return dispute

    def balance_parts(self, owner: str) -> tuple[dict[str, int], dict[str, int]]:
        """Sums of net amounts per currency: (available now, still pending)."""
        available: dict[str, int] = {}
        pending: dict[str, int] = {}
        for currency, is_available, total in self.store.execute(
            "SELECT json_extract(data, '$.currency'), "
            "json_extract(data, '$.available_on') <= ?, SUM(json_extract(data, '$.net')) "
            "FROM objects WHERE type = 'balance_transaction' AND owner = ? GROUP BY 1, 2",
            (self.now(), owner),
        ).fetchall():
            bucket = available if is_available else pending
            bucket[str(currency)] = int(total)
        return available, pending

    def available(self, owner: str, currency: str) -> int:
        return self.balance_parts(owner)[0].get(currency, 0)

    def balance(self, ctx: Ctx) -> J:
        available, pending = self.balance_parts(ctx.owner)
        currencies = sorted(set(available) | set(pending)) or ["usd"]

        def part(values: dict[str, int]) -> list[J]:
            return [
                {
                    "amount": values.get(c, 0),
                    "currency": c,
                    "source_types": {"card": values.get(c, 0)},
                }
                for c in currencies
            ]

        return {
            "object": "balance",
            "livemode": False,
            "available": part(available),
            "pending": part(pending),
            "connect_reserved": [{"amount": 0, "currency": c} for c in currencies],
        }

    def get_balance_transaction(self, txn_id: str, ctx: Ctx) -> J:
        return self._get(txn_id, "balance_transaction", "balance transaction", ctx)
