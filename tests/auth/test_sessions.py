"""Sessions live on the server: logging out ends one (a copied cookie stops working), logging
out everywhere ends all, a password change ends all others. API tokens are named, may expire,
record their last use, and can be listed and revoked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from souq.auth.models import ApiToken
from tests.helpers import (
    PASSWORD,
    anonymous,
    api_user,
    browser_login,
    error_code,
    register,
    unique_email,
)


def copy_of(live: Any, client: httpx.Client) -> httpx.Client:
    """Another client holding the same cookie, as an attacker who captured it would."""
    copy: httpx.Client = live.client(cookies=dict(client.cookies.items()))
    return copy


def test_a_cookie_captured_before_logout_stops_working(live: Any) -> None:
    email = unique_email()
    register(live, email=email)
    with browser_login(live, email) as browser, copy_of(live, browser.client) as stolen:
        assert stolen.get("/api/me").status_code == 200
        assert (
            browser.client.post("/api/auth/logout", headers=browser.csrf_headers).status_code == 204
        )
        assert stolen.get("/api/me").status_code == 401
        assert browser.client.get("/api/me").status_code == 401


def test_the_logout_page_ends_the_session_on_the_server(live: Any) -> None:
    email = unique_email()
    register(live, email=email)
    with browser_login(live, email) as browser, copy_of(live, browser.client) as stolen:
        out = browser.client.post("/logout", data={"csrf_token": browser.csrf})
        assert out.status_code == 303
        assert stolen.get("/api/me").status_code == 401


def test_logging_out_everywhere_ends_every_session(live: Any) -> None:
    email = unique_email()
    register(live, email=email)
    with browser_login(live, email) as laptop, browser_login(live, email) as phone:
        assert phone.client.get("/api/me").status_code == 200
        answer = laptop.client.post("/api/auth/logout-all", headers=laptop.csrf_headers)
        assert answer.status_code == 200 and answer.json() == {"sessionsEnded": 2}
        assert phone.client.get("/api/me").status_code == 401
        assert laptop.client.get("/api/me").status_code == 401
        with browser_login(live, email) as again:  # logging in still works
            assert again.client.get("/api/me").status_code == 200


def test_a_password_change_ends_every_other_session(live: Any) -> None:
    email = unique_email()
    register(live, email=email)
    new_password = "a brand new passphrase"
    with browser_login(live, email) as here, browser_login(live, email) as elsewhere:
        wrong = here.client.post(
            "/api/auth/password",
            json={"currentPassword": "not-the-password", "newPassword": new_password},
            headers=here.csrf_headers,
        )
        assert wrong.status_code == 401
        assert elsewhere.client.get("/api/me").status_code == 200
        short = here.client.post(
            "/api/auth/password",
            json={"currentPassword": PASSWORD, "newPassword": "short"},
            headers=here.csrf_headers,
        )
        assert short.status_code == 422
        changed = here.client.post(
            "/api/auth/password",
            json={"currentPassword": PASSWORD, "newPassword": new_password},
            headers=here.csrf_headers,
        )
        assert changed.status_code == 200 and changed.json() == {"sessionsEnded": 1}
        assert here.client.get("/api/me").status_code == 200
        assert elsewhere.client.get("/api/me").status_code == 401
    with anonymous(live) as client:
        old = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        new = client.post("/api/auth/login", json={"email": email, "password": new_password})
    assert (old.status_code, new.status_code) == (401, 200)


def test_tokens_are_listed_named_and_revocable(live: Any) -> None:
    with api_user(live) as account:
        created = account.client.post(
            "/api/auth/tokens", json={"name": "deploy bot", "expiresInDays": 30}
        )
        assert created.status_code == 201, created.text
        token = created.json()
        assert token["name"] == "deploy bot" and token["token"].startswith("souq_")
        expires = datetime.fromisoformat(token["expiresAt"])
        assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
        listed = account.client.get("/api/auth/tokens").json()
        assert [(t["name"], t["current"]) for t in listed] == [
            ("tests", True),
            ("deploy bot", False),
        ]
        assert all("token" not in t for t in listed)  # shown once, never again
        assert listed[0]["lastUsedAt"] is not None  # the helper's token was just used
        with httpx.Client(
            base_url=live.url, headers={"Authorization": f"Bearer {token['token']}"}
        ) as bot:
            assert bot.get("/api/me").status_code == 200
            path = f"/api/auth/tokens/{token['id']}"
            assert account.client.delete(path).status_code == 204
            assert bot.get("/api/me").status_code == 401
            assert account.client.delete(path).status_code == 404


def test_someone_elses_token_cannot_be_revoked(live: Any) -> None:
    with api_user(live) as owner, api_user(live) as other:
        [theirs] = other.client.get("/api/auth/tokens").json()
        response = owner.client.delete(f"/api/auth/tokens/{theirs['id']}")
        assert response.status_code == 404 and error_code(response) == "not_found"
        assert other.client.get("/api/me").status_code == 200


def test_an_expired_token_stops_working(live: Any) -> None:
    with api_user(live) as account:
        with live.db.begin() as conn:
            conn.execute(
                sa.update(ApiToken)
                .where(ApiToken.user_id == account.id)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        response = account.client.get("/api/me")
        assert response.status_code == 401 and error_code(response) == "invalid_token"


def test_sessions_and_tokens_are_stored_hashed(live: Any) -> None:
    with api_user(live) as account, browser_login(live, account.email) as browser:
        cookie = browser.client.cookies.get("souq_session")
        assert cookie
        hashes = [
            row.key_hash
            for row in live.rows(
                "SELECT key_hash FROM user_session WHERE user_id = :u", u=account.id
            )
        ]
        assert len(hashes) == 1 and len(hashes[0]) == 64
        assert (
            live.scalar("SELECT count(*) FROM api_token WHERE token_hash = :t", t=account.token)
            == 0
        )
