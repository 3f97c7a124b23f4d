"""Webhook deliveries that cannot succeed are acknowledged with the reason; signed bodies that
are not events are 400s; a failing duplicate never spoils an event already processed; every
event type Souq subscribes to has its handler; operators can read and copy the inbox."""

from __future__ import annotations

import inspect
import json
import subprocess
from typing import Any

import httpx
import pytest

from souq.payments.handlers import HANDLERS, SUBSCRIBED_EVENTS
from tests.helpers import anonymous
from tests.payments.stripe_helpers import (
    clear_faults,
    completed_event,
    deliver,
    direct_session,
    flush,
    listing,
    onboarded_team,
    pay,
    sdk,
    session_id_of,
    set_faults,
    sign,
    start,
)
from tests.servers import Cli, LiveServer, cli_for


def inbox(live: LiveServer, event_id: str) -> dict[str, Any]:
    rows = live.rows(
        "SELECT processed_at, last_error, ignored_reason, attempts FROM stripe_event "
        "WHERE stripe_event_id = :e",
        e=event_id,
    )
    assert len(rows) == 1, event_id
    return dict(rows[0]._mapping)


def event(event_id: str, event_type: str, obj: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": 1_700_000_000,
        "data": {"object": obj},
        **extra,
    }


def test_an_event_for_an_object_stripe_does_not_know_is_acknowledged_as_ignored(
    live: LiveServer,
) -> None:
    sent = event(
        "evt_unknown_session_1",
        "checkout.session.completed",
        {"id": "cs_test_nobody_knows", "object": "checkout.session"},
    )
    response = deliver(live, sent)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "received"
    row = inbox(live, "evt_unknown_session_1")
    assert row["processed_at"] is not None and row["last_error"] is None
    assert "Stripe does not know checkout session cs_test_nobody_knows" in row["ignored_reason"]


def test_an_event_for_someone_elses_object_is_acknowledged_as_ignored(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        # Another integration on the same Stripe account: a session naming no order of ours.
        theirs = direct_session(live, amount=500, success_url="https://example.com/done")
        assert theirs.id
        sent = event("evt_not_ours_1", "checkout.session.completed", {"id": theirs.id})
        response = deliver(live, sent)
        assert response.status_code == 200 and response.json()["status"] == "received"
        assert "not for an order of ours" in inbox(live, "evt_not_ours_1")["ignored_reason"]
        account = event(
            "evt_not_ours_2", "account.updated", {"id": "acct_someone_else"}, account="acct_x"
        )
        response = deliver(live, account, connect=True)
        assert response.status_code == 200 and response.json()["status"] == "received"
        assert "no store of ours" in inbox(live, "evt_not_ours_2")["ignored_reason"]
        assert team.id


def test_an_event_type_souq_does_not_handle_is_recorded_ignored_at_once(live: LiveServer) -> None:
    # An endpoint subscribed to more than Souq's types (set up by hand, or `*`): the delivery
    # is acknowledged as ignored in the request itself, with no job to run.
    assert "payment_intent.created" not in HANDLERS
    sent = event("evt_unhandled_1", "payment_intent.created", {"id": "pi_whatever"})
    body = json.dumps(sent).encode()
    for attempt in range(2):
        with anonymous(live) as client:
            response = client.post(
                "/api/stripe/webhook",
                content=body,
                headers={"Stripe-Signature": sign(body, live.webhook_secret)},
            )
        assert response.status_code == 200, (attempt, response.text)
        assert response.json()["status"] == "ignored"
        assert response.json()["reason"] == "Souq does not handle payment_intent.created events"
        # Processed when the answer came, before any job could have run.
        row = inbox(live, "evt_unhandled_1")
        assert row["processed_at"] is not None and row["attempts"] == 0
        assert row["ignored_reason"] == "Souq does not handle payment_intent.created events"


def test_signed_bodies_that_are_not_usable_events_are_400(live: LiveServer) -> None:
    before = live.scalar("SELECT count(*) FROM stripe_event")
    for body in (
        [event("evt_in_a_list", "checkout.session.completed", {"id": "cs_1"})],
        {"id": "evt_no_object", "object": "event", "type": "charge.updated", "data": {}},
        {"id": "evt_no_id", "object": "event", "type": "charge.updated", "data": {"object": {}}},
        "just a string",
    ):
        response = deliver(live, body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["code"] == "invalid_event"
    assert live.scalar("SELECT count(*) FROM stripe_event") == before


def test_a_failing_duplicate_never_writes_an_error_on_a_processed_event(
    live: LiveServer, cli: Cli
) -> None:
    with onboarded_team(live) as team:
        started = start(live, team, [(listing(team), 1)])
        assert pay(live, started["url"], card="4242424242424242").status_code == 200
        flush(live)
        event_id = completed_event(live, session_id_of(started["url"]))["id"]
        assert inbox(live, event_id)["processed_at"] is not None
        attempts = inbox(live, event_id)["attempts"]
        set_faults(live, api_error_rate=1.0)
        try:
            replayed = cli("events", "replay", event_id)
        finally:
            clear_faults(live)
        assert replayed.returncode == 1 and "failed again" in replayed.stdout
        row = inbox(live, event_id)
        assert row["processed_at"] is not None
        assert row["last_error"] is None and row["attempts"] == attempts


def test_every_subscribed_event_type_has_its_handler() -> None:
    assert set(SUBSCRIBED_EVENTS) == set(HANDLERS)
    for event_type in (
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
        "charge.succeeded",
        "charge.updated",
        "account.updated",
        "account.application.deauthorized",
    ):
        handler = HANDLERS[event_type]
        assert inspect.iscoroutinefunction(handler), event_type
        assert list(inspect.signature(handler).parameters) == ["factory", "gateway", "event"]


def _souq(live: LiveServer, *args: str, columns: int) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it in a terminal of the given width."""
    return cli_for(live, columns=columns)(*args)


def test_events_list_shows_full_ids_at_any_width_and_as_json(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        started = start(live, team, [(listing(team), 1)])
        assert pay(live, started["url"], card="4242424242424242").status_code == 200
        flush(live)
        wanted = completed_event(live, session_id_of(started["url"]))["id"]
        for columns in (80, 120):
            shown = _souq(live, "events", "list", "--limit", "20", columns=columns)
            assert shown.returncode == 0, shown.stderr
            assert wanted in shown.stdout, (columns, shown.stdout)
            assert max(len(line) for line in shown.stdout.splitlines()) <= columns
        listed = _souq(live, "events", "list", "--json", "--limit", "200", columns=80)
        assert listed.returncode == 0, listed.stderr
        events = json.loads(listed.stdout)
        mine = next(e for e in events if e["id"] == wanted)
        assert mine["type"] == "checkout.session.completed" and mine["processedAt"]
        assert {"account", "attempts", "lastError", "ignoredReason", "receivedAt"} <= set(mine)


@pytest.mark.fresh_server
def test_the_apps_endpoints_subscribe_only_to_the_handled_event_types(live: LiveServer) -> None:
    """Stripe sends only what Souq handles: the embedded sandbox registered both endpoints with
    exactly SUBSCRIBED_EVENTS, and a paid order's other events (payment_intent.*,
    application_fee.*, transfer.*) are never delivered to them."""
    endpoints = sdk(live).v1.webhook_endpoints.list().data
    ours = [e for e in endpoints if e.url.startswith(live.url + "/api/stripe/")]
    assert len(ours) == 2
    for endpoint in ours:
        assert sorted(endpoint.enabled_events) == sorted(SUBSCRIBED_EVENTS)

    team = onboarded_team(live)
    started = start(live, team, [(listing(team), 1)])
    assert pay(live, started["url"], card="4242424242424242").status_code == 200
    flush(live)
    with httpx.Client(timeout=30) as client:
        log = client.get(
            f"{live.sandbox_url}/_control/webhooks/deliveries", params={"limit": 1000}
        ).json()["data"]
    ids = {e.id for e in ours}
    delivered = {row["type"] for row in log if row["endpoint"] in ids}
    assert "checkout.session.completed" in delivered
    assert delivered <= set(SUBSCRIBED_EVENTS), delivered - set(SUBSCRIBED_EVENTS)
