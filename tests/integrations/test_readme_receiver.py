"""README's receiver example, run as written: it gets a live Souq's signed events, verifies
them with the standardwebhooks library, and refuses a forged one."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.notifications.support import free_port, wait_until
from tests.payments.stripe_helpers import listing, onboarded_team, start
from tests.servers import LiveServer

README = Path(__file__).parents[2] / "README.md"


def receiver_example() -> str:
    text = README.read_text()
    found = re.search(
        r"<!-- receiver-example -->\n```python\n(.*?)```\n<!-- /receiver-example -->", text, re.S
    )
    assert found, "README lost its receiver example"
    return found.group(1)


def test_the_readme_receiver_verifies_real_deliveries(live: LiveServer, tmp_path: Path) -> None:
    script = tmp_path / "receiver.py"
    script.write_text(receiver_example())
    team = onboarded_team(live)
    port = free_port()
    url = f"http://127.0.0.1:{port}/souq"
    made = team.owner.client.post(
        "/api/webhook-endpoints",
        json={"url": url, "events": ["order.created"], "storeId": team.id},
    )
    assert made.status_code == 201, made.text
    env = {"WEBHOOK_SECRET": made.json()["secret"], "PORT": str(port), "PATH": ""}
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        wait_until(lambda: _listening(port), what="the receiver to listen")
        order_id = start(live, team, [(listing(team), 1)])["orderId"]
        deliveries = f"/api/webhook-endpoints/{made.json()['id']}/deliveries"
        delivered = wait_until(
            lambda: [
                d for d in team.owner.client.get(deliveries).json()["data"] if d["status"] == "sent"
            ],
            what="the delivery",
        )
        assert delivered[0]["log"][-1]["statusCode"] == 204
        forged = httpx.post(
            url,
            content=b'{"id":"evt_x","type":"order.paid"}',
            headers={"webhook-id": "evt_x", "webhook-timestamp": str(int(time.time())),
                     "webhook-signature": "v1,AAAA"},
        )  # fmt: skip
        assert forged.status_code == 400
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert [json.loads(line) for line in out.splitlines()] == [
        {"type": "order.created", "id": order_id}
    ]


def _listening(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    except httpx.TransportError:
        return False
    return True
