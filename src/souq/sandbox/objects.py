"""What every sandbox resource shares: ids, Stripe's example objects (they give every object
Stripe's full shape) and who is calling.

Keys starting with `_` are the sandbox's private state and never leave it.
"""

from __future__ import annotations

import copy
import gzip
import json
import secrets
import string
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

J = dict[str, Any]
PLATFORM = "platform"
API_VERSION = "2023-08-16"
APPLICATION_ID = "ca_sandboxsouq0000000000000000"
DAY = 86_400


@cache
def _fixtures() -> J:
    raw = resources.files("souq.sandbox").joinpath("openapi/fixtures3.json.gz").read_bytes()
    data: J = json.loads(gzip.decompress(raw))["resources"]
    return data


def template(name: str) -> J:
    """A fresh copy of Stripe's example object of this type, to fill in."""
    return copy.deepcopy(_fixtures()[name])


_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def out(obj: J) -> J:
    """The public view of a stored object."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


@dataclass
class Ctx:
    """Who is calling: the platform or a connected account (Stripe-Account), and which request."""

    account: str | None = None
    request_id: str | None = None
    idempotency_key: str | None = None

    @property
    def owner(self) -> str:
        return self.account or PLATFORM


CONTROL = Ctx()


def account_ctx(owner: str | None) -> Ctx:
    """The context of an object's owner (`platform` or an `acct_` id)."""
    return Ctx(account=None if owner in (None, PLATFORM) else owner)
