"""Accounts over the JSON API: register, log in and out, /api/me and personal API tokens."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from tests.helpers import (
    PASSWORD,
    anonymous,
    api_user,
    browser_login,
    error_code,
    register,
    unique_email,
)
from tests.servers import LiveServer


def test_register_returns_the_user_in_camel_case(live: LiveServer) -> None:
    email = unique_email()
    with anonymous(live) as client:
        response = client.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Ada"}
        )
    assert response.status_code == 201
    user = response.json()
    assert set(user) == {"id", "email", "name", "isPlatformAdmin", "createdAt"}
    assert (user["email"], user["name"], user["isPlatformAdmin"]) == (email, "Ada", False)
    stored = live.scalar('SELECT password_hash FROM "user" WHERE id = :id', id=user["id"])
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_duplicate_email_is_refused_case_insensitively(live: LiveServer) -> None:
    email = unique_email()
    register(live, email=email)
    with anonymous(live) as client:
        response = client.post(
            "/api/auth/register",
            json={"email": email.upper(), "password": PASSWORD, "name": "Again"},
        )
    assert response.status_code == 409
    assert error_code(response) == "email_taken"
    count = live.scalar('SELECT count(*) FROM "user" WHERE lower(email) = :e', e=email.lower())
    assert count == 1


def test_concurrent_registrations_of_one_email_make_one_account(live: LiveServer) -> None:
    email = unique_email("race")

    def attempt(_: int) -> int:
        with anonymous(live) as client:
            body = {"email": email, "password": PASSWORD, "name": "Racer"}
            return client.post("/api/auth/register", json=body).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(pool.map(attempt, range(6)))
    assert statuses == [201] + [409] * 5
    assert live.scalar('SELECT count(*) FROM "user" WHERE lower(email) = :e', e=email) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD, "name": "X"}, "email"),
        ({"email": "{email}", "password": "short", "name": "X"}, "password"),
        ({"email": "{email}", "password": "1234567", "name": "X"}, "password"),
        ({"email": "{email}", "password": PASSWORD, "name": "   "}, "name"),
        ({"email": "{email}", "password": PASSWORD}, "name"),
        ({"email": "{email}", "password": PASSWORD, "name": "X", "admin": True}, "admin"),
        ({"email": "{email}", "password": PASSWORD, "name": "nul\x00byte"}, "name"),
        ({"email": "{email}", "password": PASSWORD, "name": "x" * 201}, "name"),
        ({"email": "{email}", "password": 12345678, "name": "X"}, "password"),
    ],
)
def test_bad_registrations_are_422_and_write_nothing(
    live: LiveServer, body: dict[str, Any], field: str
) -> None:
    email = unique_email("bad")
    body = {k: (email if v == "{email}" else v) for k, v in body.items()}
    with anonymous(live) as client:
        response = client.post("/api/auth/register", json=body)
    assert response.status_code == 422, response.text
    assert error_code(response) in ("invalid_input", "weak_password")
    assert field in response.text
    assert live.scalar('SELECT count(*) FROM "user" WHERE lower(email) = :e', e=email) == 0


def test_a_password_of_exactly_eight_characters_is_enough(live: LiveServer) -> None:
    user = register(live, password="12345678")
    assert user["id"] > 0


def test_login_sets_an_httponly_samesite_cookie_and_me_works(live: LiveServer) -> None:
    email = unique_email()
    register(live, email=email, name="Grace")
    with anonymous(live) as client:
        response = client.post(
            "/api/auth/login", json={"email": email.upper(), "password": PASSWORD}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["user"]["email"] == email
        assert len(body["csrfToken"]) >= 32
        cookie = response.headers["set-cookie"].lower()
        assert "souq_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
        me = client.get("/api/me")
        assert me.status_code == 200
        assert me.json()["name"] == "Grace"


def test_wrong_password_and_unknown_email_look_the_same(live: LiveServer) -> None:
    email = unique_email()
    register(live, email=email)
    with anonymous(live) as client:
        wrong = client.post("/api/auth/login", json={"email": email, "password": "nope-nope"})
        unknown = client.post(
            "/api/auth/login", json={"email": unique_email(), "password": PASSWORD}
        )
        assert client.get("/api/me").status_code == 401
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert error_code(wrong) == "invalid_credentials"


def test_me_without_credentials_is_401(live: LiveServer) -> None:
    with anonymous(live) as client:
        response = client.get("/api/me")
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"


def test_logout_ends_the_cookie_session(live: LiveServer) -> None:
    email = unique_email()
    register(live, email=email)
    browser = browser_login(live, email)
    with browser:
        assert browser.client.get("/api/me").status_code == 200
        out = browser.client.post("/api/auth/logout", headers=browser.csrf_headers)
        assert out.status_code == 204
        assert browser.client.get("/api/me").status_code == 401


def test_token_from_credentials_is_shown_once_and_stored_hashed(live: LiveServer) -> None:
    email = unique_email()
    user = register(live, email=email)
    with anonymous(live) as client:
        response = client.post(
            "/api/auth/tokens", json={"email": email, "password": PASSWORD, "name": "ci"}
        )
    assert response.status_code == 201
    token = response.json()["token"]
    assert token.startswith("souq_") and len(token) > 40
    rows = live.rows("SELECT name, token_hash FROM api_token WHERE user_id = :id", id=user["id"])
    assert [(r.name, r.token_hash) for r in rows] == [
        ("ci", hashlib.sha256(token.encode()).hexdigest())
    ]
    with live.client(headers={"Authorization": f"Bearer {token}"}) as client:
        me = client.get("/api/me")
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


def test_token_with_wrong_password_is_401_and_creates_nothing(live: LiveServer) -> None:
    email = unique_email()
    user = register(live, email=email)
    with anonymous(live) as client:
        response = client.post("/api/auth/tokens", json={"email": email, "password": "wrong-pass"})
    assert response.status_code == 401
    assert live.scalar("SELECT count(*) FROM api_token WHERE user_id = :id", id=user["id"]) == 0


def test_token_without_credentials_or_session_is_401(live: LiveServer) -> None:
    with anonymous(live) as client:
        response = client.post("/api/auth/tokens", json={})
    assert response.status_code == 401


def test_token_from_a_logged_in_session(live: LiveServer) -> None:
    email = unique_email()
    register(live, email=email)
    browser = browser_login(live, email)
    with browser:
        response = browser.client.post(
            "/api/auth/tokens", json={"name": "laptop"}, headers=browser.csrf_headers
        )
    assert response.status_code == 201
    with live.client(headers={"Authorization": f"Bearer {response.json()['token']}"}) as client:
        assert client.get("/api/me").json()["email"] == email


@pytest.mark.parametrize(
    "authorization", ["Bearer souq_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer", "Token abc"]
)
def test_bad_bearer_tokens_are_401(live: LiveServer, authorization: str) -> None:
    with live.client(headers={"Authorization": authorization}) as client:
        response = client.get("/api/me")
    assert response.status_code == 401


def test_bearer_logout_revokes_that_token(live: LiveServer) -> None:
    account = api_user(live)
    with account:
        assert account.client.get("/api/me").status_code == 200
        assert account.client.post("/api/auth/logout").status_code == 204
        assert account.client.get("/api/me").status_code == 401


def test_a_login_upgrades_a_hash_made_with_other_argon2_parameters(live: LiveServer) -> None:
    """Changing PASSWORD_HASH_* never breaks existing passwords: each hash carries its own
    parameters, and a successful login rehashes with the current ones."""
    from argon2 import PasswordHasher
    from argon2.low_level import Type

    from tests.helpers import browser_login, register

    user = register(live)
    old = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=2, type=Type.ID)
    with live.db.begin() as conn:
        conn.execute(
            sa.text('UPDATE "user" SET password_hash = :h WHERE id = :i'),
            {"h": old.hash(PASSWORD), "i": user["id"]},
        )
    with browser_login(live, user["email"]) as session:
        assert session.user["id"] == user["id"]
    upgraded = live.scalar('SELECT password_hash FROM "user" WHERE id = :i', i=user["id"])
    assert upgraded.startswith("$argon2id$") and "m=1024,t=1,p=1" in upgraded
    with browser_login(live, user["email"]) as again:  # and the new hash still verifies
        assert again.user["id"] == user["id"]
