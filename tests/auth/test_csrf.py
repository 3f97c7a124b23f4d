"""Cookie-authenticated writes need the session's CSRF token; bearer-token requests do not."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import api_user, browser_login, error_code, register, unique_email
from tests.servers import LiveServer


def store_count(live: LiveServer, name: str) -> int:
    count: int = live.scalar("SELECT count(*) FROM store WHERE name = :n", n=name)
    return count


@pytest.mark.parametrize("headers", [{}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": ""}])
def test_cookie_writes_without_the_right_token_are_403_and_write_nothing(
    live: LiveServer, headers: dict[str, str]
) -> None:
    email = unique_email()
    register(live, email=email)
    name = f"CSRF {uuid.uuid4().hex}"
    with browser_login(live, email) as browser:
        response = browser.client.post("/api/stores", json={"name": name}, headers=headers)
        assert response.status_code == 403
        assert error_code(response) == "csrf_failed"
        assert store_count(live, name) == 0
        # Reads need no token, and the session is still there.
        assert browser.client.get("/api/me").status_code == 200


def test_cookie_writes_with_the_token_succeed(live: LiveServer) -> None:
    email = unique_email()
    register(live, email=email)
    name = f"CSRF ok {uuid.uuid4().hex}"
    with browser_login(live, email) as browser:
        response = browser.client.post(
            "/api/stores", json={"name": name}, headers=browser.csrf_headers
        )
    assert response.status_code == 201
    assert store_count(live, name) == 1


def test_another_sessions_token_does_not_work(live: LiveServer) -> None:
    email = unique_email()
    register(live, email=email)
    name = f"CSRF swap {uuid.uuid4().hex}"
    with browser_login(live, email) as first, browser_login(live, email) as second:
        assert first.csrf != second.csrf
        response = first.client.post(
            "/api/stores", json={"name": name}, headers=second.csrf_headers
        )
    assert response.status_code == 403
    assert store_count(live, name) == 0


def test_logout_by_cookie_needs_the_token(live: LiveServer) -> None:
    email = unique_email()
    register(live, email=email)
    with browser_login(live, email) as browser:
        assert browser.client.post("/api/auth/logout").status_code == 403
        assert browser.client.get("/api/me").status_code == 200


def test_token_creation_from_a_session_needs_the_csrf_token(live: LiveServer) -> None:
    email = unique_email()
    user = register(live, email=email)
    with browser_login(live, email) as browser:
        response = browser.client.post("/api/auth/tokens", json={})
    assert response.status_code == 403
    assert live.scalar("SELECT count(*) FROM api_token WHERE user_id = :id", id=user["id"]) == 0


def test_bearer_requests_are_exempt(live: LiveServer) -> None:
    name = f"Bearer {uuid.uuid4().hex}"
    with api_user(live) as account:
        response = account.client.post("/api/stores", json={"name": name})
    assert response.status_code == 201
    assert store_count(live, name) == 1


def test_a_bad_bearer_token_does_not_fall_back_to_the_cookie(live: LiveServer) -> None:
    email = unique_email()
    register(live, email=email)
    with browser_login(live, email) as browser:
        response = browser.client.get("/api/me", headers={"Authorization": "Bearer souq_nope"})
    assert response.status_code == 401
