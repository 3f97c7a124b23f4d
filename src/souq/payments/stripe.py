"""The only module that talks to Stripe.

One `StripeClient` per app. Every write carries an idempotency key derived from our own ids,
so a retry never creates a second object. Stripe's exceptions become our own error types here
and nowhere else. Answers come back as small typed views of just the fields Souq reads, parsed
here in one place, so a field Stripe renamed fails loudly here and nowhere else.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast
from urllib.parse import quote

import stripe

from souq.config import Settings
from souq.errors import SouqError

log = logging.getLogger(__name__)

T = TypeVar("T")


class StripeUnavailable(SouqError):
    """Stripe could not be reached or did not answer in time."""

    status_code = 503
    code = "payment_provider_unavailable"


class StripeFailed(SouqError):
    """Stripe answered with an error."""

    status_code = 502
    code = "payment_provider_error"

    def __init__(
        self, message: str, *, stripe_code: str | None = None, http_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.stripe_code = stripe_code
        self.http_status = http_status

    @property
    def is_missing(self) -> bool:
        return self.stripe_code == "resource_missing"


class SignatureInvalid(SouqError):
    status_code = 400
    code = "invalid_signature"


class StripeDataError(StripeFailed):
    """Stripe answered with a shape Souq does not expect (a field renamed or missing): one
    loud error where the answer is parsed, never a silent default further on."""


def _field(data: Mapping[str, Any], key: str, kind: type[T], what: str) -> T:
    value = data.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise StripeDataError(f"Stripe's {what} has no {kind.__name__} {key!r}: {value!r}")
    return value


def _optional(data: Mapping[str, Any], key: str, kind: type[T], what: str) -> T | None:
    return None if data.get(key) is None else _field(data, key, kind, what)


def _expandable(data: Mapping[str, Any], key: str, what: str) -> tuple[str | None, Any]:
    """An id field that may have been expanded into the object: (its id, the object or None)."""
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value, None
    if isinstance(value, dict):
        return _field(value, "id", str, f"{what}.{key}"), value
    raise StripeDataError(f"Stripe's {what} has an unexpected {key!r}: {value!r}")


def _object(data: Any, kind: str) -> Mapping[str, Any]:
    if not isinstance(data, dict) or data.get("object") != kind:
        raise StripeDataError(f"Stripe answered something that is not a {kind}")
    return data


@dataclass(frozen=True)
class BalanceTransaction:
    id: str
    fee: int

    @classmethod
    def parse(cls, data: Any) -> BalanceTransaction:
        data = _object(data, "balance_transaction")
        what = "balance transaction"
        return cls(id=_field(data, "id", str, what), fee=_field(data, "fee", int, what))


@dataclass(frozen=True)
class Charge:
    id: str
    payment_intent_id: str | None
    balance_transaction_id: str | None
    balance_transaction: BalanceTransaction | None
    # A destination charge's transfer to the connected account and the platform's fee.
    transfer_id: str | None = None
    application_fee_id: str | None = None
    amount_refunded: int = 0
    disputed: bool = False

    @classmethod
    def parse(cls, data: Any) -> Charge:
        data = _object(data, "charge")
        payment_intent_id, _ = _expandable(data, "payment_intent", "charge")
        txn_id, txn = _expandable(data, "balance_transaction", "charge")
        transfer_id, _ = _expandable(data, "transfer", "charge")
        fee_id, _ = _expandable(data, "application_fee", "charge")
        return cls(
            id=_field(data, "id", str, "charge"),
            payment_intent_id=payment_intent_id,
            balance_transaction_id=txn_id,
            balance_transaction=None if txn is None else BalanceTransaction.parse(txn),
            transfer_id=transfer_id,
            application_fee_id=fee_id,
            amount_refunded=_optional(data, "amount_refunded", int, "charge") or 0,
            disputed=bool(_optional(data, "disputed", bool, "charge")),
        )


@dataclass(frozen=True)
class Refund:
    id: str
    amount: int
    currency: str
    status: str  # pending | requires_action | succeeded | failed | canceled
    charge_id: str | None
    transfer_reversal_id: str | None
    metadata: Mapping[str, str]
    created: int = 0

    @classmethod
    def parse(cls, data: Any) -> Refund:
        data = _object(data, "refund")
        charge_id, _ = _expandable(data, "charge", "refund")
        reversal_id, _ = _expandable(data, "transfer_reversal", "refund")
        return cls(
            id=_field(data, "id", str, "refund"),
            amount=_field(data, "amount", int, "refund"),
            currency=_field(data, "currency", str, "refund"),
            status=_field(data, "status", str, "refund"),
            charge_id=charge_id,
            transfer_reversal_id=reversal_id,
            metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
            created=int(data.get("created") or 0),
        )


@dataclass(frozen=True)
class Movement:
    """A transfer reversal or an application fee refund: an id, an amount, its metadata."""

    id: str
    amount: int
    metadata: Mapping[str, str]

    @classmethod
    def parse(cls, data: Any, kind: str) -> Movement:
        data = _object(data, kind)
        return cls(
            id=_field(data, "id", str, kind),
            amount=_field(data, "amount", int, kind),
            metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
        )


@dataclass(frozen=True)
class Payout:
    """A connected account's payout to its bank."""

    id: str
    amount: int
    currency: str
    status: str  # pending | in_transit | paid | failed | canceled
    arrival_date: int
    automatic: bool
    failure_message: str | None
    failure_code: str | None = None

    @classmethod
    def parse(cls, data: Any) -> Payout:
        data = _object(data, "payout")
        what = "payout"
        return cls(
            id=_field(data, "id", str, what),
            amount=_field(data, "amount", int, what),
            currency=_field(data, "currency", str, what),
            status=_field(data, "status", str, what),
            arrival_date=_field(data, "arrival_date", int, what),
            automatic=bool(data.get("automatic")),
            failure_message=_optional(data, "failure_message", str, what),
            failure_code=_optional(data, "failure_code", str, what),
        )


@dataclass(frozen=True)
class PaidOutLine:
    """One balance transaction a payout paid out: its net, what caused it (`source`), and for
    the payment a transfer made on the account, that transfer (`source_transfer`)."""

    id: str
    type: str
    net: int
    source_id: str | None
    source_transfer_id: str | None

    @classmethod
    def parse(cls, data: Any) -> PaidOutLine:
        data = _object(data, "balance_transaction")
        what = "balance transaction"
        source_id, source = _expandable(data, "source", what)
        transfer = source.get("source_transfer") if isinstance(source, dict) else None
        if isinstance(transfer, dict):
            transfer = transfer.get("id")
        return cls(
            id=_field(data, "id", str, what),
            type=_field(data, "type", str, what),
            net=_field(data, "net", int, what),
            source_id=source_id,
            source_transfer_id=transfer if isinstance(transfer, str) else None,
        )


@dataclass(frozen=True)
class DisputeTransaction:
    id: str
    amount: int  # negative: withdrawn; positive: reinstated
    fee: int


@dataclass(frozen=True)
class Dispute:
    id: str
    amount: int
    currency: str
    status: str
    reason: str
    charge_id: str | None
    payment_intent_id: str | None
    evidence_due_by: int | None
    balance_transactions: tuple[DisputeTransaction, ...]

    @classmethod
    def parse(cls, data: Any) -> Dispute:
        data = _object(data, "dispute")
        what = "dispute"
        charge_id, _ = _expandable(data, "charge", what)
        intent_id, _ = _expandable(data, "payment_intent", what)
        details = data.get("evidence_details") or {}
        txns = tuple(
            DisputeTransaction(
                id=_field(t, "id", str, "dispute balance transaction"),
                amount=_field(t, "amount", int, "dispute balance transaction"),
                fee=_field(t, "fee", int, "dispute balance transaction"),
            )
            for t in data.get("balance_transactions") or []
            if isinstance(t, dict)
        )
        return cls(
            id=_field(data, "id", str, what),
            amount=_field(data, "amount", int, what),
            currency=_field(data, "currency", str, what),
            status=_field(data, "status", str, what),
            reason=_field(data, "reason", str, what),
            charge_id=charge_id,
            payment_intent_id=intent_id,
            evidence_due_by=_optional(details, "due_by", int, what),
            balance_transactions=txns,
        )


@dataclass(frozen=True)
class PaymentIntent:
    id: str
    status: str
    amount: int
    currency: str
    application_fee_amount: int | None
    destination: str | None  # transfer_data.destination: the connected account paid
    payment_failed: bool  # a last_payment_error is set
    latest_charge_id: str | None
    latest_charge: Charge | None

    @classmethod
    def parse(cls, data: Any) -> PaymentIntent:
        data = _object(data, "payment_intent")
        what = "payment intent"
        transfer = data.get("transfer_data") or {}
        destination, _ = _expandable(transfer, "destination", f"{what}.transfer_data")
        charge_id, charge = _expandable(data, "latest_charge", what)
        return cls(
            id=_field(data, "id", str, what),
            status=_field(data, "status", str, what),
            amount=_field(data, "amount", int, what),
            currency=_field(data, "currency", str, what),
            application_fee_amount=_optional(data, "application_fee_amount", int, what),
            destination=destination,
            payment_failed=data.get("last_payment_error") is not None,
            latest_charge_id=charge_id,
            latest_charge=None if charge is None else Charge.parse(charge),
        )

    @property
    def failed(self) -> bool:
        """A delayed payment that Stripe gave up on: back to needing a payment method after a
        failure, or canceled."""
        return self.status == "canceled" or (
            self.status == "requires_payment_method" and self.payment_failed
        )


SessionStatus = Literal["open", "complete", "expired"]
SessionPaymentStatus = Literal["paid", "unpaid", "no_payment_required"]


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str | None
    status: SessionStatus
    payment_status: SessionPaymentStatus
    amount_total: int | None
    currency: str | None
    client_reference_id: str | None
    metadata: Mapping[str, str]
    payment_intent_id: str | None
    payment_intent: PaymentIntent | None

    @classmethod
    def parse(cls, data: Any) -> CheckoutSession:
        data = _object(data, "checkout.session")
        what = "checkout session"
        status = _field(data, "status", str, what)
        payment_status = _field(data, "payment_status", str, what)
        if status not in ("open", "complete", "expired"):
            raise StripeDataError(f"unknown checkout session status {status!r}")
        if payment_status not in ("paid", "unpaid", "no_payment_required"):
            raise StripeDataError(f"unknown checkout session payment_status {payment_status!r}")
        intent_id, intent = _expandable(data, "payment_intent", what)
        metadata = data.get("metadata") or {}
        return cls(
            id=_field(data, "id", str, what),
            url=_optional(data, "url", str, what),
            status=cast(SessionStatus, status),
            payment_status=cast(SessionPaymentStatus, payment_status),
            amount_total=_optional(data, "amount_total", int, what),
            currency=_optional(data, "currency", str, what),
            client_reference_id=_optional(data, "client_reference_id", str, what),
            metadata={str(k): str(v) for k, v in metadata.items()},
            payment_intent_id=intent_id,
            payment_intent=None if intent is None else PaymentIntent.parse(intent),
        )

    @property
    def order_id(self) -> int | None:
        """The Souq order this session says it pays (client_reference_id, else metadata)."""
        for raw in (self.client_reference_id, self.metadata.get("orderId")):
            if raw is not None and raw.isdigit() and len(raw) < 10:
                return int(raw)
        return None

    @property
    def paid(self) -> bool:
        return self.status == "complete" and self.payment_status in ("paid", "no_payment_required")


@dataclass(frozen=True)
class AccountStatus:
    """What Souq keeps of a connected account's state."""

    account_id: str
    details_submitted: bool
    charges_enabled: bool
    payouts_enabled: bool
    requirements_due: list[str]
    disabled_reason: str | None

    @classmethod
    def parse(cls, data: Any) -> AccountStatus:
        account = _object(data, "account")
        requirements = account.get("requirements") or {}
        due = list(requirements.get("currently_due") or [])
        for item in requirements.get("past_due") or []:
            if item not in due:
                due.append(item)
        return cls(
            account_id=_field(account, "id", str, "account"),
            details_submitted=bool(account.get("details_submitted")),
            charges_enabled=bool(account.get("charges_enabled")),
            payouts_enabled=bool(account.get("payouts_enabled")),
            requirements_due=sorted(str(item) for item in due),
            disabled_reason=requirements.get("disabled_reason"),
        )


class EventInvalid(SignatureInvalid):
    """A signed body that is not a usable Stripe event (a list, no data.object.id): refused
    like a bad signature, since nothing in it can be acted on."""

    code = "invalid_event"


@dataclass(frozen=True)
class Event:
    """A verified webhook event: what changed, never trusted for the object's state."""

    id: str
    type: str
    account: str | None  # set on Connect events: the connected account it happened on
    created: int
    object_id: str
    object: Mapping[str, Any]  # the snapshot, rendered when the event was created
    payload: dict[str, Any]  # the whole event, as stored in the inbox

    @classmethod
    def parse(cls, payload: Any) -> Event:
        if not isinstance(payload, dict) or payload.get("object") != "event":
            raise EventInvalid("the body is not a Stripe event object")
        data = payload.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not obj["id"]:
            raise EventInvalid("the event has no data.object.id")
        event_id, event_type = payload.get("id"), payload.get("type")
        if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
            raise EventInvalid("the event has no id or type")
        account = payload.get("account")
        created = payload.get("created")
        return cls(
            id=event_id[:255],
            type=event_type[:100],
            account=account if isinstance(account, str) else None,
            created=created if isinstance(created, int) and not isinstance(created, bool) else 0,
            object_id=obj["id"],
            object=obj,
            payload=payload,
        )

    def charge(self) -> Charge:
        return Charge.parse(self.object)


class StripeGateway:
    """Souq's Stripe operations, each one call with Stripe's own idempotency. Answers are read
    as raw JSON (no StripeObject conversion) and parsed into the typed views above."""

    def __init__(self, settings: Settings) -> None:
        if settings.stripe_secret_key is None:
            raise RuntimeError("no Stripe key configured")
        base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
        self._client = stripe.StripeClient(
            settings.stripe_secret_key.get_secret_value(),
            base_addresses=base,  # type: ignore[arg-type]
            http_client=stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds),
            max_network_retries=1,
        )
        self._webhook_secrets = [
            s.get_secret_value()
            for s in [settings.stripe_webhook_secret, *settings.stripe_webhook_secrets_previous]
            if s is not None
        ]
        connect = settings.stripe_connect_webhook_secret
        self._connect_webhook_secrets = [connect.get_secret_value()] if connect else []
        self._tolerance = settings.webhook_tolerance_seconds
        # The app's settings, for webhook handlers (which are given the gateway) that follow a
        # platform setting, such as the loss policy.
        self.settings = settings
        # Calls made, by operation: what an operator (or a test) reads to see how often Souq
        # asks Stripe for something.
        self.calls: Counter[str] = Counter()

    async def _request(
        self,
        what: str,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        self.calls[what] += 1
        try:
            response = await self._client.raw_request_async(
                method, path, **(params or {}), **options
            )
        except stripe.APIConnectionError as exc:
            log.warning("stripe %s: no answer: %s", what, exc.user_message or type(exc).__name__)
            raise StripeUnavailable(
                "Our payment provider did not answer in time. Please try again in a moment."
            ) from exc
        except stripe.StripeError as exc:
            error = exc.error
            code = getattr(error, "code", None) if error is not None else None
            log.warning("stripe %s failed: %s %s", what, exc.http_status, code)
            if code == "idempotency_key_in_use":
                # The first request with this key is still running at Stripe: its outcome is
                # not known yet, exactly as after a timeout.
                raise StripeUnavailable(
                    "Our payment provider is still working on this request. Please try again "
                    "in a moment."
                ) from exc
            if exc.http_status is not None and exc.http_status >= 500:
                raise StripeUnavailable(
                    "Our payment provider is having trouble. Please try again in a moment."
                ) from exc
            raise StripeFailed(
                f"The payment provider refused the request: {exc.user_message or exc}",
                stripe_code=code,
                http_status=exc.http_status,
            ) from exc
        return json.loads(response.body)

    # Connected accounts

    async def create_express_account(
        self, *, store_id: int, country: str, email: str | None, generation: int = 0
    ) -> AccountStatus:
        """`generation` changes the idempotency key after a store was disconnected, so that
        reconnecting creates a new account instead of replaying the old one."""
        params: dict[str, Any] = {
            "type": "express",
            "country": country,
            "capabilities": {
                "card_payments": {"requested": True},
                "transfers": {"requested": True},
            },
            "metadata": {"store_id": str(store_id)},
        }
        if email:
            params["email"] = email
        account = await self._request(
            "create account",
            "post",
            "/v1/accounts",
            params,
            idempotency_key=f"store-{store_id}-connect-account-{generation}",
        )
        return AccountStatus.parse(account)

    async def retrieve_account(self, account_id: str) -> AccountStatus:
        account = await self._request(
            "retrieve account", "get", f"/v1/accounts/{quote(account_id, safe='')}"
        )
        return AccountStatus.parse(account)

    async def create_account_link(
        self, *, account_id: str, refresh_url: str, return_url: str
    ) -> str:
        # A link is single-use, so each call is a new link: no idempotency key to replay.
        link = await self._request(
            "create account link",
            "post",
            "/v1/account_links",
            {
                "account": account_id,
                "type": "account_onboarding",
                "refresh_url": refresh_url,
                "return_url": return_url,
            },
        )
        return _field(_object(link, "account_link"), "url", str, "account link")

    async def create_login_link(self, account_id: str) -> str:
        link = await self._request(
            "create login link",
            "post",
            f"/v1/accounts/{quote(account_id, safe='')}/login_links",
        )
        return _field(_object(link, "login_link"), "url", str, "login link")

    # Checkout

    async def create_checkout_session(
        self, params: dict[str, Any], *, idempotency_key: str
    ) -> CheckoutSession:
        session = await self._request(
            "create checkout session",
            "post",
            "/v1/checkout/sessions",
            params,
            idempotency_key=idempotency_key,
        )
        return CheckoutSession.parse(session)

    async def retrieve_checkout_session(self, session_id: str) -> CheckoutSession:
        """The session with its payment intent, charge and balance transaction expanded."""
        session = await self._request(
            "retrieve checkout session",
            "get",
            f"/v1/checkout/sessions/{quote(session_id, safe='')}",
            {"expand": ["payment_intent.latest_charge.balance_transaction"]},
        )
        return CheckoutSession.parse(session)

    async def expire_checkout_session(self, session_id: str) -> CheckoutSession:
        session = await self._request(
            "expire checkout session",
            "post",
            f"/v1/checkout/sessions/{quote(session_id, safe='')}/expire",
            idempotency_key=f"{session_id}-expire",
        )
        return CheckoutSession.parse(session)

    async def retrieve_charge(self, charge_id: str) -> Charge:
        charge = await self._request(
            "retrieve charge",
            "get",
            f"/v1/charges/{quote(charge_id, safe='')}",
            {"expand": ["balance_transaction"]},
        )
        return Charge.parse(charge)

    # Events

    async def list_events(
        self, *, account: str | None, created_gte: int, created_lte: int, types: Sequence[str]
    ) -> list[Event]:
        """Every event of `types` created in [created_gte, created_lte] on the platform, or on
        a connected account (Stripe-Account), newest first, all pages."""
        events: list[Event] = []
        params: dict[str, Any] = {
            "created": {"gte": created_gte, "lte": created_lte},
            "types": list(types),
            "limit": 100,
        }
        options = {"stripe_account": account} if account else {}
        while True:
            page = await self._request("list events", "get", "/v1/events", params, **options)
            data = _field(_object(page, "list"), "data", list, "event list")
            for item in data:
                if account and isinstance(item, dict) and not item.get("account"):
                    item["account"] = account
                events.append(Event.parse(item))
            if not page.get("has_more") or not data:
                return events
            params["starting_after"] = events[-1].id

    # Webhooks

    def verify_event(self, payload: bytes, signature: str | None, *, connect: bool) -> Event:
        """Verify a webhook delivery with the SDK against every active secret of its endpoint
        (several during a secret roll). Raises SignatureInvalid, or EventInvalid for a signed
        body that is not a usable event; never logs the secrets."""
        secrets = self._connect_webhook_secrets if connect else self._webhook_secrets
        if not secrets:
            raise SignatureInvalid("no webhook signing secret is configured for this endpoint")
        if not signature:
            raise SignatureInvalid("missing Stripe-Signature header")
        last: Exception | None = None
        for secret in secrets:
            try:
                stripe.WebhookSignature.verify_header(
                    payload.decode("utf-8", errors="replace"),
                    signature,
                    secret,
                    tolerance=self._tolerance,
                )
            except stripe.SignatureVerificationError as exc:
                last = exc
                continue
            try:
                body = json.loads(payload)
            except ValueError as exc:
                raise EventInvalid(f"the body is not JSON: {exc}") from exc
            return Event.parse(body)
        raise SignatureInvalid(f"signature verification failed: {last}")

    # Money after the sale

    async def _list_all(
        self, what: str, path: str, params: dict[str, Any], **options: Any
    ) -> list[Any]:
        """Every item of a Stripe list, page after page."""
        items: list[Any] = []
        query = dict(params, limit=100)
        while True:
            page = _object(await self._request(what, "get", path, query, **options), "list")
            data = page.get("data")
            if not isinstance(data, list):
                raise StripeDataError(f"Stripe's {what} answer has no data list")
            items.extend(data)
            if not page.get("has_more") or not data:
                return items
            query["starting_after"] = _field(data[-1], "id", str, what)

    async def create_refund(
        self,
        *,
        charge_id: str,
        amount: int,
        reverse_transfer: bool,
        refund_application_fee: bool,
        reason: str | None,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> Refund:
        params: dict[str, Any] = {
            "charge": charge_id,
            "amount": amount,
            "metadata": metadata,
        }
        if reverse_transfer:
            params["reverse_transfer"] = True
        if refund_application_fee:
            params["refund_application_fee"] = True
        if reason is not None:
            params["reason"] = reason
        refund = await self._request(
            "create refund", "post", "/v1/refunds", params, idempotency_key=idempotency_key
        )
        return Refund.parse(refund)

    async def paid_out(self, account_id: str) -> dict[str, int]:
        """What Stripe paid from a connected account to its bank (payouts that arrived:
        status paid), per currency."""
        found = await self._list_all(
            "list payouts", "/v1/payouts", {"status": "paid"}, stripe_account=account_id
        )
        totals: dict[str, int] = {}
        for item in found:
            payout = _object(item, "payout")
            currency = _field(payout, "currency", str, "payout")
            totals[currency] = totals.get(currency, 0) + _field(payout, "amount", int, "payout")
        return totals

    async def list_refunds(self, charge_id: str) -> list[Refund]:
        found = await self._list_all("list refunds", "/v1/refunds", {"charge": charge_id})
        return [Refund.parse(item) for item in found]

    async def _movement(
        self, what: str, path: str, kind: str, params: dict[str, Any], idempotency_key: str
    ) -> Movement:
        answer = await self._request(what, "post", path, params, idempotency_key=idempotency_key)
        return Movement.parse(answer, kind)

    async def _movements(self, what: str, path: str, kind: str) -> list[Movement]:
        return [Movement.parse(item, kind) for item in await self._list_all(what, path, {})]

    async def reverse_transfer(
        self, transfer_id: str, *, amount: int, metadata: dict[str, str], idempotency_key: str
    ) -> Movement:
        path = f"/v1/transfers/{quote(transfer_id, safe='')}/reversals"
        params = {"amount": amount, "metadata": metadata}
        return await self._movement(
            "reverse transfer", path, "transfer_reversal", params, idempotency_key
        )

    async def create_transfer(
        self,
        *,
        destination: str,
        amount: int,
        currency: str,
        source_transaction: str,
        metadata: dict[str, str],
        idempotency_key: str,
        transfer_group: str | None = None,
    ) -> Movement:
        """Money from the platform's balance to a connected account, out of a charge."""
        params: dict[str, Any] = {
            "destination": destination,
            "amount": amount,
            "currency": currency,
            "source_transaction": source_transaction,
            "metadata": metadata,
        }
        if transfer_group is not None:
            params["transfer_group"] = transfer_group
        return await self._movement(
            "create transfer", "/v1/transfers", "transfer", params, idempotency_key
        )

    async def list_transfer_reversals(self, transfer_id: str) -> list[Movement]:
        path = f"/v1/transfers/{quote(transfer_id, safe='')}/reversals"
        return await self._movements("list transfer reversals", path, "transfer_reversal")

    async def refund_application_fee(
        self, fee_id: str, *, amount: int, metadata: dict[str, str], idempotency_key: str
    ) -> Movement:
        path = f"/v1/application_fees/{quote(fee_id, safe='')}/refunds"
        params = {"amount": amount, "metadata": metadata}
        return await self._movement(
            "refund application fee", path, "fee_refund", params, idempotency_key
        )

    async def list_application_fee_refunds(self, fee_id: str) -> list[Movement]:
        path = f"/v1/application_fees/{quote(fee_id, safe='')}/refunds"
        return await self._movements("list application fee refunds", path, "fee_refund")

    async def retrieve_dispute(self, dispute_id: str) -> Dispute:
        dispute = await self._request(
            "retrieve dispute", "get", f"/v1/disputes/{quote(dispute_id, safe='')}"
        )
        return Dispute.parse(dispute)

    async def list_disputes(self, charge_id: str) -> list[Dispute]:
        found = await self._list_all("list disputes", "/v1/disputes", {"charge": charge_id})
        return [Dispute.parse(item) for item in found]

    async def retrieve_payout(self, account: str, payout_id: str) -> Payout:
        """A connected account's payout (Stripe-Account)."""
        path = f"/v1/payouts/{quote(payout_id, safe='')}"
        return Payout.parse(
            await self._request("retrieve payout", "get", path, stripe_account=account)
        )

    async def list_paid_out(self, account: str, payout_id: str) -> list[PaidOutLine]:
        """Every balance transaction an automatic payout of a connected account paid out,
        with its source expanded (a transfer's payment names its transfer)."""
        found = await self._list_all(
            "list payout transactions",
            "/v1/balance_transactions",
            {"payout": payout_id, "expand": ["data.source"]},
            stripe_account=account,
        )
        return [PaidOutLine.parse(item) for item in found]

    async def submit_dispute_evidence(
        self,
        dispute_id: str,
        evidence: dict[str, str],
        *,
        idempotency_key: str,
        submit: bool = True,
    ) -> Dispute:
        """Evidence for a dispute, submitted to the bank, or only staged (`submit=False`)."""
        dispute = await self._request(
            "submit dispute evidence",
            "post",
            f"/v1/disputes/{quote(dispute_id, safe='')}",
            {"evidence": evidence, "submit": submit},
            idempotency_key=idempotency_key,
        )
        return Dispute.parse(dispute)
