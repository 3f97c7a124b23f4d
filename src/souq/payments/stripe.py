"""The only module that talks to Stripe.

One `StripeClient` per app. Every write carries an idempotency key derived from our own ids,
so a retry never creates a second object. Stripe's exceptions become our own error types here
and nowhere else. Objects come back as plain dicts in Stripe's shapes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

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
    def from_account(cls, account: dict[str, Any]) -> AccountStatus:
        requirements = account.get("requirements") or {}
        due = list(requirements.get("currently_due") or [])
        for item in requirements.get("past_due") or []:
            if item not in due:
                due.append(item)
        return cls(
            account_id=account["id"],
            details_submitted=bool(account.get("details_submitted")),
            charges_enabled=bool(account.get("charges_enabled")),
            payouts_enabled=bool(account.get("payouts_enabled")),
            requirements_due=sorted(due),
            disabled_reason=requirements.get("disabled_reason"),
        )


def _plain(obj: Any) -> dict[str, Any]:
    result: dict[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    return result


class StripeGateway:
    """Souq's Stripe operations, each one call with Stripe's own idempotency."""

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

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except stripe.APIConnectionError as exc:
            log.warning("stripe %s: no answer: %s", what, exc.user_message or type(exc).__name__)
            raise StripeUnavailable(
                "Our payment provider did not answer in time. Nothing was charged; "
                "please try again in a moment."
            ) from exc
        except stripe.StripeError as exc:
            error = exc.error
            code = getattr(error, "code", None) if error is not None else None
            log.warning("stripe %s failed: %s %s", what, exc.http_status, code)
            if exc.http_status is not None and exc.http_status >= 500:
                raise StripeUnavailable(
                    "Our payment provider is having trouble. Nothing was charged; "
                    "please try again in a moment."
                ) from exc
            raise StripeFailed(
                f"The payment provider refused the request: {exc.user_message or exc}",
                stripe_code=code,
                http_status=exc.http_status,
            ) from exc

    # Connected accounts

    async def create_express_account(
        self, *, store_id: int, country: str, email: str | None, generation: int = 0
    ) -> dict[str, Any]:
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
        account = await self._call(
            "create account",
            lambda: self._client.v1.accounts.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"store-{store_id}-connect-account-{generation}"},
            ),
        )
        return _plain(account)

    async def retrieve_account(self, account_id: str) -> dict[str, Any]:
        account = await self._call(
            "retrieve account", lambda: self._client.v1.accounts.retrieve_async(account_id)
        )
        return _plain(account)

    async def create_account_link(
        self, *, account_id: str, refresh_url: str, return_url: str
    ) -> str:
        # A link is single-use, so each call is a new link: no idempotency key to replay.
        link = await self._call(
            "create account link",
            lambda: self._client.v1.account_links.create_async(
                params={
                    "account": account_id,
                    "type": "account_onboarding",
                    "refresh_url": refresh_url,
                    "return_url": return_url,
                }
            ),
        )
        return str(link["url"])

    async def create_login_link(self, account_id: str) -> str:
        link = await self._call(
            "create login link",
            lambda: self._client.v1.accounts.login_links.create_async(account_id),
        )
        return str(link["url"])

    # Checkout

    async def create_checkout_session(
        self, params: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        session = await self._call(
            "create checkout session",
            lambda: self._client.v1.checkout.sessions.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            ),
        )
        return _plain(session)

    async def retrieve_checkout_session(self, session_id: str) -> dict[str, Any]:
        session = await self._call(
            "retrieve checkout session",
            lambda: self._client.v1.checkout.sessions.retrieve_async(
                session_id,
                params={"expand": ["payment_intent.latest_charge.balance_transaction"]},
            ),
        )
        return _plain(session)

    async def expire_checkout_session(self, session_id: str) -> dict[str, Any]:
        session = await self._call(
            "expire checkout session",
            lambda: self._client.v1.checkout.sessions.expire_async(session_id),
        )
        return _plain(session)

    async def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        charge = await self._call(
            "retrieve charge",
            lambda: self._client.v1.charges.retrieve_async(
                charge_id, params={"expand": ["balance_transaction"]}
            ),
        )
        return _plain(charge)

    # Webhooks

    def verify_event(
        self, payload: bytes, signature: str | None, *, connect: bool
    ) -> dict[str, Any]:
        """Verify a webhook delivery with the SDK against every active secret of its endpoint
        (several during a secret roll). Raises SignatureInvalid; never logs the secrets."""
        secrets = self._connect_webhook_secrets if connect else self._webhook_secrets
        if not secrets:
            raise SignatureInvalid("no webhook signing secret is configured for this endpoint")
        if not signature:
            raise SignatureInvalid("missing Stripe-Signature header")
        last: Exception | None = None
        for secret in secrets:
            try:
                stripe.Webhook.construct_event(
                    payload, signature, secret, tolerance=self._tolerance
                )
            except stripe.SignatureVerificationError as exc:
                last = exc
                continue
            except ValueError as exc:
                raise SignatureInvalid(f"the payload is not a Stripe event: {exc}") from exc
            event: dict[str, Any] = json.loads(payload)
            if not isinstance(event, dict) or event.get("object") != "event" or "id" not in event:
                raise SignatureInvalid("the payload is not a Stripe event")
            return event
        raise SignatureInvalid(f"signature verification failed: {last}")
