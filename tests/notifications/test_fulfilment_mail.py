"""A seller marks an order shipped, then delivered: the buyer gets one email per status (with
the carrier and tracking number) over real SMTP, and the store's endpoint one signed
`order.fulfilled` per status, however often the seller repeats the call."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import SecretStr

from tests.carts.test_holds import fulfil
from tests.helpers import unique_email
from tests.integrations.test_webhooks import register, verified
from tests.notifications.support import buy, messages, receiver, smtp_server, wait_until
from tests.payments.stripe_helpers import listing, onboarded_team, start
from tests.servers import Servers

STORE = "Cedar Post"


def test_shipping_tells_the_buyer_and_endpoints_once_per_status(
    database_engine: str, servers: Servers
) -> None:
    with (
        smtp_server() as mailbox,
        receiver() as hooks,
        servers.fresh(database_engine, smtp_url=SecretStr(mailbox.url)) as live,
    ):
        team = onboarded_team(live, name=STORE)
        endpoint = register(team, hooks.url, ["order.fulfilled"])
        buyer = unique_email("buyer")
        order_id = buy(live, team, buyer)

        # The seller marks it shipped three times at once, then once more with a corrected
        # tracking number: one email, one event.
        with ThreadPoolExecutor(3) as pool:
            answers = list(
                pool.map(
                    lambda _: fulfil(
                        team.seller.client, order_id, status="shipped", carrier="DHL",
                        trackingNumber="JD0142",
                    ),
                    range(3),
                )
            )  # fmt: skip
        assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
        again = fulfil(team.seller.client, order_id, status="shipped", trackingNumber="JD0143")
        assert again.status_code == 200, again.text

        def shipped_mail() -> list[str]:
            return [str(m["Subject"]) for m in mailbox.to(buyer) if "shipped" in m["Subject"]]

        assert wait_until(shipped_mail, what="the shipped mail") == [
            f"Order #{order_id} from {STORE} has shipped"
        ]
        mail = next(m for m in mailbox.to(buyer) if "shipped" in m["Subject"])
        text = mail.get_body(preferencelist=("plain",))
        html = mail.get_body(preferencelist=("html",))
        assert text is not None and html is not None
        assert "Carrier: DHL" in text.get_content()
        assert "Tracking number: JD0142" in text.get_content()
        assert "<td>DHL</td>" in html.get_content() and "JD0142" in html.get_content()

        [shipped] = wait_until(lambda: hooks.events("order.fulfilled"), what="order.fulfilled")
        event = verified(endpoint["secret"], shipped)
        assert event["data"]["id"] == order_id
        assert event["data"]["fulfilment"]["status"] == "shipped"
        assert event["data"]["fulfilment"]["carrier"] == "DHL"
        assert event["data"]["fulfilment"]["trackingNumber"] == "JD0142"

        # Delivered (twice): one more email and one more event; nothing else is repeated.
        for _ in range(2):
            delivered = fulfil(team.seller.client, order_id, status="delivered")
            assert delivered.status_code == 200, delivered.text
        wait_until(lambda: len(hooks.events("order.fulfilled")) == 2, what="delivered event")
        later = verified(endpoint["secret"], hooks.events("order.fulfilled")[1])
        assert later["data"]["fulfilment"]["status"] == "delivered"
        assert later["data"]["fulfilment"]["trackingNumber"] == "JD0143"
        assert later["id"] != event["id"]
        wait_until(
            lambda: any("delivered" in m["Subject"] for m in mailbox.to(buyer)), what="delivered"
        )

        def settled() -> list[dict[str, Any]] | None:
            rows = messages(live, kind="order_shipped_buyer", to_email=buyer)
            return rows if all(r["status"] == "sent" for r in rows) else None

        rows = wait_until(settled, what="both marked sent")
        assert [(r["key"].split("/")[0], r["status"]) for r in rows] == [
            (f"order-{order_id}-shipped-buyer", "sent"),
            (f"order-{order_id}-delivered-buyer", "sent"),
        ]
        assert sorted(str(m["Subject"]) for m in mailbox.to(buyer) if "#" in m["Subject"]) == [
            f"Order #{order_id} from {STORE} has shipped",
            f"Order #{order_id} from {STORE} was delivered",
            f"Your receipt for order #{order_id} from {STORE}",
        ]
        assert len(hooks.events("order.fulfilled")) == 2


def test_an_unpaid_order_cannot_be_shipped_and_tells_nobody(
    database_engine: str, servers: Servers
) -> None:
    with servers.fresh(database_engine) as live:
        team = onboarded_team(live, name=STORE)

        started = start(live, team, [(listing(team), 1)])
        refused = fulfil(team.seller.client, started["orderId"], status="shipped")
        assert refused.status_code == 409, refused.text
        assert messages(live, kind="order_shipped_buyer") == []
        assert live.scalar("SELECT count(*) FROM webhook_event WHERE type = 'order.fulfilled'") == 0
