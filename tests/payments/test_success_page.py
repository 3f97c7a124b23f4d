"""The buyer's success page never says something false, and cannot be used to hammer Stripe."""

from __future__ import annotations

from tests.helpers import anonymous
from tests.payments.stripe_helpers import (
    clear_faults,
    listing,
    onboarded_team,
    order,
    pay,
    session_id_of,
    set_faults,
    start,
    webhooks_paused,
)
from tests.servers import LiveServer


def reads(live: LiveServer) -> int:
    """How often Souq has asked Stripe for a Checkout Session (the gateway counts its calls;
    webhooks are paused while it is read, so only the page asks)."""
    count: int = live.app.state.stripe.calls["retrieve checkout session"]
    return count


def test_when_stripe_cannot_be_read_the_page_says_the_payment_is_being_confirmed(
    live: LiveServer,
) -> None:
    with onboarded_team(live) as team:
        started = start(live, team, [(listing(team), 1)])
        set_faults(live, webhook_failure_rate=1.0)
        assert pay(live, started["url"], card="4242424242424242").status_code == 200
        set_faults(live, webhook_failure_rate=1.0, api_error_rate=1.0)
        try:
            with anonymous(live) as browser:
                page = browser.get(f"/checkout/success?session_id={session_id_of(started['url'])}")
        finally:
            clear_faults(live)
        assert page.status_code == 200, page.text
        assert "Nothing was charged" not in page.text
        assert 'data-confirming="true"' in page.text
        assert "we are confirming your payment" in page.text
        assert '<meta http-equiv="refresh"' in page.text
        assert order(live, started["orderId"])["payment_status"] == "pending"


def test_fifty_quick_loads_of_a_pending_order_read_stripe_at_most_twice(live: LiveServer) -> None:
    with onboarded_team(live) as team, webhooks_paused(live):
        started = start(live, team, [(listing(team), 1)])  # not paid: stays pending
        url = f"/checkout/success?session_id={session_id_of(started['url'])}"
        before = reads(live)
        with anonymous(live) as browser:
            pages = [browser.get(url) for _ in range(50)]
        assert {p.status_code for p in pages} == {200}
        assert all('data-confirming="true"' in p.text for p in pages)
        assert 1 <= reads(live) - before <= 2


def test_a_settled_order_never_reads_stripe_again(live: LiveServer) -> None:
    with onboarded_team(live) as team, webhooks_paused(live):
        started = start(live, team, [(listing(team), 1)])
        assert pay(live, started["url"], card="4242424242424242").status_code == 200
        url = f"/checkout/success?session_id={session_id_of(started['url'])}"
        with anonymous(live) as browser:
            first = browser.get(url)  # the webhook is late: the page reads Stripe once
            assert 'data-status="paid"' in first.text
            before = reads(live)
            for _ in range(20):
                assert 'data-status="paid"' in browser.get(url).text
        assert reads(live) == before


def test_an_unknown_session_is_404_without_asking_stripe(live: LiveServer) -> None:
    before = reads(live)
    with anonymous(live) as browser:
        for n in range(10):
            assert (
                browser.get(f"/checkout/success?session_id=cs_test_made_up_{n}").status_code == 404
            )
    assert reads(live) == before
