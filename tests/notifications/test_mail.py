"""Email: written with the change that causes it, sent once over real SMTP (aiosmtpd started
by the test) or kept in the database outbox, retried, shown to platform admins."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest
from pydantic import SecretStr

from tests.helpers import browser_login, unique_email
from tests.notifications.support import (
    Mailbox,
    buy,
    messages,
    smtp_server,
    wait_until,
)
from tests.payments.stripe_helpers import (
    completed_event,
    deliver,
    onboarded_team,
    platform_admin,
)
from tests.servers import Cli, LiveServer, Servers, cli_for

STORE = "Olive House"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
def smtp_live(database_engine: str, servers: Servers, mailbox: Mailbox) -> Iterator[LiveServer]:
    """A server of its own whose mail goes to the test's SMTP server."""
    with servers.fresh(database_engine, smtp_url=SecretStr(mailbox.url)) as server:
        yield server


def test_a_paid_order_mails_the_buyer_and_the_stores_managers_once(
    smtp_live: LiveServer, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = smtp_live
    team = onboarded_team(live, name=STORE)
    buyer = unique_email("buyer")
    order_id = buy(live, team, buyer, price="1234.50")

    receipt = wait_until(lambda: mailbox.to(buyer), what="the receipt")[0]
    assert receipt["Subject"] == f"Your receipt for order #{order_id} from {STORE}"
    assert receipt["From"] == "Souq <no-reply@souq.localhost>"
    text = receipt.get_body(preferencelist=("plain",))
    html = receipt.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert "$1,234.50" in text.get_content()
    assert "$1,234.50" in html.get_content() and "<table" in html.get_content()

    def new_orders(address: str) -> list[str]:
        return [str(m["Subject"]) for m in mailbox.to(address) if "paid order" in m["Subject"]]

    for manager in (team.owner.email, team.admin.email):
        got = wait_until(partial(new_orders, manager), what=f"the mail to {manager}")
        assert got == [f"New paid order #{order_id}: $1,234.50"]
    assert new_orders(team.seller.email) == []

    # The same checkout.session.completed again, and once more under another event id (as
    # Stripe may send two events for one change): nothing is written or sent twice.
    event = completed_event(live, live.scalar(
        "SELECT stripe_checkout_session_id FROM orders WHERE id = :i", i=order_id
    ))  # fmt: skip
    assert deliver(live, event).status_code == 200
    assert deliver(live, {**event, "id": event["id"] + "_again"}).status_code == 200
    monkeypatch.setenv("SMTP_URL", mailbox.url)
    sent = cli_for(live)("notifications", "send")
    assert sent.returncode == 0, sent.stderr
    assert len(mailbox.to(buyer)) == 1
    rows = messages(live, kind="order_paid_buyer", to_email=buyer)
    assert [(r["key"], r["status"], r["attempts"]) for r in rows] == [(rows[0]["key"], "sent", 1)]
    assert rows[0]["key"].startswith(f"order-{order_id}-paid-buyer/")


def test_without_smtp_mail_is_kept_in_the_outbox_for_platform_admins(live: LiveServer) -> None:
    team = onboarded_team(live, name=STORE)
    buyer = unique_email("buyer")
    order_id = buy(live, team, buyer)
    admin = platform_admin(live)

    def outbox() -> list[dict[str, object]]:
        response = admin.client.get("/api/admin/outbox", params={"limit": 100})
        assert response.status_code == 200, response.text
        return [
            m for m in response.json()["data"]
            if m["toEmail"] in (buyer, team.owner.email) and m["status"] == "kept"
            and str(m["key"]).startswith(f"order-{order_id}-")
        ]  # fmt: skip

    kept = wait_until(lambda: len(outbox()) >= 2 and outbox(), what="kept messages")
    subjects = {m["toEmail"]: m["subject"] for m in kept}
    assert subjects[buyer] == f"Your receipt for order #{order_id} from {STORE}"
    assert subjects[team.owner.email].startswith(f"New paid order #{order_id}")
    assert all(m["textBody"] and "<html" in m["htmlBody"] for m in kept)

    page = browser_login(live, admin.email)
    response = page.client.get("/admin/outbox")
    assert response.status_code == 200
    assert f"Your receipt for order #{order_id}" in response.text
    assert team.owner.client.get("/api/admin/outbox").status_code == 403


def test_a_failing_smtp_server_is_retried_then_shown_as_failed(
    database_engine: str, servers: Servers, mailbox: Mailbox
) -> None:
    # Every server running jobs may send (on PostgreSQL they share one queue), so the broken
    # relay and the repaired one are the same SMTP server, refusing, then accepting.
    mailbox.refusing = True
    with servers.fresh(
        database_engine,
        smtp_url=SecretStr(mailbox.url),
        mail_max_attempts=3,
        outbox_retry_base_seconds=0,
    ) as live:
        team = onboarded_team(live, name=STORE)  # payouts enabled: the owner and the admin are told
        rows = wait_until(
            lambda: [
                r for r in messages(live, to_email=team.owner.email) if r["status"] == "failed"
            ],
            what="the failed message",
        )
        assert rows[0]["kind"] == "store_payouts_enabled" and rows[0]["attempts"] == 3
        admin = platform_admin(live)
        failed = admin.client.get("/api/admin/outbox", params={"status": "failed"}).json()["data"]
        mine = next(m for m in failed if m["toEmail"] == team.owner.email)
        assert "554" in mine["lastError"] and "refused" in mine["lastError"].lower()
        assert mailbox.received == []

        # The relay works again; an admin retries the message.
        mailbox.refusing = False
        retried = admin.client.post(f"/api/admin/outbox/{mine['id']}/retry")
        assert retried.status_code == 200 and retried.json()["status"] == "pending"
        wait_until(lambda: mailbox.to(team.owner.email), what="the retried message")
        wait_until(lambda: messages(live, key=mine["key"])[0]["status"] == "sent", what="sent")
        assert admin.client.post(f"/api/admin/outbox/{mine['id']}/retry").status_code == 409
        assert [m["Subject"] for m in mailbox.to(team.owner.email)] == [
            f"Payouts are enabled for {STORE}"
        ]
        row = messages(live, key=mine["key"])[0]
        assert (row["status"], row["attempts"]) == ("sent", 4)


def test_users_turn_off_kinds_that_are_not_transactional(live: LiveServer) -> None:
    team = onboarded_team(live, name=STORE)
    owner = team.owner.client
    prefs = {p["kind"]: p for p in owner.get("/api/me/notifications").json()}
    assert prefs["order_paid_buyer"]["transactional"] is True
    assert prefs["store_order_paid"] == {
        "kind": "store_order_paid",
        "description": prefs["store_order_paid"]["description"],
        "transactional": False,
        "enabled": True,
    }
    off = owner.put("/api/me/notifications", json={"off": ["store_order_paid"]})
    assert off.status_code == 200
    assert {p["kind"]: p["enabled"] for p in off.json()}["store_order_paid"] is False
    for refused in (
        {"off": ["order_paid_buyer"]},
        {"off": ["no_such_kind"]},
        {"kinds": {"store_order_paid": False}},
    ):
        response = owner.put("/api/me/notifications", json=refused)
        assert response.status_code == 422, response.text
    assert {p["kind"]: p["enabled"] for p in owner.get("/api/me/notifications").json()}[
        "order_paid_buyer"
    ] is True

    order_id = buy(live, team, unique_email("buyer"))
    key = f"order-{order_id}-paid-store/"
    written = wait_until(
        lambda: [r for r in messages(live, kind="store_order_paid") if r["key"].startswith(key)]
    )
    assert {r["to_email"] for r in written} == {team.admin.email}


def test_notifications_send_reports_what_it_did(cli: Cli) -> None:
    result = cli("notifications", "send")
    assert result.returncode == 0, result.stderr
    assert "mail:" in result.stdout and "webhooks:" in result.stdout
