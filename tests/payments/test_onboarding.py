"""Seller onboarding with Connect Express, against the embedded sandbox over HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.helpers import anonymous, api_user, browser_login, error_code, store_team
from tests.payments.stripe_helpers import (
    advance_clock,
    clear_faults,
    control,
    create_account,
    flush,
    onboarded_team,
    payments_status,
    sdk,
    set_faults,
    settle,
)
from tests.servers import Cli, LiveServer


def account_link(client: httpx.Client, store_id: int) -> str:
    response = client.post("/api/stripe/connect/account-link", json={"storeId": store_id})
    assert response.status_code == 200, response.text
    url: str = response.json()["url"]
    return url


def finish_onboarding_page(link: str, outcome: str = "complete") -> httpx.Response:
    """A seller on Stripe's hosted onboarding page: open it, press a button."""
    with httpx.Client(timeout=30) as browser:
        page = browser.get(link)
        assert page.status_code == 200, page.text
        token = re.search(r'name="token" value="([^"]+)"', page.text)
        assert token is not None, page.text
        return browser.post(link, data={"token": token.group(1), "outcome": outcome})


def test_full_onboarding_through_the_hosted_page_and_the_webhook(live: LiveServer) -> None:
    with store_team(live) as team:
        account_id = create_account(team)
        before = payments_status(team)
        assert before["hasAccount"] is True and before["chargesEnabled"] is False
        assert before["nextStep"]["action"] == "continue_onboarding"
        assert "external_account" in before["requirementsDue"]

        link = account_link(team.owner.client, team.id)
        done = finish_onboarding_page(link)
        assert done.status_code == 303
        assert done.headers["location"] == (
            f"{live.url}/dashboard/settings/payments/onboarding/success?storeId={team.id}"
        )
        flush(live)  # the signed account.updated webhook arrives
        status = payments_status(team)
        assert status == {
            **status,
            "stripeAccountId": account_id,
            "onboardingComplete": True,
            "chargesEnabled": True,
            "payoutsEnabled": True,
            "requirementsDue": [],
            "disabledReason": None,
        }
        assert status["nextStep"]["action"] == "open_dashboard"
        processed = live.scalar(
            "SELECT count(*) FROM stripe_event WHERE account = :a AND type = 'account.updated' "
            "AND processed_at IS NOT NULL",
            a=account_id,
        )
        assert processed >= 1


def test_the_success_page_reads_stripe_without_waiting_for_the_webhook(live: LiveServer) -> None:
    with store_team(live) as team:
        account_id = create_account(team)
        set_faults(live, webhook_failure_rate=1.0)
        try:
            control(live, f"/accounts/{account_id}/onboard", {"outcome": "complete"})
            flush(live)
            assert payments_status(team)["chargesEnabled"] is False  # no webhook reached us
            with browser_login(live, team.owner.email) as browser:
                page = browser.client.get(
                    f"/dashboard/settings/payments/onboarding/success?storeId={team.id}"
                )
            assert page.status_code == 200
            assert 'data-next-step="open_dashboard"' in page.text
            assert "Open Stripe dashboard" in page.text
            status = payments_status(team)
            assert status["chargesEnabled"] and status["payoutsEnabled"]
            assert status["onboardingComplete"]
        finally:
            clear_faults(live)


@pytest.mark.parametrize(
    ("outcome", "action", "button"),
    [
        ("requirements_due", "continue_onboarding", "Continue onboarding"),
        ("rejected", "contact_support", "Contact Stripe support"),
    ],
)
def test_unfinished_outcomes_show_the_right_next_step(
    live: LiveServer, outcome: str, action: str, button: str
) -> None:
    with store_team(live) as team:
        account_id = create_account(team)
        control(live, f"/accounts/{account_id}/onboard", {"outcome": outcome})
        flush(live)
        status = payments_status(team)
        assert status["chargesEnabled"] is False
        assert status["nextStep"]["action"] == action
        if outcome == "rejected":
            assert status["disabledReason"].startswith("rejected")
        else:
            assert status["requirementsDue"]
        with browser_login(live, team.owner.email) as browser:
            page = browser.client.get(f"/dashboard/settings/payments?storeId={team.id}")
        assert page.status_code == 200
        assert f'data-next-step="{action}"' in page.text
        assert button in page.text


def test_a_used_or_expired_link_sends_the_seller_to_refresh_for_a_new_one(live: LiveServer) -> None:
    with store_team(live) as team:
        create_account(team)
        refresh = f"{live.url}/dashboard/settings/payments/onboarding/refresh?storeId={team.id}"
        link = account_link(team.owner.client, team.id)
        with httpx.Client(timeout=30) as browser:
            assert browser.get(link).status_code == 200
            used = browser.get(link)  # single use
        assert used.status_code == 303 and used.headers["location"] == refresh

        expiring = account_link(team.owner.client, team.id)
        advance_clock(live, 301)
        with httpx.Client(timeout=30) as browser:
            expired = browser.get(expiring)
        assert expired.status_code == 303 and expired.headers["location"] == refresh

        with browser_login(live, team.owner.email) as browser:
            fresh = browser.client.get(refresh)
        assert fresh.status_code == 303
        new_link = fresh.headers["location"]
        assert new_link not in (link, expiring)
        assert finish_onboarding_page(new_link).status_code == 303


def _sign(payload: bytes, secret: str) -> str:
    t = int(time.time())
    signature = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={signature}"


def test_account_updated_twice_and_out_of_order_ends_at_stripes_state(live: LiveServer) -> None:
    with store_team(live) as team:
        account_id = create_account(team)
        control(live, f"/accounts/{account_id}/onboard", {"outcome": "requirements_due"})
        control(live, f"/accounts/{account_id}/onboard", {"outcome": "complete"})
        # A connected account's events are listed as that account (Stripe-Account header).
        events = sdk(live).v1.events.list(
            params={"type": "account.updated", "limit": 100},
            options={"stripe_account": account_id},
        )
        ours = [e.to_dict() for e in events.data]
        ours = [e for e in ours if e.get("account") == account_id]
        assert len(ours) >= 2
        newest_first = sorted(ours, key=lambda e: e["created"], reverse=True)
        secret = live.connect_webhook_secret
        # Newest first, then the older one, each delivered twice.
        with anonymous(live) as client:
            for event in [*newest_first, *newest_first]:
                body = json.dumps(event).encode()
                response = client.post(
                    "/api/stripe/connect/webhook",
                    content=body,
                    headers={
                        "Stripe-Signature": _sign(body, secret),
                        "Content-Type": "application/json",
                    },
                )
                assert response.status_code == 200, response.text
        # The endpoint only records them; the jobs apply them after the answers.
        settle(live)
        status = payments_status(team)
        assert status["chargesEnabled"] is True and status["requirementsDue"] == []
        rows = live.scalar("SELECT count(*) FROM stripe_event WHERE account = :a", a=account_id)
        assert rows == len({e["id"] for e in ours})


def test_events_for_unknown_accounts_are_recorded_and_acknowledged(live: LiveServer) -> None:
    secret = live.connect_webhook_secret
    event = {
        "id": "evt_unknown_account_1",
        "object": "event",
        "type": "account.updated",
        "account": "acct_not_ours",
        "created": int(time.time()),
        "api_version": "2023-08-16",
        "data": {"object": {"id": "acct_not_ours", "object": "account"}},
    }
    body = json.dumps(event).encode()
    with anonymous(live) as client:
        response = client.post(
            "/api/stripe/connect/webhook",
            content=body,
            headers={"Stripe-Signature": _sign(body, secret)},
        )
    assert response.status_code == 200, response.text
    settle(live)
    assert (
        live.scalar(
            "SELECT count(*) FROM stripe_event WHERE stripe_event_id = 'evt_unknown_account_1' "
            "AND processed_at IS NOT NULL"
        )
        == 1
    )


def test_a_forged_connect_webhook_is_refused(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        account_id = payments_status(team)["stripeAccountId"]
        event = {
            "id": "evt_forged_1",
            "object": "event",
            "type": "account.application.deauthorized",
            "account": account_id,
            "created": int(time.time()),
            "data": {"object": {"id": "ca_x", "object": "application"}},
        }
        body = json.dumps(event).encode()
        with anonymous(live) as client:
            response = client.post(
                "/api/stripe/connect/webhook",
                content=body,
                headers={"Stripe-Signature": _sign(body, "whsec_wrong")},
            )
        assert response.status_code == 400
        assert error_code(response) == "invalid_signature"
        assert payments_status(team)["chargesEnabled"] is True
        assert (
            live.scalar("SELECT count(*) FROM stripe_event WHERE stripe_event_id = 'evt_forged_1'")
            == 0
        )


def test_deauthorization_disconnects_the_store(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        account_id = payments_status(team)["stripeAccountId"]
        listing = team.seller.client.post(
            f"/api/stores/{team.id}/listings",
            json={"name": "Lamp", "price": "25.00", "currency": "usd"},
        ).json()
        control(live, f"/accounts/{account_id}/deauthorize")
        flush(live)
        status = payments_status(team)
        assert status["hasAccount"] is False and status["disconnected"] is True
        assert not (status["chargesEnabled"] or status["payoutsEnabled"])
        assert status["nextStep"]["action"] == "set_up_payouts"
        with anonymous(live) as buyer:
            refused = buyer.post(
                "/api/stripe/checkout/create",
                json={
                    "storeId": team.id,
                    "currency": "usd",
                    "customerEmail": "b@example.com",
                    "items": [{"listingId": listing["id"], "quantity": 1}],
                },
            )
        assert refused.status_code == 409
        assert refused.json()["error"]["message"] == "this store cannot take payments yet"
        with browser_login(live, team.owner.email) as browser:
            page = browser.client.get(f"/dashboard/settings/payments?storeId={team.id}")
        assert "disconnected" in page.text


def test_login_link_opens_the_express_dashboard_once_onboarded(live: LiveServer) -> None:
    with store_team(live) as team:
        create_account(team)
        early = team.owner.client.post("/api/stripe/connect/login-link", json={"storeId": team.id})
        assert early.status_code == 409 and error_code(early) == "onboarding_incomplete"
    with onboarded_team(live) as team:
        response = team.admin.client.post(
            "/api/stripe/connect/login-link", json={"storeId": team.id}
        )
        assert response.status_code == 200, response.text
        page = httpx.get(response.json()["url"], timeout=30)
        assert page.status_code == 200 and "balance" in page.text.lower()


def test_two_concurrent_create_account_calls_make_one_stripe_account(live: LiveServer) -> None:
    with store_team(live) as team:

        def call(_: int) -> httpx.Response:
            with live.client(headers={"Authorization": f"Bearer {team.owner.token}"}) as c:
                answer: httpx.Response = c.post(
                    "/api/stripe/connect/create-account", json={"storeId": team.id}
                )
                return answer

        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(call, range(6)))
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        ids = {a.json()["stripeAccountId"] for a in answers}
        assert len(ids) == 1
        accounts = sdk(live).v1.accounts.list(params={"limit": 100})
        made = [
            a
            for a in (x.to_dict() for x in accounts.auto_paging_iter())
            if a["metadata"].get("store_id") == str(team.id)
        ]
        assert [a["id"] for a in made] == list(ids)
        # Called again later: the same account, nothing new.
        assert create_account(team) in ids


CONNECT_ROUTES = [
    "/api/stripe/connect/create-account",
    "/api/stripe/connect/account-link",
    "/api/stripe/connect/login-link",
]


def test_connect_routes_refuse_anyone_but_the_stores_owners_and_admins(live: LiveServer) -> None:
    with store_team(live) as team, store_team(live, name="Other") as other:
        for route in CONNECT_ROUTES:
            with anonymous(live) as client:
                assert client.post(route, json={"storeId": team.id}).status_code == 401
            seller = team.seller.client.post(route, json={"storeId": team.id})
            assert seller.status_code == 403, (route, seller.text)
            stranger = other.owner.client.post(route, json={"storeId": team.id})
            assert stranger.status_code == 404, (route, stranger.text)
        assert payments_status(team)["hasAccount"] is False  # nothing was created
        # Payment status: members only.
        assert team.seller.client.get(f"/api/stores/{team.id}/payments").status_code == 200
        assert other.owner.client.get(f"/api/stores/{team.id}/payments").status_code == 404
        with anonymous(live) as client:
            assert client.get(f"/api/stores/{team.id}/payments").status_code == 401


@pytest.mark.parametrize(
    "page",
    [
        "/dashboard/settings/payments/onboarding/refresh",
        "/dashboard/settings/payments/onboarding/success",
    ],
)
def test_onboarding_pages_require_an_owner_or_admin_of_that_store(
    live: LiveServer, page: str
) -> None:
    with onboarded_team(live) as team, store_team(live, name="Other") as other:
        with anonymous(live) as client:
            response = client.get(f"{page}?storeId={team.id}")
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
        with browser_login(live, team.seller.email) as seller:
            assert seller.client.get(f"{page}?storeId={team.id}").status_code == 403
        with browser_login(live, other.owner.email) as stranger:
            assert stranger.client.get(f"{page}?storeId={team.id}").status_code == 404
        with browser_login(live, team.admin.email) as admin:
            assert admin.client.get(f"{page}?storeId={team.id}").status_code in (200, 303)


def test_the_payments_page_is_for_members_and_buttons_for_managers(live: LiveServer) -> None:
    with store_team(live) as team, store_team(live, name="Other") as other:
        page = f"/dashboard/settings/payments?storeId={team.id}"
        with browser_login(live, team.owner.email) as owner:
            shown = owner.client.get(page)
            assert shown.status_code == 200 and "Set up payouts" in shown.text
            # "Set up payouts" creates the account and sends the owner to Stripe's onboarding.
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', shown.text)
            assert csrf is not None
            started = owner.client.post(
                f"/dashboard/settings/payments/onboarding/start?storeId={team.id}",
                data={"csrf_token": csrf.group(1)},
            )
            assert started.status_code == 303
            assert "/_sandbox/onboarding/" in started.headers["location"]
        assert payments_status(team)["hasAccount"] is True
        with browser_login(live, team.seller.email) as seller:
            shown = seller.client.get(page)
            assert shown.status_code == 200 and "Continue onboarding" not in shown.text
        with browser_login(live, other.owner.email) as stranger:
            assert stranger.client.get(page).status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 422), ({"storeId": "abc"}, 422), ({"storeId": 1.5}, 422), ({"storeId": None}, 422),
     ({"storeId": 999_999}, 404), ({"storeId": -1}, 422), ({"storeId": 1, "extra": 1}, 422)],
)  # fmt: skip
def test_bad_input_is_a_clear_4xx_and_writes_nothing(
    live: LiveServer, body: dict[str, Any], status: int
) -> None:
    with api_user(live) as user:
        response = user.client.post("/api/stripe/connect/create-account", json=body)
    assert response.status_code == status, response.text
    assert error_code(response) in ("invalid_input", "not_found")
    if status == 422:
        assert response.json()["error"]["details"]


@pytest.mark.fresh_server
def test_sync_accounts_recovers_missed_webhooks(live: LiveServer, cli: Cli) -> None:
    with store_team(live) as team:
        account_id = create_account(team)
        set_faults(live, webhook_failure_rate=1.0)
        try:
            control(live, f"/accounts/{account_id}/onboard", {"outcome": "complete"})
            flush(live)
        finally:
            clear_faults(live)
        assert payments_status(team)["chargesEnabled"] is False
        result = cli("stripe", "sync-accounts")
        assert result.returncode == 0, result.stderr
        assert f"store {team.id}:" in result.stdout
        assert "stripe_charges_enabled" in result.stdout
        assert payments_status(team)["chargesEnabled"] is True
        again = cli("stripe", "sync-accounts")
        assert f"store {team.id}:" not in again.stdout
