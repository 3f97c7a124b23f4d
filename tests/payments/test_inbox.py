"""The webhook inbox: a handler that fails leaves its event unprocessed, with its error, while
the delivery is acknowledged (the job retries with backoff, not Stripe); an operator sees and
replays it with `souq events`."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import store_team
from tests.payments.stripe_helpers import (
    clear_faults,
    control,
    create_account,
    flush,
    payments_status,
    set_faults,
)
from tests.servers import Cli, LiveServer


@pytest.mark.fresh_server
def test_a_failing_handler_is_retried_and_can_be_replayed(live: LiveServer, cli: Cli) -> None:
    with store_team(live) as team:
        account_id = create_account(team)
        # Stripe answers errors while the account.updated job re-reads the account.
        set_faults(live, api_error_rate=1.0)
        try:
            control(live, f"/accounts/{account_id}/onboard", {"outcome": "complete"})
            flush(live)
            failed = live.rows(
                "SELECT stripe_event_id, attempts, last_error FROM stripe_event "
                "WHERE account = :a AND processed_at IS NULL",
                a=account_id,
            )
            assert failed, "the failed event must stay unprocessed"
            event_id, attempts, last_error = failed[0]
            assert attempts >= 1 and "StripeUnavailable" in last_error
            with httpx.Client(timeout=30) as client:
                log = client.get(f"{live.sandbox_url}/_control/webhooks/deliveries").json()["data"]
            attempts_for_event = [d for d in log if d["event"] == event_id]
            # Recorded and acknowledged: Stripe has nothing to retry, the job does.
            assert attempts_for_event, log
            assert all(d["status_code"] == 200 for d in attempts_for_event), [
                (d["status_code"], d["error"], d["delivery_status"]) for d in attempts_for_event
            ]
            assert payments_status(team)["chargesEnabled"] is False

            listed = cli("events", "list", "--failed")
            assert listed.returncode == 0, listed.stderr
            assert event_id in listed.stdout
        finally:
            clear_faults(live)

        replayed = cli("events", "replay", event_id)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert f"{event_id}: processed" in replayed.stdout
        assert payments_status(team)["chargesEnabled"] is True
        assert event_id not in cli("events", "list", "--failed").stdout

        unknown = cli("events", "replay", "evt_does_not_exist")
        assert unknown.returncode == 1 and "no event" in unknown.stdout
