"""The browser pages: log in, register, the dashboard of one's stores, log out."""

from __future__ import annotations

import re

from tests.helpers import PASSWORD, anonymous, api_user, create_store, register, unique_email
from tests.servers import LiveServer


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def test_login_page_logs_in_and_the_dashboard_lists_my_stores(live: LiveServer) -> None:
    with api_user(live, name="Page Owner") as owner:
        store = create_store(owner, name="Page Store")
        with anonymous(live) as browser:
            page = browser.get("/login")
            assert page.status_code == 200
            token = form_token(page.text)
            response = browser.post(
                "/login",
                data={"email": owner.email, "password": PASSWORD, "csrf_token": token},
            )
            assert response.status_code == 303
            assert response.headers["location"] == "/dashboard"
            dashboard = browser.get("/dashboard")
    assert dashboard.status_code == 200
    assert "Page Store" in dashboard.text
    assert f"/dashboard/settings/payments?storeId={store['id']}" in dashboard.text
    assert f"/dashboard/orders?storeId={store['id']}" in dashboard.text


def test_login_form_without_its_csrf_field_is_refused(live: LiveServer) -> None:
    email = unique_email()
    register(live, email=email)
    with anonymous(live) as browser:
        browser.get("/login")
        response = browser.post("/login", data={"email": email, "password": PASSWORD})
        assert response.status_code == 403
        assert browser.get("/api/me").status_code == 401


def test_login_form_with_a_wrong_password_shows_the_error(live: LiveServer) -> None:
    email = unique_email()
    register(live, email=email)
    with anonymous(live) as browser:
        token = form_token(browser.get("/login").text)
        response = browser.post(
            "/login", data={"email": email, "password": "wrong-pass", "csrf_token": token}
        )
    assert response.status_code == 401
    assert "wrong email or password" in response.text


def test_login_never_redirects_off_site(live: LiveServer) -> None:
    email = unique_email()
    register(live, email=email)
    with anonymous(live) as browser:
        token = form_token(browser.get("/login").text)
        response = browser.post(
            "/login",
            data={
                "email": email,
                "password": PASSWORD,
                "csrf_token": token,
                "next": "//evil.example/phish",
            },
        )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"


def test_register_page_creates_the_account_and_logs_in(live: LiveServer) -> None:
    email = unique_email()
    with anonymous(live) as browser:
        token = form_token(browser.get("/register").text)
        response = browser.post(
            "/register",
            data={"email": email, "password": PASSWORD, "name": "Form User", "csrf_token": token},
        )
        assert response.status_code == 303
        assert browser.get("/api/me").json()["email"] == email
        short = browser.post(
            "/register",
            data={
                "email": unique_email(),
                "password": "short",
                "name": "X",
                "csrf_token": form_token(browser.get("/register").text),
            },
        )
    assert short.status_code == 422
    assert "at least 8 characters" in short.text


def test_dashboard_sends_anonymous_visitors_to_login(live: LiveServer) -> None:
    with anonymous(live) as browser:
        response = browser.get("/dashboard")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_logout_form_needs_its_csrf_field(live: LiveServer) -> None:
    email = unique_email()
    register(live, email=email)
    with anonymous(live) as browser:
        token = form_token(browser.get("/login").text)
        browser.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
        dashboard_token = form_token(browser.get("/dashboard").text)
        assert browser.post("/logout", data={}).status_code == 403
        assert browser.get("/api/me").status_code == 200
        response = browser.post("/logout", data={"csrf_token": dashboard_token})
        assert response.status_code == 303
        assert browser.get("/api/me").status_code == 401
