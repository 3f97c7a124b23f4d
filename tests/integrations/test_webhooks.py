"""Outgoing webhooks against a real HTTP receiver started by the test, which verifies every
delivery with the `standardwebhooks` library: signing, the delivery log, redelivery, retries
after 500s, automatic disabling, and the refusals of private addresses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from souq.integrations.addresses import is_public
from souq.outbox import BACKOFF_CAP, backoff
from tests.helpers import StoreTeam, error_code
from tests.notifications.support import Receiver, buy, messages, receiver, wait_until
from tests.payments.stripe_helpers import (
    completed_event,
    deliver,
    listing,
    onboarded_team,
    platform_admin,
    start,
)
from tests.servers import LiveServer, Servers, beside

RETRY_AT_ONCE = {"outbox_retry_base_seconds": 0}


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


def register(team: StoreTeam, url: str, events: list[str]) -> dict[str, Any]:
    response = team.owner.client.post(
        "/api/webhook-endpoints", json={"url": url, "events": events, "storeId": team.id}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def verified(secret: str, request: Any) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


def deliveries(team: StoreTeam, endpoint_id: int) -> list[dict[str, Any]]:
    response = team.owner.client.get(f"/api/webhook-endpoints/{endpoint_id}/deliveries")
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def all_sent(log: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    return log if log and all(d["status"] == "sent" for d in log) else None


def test_a_store_owner_gets_signed_order_events(live: LiveServer, hooks: Receiver) -> None:
    team = onboarded_team(live)
    endpoint = register(team, hooks.url, ["order.created", "order.paid"])
    secret = endpoint["secret"]
    assert secret.startswith("whsec_")
    shown = team.owner.client.get(f"/api/webhook-endpoints/{endpoint['id']}").json()
    assert "secret" not in shown and shown["events"] == ["order.created", "order.paid"]

    order_id = buy(live, team, "buyer@example.com")
    wait_until(lambda: len(hooks.events()) >= 2, what="two deliveries")
    created, paid = (verified(secret, r) for r in hooks.events())
    assert [created["type"], paid["type"]] == ["order.created", "order.paid"]
    assert created["data"]["id"] == paid["data"]["id"] == order_id
    assert paid["data"]["paymentStatus"] == "paid" and paid["data"]["total"] == "19.99"
    assert paid["id"] == hooks.events("order.paid")[0].headers["webhook-id"]

    tampered = hooks.events()[1]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered.body.replace(b"paid", b"PAID"), tampered.headers)

    log = wait_until(lambda: all_sent(deliveries(team, endpoint["id"])))
    assert [(d["eventType"], d["status"], d["attempts"]) for d in log] == [
        ("order.paid", "sent", 1),
        ("order.created", "sent", 1),
    ]
    attempt = log[0]["log"][0]
    assert attempt["statusCode"] == 200 and attempt["responseSnippet"] == "answered 200"
    assert isinstance(attempt["latencyMs"], int)

    # A duplicate Stripe webhook (under a new event id too) makes no second order.paid.
    session_id = live.scalar(
        "SELECT stripe_checkout_session_id FROM orders WHERE id = :i", i=order_id
    )
    event = completed_event(live, session_id)
    assert deliver(live, {**event, "id": event["id"] + "_dup"}).status_code == 200
    assert (
        live.scalar("SELECT count(*) FROM webhook_event WHERE key = :k", k=f"order-{order_id}-paid")
        == 1
    )
    assert len(deliveries(team, endpoint["id"])) == 2

    # Manual redelivery: the same event, the same webhook-id, signed afresh.
    again = team.owner.client.post(
        f"/api/webhook-endpoints/{endpoint['id']}/deliveries/{log[0]['id']}/redeliver"
    )
    assert again.status_code == 202, again.text
    wait_until(lambda: len(hooks.events("order.paid")) == 2, what="the redelivery")
    first, second = hooks.events("order.paid")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert verified(secret, second)["id"] == paid["id"]

    # Rotation: the new secret signs, and the old one still does for a while.
    rotated = team.owner.client.post(f"/api/webhook-endpoints/{endpoint['id']}/rotate-secret")
    new_secret = rotated.json()["secret"]
    assert new_secret != secret
    team.owner.client.post(
        f"/api/webhook-endpoints/{endpoint['id']}/deliveries/{log[0]['id']}/redeliver"
    )
    wait_until(lambda: len(hooks.events("order.paid")) == 3, what="the signed redelivery")
    third = hooks.events("order.paid")[2]
    assert verified(new_secret, third) == verified(secret, third)

    deleted = team.owner.client.delete(f"/api/webhook-endpoints/{endpoint['id']}")
    assert deleted.status_code == 204
    listed = team.owner.client.get("/api/webhook-endpoints", params={"storeId": team.id})
    assert listed.json() == []


def test_500s_are_retried_until_the_receiver_answers(
    database_engine: str, servers: Servers
) -> None:
    with (
        receiver(statuses=[500, 503]) as hooks,
        servers.fresh(database_engine, **RETRY_AT_ONCE) as live,
    ):
        team = onboarded_team(live)
        endpoint = register(team, hooks.url, ["order.created"])
        item = listing(team)
        start(live, team, [(item, 1)])
        done = wait_until(
            lambda: [d for d in deliveries(team, endpoint["id"]) if d["status"] == "sent"],
            what="the delivery",
        )
        assert [a["statusCode"] for a in done[0]["log"]] == [500, 503, 200]
        assert done[0]["attempts"] == 3
        ids = {r.headers["webhook-id"] for r in hooks.events()}
        assert len(hooks.events()) == 3 and ids == {done[0]["eventId"]}
        for request in hooks.events():
            verified(endpoint["secret"], request)


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [backoff(n, 30) for n in (1, 2, 3, 4)] == [
        timedelta(seconds=s) for s in (30, 60, 120, 240)
    ]
    assert backoff(40, 30) == BACKOFF_CAP


def test_an_endpoint_that_keeps_failing_is_disabled_and_its_owner_told(
    database_engine: str, servers: Servers
) -> None:
    overrides = {**RETRY_AT_ONCE, "webhook_disable_after_failures": 3, "webhook_max_attempts": 9}
    with (
        receiver(statuses=[500] * 50) as hooks,
        servers.fresh(database_engine, **overrides) as live,
    ):
        team = onboarded_team(live)
        endpoint = register(team, hooks.url, ["order.created"])
        start(live, team, [(listing(team), 1)])
        path = f"/api/webhook-endpoints/{endpoint['id']}"
        shown = wait_until(
            lambda: (e := team.owner.client.get(path).json())["enabled"] is False and e,
            what="the endpoint disabled",
        )
        assert shown["consecutiveFailures"] == 3
        assert "3 failed attempts in a row" in shown["disabledReason"]
        told = wait_until(
            lambda: messages(live, kind="webhook_endpoint_disabled", to_email=team.owner.email)
        )
        assert len(told) == 1 and told[0]["subject"] == "Your webhook endpoint was disabled"
        assert len(hooks.events()) == 3
        [delivery] = deliveries(team, endpoint["id"])
        assert delivery["status"] == "pending" and delivery["attempts"] == 3

        # Fixed, enabled again and redelivered: it arrives.
        hooks.statuses.clear()
        enabled = team.owner.client.patch(path, json={"enabled": True})
        assert enabled.json()["consecutiveFailures"] == 0
        redelivered = team.owner.client.post(f"{path}/deliveries/{delivery['id']}/redeliver")
        assert redelivered.status_code == 202, redelivered.text
        wait_until(lambda: deliveries(team, endpoint["id"])[0]["status"] == "sent")
        # The pending delivery is due again once its endpoint is enabled, so its own retry may
        # reach the receiver before the redelivery does (then both arrive, as at-least-once
        # delivery allows); either way it is the same message, with the same webhook-id.
        received = hooks.events()
        assert len(received) in (4, 5)
        assert {r.headers["webhook-id"] for r in received} == {received[0].headers["webhook-id"]}


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.5", False),
        ("172.16.3.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("224.0.0.1", False),
        ("fc00::1", False),
        ("fe80::1%eth0", False),
        ("::", False),
        # IPv4 inside IPv6: compatible, NAT64, 6to4 and Teredo forms of 127.0.0.1.
        ("::127.0.0.1", False),
        ("64:ff9b::7f00:1", False),
        ("2002:7f00:1::1", False),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),
        ("64:ff9b::808:808", True),
    ],
)
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(address) is public


REFUSED: list[tuple[str, str | None]] = [
    ("ftp://example.com/hooks", None),
    ("example.com/hooks", None),
    ("http://user:secret@example.com/hooks", None),
    ("http://example.com:70000/hooks", None),
    ("http://127.0.0.1:8000/hooks", "url_not_allowed"),
    ("http://localhost/hooks", "url_not_allowed"),
    ("http://169.254.169.254/latest/meta-data", "url_not_allowed"),
    ("http://10.1.2.3/hooks", "url_not_allowed"),
    ("http://192.168.0.10:8443/hooks", "url_not_allowed"),
    ("http://2130706433/hooks", "url_not_allowed"),  # 127.0.0.1 as one number
    ("http://0x7f000001/hooks", "url_not_allowed"),
    ("http://[::1]/hooks", "url_not_allowed"),
    ("http://[::1]:8443/hooks", "url_not_allowed"),
    ("http://[fe80::1]/hooks", "url_not_allowed"),
    ("http://[::ffff:127.0.0.1]/hooks", "url_not_allowed"),
    ("http://[::ffff:a9fe:a9fe]/latest/meta-data", "url_not_allowed"),  # 169.254.169.254
    ("http://[fc00::1]/hooks", "url_not_allowed"),
    ("http://[fd12:3456::1]/hooks", "url_not_allowed"),
    ("http://[64:ff9b::7f00:1]/hooks", "url_not_allowed"),
    ("http://[1:2:3]/hooks", None),  # not an IPv6 address: refused by the schema
    ("HtTps://[Da.40]", None),
    ("http://[::1/hooks", None),
]


def test_private_addresses_are_refused_at_registration_and_at_delivery(
    database_engine: str, servers: Servers
) -> None:
    with (
        receiver() as hooks,
        receiver(host="::1") as hooks6,
        servers.fresh(database_engine, webhook_allow_private_addresses=False) as live,
    ):
        admin = platform_admin(live)
        for url, code in REFUSED:
            response = admin.client.post(
                "/api/webhook-endpoints", json={"url": url, "events": ["order.paid"]}
            )
            assert response.status_code == 422, (url, response.text)
            if code is not None:
                assert error_code(response) == code, url
        assert live.scalar("SELECT count(*) FROM webhook_endpoint") == 0

        # Registered where private addresses are allowed; delivered where they are not (a
        # name can resolve elsewhere by the time of delivery): refused, and logged.
        team = onboarded_team(live)
        port = hooks.url.split(":")[2].split("/")[0]
        urls = {
            hooks.url: "127.0.0.1",
            hooks6.url: "::1",
            f"http://[::ffff:127.0.0.1]:{port}/hooks": "::ffff:127.0.0.1",
        }
        with (
            beside(live, webhook_allow_private_addresses=True) as url,
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {team.owner.token}"}
            ) as owner,
        ):
            made = {}
            for target in urls:
                response = owner.post(
                    "/api/webhook-endpoints",
                    json={"url": target, "events": ["order.created"], "storeId": team.id},
                )
                assert response.status_code == 201, response.text
                made[target] = response.json()["id"]
        start(live, team, [(listing(team), 1)])

        def attempted(endpoint_id: int) -> list[dict[str, Any]] | None:
            log = deliveries(team, endpoint_id)
            return log if log and log[0]["log"] else None

        for target, host in urls.items():
            [delivery] = wait_until(
                partial(attempted, made[target]), what=f"the refused attempt to {target}"
            )
            assert delivery["log"][0]["error"].startswith(f"refused: the host {host} resolves")
            assert delivery["log"][0]["statusCode"] is None
        assert hooks.events() == [] and hooks6.events() == []


def test_endpoints_refuse_bad_input_without_writing(live: LiveServer, hooks: Receiver) -> None:
    team = onboarded_team(live)
    before = live.scalar("SELECT count(*) FROM webhook_endpoint")
    for body in (
        {"url": hooks.url, "events": ["order.exploded"], "storeId": team.id},
        {"url": hooks.url, "events": [], "storeId": team.id},
        {"url": hooks.url, "events": ["order.paid"], "storeId": team.id, "secret": "mine"},
    ):
        response = team.owner.client.post("/api/webhook-endpoints", json=body)
        assert response.status_code == 422, response.text
    assert live.scalar("SELECT count(*) FROM webhook_endpoint") == before
