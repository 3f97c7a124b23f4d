"""Webhook verification through the SDK, including secrets being rolled."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from pydantic import SecretStr

from souq.config import Settings
from souq.payments.stripe import SignatureInvalid, StripeGateway

EVENT = json.dumps(
    {"id": "evt_1", "object": "event", "type": "charge.succeeded", "created": 1,
     "data": {"object": {"id": "ch_1", "object": "charge"}}}
).encode()  # fmt: skip


def signed(secret: str, payload: bytes = EVENT, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    v1 = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={v1}"


def gateway(
    current: str, previous: list[str] | None = None, connect: str | None = None
) -> StripeGateway:
    return StripeGateway(
        Settings(
            _env_file=None,
            stripe_secret_key=SecretStr("sk_test_x"),
            stripe_webhook_secret=SecretStr(current),
            stripe_webhook_secrets_previous=[SecretStr(s) for s in previous or []],
            stripe_connect_webhook_secret=SecretStr(connect) if connect else None,
        )
    )


def test_the_current_and_previous_secrets_are_accepted_while_rolling() -> None:
    g = gateway("whsec_new", ["whsec_old"], "whsec_connect")
    assert g.verify_event(EVENT, signed("whsec_new"), connect=False).id == "evt_1"
    assert g.verify_event(EVENT, signed("whsec_old"), connect=False).id == "evt_1"
    # Stripe sends one v1 per active secret during a roll.
    t = int(time.time())
    both = f"{signed('whsec_other', t=t)},v1={signed('whsec_new', t=t).split('v1=')[1]}"
    assert g.verify_event(EVENT, both, connect=False).id == "evt_1"
    # The endpoints do not share secrets.
    with pytest.raises(SignatureInvalid):
        g.verify_event(EVENT, signed("whsec_connect"), connect=False)
    with pytest.raises(SignatureInvalid):
        g.verify_event(EVENT, signed("whsec_new"), connect=True)
    assert g.verify_event(EVENT, signed("whsec_connect"), connect=True).id == "evt_1"


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "t=1,v0=abc", signed("whsec_new", t=int(time.time()) - 301),
     signed("whsec_new", payload=EVENT + b" ")],
    ids=["missing", "empty", "garbage", "no_v1", "stale", "altered"],
)  # fmt: skip
def test_bad_signatures_are_refused(header: str | None) -> None:
    g = gateway("whsec_new")
    with pytest.raises(SignatureInvalid):
        g.verify_event(EVENT, header, connect=False)


def test_a_signed_payload_that_is_not_an_event_is_refused() -> None:
    g = gateway("whsec_new")
    payload = b'{"object": "charge", "id": "ch_1"}'
    with pytest.raises(SignatureInvalid):
        g.verify_event(payload, signed("whsec_new", payload), connect=False)
