"""The seller's order page over HTTP: a refused form shows the page again with the reason
beside the field and changes nothing; a refund form's one-time key makes one refund."""

from __future__ import annotations

from tests.ledger.money_helpers import paid_order
from tests.ledger.test_disputes import DISPUTE_CARD
from tests.payments.stripe_helpers import listing, onboarded_team, start
from tests.servers import LiveServer


def _refunds(live: LiveServer, order_id: int) -> list[tuple[int, str]]:
    return [
        (r.amount, r.idempotency_key)
        for r in live.rows(
            "SELECT amount, idempotency_key FROM refund WHERE order_id = :i ORDER BY id",
            i=order_id,
        )
    ]


def test_refund_forms_refuse_beside_the_field_and_a_key_makes_one_refund(
    live: LiveServer,
) -> None:
    with onboarded_team(live, name="Refund Pages") as team:
        order = paid_order(live, team, price="10.00", quantity=1)
        client = team.owner.client
        page = f"/dashboard/orders/{order.id}"
        for amount, message in (("ten", "an amount such as &#34;12.50&#34;"), ("12.00", "at most")):
            refused = client.post(f"{page}/refunds/preview", data={"amount": amount})
            assert refused.status_code == 422, refused.text
            assert f'value="{amount}"' in refused.text
            assert message in refused.text.split('id="f-amount-error">')[1].split("</span>")[0]
        preview = client.post(f"{page}/refunds/preview", data={"amount": "4.00"})
        assert preview.status_code == 200
        assert 'data-party="buyer">$4.00' in preview.text
        assert _refunds(live, order.id) == []

        form = {"amount": "4.00", "idempotency_key": "page-refund-key-0001"}
        for _ in range(2):
            made = client.post(f"{page}/refunds", data=form)
            assert made.status_code == 303, made.text
        assert _refunds(live, order.id) == [(400, "page-refund-key-0001")]
        # The same key for another amount is another refund's key: refused, nothing made.
        reused = client.post(f"{page}/refunds", data={**form, "amount": "1.00"})
        assert reused.status_code == 409
        assert "Idempotency-Key was used for another refund" in reused.text
        assert _refunds(live, order.id) == [(400, "page-refund-key-0001")]
        # A seller may ship but not refund: the error page, and nothing refunded.
        denied = team.seller.client.post(f"{page}/refunds/preview", data={"amount": "1.00"})
        assert denied.status_code == 403
        assert denied.headers["content-type"].startswith("text/html")


def test_shipping_an_unpaid_order_and_empty_evidence_are_refused_on_the_page(
    live: LiveServer,
) -> None:
    with onboarded_team(live, name="Shipping Pages") as team:
        unpaid = start(live, team, [(listing(team, price="3.00"), 1)])["orderId"]
        refused = team.seller.client.post(
            f"/dashboard/orders/{unpaid}/fulfilment",
            data={"status": "shipped", "carrier": "DHL", "tracking_number": "X1"},
        )
        assert refused.status_code == 409
        assert "only a paid order can be fulfilled" in refused.text
        assert live.scalar("SELECT fulfilment_status FROM orders WHERE id = :i", i=unpaid) is None

        disputed = paid_order(live, team, price="6.00", quantity=1, card=DISPUTE_CARD)
        dispute_id = live.scalar("SELECT id FROM dispute WHERE order_id = :i", i=disputed.id)
        path = f"/dashboard/orders/{disputed.id}/disputes/{dispute_id}/evidence"
        empty = team.owner.client.post(path, data={"text": "   "})
        assert empty.status_code == 422
        assert f'id="f-evidence-{dispute_id}" name="text"' in empty.text
        assert 'aria-invalid="true"' in empty.text
        status = live.scalar("SELECT status FROM dispute WHERE id = :i", i=dispute_id)
        assert status == "needs_response"
        answered = team.owner.client.post(path, data={"text": "winning_evidence"})
        assert answered.status_code == 303
        assert live.scalar("SELECT evidence_text FROM dispute WHERE id = :i", i=dispute_id) == (
            "winning_evidence"
        )
