"""The platform's fee report and a store's statement: sums of the ledger, in JSON, CSV and the
terminal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.helpers import api_user, error_code
from tests.ledger.money_helpers import entry_sum, paid_order, refund
from tests.payments.stripe_helpers import onboarded_team, platform_admin
from tests.servers import Cli, LiveServer


@pytest.mark.slow
def test_reports_are_the_sums_of_the_orders(live: LiveServer, cli: Cli) -> None:
    with onboarded_team(live) as team, platform_admin(live) as admin, api_user(live) as stranger:
        first = paid_order(live, team)  # 39.98: commission 2.00, Stripe's fee 1.46
        second = paid_order(live, team, price="5.00", quantity=1)  # commission 0.25, fee 0.45
        assert refund(team.owner.client, first.id, "r", amount="10.00").status_code == 201
        today = datetime.now(UTC).date().isoformat()

        fees = admin.client.get(f"/api/admin/reports/fees?storeId={team.id}&from={today}")
        assert fees.status_code == 200, fees.text
        [row] = fees.json()["data"]
        assert (row["day"], row["currency"], row["storeId"]) == (today, "usd", team.id)
        assert (row["grossVolume"], row["commissionEarned"], row["processingFees"]) == (
            4498,
            225,
            191,
        )
        assert (row["refunds"], row["commissionsReturned"]) == (1000, 50)
        assert row["netMargin"] == entry_sum(live, first.id, "platform") + entry_sum(
            live, second.id, "platform"
        )

        statement = team.seller.client.get(f"/api/stores/{team.id}/statements?to={today}")
        assert statement.status_code == 200, statement.text
        [line] = statement.json()["data"]
        assert (line["orders"], line["gross"], line["commission"]) == (2, 4498, 225)
        assert (line["transfers"], line["reversals"], line["commissionReturned"]) == (
            4498,
            1000,
            50,
        )
        assert line["net"] == entry_sum(live, first.id, "store") + entry_sum(
            live, second.id, "store"
        )

        as_csv = team.owner.client.get(
            f"/api/stores/{team.id}/statements", headers={"Accept": "text/csv"}
        )
        assert as_csv.headers["content-type"].startswith("text/csv")
        header, values = as_csv.text.strip().splitlines()
        assert (
            header
            == "day,currency,orders,gross,commission,commission_returned,transfers,reversals,net,"
            "payouts"
        )
        assert values.startswith(f"{today},usd,2,4498,225,50,4498,1000,")
        fees_csv = admin.client.get(f"/api/admin/reports/fees?storeId={team.id}&format=csv")
        assert fees_csv.text.splitlines()[0].startswith("day,currency,store_id,gross_volume")

        printed = cli("report", "statement", str(team.id), "--csv")
        assert printed.returncode == 0, printed.stderr
        # The rows as the API's CSV, then (after an empty line) the store's payouts: none yet.
        rows_csv, payouts_csv = printed.stdout.split("\n\n")
        assert rows_csv + "\n" == as_csv.text
        assert payouts_csv.startswith("stripe_payout_id,status,arrival_date")
        assert len(payouts_csv.strip().splitlines()) == 1
        table = cli("report", "fees", "--store", str(team.id))
        assert table.returncode == 0 and "4498" in table.stdout

        assert team.owner.client.get("/api/admin/reports/fees").status_code == 403
        assert stranger.client.get(f"/api/stores/{team.id}/statements").status_code == 404
        backwards = admin.client.get("/api/admin/reports/fees?from=2026-02-02&to=2026-02-01")
        assert backwards.status_code == 422 and error_code(backwards) == "invalid_period"
        assert admin.client.get("/api/admin/reports/fees?from=yesterday").status_code == 422
        # A day is YYYY-MM-DD, never a count of seconds since 1970.
        assert team.seller.client.get(f"/api/stores/{team.id}/statements?to=0").status_code == 422
