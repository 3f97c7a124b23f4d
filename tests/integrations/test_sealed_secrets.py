"""Endpoint signing secrets are sealed at rest under a key derived from SECRET_KEY: the
database never holds one in clear, deliveries still verify (after a rotation too, by both
secrets), and the migration seals the secrets stored before it (and unseals them going back)."""

from __future__ import annotations

import base64
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from souq.integrations.models import WebhookDelivery
from souq.integrations.sealing import sealer
from tests.integrations.test_webhooks import register, verified
from tests.notifications.support import Receiver, receiver, wait_until
from tests.payments.stripe_helpers import listing, onboarded_team, start
from tests.servers import LiveServer, Servers, cli_env, migrate, sync_url
from tests.test_foundation import empty_database  # noqa: F401 - a fixture

KEY = "an-ample-secret-key-for-the-migration-test-0123456789"


def _stored(live: LiveServer, endpoint_id: int) -> tuple[str, str | None]:
    row = live.rows(
        "SELECT secret_sealed, previous_secret_sealed FROM webhook_endpoint WHERE id = :i",
        i=endpoint_id,
    )[0]
    return row.secret_sealed, row.previous_secret_sealed


def _clear_parts(secret: str) -> list[str]:
    """The secret as written and the key bytes it encodes, in the forms a leak could take."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return [secret, secret.removeprefix("whsec_"), key.hex()]


def test_secrets_are_sealed_in_the_database_and_deliveries_verify(live: LiveServer) -> None:
    with receiver() as hooks:
        _sealed_and_verified(live, hooks)


def _sealed_and_verified(live: LiveServer, hooks: Receiver) -> None:
    team = onboarded_team(live)
    endpoint = register(team, hooks.url, ["order.created"])
    secret = endpoint["secret"]
    sealed, previous = _stored(live, endpoint["id"])
    assert previous is None
    for part in _clear_parts(secret):
        assert part not in sealed
    key = live.settings.secret_key.get_secret_value()
    assert sealer(key).decrypt(sealed.encode()).decode() == secret

    start(live, team, [(listing(team), 1)])
    [first] = wait_until(lambda: hooks.events("order.created"), what="the first delivery")
    assert verified(secret, first)["type"] == "order.created"

    rotated = team.owner.client.post(f"/api/webhook-endpoints/{endpoint['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    sealed_now, previous_now = _stored(live, endpoint["id"])
    assert previous_now == sealed
    for part in _clear_parts(new_secret) + _clear_parts(secret):
        assert part not in sealed_now and part not in (previous_now or "")

    start(live, team, [(listing(team), 1)])
    wait_until(lambda: len(hooks.events("order.created")) == 2, what="the second delivery")
    second = hooks.events("order.created")[1]
    assert verified(new_secret, second) == verified(secret, second)


def test_the_migration_seals_existing_secrets_and_unseals_them_going_back(
    empty_database: str,  # noqa: F811
) -> None:
    migrate(empty_database, "0009")
    engine = sa.create_engine(sync_url(empty_database))
    secret, old = "whsec_" + "A" * 43 + "=", "whsec_" + "B" * 43 + "="
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO webhook_endpoint (url, description, events, secret, "
                    "previous_secret, enabled, consecutive_failures, created_at) VALUES "
                    "('https://erp.example.com/h', '', '[\"order.paid\"]', :s, :p, true, 0, "
                    "CURRENT_TIMESTAMP)"
                ),
                {"s": secret, "p": old},
            )
        from souq import migrations

        migrations.upgrade(empty_database, secret_key=KEY)
        with engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT secret_sealed, previous_secret_sealed FROM webhook_endpoint")
            ).one()
        assert secret not in row.secret_sealed and old not in row.previous_secret_sealed
        fernet = sealer(KEY)
        assert fernet.decrypt(row.secret_sealed.encode()).decode() == secret
        assert fernet.decrypt(row.previous_secret_sealed.encode()).decode() == old

        migrations.downgrade(empty_database, "0009", secret_key=KEY)
        with engine.connect() as conn:
            back = conn.execute(
                sa.text("SELECT secret, previous_secret FROM webhook_endpoint")
            ).one()
        assert (back.secret, back.previous_secret) == (secret, old)
    finally:
        engine.dispose()


def test_a_secret_sealed_under_another_secret_key_fails_its_delivery_saying_why(
    database_engine: str, servers: Servers
) -> None:
    with (
        receiver(statuses=[500]) as hooks,
        servers.fresh(database_engine, outbox_retry_base_seconds=3600) as live,
    ):
        team = onboarded_team(live)
        endpoint = register(team, hooks.url, ["order.created"])
        start(live, team, [(listing(team), 1)])
        wait_until(lambda: _attempts(live, endpoint["id"]) == 1, what="the first attempt")
        with live.db.begin() as conn:
            conn.execute(
                sa.update(WebhookDelivery)
                .where(WebhookDelivery.endpoint_id == endpoint["id"])
                .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        # The senders run by a process whose SECRET_KEY is not the one that sealed the secret.
        sent = subprocess.run(
            [sys.executable, "-m", "souq.cli", "notifications", "send"],
            capture_output=True,
            text=True,
            env=cli_env(live, SECRET_KEY="another-secret-key-0123456789-abcdefghijklmnop"),
            timeout=120,
            check=False,
        )
        assert sent.returncode == 0, sent.stderr
        errors = [
            r.error
            for r in live.rows(
                "SELECT error FROM webhook_attempt WHERE endpoint_id = :e ORDER BY id",
                e=endpoint["id"],
            )
        ]
        assert errors[0] is None and "cannot be unsealed" in errors[1], errors
        assert len(hooks.events()) == 1  # the unsigned request was never made


def _attempts(live: LiveServer, endpoint_id: int) -> int:
    count: int = live.scalar(
        "SELECT count(*) FROM webhook_attempt WHERE endpoint_id = :e", e=endpoint_id
    )
    return count
