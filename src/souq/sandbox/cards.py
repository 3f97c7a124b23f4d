"""Stripe's test cards and test PaymentMethods, and what each one does."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Card:
    number: str
    brand: str
    outcome: str = "succeeded"  # succeeded | declined | authenticate
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    dispute: str | None = None  # dispute reason created after success
    available_now: bool = False
    refund: str = "succeeded"  # succeeded | pending | fails


def declined_card(number: str, code: str, decline: str | None, message: str) -> Card:
    return Card(number, "visa", "declined", code, decline, message)


_DECLINED = "Your card was declined."


CARDS: dict[str, Card] = {
    c.number: c
    for c in [
        Card("4242424242424242", "visa"),
        Card("4000056655665556", "visa"),
        Card("5555555555554444", "mastercard"),
        Card("378282246310005", "amex"),
        declined_card("4000000000000002", "card_declined", "generic_decline", _DECLINED),
        declined_card(
            "4000000000009995",
            "card_declined",
            "insufficient_funds",
            "Your card has insufficient funds.",
        ),
        declined_card("4000000000009987", "card_declined", "lost_card", _DECLINED),
        declined_card("4000000000009979", "card_declined", "stolen_card", _DECLINED),
        declined_card("4000000000000069", "expired_card", "expired_card", "Your card has expired."),
        declined_card(
            "4000000000000127",
            "incorrect_cvc",
            "incorrect_cvc",
            "Your card's security code is incorrect.",
        ),
        declined_card(
            "4000000000000119",
            "processing_error",
            "processing_error",
            "An error occurred while processing your card. Try again in a little bit.",
        ),
        Card("4000002500003155", "visa", "authenticate"),
        Card("4000002760003184", "visa", "authenticate"),
        Card("4000000000000077", "visa", available_now=True),
        Card("4000000000000259", "visa", dispute="fraudulent"),
        Card("4000000000002685", "visa", dispute="product_not_received"),
        Card("4000000000007726", "visa", refund="pending"),
        Card("4000000000005126", "visa", refund="fails"),
    ]
}


TEST_PAYMENT_METHODS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_threeDSecure2Required": "4000002500003155",
    "pm_card_bypassPending": "4000000000000077",
    "pm_card_createDispute": "4000000000000259",
    "pm_card_createDisputeProductNotReceived": "4000000000002685",
    "pm_card_pendingRefund": "4000000000007726",
    "pm_card_refundFail": "4000000000005126",
}


def luhn_ok(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_for(number: str) -> Card:
    """What a card number does: a test card's behaviour, or a decline for anything else."""
    card = CARDS.get(number)
    if card is not None:
        return card
    if not luhn_ok(number):
        return declined_card(number, "incorrect_number", None, "Your card number is incorrect.")
    return declined_card(
        number,
        "card_declined",
        "test_mode_live_card",
        "Your card was declined. Your request was in test mode, but used a non test card. "
        "For a list of valid test cards, visit: https://stripe.com/docs/testing.",
    )
