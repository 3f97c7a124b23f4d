"""Checkout Sessions in payment mode: creation rules, paying, completion, expiry."""

from __future__ import annotations

from souq.sandbox.core import Core
from souq.sandbox.errors import StripeError, invalid
from souq.sandbox.objects import CONTROL, DAY, Ctx, J, account_ctx, new_id, template
from souq.sandbox.payment_intents import PaymentIntents
from souq.sandbox.rules import check_amount, check_currency, check_metadata, opt_url, req_url
from souq.sandbox.wire import opt_int, opt_str, paginate, req_int, req_str, sub

MIN_LIFETIME = 1800
MAX_LIFETIME = DAY
MAX_LINE_ITEMS = 100


def _expires_at(params: J, now: int) -> int:
    expires_at = opt_int(params, "expires_at")
    if expires_at is None:
        return now + MAX_LIFETIME
    if expires_at < now + MIN_LIFETIME:
        raise invalid(
            "The `expires_at` timestamp must be at least 30 minutes from Checkout Session "
            "creation.",
            param="expires_at",
        )
    if expires_at > now + MAX_LIFETIME:
        raise invalid(
            "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
            param="expires_at",
        )
    return expires_at


def _line_item(raw: object, base: str, now: int) -> J:
    """One `line_items[i]` with inline `price_data` (the sandbox has no Price objects)."""
    if not isinstance(raw, dict):
        raise invalid("Invalid line item", param=base)
    if "price" in raw:
        raise invalid(
            f"No such price: '{raw['price']}'", param=f"{base}[price]", code="resource_missing"
        )
    price_data = sub(raw, "price_data")
    pd = f"{base}[price_data]"
    if not price_data:
        raise invalid(f"Missing required param: {pd}.", param=pd, code="parameter_missing")
    currency = check_currency(req_str(price_data, "currency", f"{pd}[currency]"), f"{pd}[currency]")
    unit = req_int(price_data, "unit_amount", f"{pd}[unit_amount]")
    check_amount(unit, currency, f"{pd}[unit_amount]", minimum=False)
    quantity = req_int(raw, "quantity", f"{base}[quantity]")
    if quantity < 1:
        raise invalid("Quantity must be at least 1.", param=f"{base}[quantity]")
    name_param = f"{pd}[product_data][name]"
    name = opt_str(sub(price_data, "product_data"), "name", name_param)
    if name is None:
        raise invalid(
            f"Missing required param: {name_param}.", param=name_param, code="parameter_missing"
        )
    price = template("item")["price"]
    price.update(
        id=new_id("price_"),
        created=now,
        currency=currency,
        unit_amount=unit,
        unit_amount_decimal=str(unit),
        product=new_id("prod_", 14),
        metadata={},
    )
    item = template("item")
    item.update(
        id=new_id("li_"),
        currency=currency,
        description=name,
        quantity=quantity,
        amount_subtotal=unit * quantity,
        amount_total=unit * quantity,
        amount_discount=0,
        amount_tax=0,
        price=price,
    )
    return item


def _line_items(params: J, now: int) -> tuple[list[J], str]:
    raw_items = params.get("line_items")
    if not isinstance(raw_items, list) or not raw_items:
        raise invalid(
            "line_items is required in payment mode.", param="line_items", code="parameter_missing"
        )
    if len(raw_items) > MAX_LINE_ITEMS:
        raise invalid(
            "You may only specify up to 100 line items in payment mode.", param="line_items"
        )
    items = [_line_item(raw, f"line_items[{i}]", now) for i, raw in enumerate(raw_items)]
    currency = items[0]["currency"]
    for i, item in enumerate(items):
        if item["currency"] != currency:
            raise invalid(
                "All line items must use the same currency.",
                param=f"line_items[{i}][price_data][currency]",
            )
    return items, currency


class CheckoutSessions:
    def __init__(self, core: Core, intents: PaymentIntents) -> None:
        self.core = core
        self.intents = intents

    def create(self, ctx: Ctx, params: J) -> J:
        mode = req_str(params, "mode")
        if mode != "payment":
            raise invalid(f"The sandbox supports mode=payment only, not {mode!r}.", param="mode")
        success_url = req_url(params, "success_url")
        cancel_url = opt_url(params, "cancel_url")
        now = self.core.now()
        expires_at = _expires_at(params, now)
        items, currency = _line_items(params, now)
        total = sum(int(i["amount_total"]) for i in items)
        check_amount(total, currency, "line_items", minimum=True)
        terms = self.intents.terms(
            sub(params, "payment_intent_data"), total, ctx, prefix="payment_intent_data"
        )
        reference = opt_str(params, "client_reference_id")
        if reference is not None and len(reference) > 200:
            raise invalid(
                "client_reference_id must be at most 200 characters.", param="client_reference_id"
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
            url=f"{self.core.public_url}/checkout/{session_id}",
            success_url=success_url,
            cancel_url=cancel_url,
            client_reference_id=reference,
            customer_email=opt_str(params, "customer_email"),
            customer_details=None,
            customer=None,
            metadata=check_metadata(params.get("metadata")),
            total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            payment_method_types=["card"],
            livemode=False,
            _line_items=items,
            _pi_terms=terms,
            _payment_intent=None,
            _owner=ctx.owner,
        )
        with self.core.store.transaction():
            return self.core.put(session, ctx.owner)

    def retrieve(self, ctx: Ctx, params: J, session_id: str) -> J:
        session = self.get(session_id, ctx)
        view = self.core.render(session)
        if "line_items" in (params.get("expand") or []):
            view["line_items"] = paginate(
                session["_line_items"], {}, f"/v1/checkout/sessions/{session_id}/line_items"
            )
        return view

    def get(self, session_id: str, ctx: Ctx | None) -> J:
        return self.core.get(session_id, "checkout.session", "checkout.session", ctx)

    def all(self, ctx: Ctx, params: J) -> list[J]:
        sessions = self.core.store.query("checkout.session", owner=ctx.owner)
        for key in ("payment_intent", "status", "customer_details"):
            value = params.get(key)
            if isinstance(value, str):
                sessions = [s for s in sessions if s.get(key) == value]
        return sessions

    def line_items(self, ctx: Ctx, params: J, session_id: str) -> list[J]:
        return list(self.get(session_id, ctx)["_line_items"])

    def expire(self, ctx: Ctx, params: J, session_id: str) -> J:
        with self.core.store.transaction():
            session = self.get(session_id, ctx)
            if session["status"] != "open":
                raise invalid(
                    f'Only Checkout Sessions with a status in ["open"] can be expired. This '
                    f'Checkout Session has a status of "{session["status"]}".',
                    param="session",
                )
            return self.close_expired(session, ctx)

    def close_expired(self, session: J, ctx: Ctx = CONTROL) -> J:
        """Expire a session and cancel its unfinished PaymentIntent."""
        session.update(status="expired", url=None)
        pi = self.core.store.get(session["_payment_intent"] or "")
        if pi is not None:
            self.intents.abandon(pi, ctx)
        self.core.put(session, session["_owner"])
        self.core.emit(
            "checkout.session.expired", session, ctx, account=self.core.account_of(session)
        )
        return session

    def expire_due(self) -> int:
        """Expire every open session whose expires_at has passed; answers how many."""
        due = self.core.store.query(
            "checkout.session",
            where="json_extract(data, '$.status') = 'open' AND "
            "json_extract(data, '$.expires_at') <= ?",
            args=(self.core.now(),),
        )
        for session in due:
            self.close_expired(session)
        return len(due)

    def pay(
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
        with self.core.store.transaction():
            session = self._payable(session_id)
            ctx = account_ctx(session["_owner"])
            pi = self.core.store.get(session["_payment_intent"] or "")
            if authentication is not None and card is None and method is None:
                return session, self._authenticate(session, pi, authentication, email, ctx)
            pi = self._fresh_intent(session, pi, ctx)
            if method == "delayed":
                if outcome not in ("succeeded", "failed"):
                    raise invalid("outcome must be succeeded or failed", param="outcome")
                self.intents.start_bank_debit(
                    pi, ctx, {"outcome": outcome, "session": session["id"]}
                )
                self._complete(session, pi, email)
                return session, None
            if card is None:
                raise invalid("card is required", param="card")
            approved = authentication == "approve"
            error = self.intents.attempt(pi, card.replace(" ", ""), ctx, authenticated=approved)
            if error is None and pi["status"] == "succeeded":
                self._complete(session, pi, email)
            elif error is None and pi["status"] == "requires_action" and authentication == "fail":
                error = self.intents.authenticate(pi, False, ctx)
            return session, error

    def _payable(self, session_id: str) -> J:
        session = self.get(session_id, None)
        if session["status"] != "open":
            raise invalid(f"This Checkout Session is {session['status']}.", param="session")
        if session["expires_at"] <= self.core.now():
            self.close_expired(session)
            raise invalid("This Checkout Session has expired.", param="session")
        return session

    def _authenticate(
        self, session: J, pi: J | None, answer: str, email: str | None, ctx: Ctx
    ) -> StripeError | None:
        if pi is None or pi["status"] != "requires_action":
            raise invalid("No payment is waiting for authentication.", param="session")
        error = self.intents.authenticate(pi, answer == "approve", ctx)
        if error is None:
            self._complete(session, pi, email)
        return error

    def _fresh_intent(self, session: J, pi: J | None, ctx: Ctx) -> J:
        """The session's PaymentIntent, or a new one when there is none or it still waits
        for a 3D Secure answer the customer walked away from."""
        if pi is not None and pi["status"] != "requires_action":
            return pi
        if pi is not None:
            pi.update(status="canceled", cancellation_reason="abandoned")
            self.core.put(pi, session["_owner"])
        pi = self.intents.new(
            session["amount_total"], session["currency"], session["_pi_terms"], ctx
        )
        session["_payment_intent"] = pi["id"]
        self.core.put(session, session["_owner"])
        self.core.emit("payment_intent.created", pi, ctx, account=ctx.account)
        return pi

    def _complete(self, session: J, pi: J, email: str | None) -> None:
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
        self.core.put(session, session["_owner"])
        self.core.emit(
            "checkout.session.completed", session, CONTROL, account=self.core.account_of(session)
        )

    def settle_delayed(self, job: J) -> None:
        """The clock settles a delayed payment; its session reports how it went."""
        settled = self.intents.settle_bank_debit(job)
        session = self.core.store.get(job["session"]) if job.get("session") else None
        if settled is None or session is None:
            return
        account = self.core.account_of(session)
        if settled:
            session["payment_status"] = "paid"
            self.core.put(session, session["_owner"])
            self.core.emit(
                "checkout.session.async_payment_succeeded", session, CONTROL, account=account
            )
        else:
            self.core.emit(
                "checkout.session.async_payment_failed", session, CONTROL, account=account
            )
