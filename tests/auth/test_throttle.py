"""Failed logins are throttled per account email and per client address (5 in the tests)."""

from __future__ import annotations

from tests.helpers import PASSWORD, anonymous, error_code, fake_address, register, unique_email
from tests.servers import LiveServer

MAX_FAILURES = 5


def login(live: LiveServer, email: str, password: str, address: str | None = None) -> int:
    with anonymous(live, address=address) as client:
        response = client.post("/api/auth/login", json={"email": email, "password": password})
    if response.status_code == 429:
        assert error_code(response) == "login_throttled"
        assert "try again in 15 minutes" in response.json()["error"]["message"]
        assert response.headers["retry-after"]
    return response.status_code


def test_an_account_is_locked_after_repeated_failures_from_any_address(live: LiveServer) -> None:
    email = unique_email("victim")
    register(live, email=email)
    # Each failure from a new address, so only the account's own counter can trip.
    statuses = [login(live, email, "wrong-password") for _ in range(MAX_FAILURES)]
    assert statuses == [401] * MAX_FAILURES
    # Locked now: even the right password, from yet another address, is refused.
    assert login(live, email, PASSWORD) == 429
    assert login(live, email.upper(), PASSWORD) == 429
    # Another account is unaffected.
    other = unique_email()
    register(live, email=other)
    assert login(live, other, PASSWORD) == 200


def test_an_address_is_locked_after_failures_across_accounts(live: LiveServer) -> None:
    address = fake_address()
    for _ in range(MAX_FAILURES):
        assert login(live, unique_email("guess"), "wrong-password", address) == 401
    email = unique_email()
    register(live, email=email)
    assert login(live, email, PASSWORD, address) == 429
    # The same account from elsewhere is fine: only the address is locked.
    assert login(live, email, PASSWORD) == 200


def test_a_success_clears_the_account_counter(live: LiveServer) -> None:
    email = unique_email()
    register(live, email=email)
    for _ in range(MAX_FAILURES - 1):
        assert login(live, email, "wrong-password") == 401
    assert login(live, email, PASSWORD) == 200
    for _ in range(MAX_FAILURES - 1):
        assert login(live, email, "wrong-password") == 401
    assert login(live, email, PASSWORD) == 200


def test_token_requests_count_as_logins(live: LiveServer) -> None:
    email = unique_email()
    user = register(live, email=email)
    for _ in range(MAX_FAILURES):
        with anonymous(live) as client:
            response = client.post(
                "/api/auth/tokens", json={"email": email, "password": "wrong-password"}
            )
        assert response.status_code == 401
    with anonymous(live) as client:
        response = client.post("/api/auth/tokens", json={"email": email, "password": PASSWORD})
    assert response.status_code == 429
    assert live.scalar("SELECT count(*) FROM api_token WHERE user_id = :id", id=user["id"]) == 0


def test_failures_are_recorded_although_the_request_fails(live: LiveServer) -> None:
    email = unique_email()
    register(live, email=email)
    assert login(live, email, "wrong-password") == 401
    failures = live.scalar("SELECT failures FROM login_throttle WHERE key = :k", k="email:" + email)
    assert failures == 1
