"""The back office's pages over HTTP, as a platform admin's browser uses them (the session
cookie and the form's CSRF field): a store's commission, the fee report, failed transfers with
Retry, the Stripe webhook inbox with Replay, and the outgoing webhook endpoints. Each answers
what its JSON API twin answers, and a refused form changes nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from souq.integrations.sealing import sealer
from souq.money import display
from tests.carts.test_cart import refused_transfer_checkout
from tests.carts.test_holds import hold, paid_cart, transfers_to
from tests.helpers import BrowserSession, anonymous, browser_login, store_team
from tests.ledger.money_helpers import paid_order
from tests.payments.stripe_helpers import (
    clear_faults,
    control,
    failed_account_event,
    flush,
    listing,
    onboarded_team,
    payments_status,
    platform_admin,
)
from tests.servers import LiveServer


@contextmanager
def admin_browser(live: LiveServer) -> Iterator[BrowserSession]:
    with platform_admin(live) as admin, browser_login(live, admin.email) as browser:
        yield browser


def post(browser: BrowserSession, path: str, form: dict[str, Any] | None = None) -> httpx.Response:
    return browser.client.post(path, data={"csrf_token": browser.csrf, **(form or {})})


def field_error(html: str, name: str) -> str:
    match = re.search(rf'id="f-{re.escape(name)}-error">([^<]*)<', html)
    assert match, html
    return match.group(1)


def test_a_stores_commission_is_shown_and_changed_through_the_form(live: LiveServer) -> None:
    with store_team(live, name="Commissioned") as team, admin_browser(live) as browser:
        listed = browser.client.get("/admin")
        assert f'href="/admin/stores/{team.id}/commission"' in listed.text
        page = browser.client.get(f"/admin/stores/{team.id}/commission")
        assert page.status_code == 200
        path = f"/admin/stores/{team.id}/commission"

        # A currency Stripe cannot charge in: refused inline, what was typed kept, nothing saved.
        refused = post(browser, path, {"bps": "250", "fixed": "usd 0.30, xyz 1", "minimum": ""})
        assert refused.status_code == 422
        assert field_error(refused.text, "fixed") != ""
        assert 'value="usd 0.30, xyz 1"' in refused.text
        assert live.scalar("SELECT platform_fee_bps FROM store WHERE id = :s", s=team.id) is None
        # Without the form's CSRF field: refused, nothing saved.
        forged = browser.client.post(path, data={"bps": "250"})
        assert forged.status_code == 403 and "CSRF" in forged.text
        assert live.scalar("SELECT platform_fee_bps FROM store WHERE id = :s", s=team.id) is None
        bad_rate = post(browser, path, {"bps": "1%"})
        assert bad_rate.status_code == 422 and field_error(bad_rate.text, "bps") != ""

        saved = post(
            browser,
            path,
            {
                "bps": "250",
                "fixed": "usd 0.30",
                "minimum": "usd 1.00",
                "transfer_timing": "on_fulfilment",
            },
        )
        assert saved.status_code == 303
        row = live.rows(
            "SELECT platform_fee_bps, transfer_timing FROM store WHERE id = :s", s=team.id
        )[0]
        assert tuple(row) == (250, "on_fulfilment")
        fixed = live.scalar("SELECT commission_fixed FROM store WHERE id = :s", s=team.id)
        assert (json.loads(fixed) if isinstance(fixed, str) else fixed) == {"usd": 30}
        shown = browser.client.get(path).text
        assert 'data-bps="250"' in shown and 'value="usd 0.30"' in shown
        assert "$1.00" in shown

        # Empty fields put the platform's rule back.
        assert post(browser, path, {"bps": "", "fixed": "", "minimum": ""}).status_code == 303
        assert live.scalar("SELECT platform_fee_bps FROM store WHERE id = :s", s=team.id) is None


def test_the_fee_report_draws_the_ledgers_numbers_and_links_the_csv(live: LiveServer) -> None:
    with onboarded_team(live, name="Reported") as team, admin_browser(live) as browser:
        paid_order(live, team, price="12.50", quantity=2)
        api = browser.client.get("/api/admin/reports/fees", params={"storeId": team.id})
        rows = api.json()["data"]
        assert rows, api.text
        page = browser.client.get("/admin/reports/fees", params={"storeId": team.id})
        assert page.status_code == 200
        html = page.text
        # One chart (SVG, no script) and its table, with the API's numbers to the cent.
        assert html.count("<svg viewBox") == 1 and "<script" not in html
        assert 'data-series="Gross volume"' in html
        table = html[html.index('id="fees-usd"') :]
        totals = re.findall(r'<td class="num total">([^<]+)</td>', table)
        expected = [
            display(sum(r[column] for r in rows), "usd")
            for column in ("grossVolume", "commissionEarned", "processingFees", "netMargin")
        ]
        assert totals == expected and expected[0] == "$25.00"
        # A bar per day and series, each with its amount.
        assert html.count("<rect x=") == 4
        assert f"Gross volume {expected[0]}</title>" in html
        csv_link = re.search(r'href="([^"]+)" download id="csv"', html)
        assert csv_link
        csv = browser.client.get(csv_link.group(1).replace("&amp;", "&"))
        assert csv.headers["content-type"].startswith("text/csv")
        assert csv.text.startswith("day,currency,store_id,gross_volume")
        assert f",usd,{team.id},2500," in csv.text

        # A bad filter is an inline error on the same page, never a 500.
        bad = browser.client.get("/admin/reports/fees", params={"from": "2026-13-01"})
        assert bad.status_code == 422 and field_error(bad.text, "from") == "a day as YYYY-MM-DD"
        backwards = browser.client.get(
            "/admin/reports/fees", params={"from": "2026-02-02", "to": "2026-02-01"}
        )
        assert backwards.status_code == 422 and "from must not be after to" in backwards.text
        empty = browser.client.get(
            "/admin/reports/fees", params={"from": "2001-01-01", "to": "2001-01-02"}
        )
        assert 'id="no-rows"' in empty.text


@pytest.mark.fresh_server
def test_a_refused_transfer_is_retried_from_its_page(live: LiveServer) -> None:
    with (
        onboarded_team(live, name="Fine") as a,
        onboarded_team(live, name="Restricted") as b,
        anonymous(live) as buyer,
        admin_browser(live) as browser,
    ):
        body, account_b = refused_transfer_checkout(live, a, b, buyer)
        flush(live)
        order_b = body["orders"][1]["orderId"]
        transfer_id = live.scalar("SELECT id FROM store_transfer WHERE order_id = :o", o=order_b)
        page = browser.client.get("/admin/transfers")
        assert f'data-transfer-id="{transfer_id}" data-status="failed"' in page.text
        assert "insufficient_capabilities_for_transfer" in page.text

        # Still refused: the page says so, and the row stays failed.
        still = post(browser, f"/admin/transfers/{transfer_id}/retry")
        assert still.status_code == 303 and "status=failed" in still.headers["location"]

        control(live, f"/accounts/{account_b}/onboard", {"outcome": "complete"})
        sent = post(browser, f"/admin/transfers/{transfer_id}/retry")
        assert sent.status_code == 303 and "status=sent" in sent.headers["location"]
        assert (
            live.scalar("SELECT status FROM store_transfer WHERE id = :i", i=transfer_id) == "sent"
        )
        # Pressed again (a second tab): nothing is sent twice.
        assert post(browser, f"/admin/transfers/{transfer_id}/retry").status_code == 303
        assert live.scalar("SELECT attempts FROM store_transfer WHERE id = :i", i=transfer_id) == 3
        assert post(browser, "/admin/transfers/2147483000/retry").status_code == 404


def test_retry_leaves_a_held_transfer_held(live: LiveServer) -> None:
    with (
        onboarded_team(live, name="Holding") as team,
        anonymous(live) as buyer,
        admin_browser(live) as browser,
    ):
        hold(live, team)
        body = paid_cart(live, buyer, listing(team, price="8.00"))
        order_id = body["orders"][0]["orderId"]
        transfer_id = live.scalar("SELECT id FROM store_transfer WHERE order_id = :o", o=order_id)
        assert live.scalar("SELECT status FROM store_transfer WHERE id = :i", i=transfer_id) == (
            "held"
        )
        held_page = browser.client.get("/admin/transfers", params={"status": "held"}).text
        row = held_page[held_page.index(f'data-transfer-id="{transfer_id}"') :]
        assert "Retry" not in row[: row.index("</tr>")]
        # Posted anyway (a stale tab): the money stays held until fulfilment.
        assert post(browser, f"/admin/transfers/{transfer_id}/retry").status_code == 303
        assert live.scalar("SELECT status FROM store_transfer WHERE id = :i", i=transfer_id) == (
            "held"
        )
        assert transfers_to(live, team) == []
        assert browser.client.get("/admin/transfers?status=all").status_code == 200
        assert browser.client.get("/admin/transfers?status=lost").status_code == 422


@pytest.mark.fresh_server
def test_a_failed_event_is_shown_with_its_error_and_replayed(live: LiveServer) -> None:
    with store_team(live) as team, admin_browser(live) as browser:
        try:
            event_id = failed_account_event(live, team)
            inbox = browser.client.get("/admin/events", params={"failed": "true"}).text
            assert f'data-event-id="{event_id}" data-state="failed"' in inbox
            assert "StripeUnavailable" in inbox
            # Replayed while Stripe still fails: the page says it failed again.
            again = post(browser, f"/admin/events/{event_id}/replay")
            assert again.status_code == 303
            shown = browser.client.get(again.headers["location"]).text
            assert 'data-processed="no"' in shown and "failed again" in shown
        finally:
            clear_faults(live)
        replayed = post(browser, f"/admin/events/{event_id}/replay")
        shown = browser.client.get(replayed.headers["location"]).text
        assert f'data-event-id="{event_id}" data-processed="yes"' in shown
        assert payments_status(team)["chargesEnabled"] is True
        assert event_id not in browser.client.get("/admin/events?failed=true").text
        assert post(browser, "/admin/events/evt_not_there/replay").status_code == 404


def test_webhook_endpoints_are_managed_and_their_deliveries_redelivered(
    live: LiveServer,
) -> None:
    with admin_browser(live) as browser:
        refused = post(
            browser,
            "/admin/webhook-endpoints",
            {"url": "ftp://example.com", "description": "kept", "events": ["order.paid"]},
        )
        assert refused.status_code == 422 and 'value="kept"' in refused.text
        none = post(browser, "/admin/webhook-endpoints", {"url": "https://example.com/h"})
        assert none.status_code == 422 and "at least one event type" in none.text

        made = post(
            browser,
            "/admin/webhook-endpoints",
            {"url": "https://example.com/souq", "events": ["order.paid", "order.refunded"]},
        )
        assert made.status_code == 200
        secret = re.search(r"<code id=\"secret\">(whsec_[^<]+)</code>", made.text)
        assert secret, made.text
        endpoint_id = live.scalar(
            "SELECT max(id) FROM webhook_endpoint WHERE url = 'https://example.com/souq'"
        )
        fernet = sealer(live.settings.secret_key.get_secret_value())
        sealed = live.scalar(
            "SELECT secret_sealed FROM webhook_endpoint WHERE id = :i", i=endpoint_id
        )
        assert fernet.decrypt(sealed.encode()).decode() == secret.group(1)
        # The secret is shown this once.
        listed = browser.client.get("/admin/webhook-endpoints").text
        assert f'data-endpoint-id="{endpoint_id}" data-enabled="yes"' in listed
        assert secret.group(1) not in listed
        detail = f"/admin/webhook-endpoints/{endpoint_id}"
        assert secret.group(1) not in browser.client.get(detail).text

        assert post(browser, detail + "/enabled", {"enabled": "false"}).status_code == 303
        assert 'data-enabled="no"' in browser.client.get(detail).text
        assert post(browser, detail + "/enabled", {"enabled": "true"}).status_code == 303
        assert 'data-enabled="yes"' in browser.client.get(detail).text

        rotated = post(browser, detail + "/rotate-secret")
        new_secret = re.search(r"<code id=\"secret\">(whsec_[^<]+)</code>", rotated.text)
        assert new_secret and new_secret.group(1) != secret.group(1)
        assert (
            live.scalar(
                "SELECT previous_secret_sealed FROM webhook_endpoint WHERE id = :i", i=endpoint_id
            )
            == sealed
        )

        # A delivery that failed for good, then Redeliver: it is due again.
        with live.db.begin() as conn:
            event = conn.execute(
                sa.text(
                    "INSERT INTO webhook_event (public_id, key, type, payload, created_at) "
                    "VALUES (:p, :p, 'order.paid', '{}', CURRENT_TIMESTAMP) RETURNING id"
                ),
                {"p": f"evt_page_{endpoint_id}"},
            ).scalar_one()
            delivery = conn.execute(
                sa.text(
                    "INSERT INTO webhook_delivery (event_id, endpoint_id, status, attempts, "
                    "next_attempt_at, last_error, created_at) VALUES (:e, :n, 'failed', 8, "
                    "CURRENT_TIMESTAMP, 'HTTP 500', CURRENT_TIMESTAMP) RETURNING id"
                ),
                {"e": event, "n": endpoint_id},
            ).scalar_one()
            conn.execute(
                sa.text(
                    "INSERT INTO webhook_attempt (delivery_id, endpoint_id, status_code, "
                    "latency_ms, response_snippet, attempted_at) VALUES (:d, :n, 500, 42, "
                    "'upstream broke', CURRENT_TIMESTAMP)"
                ),
                {"d": delivery, "n": endpoint_id},
            )
        page = browser.client.get(detail).text
        assert f'data-delivery-id="{delivery}" data-status="failed"' in page
        assert "42 ms" in page and "upstream broke" in page
        again = post(browser, f"{detail}/deliveries/{delivery}/redeliver")
        assert again.status_code == 303
        assert (
            live.scalar("SELECT status FROM webhook_delivery WHERE id = :d", d=delivery) != "failed"
        )

        assert post(browser, detail + "/delete").status_code == 303
        assert (
            live.scalar("SELECT count(*) FROM webhook_endpoint WHERE id = :i", i=endpoint_id) == 0
        )
        assert browser.client.get(detail).status_code == 404
