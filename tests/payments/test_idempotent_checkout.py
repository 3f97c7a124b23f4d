"""A double click makes one order: the Idempotency-Key header on the checkout API and the Buy
form's one-time key. And the Buy form tells a guest what to fix instead of failing at Stripe."""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.helpers import anonymous, api_user, error_code
from tests.payments.stripe_helpers import (
    checkout,
    clear_faults,
    listing,
    onboarded_team,
    order,
    sdk,
    set_faults,
    stock,
)
from tests.servers import LiveServer


def orders_of(live: LiveServer, store_id: int) -> int:
    count: int = live.scalar("SELECT count(*) FROM orders WHERE store_id = :s", s=store_id)
    return count


def test_the_same_key_and_body_give_the_same_order_and_url(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=5)
        key = {"Idempotency-Key": f"cart-{uuid.uuid4()}"}
        with anonymous(live) as buyer:
            first = checkout(buyer, team.id, [(item, 2)], headers=key)
            second = checkout(buyer, team.id, [(item, 2)], headers=key)
        assert first.status_code == second.status_code == 200, (first.text, second.text)
        assert first.json() == second.json()
        assert orders_of(live, team.id) == 1
        assert stock(live, item) == 3


def test_concurrent_duplicates_land_on_one_order(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=10)
        key = {"Idempotency-Key": f"double-click-{uuid.uuid4()}"}

        def click(_: int) -> httpx.Response:
            with anonymous(live) as buyer:
                return checkout(buyer, team.id, [(item, 1)], headers=key)

        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(click, range(6)))
        assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
        assert len({(a.json()["orderId"], a.json()["url"]) for a in answers}) == 1
        assert orders_of(live, team.id) == 1
        assert stock(live, item) == 9


def test_the_same_key_with_another_body_is_a_clear_409(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=5)
        key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
        with anonymous(live) as buyer:
            assert checkout(buyer, team.id, [(item, 1)], headers=key).status_code == 200
            other = checkout(buyer, team.id, [(item, 2)], headers=key)
        assert other.status_code == 409 and error_code(other) == "idempotency_key_reused"
        assert "different checkout" in other.json()["error"]["message"]
        assert orders_of(live, team.id) == 1
        assert stock(live, item) == 4


def test_keys_belong_to_their_caller(live: LiveServer) -> None:
    with onboarded_team(live) as team, api_user(live) as ann, api_user(live) as bob:
        item = listing(team, stock=5)
        key = {"Idempotency-Key": "my-cart-1"}
        a = checkout(ann.client, team.id, [(item, 1)], email=None, headers=key)
        b = checkout(bob.client, team.id, [(item, 1)], email=None, headers=key)
        assert a.status_code == b.status_code == 200
        assert a.json()["orderId"] != b.json()["orderId"]


def test_a_bad_key_is_422(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team)
        with anonymous(live) as buyer:
            for bad in ("has space", "x" * 256):
                response = checkout(buyer, team.id, [(item, 1)], headers={"Idempotency-Key": bad})
                assert response.status_code == 422
                assert error_code(response) == "invalid_idempotency_key"
        assert orders_of(live, team.id) == 0


def test_a_retry_after_a_timeout_finds_the_same_order_and_its_session(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=2)
        key = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
        with anonymous(live) as buyer:
            set_faults(live, timeout_rate=1.0, timeout_seconds=5)
            try:
                assert checkout(buyer, team.id, [(item, 1)], headers=key).status_code == 503
            finally:
                clear_faults(live)
            retried = checkout(buyer, team.id, [(item, 1)], headers=key)
        assert retried.status_code == 200, retried.text
        order_id = retried.json()["orderId"]
        assert orders_of(live, team.id) == 1
        assert order(live, order_id)["payment_status"] == "pending"
        assert stock(live, item) == 1
        sessions = sdk(live).v1.checkout.sessions.list(params={"limit": 100}).to_dict()["data"]
        mine = [s for s in sessions if s["client_reference_id"] == str(order_id)]
        assert [s["url"] for s in mine] == [retried.json()["url"]]


def _buy_form(page: str, listing_id: int) -> dict[str, str]:
    form = re.search(
        rf'<form method="post" action="/shop/buy">(?:(?!</form>).)*?value="{listing_id}"'
        r"(?:(?!</form>).)*</form>",
        page,
        re.S,
    )
    assert form is not None
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(0)))
    return fields


def test_a_double_submitted_buy_form_makes_one_order(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=5)
        with anonymous(live) as browser:
            shop = browser.get(f"/shop?storeId={team.id}")
            fields = {**_buy_form(shop.text, item), "quantity": "1", "email": "b@example.com"}
            assert fields["idempotency_key"]
            first = browser.post("/shop/buy", data=fields)
            second = browser.post("/shop/buy", data=fields)
        assert first.status_code == second.status_code == 303, first.text
        assert first.headers["location"] == second.headers["location"]
        assert first.headers["location"].startswith(f"{live.sandbox_url}/checkout/cs_")
        assert orders_of(live, team.id) == 1
        assert stock(live, item) == 4


def test_the_buy_form_shows_a_guest_what_to_fix(live: LiveServer) -> None:
    with onboarded_team(live) as team:
        item = listing(team, stock=5)
        with anonymous(live) as browser:
            shop = browser.get(f"/shop?storeId={team.id}")
            fields = {**_buy_form(shop.text, item), "quantity": "1"}
            for email, says in (("", "email address is required"), ("nope", "not an email")):
                page = browser.post("/shop/buy", data={**fields, "email": email})
                assert page.status_code == 422, page.text
                assert 'class="error"' in page.text and says in page.text
        assert orders_of(live, team.id) == 0
        assert stock(live, item) == 5
