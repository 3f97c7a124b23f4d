"""Failed logins are throttled per account-and-address pair (backing off, never a lockout of
the account) and per address across accounts; forwarded headers count only from trusted
proxies; Retry-After says how long to wait."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from souq.throttle import Throttle
from tests.helpers import PASSWORD, anonymous, error_code, fake_address, register, unique_email
from tests.servers import beside

MAX_FAILURES = 5  # the test settings' LOGIN_MAX_FAILURES
BACKOFF = 30  # LOGIN_BACKOFF_SECONDS (default)
ADDRESS_BUDGET = 30  # LOGIN_ADDRESS_MAX_FAILURES (default)


def login(live: Any, email: str, password: str, address: str | None = None) -> httpx.Response:
    with anonymous(live, address=address) as client:
        return client.post("/api/auth/login", json={"email": email, "password": password})


def retry_after(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert error_code(response) == "login_throttled"
    return int(response.headers["retry-after"])


def test_failures_from_many_addresses_never_lock_the_owner_out(live: Any) -> None:
    email = unique_email("victim")
    register(live, email=email)
    # A stranger guesses from ever new addresses: each pair fails once, nothing is locked.
    statuses = [login(live, email, "wrong-password").status_code for _ in range(3 * MAX_FAILURES)]
    assert statuses == [401] * (3 * MAX_FAILURES)
    assert login(live, email, PASSWORD).status_code == 200
    assert login(live, email.upper(), PASSWORD).status_code == 200


def test_one_address_guessing_one_account_backs_off_doubling(live: Any) -> None:
    email = unique_email()
    register(live, email=email)
    address = fake_address()
    for _ in range(MAX_FAILURES):
        assert login(live, email, "wrong-password", address).status_code == 401
    waited = login(live, email, PASSWORD, address)  # even the right password must wait
    assert BACKOFF - 2 <= retry_after(waited) <= BACKOFF
    assert f"{retry_after(waited)} seconds" in waited.json()["error"]["message"]
    # The owner, from their own address, is not held up.
    assert login(live, email, PASSWORD).status_code == 200
    # Once the wait is over, one more try; failing it doubles the wait.
    _expire_blocks(live, f"login:{email}|{address}")
    assert login(live, email, "wrong-password", address).status_code == 401
    assert 2 * BACKOFF - 2 <= retry_after(login(live, email, PASSWORD, address)) <= 2 * BACKOFF
    _expire_blocks(live, f"login:{email}|{address}")
    assert login(live, email, PASSWORD, address).status_code == 200


def test_an_address_guessing_many_accounts_spends_its_budget(live: Any) -> None:
    address = fake_address()
    for _ in range(ADDRESS_BUDGET):
        assert login(live, unique_email("guess"), "wrong-password", address).status_code == 401
    email = unique_email()
    register(live, email=email)
    wait = retry_after(login(live, email, PASSWORD, address))
    assert 0 < wait <= 900  # the rest of the 15-minute window
    # The same account from elsewhere is fine: only the address waits.
    assert login(live, email, PASSWORD).status_code == 200


def test_token_requests_count_as_logins(live: Any) -> None:
    email = unique_email()
    user = register(live, email=email)
    address = fake_address()
    for _ in range(MAX_FAILURES):
        with anonymous(live, address=address) as client:
            response = client.post(
                "/api/auth/tokens", json={"email": email, "password": "wrong-password"}
            )
        assert response.status_code == 401
    with anonymous(live, address=address) as client:
        response = client.post("/api/auth/tokens", json={"email": email, "password": PASSWORD})
    retry_after(response)
    assert live.scalar("SELECT count(*) FROM api_token WHERE user_id = :id", id=user["id"]) == 0


def test_failures_are_recorded_although_the_request_fails(live: Any) -> None:
    email = unique_email()
    register(live, email=email)
    address = fake_address()
    assert login(live, email, "wrong-password", address).status_code == 401
    key = f"login:{email}|{address}"
    assert live.scalar("SELECT hits FROM throttle WHERE key = :k", k=key) == 1


def test_registering_taken_emails_spends_the_address_budget(live: Any) -> None:
    taken = unique_email()
    register(live, email=taken)
    address = fake_address()
    with anonymous(live, address=address) as client:
        for _ in range(ADDRESS_BUDGET):
            body = {"email": taken, "password": PASSWORD, "name": "Prober"}
            assert client.post("/api/auth/register", json=body).status_code == 409
        fresh = {"email": unique_email(), "password": PASSWORD, "name": "Prober"}
        refused = client.post("/api/auth/register", json=fresh)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert live.scalar('SELECT count(*) FROM "user" WHERE email = :e', e=fresh["email"]) == 0


@pytest.fixture
def untrusting(live: Any) -> Iterator[str]:
    """A second server on the same database, trusting no proxy (FORWARDED_ALLOW_IPS unset,
    the default)."""
    try:
        with beside(live, forwarded_allow_ips="", login_address_max_failures=3) as url:
            yield url
    finally:
        # Other tests log in from 127.0.0.1 without a forwarded address: give it back.
        with live.db.begin() as conn:
            conn.execute(sa.delete(Throttle).where(Throttle.key == "login-addr:127.0.0.1"))


def test_forwarded_for_from_an_untrusted_peer_is_ignored(live: Any, untrusting: str) -> None:
    email = unique_email()
    register(live, email=email)
    # Every request claims a new address, but the peer (127.0.0.1) is no trusted proxy.
    with httpx.Client(base_url=untrusting, timeout=30) as client:
        for _ in range(3):
            response = client.post(
                "/api/auth/login",
                json={"email": unique_email("guess"), "password": "wrong-password"},
                headers={"X-Forwarded-For": fake_address()},
            )
            assert response.status_code == 401
        refused = client.post(
            "/api/auth/login",
            json={"email": email, "password": PASSWORD},
            headers={"X-Forwarded-For": fake_address()},
        )
    assert refused.status_code == 429
    assert live.scalar("SELECT hits FROM throttle WHERE key = 'login-addr:127.0.0.1'") >= 3


def _expire_blocks(live: Any, key: str) -> None:
    """Let the clock pass a block: move its end into the past."""
    with live.db.begin() as conn:
        conn.execute(
            sa.update(Throttle)
            .where(Throttle.key == key)
            .values(blocked_until=datetime.now(UTC) - timedelta(seconds=1))
        )
