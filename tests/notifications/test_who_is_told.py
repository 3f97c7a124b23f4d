"""The rest of who is told what: the buyer of an order that failed or expired unpaid, a store's
managers when Stripe disables payouts and asks for information, platform admins when an order
needs review; and where store and platform endpoints' events go (a store's endpoint gets its
own store's events only), with endpoints changed and disabled by their owners."""

from __future__ import annotations

from typing import Any

from tests.helpers import StoreTeam
from tests.integrations.test_webhooks import deliveries, register, verified
from tests.notifications.support import messages, receiver, wait_until
from tests.payments.stripe_helpers import (
    advance_clock,
    control,
    flush,
    listing,
    onboarded_team,
    pay,
    payments_status,
    platform_admin,
    reset_clock,
    start,
)
from tests.payments.test_review import foreign_session
from tests.servers import LiveServer


def _mail(live: LiveServer, kind: str, key: str) -> list[dict[str, Any]]:
    return [m for m in messages(live, kind=kind) if m["key"].startswith(key)]


def _managers(team: StoreTeam) -> set[str]:
    return {team.owner.email, team.admin.email}


def test_the_buyer_of_an_order_that_failed_or_expired_is_told_once(live: LiveServer) -> None:
    with onboarded_team(live) as team, receiver() as hooks:
        endpoint = register(team, hooks.url, ["order.failed", "order.canceled"])
        failing = start(live, team, [(listing(team), 1)], email="failing@example.com")
        expiring = start(live, team, [(listing(team), 1)], email="expiring@example.com")
        answer = pay(live, failing["url"], method="delayed", outcome="failed")
        assert answer.status_code == 200, answer.text
        try:
            flush(live)
            advance_clock(live, 35 * 60)
            flush(live)
            flush(live)
        finally:
            reset_clock(live)

        failed_id, expired_id = failing["orderId"], expiring["orderId"]
        [failed] = _mail(live, "order_payment_failed_buyer", f"order-{failed_id}-failed-buyer/")
        assert failed["to_email"] == "failing@example.com"
        assert failed["subject"] == f"Your payment for order #{failed_id} did not go through"
        [expired] = _mail(live, "order_canceled_buyer", f"order-{expired_id}-canceled-buyer/")
        assert expired["to_email"] == "expiring@example.com"
        assert expired["subject"] == f"Order #{expired_id} from Ready Store was canceled"
        assert _mail(live, "order_canceled_buyer", f"order-{failed_id}-") == []

        got = wait_until(lambda: len(hooks.events()) >= 2 and hooks.events(), what="events")
        told = {
            (e["type"], e["data"]["id"], e["data"]["paymentStatus"])
            for e in (verified(endpoint["secret"], r) for r in got)
        }
        assert told == {
            ("order.failed", failed_id, "failed"),
            ("order.canceled", expired_id, "canceled"),
        }
        assert len(got) == 2


def test_managers_are_told_when_payouts_stop_and_stripe_asks_for_information(
    live: LiveServer,
) -> None:
    with onboarded_team(live, name="Asked Store") as team, receiver() as hooks:
        endpoint = register(team, hooks.url, ["store.payments_status_changed"])
        account = payments_status(team)["stripeAccountId"]
        control(live, f"/accounts/{account}/onboard", {"outcome": "requirements_due"})
        flush(live)
        flush(live)
        key = f"store-{team.id}-"
        disabled = _mail(live, "store_payouts_disabled", key)
        assert {m["to_email"] for m in disabled} == _managers(team) and len(disabled) == 2
        assert disabled[0]["subject"] == "Payouts are disabled for Asked Store"
        due = _mail(live, "store_requirements_due", key)
        assert {m["to_email"] for m in due} == _managers(team) and len(due) == 2
        assert due[0]["subject"] == "Stripe needs more information for Asked Store"
        assert team.seller.email not in {m["to_email"] for m in disabled + due}

        [event] = wait_until(lambda: hooks.events(), what="store.payments_status_changed")
        data = verified(endpoint["secret"], event)["data"]
        assert data["id"] == team.id and data["payoutsEnabled"] is False
        assert data["requirementsDue"] and "stripe_payouts_enabled" in data["changed"]


def test_platform_admins_are_told_of_an_order_needing_review(live: LiveServer) -> None:
    with onboarded_team(live) as team, platform_admin(live) as admin:
        account = payments_status(team)["stripeAccountId"]
        started = start(live, team, [(listing(team, price="19.99"), 1)])
        url = foreign_session(
            live, team, started["orderId"], amount=100, fee=5, destination=account
        )
        assert pay(live, url, card="4242424242424242").status_code == 200
        flush(live)
        flush(live)
        told = _mail(live, "admin_order_needs_review", f"order-{started['orderId']}-review-")
        recipients = [m["to_email"] for m in told]
        assert admin.email in recipients and len(recipients) == len(set(recipients))
        assert not _managers(team) & set(recipients)
        assert told[0]["subject"] == f"Order #{started['orderId']} needs review"


def test_a_store_endpoint_gets_only_its_stores_events_and_a_platform_one_every_stores(
    live: LiveServer,
) -> None:
    with (
        onboarded_team(live, name="First") as first,
        onboarded_team(live, name="Second") as second,
        platform_admin(live) as admin,
        receiver() as first_hooks,
        receiver() as second_hooks,
        receiver() as platform_hooks,
    ):
        mine = register(first, first_hooks.url, ["order.created"])
        register(second, second_hooks.url, ["order.created"])
        made = admin.client.post(
            "/api/webhook-endpoints", json={"url": platform_hooks.url, "events": ["order.created"]}
        )
        assert made.status_code == 201, made.text

        # A store's owner registers for their own store only: not another store's, not the
        # platform's; its admins and sellers cannot register one at all.
        body = {"url": first_hooks.url, "events": ["order.created"]}
        assert (
            first.owner.client.post(
                "/api/webhook-endpoints", json={**body, "storeId": second.id}
            ).status_code
            == 404
        )
        assert first.owner.client.post("/api/webhook-endpoints", json=body).status_code == 403
        for member in (first.admin, first.seller):
            response = member.client.post(
                "/api/webhook-endpoints", json={**body, "storeId": first.id}
            )
            assert response.status_code == 403, response.text
        assert first.owner.client.get(
            "/api/webhook-endpoints", params={"storeId": second.id}
        ).status_code == 404  # fmt: skip

        order_id = start(live, first, [(listing(first), 1)])["orderId"]
        [got] = wait_until(lambda: first_hooks.events(), what="the store's event")
        assert verified(mine["secret"], got)["data"]["id"] == order_id
        wait_until(
            lambda: any(r.json["data"]["id"] == order_id for r in platform_hooks.events()),
            what="the platform's event",
        )
        assert all(r.json["data"]["storeId"] != first.id for r in second_hooks.events())


def test_owners_change_and_disable_their_endpoints(live: LiveServer) -> None:
    with onboarded_team(live) as team, receiver() as old, receiver() as new:
        endpoint = register(team, old.url, ["order.paid"])
        path = f"/api/webhook-endpoints/{endpoint['id']}"
        changed = team.owner.client.patch(
            path, json={"url": new.url, "events": ["order.created"], "description": "ERP"}
        )
        assert changed.status_code == 200, changed.text
        assert (changed.json()["url"], changed.json()["events"]) == (new.url, ["order.created"])
        assert changed.json()["description"] == "ERP" and "secret" not in changed.json()
        bad = team.owner.client.patch(path, json={"events": ["order.exploded"]})
        assert bad.status_code == 422
        assert team.owner.client.get(path).json()["events"] == ["order.created"]

        first = start(live, team, [(listing(team), 1)])["orderId"]
        [got] = wait_until(lambda: new.events(), what="the event at the new URL")
        assert verified(endpoint["secret"], got)["data"]["id"] == first and old.events() == []

        off = team.owner.client.patch(path, json={"enabled": False})
        assert off.json()["enabled"] is False
        assert off.json()["disabledReason"] == "disabled by its owner"
        start(live, team, [(listing(team), 1)])
        on = team.owner.client.patch(path, json={"enabled": True})
        assert on.json()["enabled"] is True and on.json()["disabledReason"] is None
        third = start(live, team, [(listing(team), 1)])["orderId"]
        wait_until(lambda: len(new.events()) == 2, what="the event after enabling")
        # What happened while it was disabled was not queued for it.
        assert [r.json["data"]["id"] for r in new.events()] == [first, third]
        assert [d["payload"]["data"]["id"] for d in deliveries(team, endpoint["id"])] == [
            third,
            first,
        ]
