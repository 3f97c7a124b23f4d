"""Checkout Sessions in payment mode: creation rules, paying, completion, expiry."""

from __future__ import annotations

from souq.sandbox.base import CONTROL, PLATFORM, Ctx, J, new_id, template
from souq.sandbox.errors import StripeError, invalid
from souq.sandbox.payments import Payments
from souq.sandbox.rules import check_amount, check_currency, check_metadata
from souq.sandbox.wire import opt_int, opt_str, req_int, req_str, sub


class Checkout(Payments):
    def create_session(self, params: J, ctx: Ctx) -> J:
        mode = req_str(params, "mode")
        if mode != "payment":
            raise invalid(f"The sandbox supports mode=payment only, not {mode!r}.", param="mode")
        success_url = req_str(params, "success_url")
        cancel_url = opt_str(params, "cancel_url")
        raw_items = params.get("line_items")
        if not isinstance(raw_items, list) or not raw_items:
            raise invalid(
                "line_items is required in payment mode.",
                param="line_items",
                code="parameter_missing",
            )
        if len(raw_items) > 100:
            raise invalid(
                "You may only specify up to 100 line items in payment mode.", param="line_items"
            )
        now = self.now()
        expires_at = opt_int(params, "expires_at")
        if expires_at is None:
            expires_at = now + 86_400
        elif expires_at < now + 1800:
            raise invalid(
                "The `expires_at` timestamp must be at least 30 minutes from Checkout Session "
                "creation.",
                param="expires_at",
            )
        elif expires_at > now + 86_400:
            raise invalid(
                "The `expires_at` timestamp must be less than 24 hours from Checkout Session "
                "creation.",
                param="expires_at",
            )
        items: list[J] = []
        currency: str | None = None
        for i, raw in enumerate(raw_items):
            base = f"line_items[{i}]"
            if not isinstance(raw, dict):
                raise invalid("Invalid line item", param=base)
            if "price" in raw:
                raise invalid(
                    f"No such price: '{raw['price']}'",
                    param=f"{base}[price]",
                    code="resource_missing",
                )
            price_data = sub(raw, "price_data")
            if not price_data:
                raise invalid(
                    f"Missing required param: {base}[price_data].",
                    param=f"{base}[price_data]",
                    code="parameter_missing",
                )
            item_currency = check_currency(
                req_str(price_data, "currency", f"{base}[price_data][currency]"),
                f"{base}[price_data][currency]",
            )
            if currency is not None and item_currency != currency:
                raise invalid(
                    "All line items must use the same currency.",
                    param=f"{base}[price_data][currency]",
                )
            currency = item_currency
            unit = req_int(price_data, "unit_amount", f"{base}[price_data][unit_amount]")
            check_amount(unit, item_currency, f"{base}[price_data][unit_amount]", minimum=False)
            quantity = req_int(raw, "quantity", f"{base}[quantity]")
            if quantity < 1:
                raise invalid("Quantity must be at least 1.", param=f"{base}[quantity]")
            product_data = sub(price_data, "product_data")
            name = opt_str(product_data, "name", f"{base}[price_data][product_data][name]")
            if name is None:
                raise invalid(
                    f"Missing required param: {base}[price_data][product_data][name].",
                    param=f"{base}[price_data][product_data][name]",
                    code="parameter_missing",
                )
            product_id = new_id("prod_", 14)
            price = template("item")["price"]
            price.update(
                id=new_id("price_"),
                created=now,
                currency=item_currency,
                unit_amount=unit,
                unit_amount_decimal=str(unit),
                product=product_id,
                metadata={},
            )
            item = template("item")
            item.update(
                id=new_id("li_"),
                currency=item_currency,
                description=name,
                quantity=quantity,
                amount_subtotal=unit * quantity,
                amount_total=unit * quantity,
                amount_discount=0,
                amount_tax=0,
                price=price,
            )
            items.append(item)
        assert currency is not None
        total = sum(int(i["amount_total"]) for i in items)
        check_amount(total, currency, "line_items", minimum=True)
        pi_data = sub(params, "payment_intent_data")
        pi_spec = self._payment_intent_terms(
            pi_data, total, currency, ctx, prefix="payment_intent_data"
        )
        session_id = "cs_test_" + new_id("", 58)
        session = template("checkout.session")
        session.update(
            id=session_id,
            created=now,
            expires_at=expires_at,
            mode="payment",
            currency=currency,
            amount_subtotal=total,
            amount_total=total,
            status="open",
            payment_status="unpaid",
            payment_intent=None,
            url=f"{self.public_url}/checkout/{session_id}",
            success_url=success_url,
            cancel_url=cancel_url,
            client_reference_id=opt_str(params, "client_reference_id"),
            customer_email=opt_str(params, "customer_email"),
            customer_details=None,
            customer=None,
            metadata=check_metadata(params.get("metadata")),
            total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            payment_method_types=["card"],
            livemode=False,
            _line_items=items,
            _pi_terms=pi_spec,
            _payment_intent=None,
            _owner=ctx.owner,
        )
        if session["client_reference_id"] is not None and len(session["client_reference_id"]) > 200:
            raise invalid(
                "client_reference_id must be at most 200 characters.",
                param="client_reference_id",
            )
        with self.store.transaction():
            return self._put(session, ctx.owner)

    def get_session(self, session_id: str, ctx: Ctx | None) -> J:
        return self._get(session_id, "checkout.session", "checkout.session", ctx)

    def list_sessions(self, params: J, ctx: Ctx) -> list[J]:
        sessions = self.store.query("checkout.session", owner=ctx.owner)
        for key in ("payment_intent", "status", "customer_details"):
            value = params.get(key)
            if isinstance(value, str):
                sessions = [s for s in sessions if s.get(key) == value]
        return sessions

    def session_line_items(self, session_id: str, ctx: Ctx) -> list[J]:
        return list(self.get_session(session_id, ctx)["_line_items"])

    def expire_session(self, session_id: str, ctx: Ctx) -> J:
        with self.store.transaction():
            session = self.get_session(session_id, ctx)
            if session["status"] != "open":
                raise invalid(
                    f'Only Checkout Sessions with a status in ["open"] can be expired. This '
                    f'Checkout Session has a status of "{session["status"]}".',
                    param="session",
                )
            return self._expire(session, ctx)

    def _expire(self, session: J, ctx: Ctx) -> J:
        session.update(status="expired", url=None)
        pi_id = session["_payment_intent"]
        if pi_id is not None:
            pi = self.store.get(pi_id)
            if pi is not None and pi["status"] not in ("succeeded", "canceled", "processing"):
                pi.update(
                    status="canceled", canceled_at=self.now(), cancellation_reason="abandoned"
                )
                self._put(pi, session["_owner"])
                self.emit("payment_intent.canceled", pi, ctx, account=self._acct(pi))
        self._put(session, session["_owner"])
        self.emit("checkout.session.expired", session, ctx, account=self._acct(session))
        return session

    def pay_session(
        self,
        session_id: str,
        *,
        card: str | None = None,
        method: str | None = None,
        outcome: str | None = None,
        authentication: str | None = None,
        email: str | None = None,
    ) -> tuple[J, StripeError | None]:
        """The customer pays on the hosted page (or a test drives it): returns the session and
        the card error, if any. A session stays open after a decline."""
        with self.store.transaction():
            session = self.get_session(session_id, None)
            if session["status"] != "open":
                raise invalid(f"This Checkout Session is {session['status']}.", param="session")
            if session["expires_at"] <= self.now():
                self._expire(session, CONTROL)
                raise invalid("This Checkout Session has expired.", param="session")
            ctx = Ctx(account=None if session["_owner"] == PLATFORM else session["_owner"])
            pi = self.store.get(session["_payment_intent"] or "")
            if authentication is not None and card is None and method is None:
                if pi is None or pi["status"] != "requires_action":
                    raise invalid("No payment is waiting for authentication.", param="session")
                error = self._authenticate(pi, authentication == "approve", ctx)
                if error is None:
                    self._complete_session(session, pi, email)
                return session, error
            if pi is None or pi["status"] in ("requires_action",):
                if pi is not None:
                    pi.update(status="canceled", cancellation_reason="abandoned")
                    self._put(pi, session["_owner"])
                pi = self._new_payment_intent(
                    session["amount_total"], session["currency"], session["_pi_terms"], ctx
                )
                session["_payment_intent"] = pi["id"]
                self._put(session, session["_owner"])
                self.emit("payment_intent.created", pi, ctx, account=ctx.account)
            if method == "delayed":
                if outcome not in ("succeeded", "failed"):
                    raise invalid("outcome must be succeeded or failed", param="outcome")
                self._start_delayed(pi, outcome, ctx, session["id"])
                self._complete_session(session, pi, email)
                return session, None
            if card is None:
                raise invalid("card is required", param="card")
            error = self._attempt(
                pi, card.replace(" ", ""), ctx, authenticated=(authentication == "approve")
            )
            if error is None and pi["status"] == "succeeded":
                self._complete_session(session, pi, email)
            elif error is None and pi["status"] == "requires_action" and authentication == "fail":
                error = self._authenticate(pi, False, ctx)
            return session, error

    def _complete_session(self, session: J, pi: J, email: str | None) -> None:
        paid = pi["status"] == "succeeded"
        session.update(
            status="complete",
            payment_status="paid" if paid else "unpaid",
            payment_intent=pi["id"],
            url=None,
            customer_details={
                "address": None,
                "email": email or session["customer_email"] or "customer@example.com",
                "name": None,
                "phone": None,
                "tax_exempt": "none",
                "tax_ids": [],
            },
        )
        self._put(session, session["_owner"])
        self.emit("checkout.session.completed", session, CONTROL, account=self._acct(session))
