"""Helpers for tests that act as users over HTTP: accounts with API tokens, browser sessions
with their CSRF token, and stores with an owner, an admin and a seller.

Every helper talks to the app through its public API, so it works against the `live` server
on every engine. Emails are unique per call (a database is shared by many tests), and
each client sends its own X-Forwarded-For address (the test server trusts it from 127.0.0.1,
FORWARDED_ALLOW_IPS), so the per-address throttles of one test never reach another.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.servers import LiveServer

PASSWORD = "correct horse battery staple"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def fake_address() -> str:
    """A client address of its own (TEST-NET-style private range)."""
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def anonymous(live: LiveServer, *, address: str | None = None) -> httpx.Client:
    return live.client(headers={"X-Forwarded-For": address or fake_address()})


def error_code(response: httpx.Response) -> str:
    """The `error.code` of an error response (and a check that it has the one error shape)."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    code: str = body["error"]["code"]
    return code


def register(
    live: LiveServer,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    name: str = "Test User",
) -> dict[str, Any]:
    """Register an account and return the user JSON."""
    with anonymous(live) as client:
        response = client.post(
            "/api/auth/register",
            json={"email": email or unique_email(), "password": password, "name": name},
        )
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


@dataclass
class Account:
    """A registered user with a personal API token and an httpx client that sends it."""

    id: int
    email: str
    password: str
    name: str
    token: str
    client: httpx.Client = field(repr=False)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Account:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def api_user(live: LiveServer, *, name: str = "Test User", email: str | None = None) -> Account:
    """Register a user and get a bearer-token client for them."""
    email = email or unique_email(name.lower().replace(" ", "-"))
    user = register(live, email=email, name=name)
    with anonymous(live) as client:
        response = client.post(
            "/api/auth/tokens", json={"email": email, "password": PASSWORD, "name": "tests"}
        )
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    client = live.client(
        headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": fake_address()}
    )
    account = Account(
        id=user["id"], email=email, password=PASSWORD, name=name, token=token, client=client
    )
    _ACCOUNTS[email.lower()] = account
    return account


# Accounts made by api_user, by email, so add_member can accept an invitation as the invitee.
_ACCOUNTS: dict[str, Account] = {}


@dataclass
class BrowserSession:
    """A client holding the session cookie, and the CSRF token its writes must send."""

    client: httpx.Client
    csrf: str
    user: dict[str, Any]

    @property
    def csrf_headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}

    def __enter__(self) -> BrowserSession:
        return self

    def __exit__(self, *_: object) -> None:
        self.client.close()


def browser_login(live: LiveServer, email: str, password: str = PASSWORD) -> BrowserSession:
    """Log in through POST /api/auth/login; the client keeps the cookie."""
    client = anonymous(live)
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    return BrowserSession(client=client, csrf=body["csrfToken"], user=body["user"])


def create_store(owner: Account, *, name: str = "Test Store", **fields: Any) -> dict[str, Any]:
    response = owner.client.post("/api/stores", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    store: dict[str, Any] = response.json()
    return store


def invite(actor: Account, store_id: int, email: str, role: str) -> httpx.Response:
    return actor.client.post(
        f"/api/stores/{store_id}/invitations", json={"email": email, "role": role}
    )


def add_member(actor: Account, store_id: int, email: str, role: str) -> httpx.Response:
    """Invite `email` and, when it is an api_user account, accept as them: the answer is the
    acceptance (201 with the member), or the invitation's refusal."""
    invited = invite(actor, store_id, email, role)
    invitee = _ACCOUNTS.get(email.lower())
    if invited.status_code != 201 or invitee is None:
        return invited
    return invitee.client.post(f"/api/me/invitations/{invited.json()['id']}/accept")


def create_listing(
    actor: Account,
    store_id: int,
    *,
    name: str = "Olive wood bowl",
    price: str = "19.99",
    currency: str = "usd",
    **fields: Any,
) -> dict[str, Any]:
    response = actor.client.post(
        f"/api/stores/{store_id}/listings",
        json={"name": name, "price": price, "currency": currency, **fields},
    )
    assert response.status_code == 201, response.text
    listing: dict[str, Any] = response.json()
    return listing


@dataclass
class StoreTeam:
    """A store with one member of each role."""

    store: dict[str, Any]
    owner: Account
    admin: Account
    seller: Account

    @property
    def id(self) -> int:
        store_id: int = self.store["id"]
        return store_id

    def close(self) -> None:
        for account in (self.owner, self.admin, self.seller):
            account.close()

    def __enter__(self) -> StoreTeam:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def store_team(live: LiveServer, *, name: str = "Team Store", **fields: Any) -> StoreTeam:
    owner = api_user(live, name="Owner")
    admin = api_user(live, name="Admin")
    seller = api_user(live, name="Seller")
    store = create_store(owner, name=name, **fields)
    for account, role in ((admin, "admin"), (seller, "seller")):
        response = add_member(owner, store["id"], account.email, role)
        assert response.status_code == 201, response.text
    return StoreTeam(store=store, owner=owner, admin=admin, seller=seller)
