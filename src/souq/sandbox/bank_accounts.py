"""A connected account's bank account, and Stripe's test bank account numbers that make a
payout to it fail (https://docs.stripe.com/connect/testing#payouts).

The person onboarding an Express account types the bank account into Stripe's hosted form; the
sandbox's control API stands in for that form (`POST /_control/accounts/{id}/bank_account`).
An account without one is paid out as if it had Stripe's succeeding test account.
"""

from __future__ import annotations

from souq.sandbox.errors import invalid
from souq.sandbox.objects import J, new_id

# Stripe's US test account numbers (routing 110000000) and the failure code each payout gets;
# the messages follow https://docs.stripe.com/api/payouts/failures.
FAILING_NUMBERS = {
    "000111111116": "no_account",
    "000111111113": "account_closed",
    "000222222227": "insufficient_funds",
    "000333333335": "debit_not_authorized",
    "000444444440": "invalid_currency",
}
FAILURE_MESSAGES = {
    "no_account": "The bank account details on file are probably incorrect. "
    "No bank account could be located with those details.",
    "account_closed": "The bank account has been closed.",
    "insufficient_funds": "Your Stripe account has insufficient funds to cover the payout.",
    "debit_not_authorized": "Debit transactions are not approved on the bank account.",
    "invalid_currency": "The bank was unable to process this payout because of its currency.",
}
SUCCEEDING_NUMBER = "000123456789"


def bank_account(number: object) -> J:
    """A new bank account (`ba_`) from the number the form was given: 4 to 17 digits."""
    if not isinstance(number, str) or not number.isdigit() or not 4 <= len(number) <= 17:
        raise invalid("account_number must be 4 to 17 digits", param="account_number")
    return {"id": new_id("ba_"), "account_number": number, "last4": number[-4:], "status": "new"}


def failure_of(bank: J | None) -> str | None:
    """The failure code a payout to this bank account gets (None: it is paid)."""
    return None if bank is None else FAILING_NUMBERS.get(str(bank["account_number"]))
