"""Endpoint signing secrets at rest: sealed with Fernet (AES-128-CBC and HMAC-SHA256, from
`cryptography`) under a key derived from SECRET_KEY by HKDF-SHA256, so a copy of the database
alone cannot sign a webhook. The plain secret exists only in memory: shown once when it is made
(or rotated), and unsealed by the sender to sign each delivery.

Changing SECRET_KEY makes the sealed secrets unreadable: a delivery that cannot unseal its
endpoint's secret is logged as a failed attempt that says so; rotating the secret fixes it."""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from souq.config import Settings

# Names this use of SECRET_KEY, so the derived key is not the one anything else derives.
PURPOSE = b"souq webhook endpoint secrets v1"


class SecretUnreadable(Exception):
    """The sealed secret was sealed under another SECRET_KEY, or is damaged."""


@lru_cache(maxsize=8)
def sealer(secret_key: str) -> Fernet:
    """The Fernet of `secret_key` (the app's SECRET_KEY)."""
    if not secret_key:
        raise RuntimeError("SECRET_KEY is not set: endpoint secrets cannot be sealed")
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PURPOSE).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _sealer(settings: Settings) -> Fernet:
    # A CLI command's settings have not had the development data folder's key filled in.
    return sealer(settings.with_local_secrets().secret_key.get_secret_value())


def seal(settings: Settings, secret: str) -> str:
    return _sealer(settings).encrypt(secret.encode()).decode()


def unseal(settings: Settings, sealed: str) -> str:
    try:
        return _sealer(settings).decrypt(sealed.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable(
            "the endpoint's signing secret cannot be unsealed with this SECRET_KEY (was it "
            "changed?): rotate the secret"
        ) from exc
