"""The cart's pages over HTTP: a guest's forms need the session's CSRF token, a refused change
is said on the cart page and changes nothing, checkout refusals keep what was typed, and a
cart of several stores lands on its own success and cancel pages."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx

from tests.auth.test_auth_pages import form_token
from tests.helpers import anonymous
from tests.payments.stripe_helpers import listing, onboarded_team, pay, sdk
from tests.servers import LiveServer


def _cart_items(live: LiveServer, browser: httpx.Client) -> list[tuple[int, int]]:
    body = browser.get("/api/cart").json()
    return [(item["listingId"], item["quantity"]) for item in body["items"]]


def test_a_guest_form_without_the_csrf_token_changes_nothing(live: LiveServer) -> None:
    with onboarded_team(live, name="Csrf Cart") as team, anonymous(live) as browser:
        item = listing(team, price="4.00")
        browser.get("/cart")
        refused = browser.post("/cart/items", data={"listing_id": str(item)})
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert _cart_items(live, browser) == []
        token = form_token(browser.get(f"/listings/{item}").text)
        added = browser.post("/cart/items", data={"listing_id": str(item), "csrf_token": token})
        assert added.status_code == 303 and added.headers["location"] == "/cart"
        assert _cart_items(live, browser) == [(item, 1)]


def test_refused_changes_are_said_beside_the_item_and_change_nothing(live: LiveServer) -> None:
    with onboarded_team(live, name="Refusing Cart") as team, anonymous(live) as browser:
        item = listing(team, price="4.00")
        token = form_token(browser.get(f"/listings/{item}").text)
        browser.post("/cart/items", data={"listing_id": str(item), "csrf_token": token})
        for quantity, message in (("two", "a whole number, at least 1"), ("1000", "at most 99")):
            page = browser.post(
                f"/cart/items/{item}", data={"quantity": quantity, "csrf_token": token}
            )
            assert page.status_code in (409, 422), page.text
            assert f'id="problem-{item}"' in page.text
            assert message in page.text
        assert _cart_items(live, browser) == [(item, 1)]
        # An unknown listing is not added, and says so.
        page = browser.post("/cart/items", data={"listing_id": "2147483000", "csrf_token": token})
        assert page.status_code == 404
        assert "not found" in page.text
        assert _cart_items(live, browser) == [(item, 1)]
        # A guest's checkout without an email: the cart again, the field marked.
        page = browser.post("/cart/checkout", data={"customerEmail": "", "csrf_token": token})
        assert page.status_code == 422
        assert 'id="f-customerEmail" type="email" name="customerEmail" value=""' in page.text
        assert "required for guests" in page.text
        page = browser.post(
            "/cart/checkout", data={"customerEmail": "not-an-email", "csrf_token": token}
        )
        assert page.status_code == 422
        assert 'value="not-an-email"' in page.text
        assert _cart_items(live, browser) == [(item, 1)]
        removed = browser.post(f"/cart/items/{item}/remove", data={"csrf_token": token})
        assert removed.status_code == 303
        assert _cart_items(live, browser) == []
        assert 'id="cart-empty"' in browser.get("/cart").text


def test_a_cart_of_two_stores_is_paid_on_one_page_and_canceled_from_it(
    live: LiveServer,
) -> None:
    with (
        onboarded_team(live, name="Page Cedar") as a,
        onboarded_team(live, name="Page Olive") as b,
        anonymous(live) as browser,
    ):
        items = [listing(a, price="3.00", stock=2), listing(b, price="5.00")]
        token = form_token(browser.get(f"/listings/{items[0]}").text)
        for item in items:
            browser.post("/cart/items", data={"listing_id": str(item), "csrf_token": token})
        started = browser.post(
            "/cart/checkout", data={"customerEmail": "pair@example.com", "csrf_token": token}
        )
        assert started.status_code == 303, started.text
        session = live.scalar(
            "SELECT stripe_checkout_session_id FROM checkout_group ORDER BY id DESC LIMIT 1"
        )
        group_id = live.scalar("SELECT id FROM checkout_group ORDER BY id DESC LIMIT 1")
        # Stripe's page offers to go back with a signed link; a forged one cancels nothing.
        forged = browser.get(f"/checkout/cancel?groupId={group_id}&token=forged")
        assert forged.status_code == 404
        assert live.scalar("SELECT status FROM checkout_group WHERE id = :i", i=group_id) == (
            "pending"
        )
        opened = live.rows(
            "SELECT payment_status FROM orders WHERE checkout_group_id = :g", g=group_id
        )
        assert [r.payment_status for r in opened] == ["pending", "pending"]
        # Back on the success page before paying (or while the payment is confirmed): it
        # says so, and refreshes itself.
        early = browser.get(f"/checkout/success?session_id={session}")
        assert early.status_code == 200
        assert 'data-confirming="true"' in early.text
        assert "We are confirming your payment" in early.text
        assert '<meta http-equiv="refresh"' in early.text
        cancel_url = _cancel_url(live, session)
        canceled = browser.get(cancel_url)
        assert canceled.status_code == 200
        assert 'data-status="canceled"' in canceled.text
        assert "You were not charged" in canceled.text
        assert live.scalar("SELECT stock FROM listing WHERE id = :i", i=items[0]) == 2

        # Again, paid this time: the success page confirms every store's order.
        for item in items:
            browser.post("/cart/items", data={"listing_id": str(item), "csrf_token": token})
        started = browser.post(
            "/cart/checkout", data={"customerEmail": "pair@example.com", "csrf_token": token}
        )
        answer = pay(live, started.headers["location"], card="4242424242424242")
        assert answer.status_code == 200, answer.text
        session = live.scalar(
            "SELECT stripe_checkout_session_id FROM checkout_group ORDER BY id DESC LIMIT 1"
        )
        landed = browser.get(f"/checkout/success?session_id={session}")
        assert landed.status_code == 200
        assert 'id="group-status" data-status="paid"' in landed.text
        assert landed.text.count('class="order-status"') == 2
        assert "payment is confirmed" in landed.text


def _cancel_url(live: LiveServer, session_id: str) -> str:
    """The cancel link Stripe's page would follow, as Souq gave it to the session."""
    found = sdk(live).v1.checkout.sessions.retrieve(session_id)
    url = urlparse(str(found.cancel_url))
    assert set(parse_qs(url.query)) == {"groupId", "token"}
    return f"{url.path}?{url.query}"
