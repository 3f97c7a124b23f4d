"""The sandbox's Stripe, assembled: one service per resource over one shared Core.

Every public method runs inside one store transaction; a StripeError rolls the whole call back.
Services hold the Core (store, clock, events, ledger) and explicit references to the services
they call, wired here in dependency order.
"""

from __future__ import annotations

from collections.abc import Callable

from souq.sandbox.account_links import AccountLinks, LoginLinks
from souq.sandbox.accounts import Accounts
from souq.sandbox.application_fees import ApplicationFees
from souq.sandbox.balance import Balance, Payouts
from souq.sandbox.charges import Charges
from souq.sandbox.checkout import CheckoutSessions
from souq.sandbox.core import Core
from souq.sandbox.disputes import Disputes
from souq.sandbox.objects import J
from souq.sandbox.payment_intents import PaymentIntents
from souq.sandbox.refunds import Refunds
from souq.sandbox.transfers import Transfers
from souq.sandbox.webhooks import Events, WebhookEndpoints


class Engine:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.store = core.store
        self.accounts = Accounts(core)
        self.account_links = AccountLinks(core, self.accounts)
        self.login_links = LoginLinks(core, self.accounts)
        self.transfers = Transfers(core, self.accounts)
        self.application_fees = ApplicationFees(core)
        self.disputes = Disputes(core)
        self.charges = Charges(core, self.transfers, self.application_fees, self.disputes)
        self.payment_intents = PaymentIntents(core, self.accounts, self.charges)
        self.checkout_sessions = CheckoutSessions(core, self.payment_intents)
        self.refunds = Refunds(
            core, self.payment_intents, self.charges, self.transfers, self.application_fees
        )
        self.balance = Balance(core)
        self.payouts = Payouts(core)
        self.events = Events(core)
        self.webhook_endpoints = WebhookEndpoints(core)
        # What the clock runs when a scheduled job comes due (Core.schedule).
        self._jobs: dict[str, Callable[[J], object]] = {
            "settle_delayed": self.checkout_sessions.settle_delayed,
            "refund_status": self.refunds.settle,
            "payout_paid": self.payouts.mark_paid,
        }

    def tick(self) -> int:
        """Do whatever the clock says is due: expire sessions, settle delayed payments,
        finish pending refunds, pay out connected accounts' available balances and mark
        payouts paid on their arrival date. Answers how many things happened."""
        with self.store.transaction():
            done = self.checkout_sessions.expire_due()
            for kind, payload in self.store.take_due_jobs(self.core.now_f()):
                self._jobs[kind](payload)
                done += 1
            return done + self.payouts.pay_out_available()
