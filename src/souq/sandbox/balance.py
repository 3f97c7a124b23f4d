"""The balance, its balance transactions, and automatic payouts of connected accounts."""

from __future__ import annotations

from souq.sandbox.bank_accounts import FAILURE_MESSAGES, failure_of
from souq.sandbox.core import Core
from souq.sandbox.errors import invalid
from souq.sandbox.objects import DAY, PLATFORM, Ctx, J, account_ctx, new_id, template
from souq.sandbox.wire import in_range

PAYOUT_ARRIVAL_SECONDS = DAY


class Balance:
    def __init__(self, core: Core) -> None:
        self.core = core

    def retrieve(self, ctx: Ctx, params: J) -> J:
        available, pending = self.core.ledger.balance_parts(ctx.owner)
        currencies = sorted(set(available) | set(pending)) or ["usd"]

        def part(values: dict[str, int]) -> list[J]:
            return [
                {
                    "amount": values.get(c, 0),
                    "currency": c,
                    "source_types": {"card": values.get(c, 0)},
                }
                for c in currencies
            ]

        return {
            "object": "balance",
            "livemode": False,
            "available": part(available),
            "pending": part(pending),
            "connect_reserved": [{"amount": 0, "currency": c} for c in currencies],
        }

    def transaction(self, ctx: Ctx, params: J, txn_id: str) -> J:
        return self.core.get(txn_id, "balance_transaction", "balance transaction", ctx)

    def transactions(self, ctx: Ctx, params: J) -> list[J]:
        """Filtered by `source`, `type`, `currency` and `payout`: an automatic payout's own
        balance transaction and every one it paid out."""
        items = self.core.store.query("balance_transaction", owner=ctx.owner)
        for key in ("source", "type", "currency"):
            if isinstance(params.get(key), str):
                items = [i for i in items if i[key] == params[key]]
        payout_id = params.get("payout")
        if isinstance(payout_id, str):
            payout = self.core.get(payout_id, "payout", "payout", ctx, param="payout")
            if not payout.get("automatic"):
                raise invalid(
                    "Balance transactions can only be listed by payout for automatic payouts.",
                    param="payout",
                )
            # What it paid out and its own `payout` transaction; a failed payout's
            # `payout_failure` is money back on the balance, paid out by a later payout.
            items = [
                i
                for i in items
                if i.get("_payout") == payout_id
                or (i["source"] == payout_id and i["type"] == "payout")
            ]
        return items


class Payouts:
    def __init__(self, core: Core) -> None:
        self.core = core

    def retrieve(self, ctx: Ctx, params: J, payout_id: str) -> J:
        return self.core.get(payout_id, "payout", "payout", ctx)

    def all(self, ctx: Ctx, params: J) -> list[J]:
        """Filtered by `status`, `destination` and `arrival_date` (`created` is generic)."""
        payouts = self.core.store.query("payout", owner=ctx.owner)
        for key in ("status", "destination"):
            if isinstance(params.get(key), str):
                payouts = [p for p in payouts if p[key] == params[key]]
        arrival = params.get("arrival_date")
        if arrival is not None and arrival != "":
            payouts = [p for p in payouts if in_range(int(p["arrival_date"]), arrival)]
        return payouts

    def pay_out_available(self) -> int:
        """The default Express schedule (daily, funds paid out once available): each connected
        account with payouts enabled gets one payout per currency per sandbox day of its whole
        available balance. Paying the balance out brings it to zero, so a tick run twice (or
        the clock moved back) pays nothing twice. Answers how many payouts it made."""
        made = 0
        today = self.core.now() // DAY
        for account in self.core.store.query("account", owner=PLATFORM):
            if not account.get("payouts_enabled") or account.get("_deauthorized"):
                continue
            if (account.get("_bank_account") or {}).get("status") == "errored":
                continue  # Stripe pauses payouts to a bank account a payout failed on
            schedule = (account.get("settings") or {}).get("payouts", {}).get("schedule", {})
            if schedule.get("interval") == "manual":
                continue
            available = self.core.ledger.balance_parts(account["id"])[0]
            for currency, amount in sorted(available.items()):
                if amount > 0 and not self._paid_out_today(account["id"], currency, today):
                    self._payout(account["id"], amount, currency)
                    made += 1
        return made

    def _paid_out_today(self, account_id: str, currency: str, today: int) -> bool:
        return bool(
            self.core.store.query(
                "payout",
                owner=account_id,
                where="json_extract(data, '$.currency') = ? AND "
                "json_extract(data, '$.automatic') AND "
                "json_extract(data, '$.created') >= ?",
                args=(currency, today * DAY),
            )
        )

    def _payout(self, account_id: str, amount: int, currency: str) -> J:
        bank = (self.core.store.get(account_id) or {}).get("_bank_account")
        payout_id = new_id("po_")
        now = self.core.now()
        self._sweep(account_id, currency, payout_id)
        txn = self.core.ledger.book(
            account_id,
            amount=-amount,
            currency=currency,
            type_="payout",
            source=payout_id,
            description="STRIPE PAYOUT",
        )
        payout = template("payout")
        payout.update(
            id=payout_id,
            amount=amount,
            currency=currency,
            created=now,
            arrival_date=now + PAYOUT_ARRIVAL_SECONDS,
            automatic=True,
            balance_transaction=txn["id"],
            description="STRIPE PAYOUT",
            destination=None if bank is None else bank["id"],
            failure_balance_transaction=None,
            failure_code=None,
            failure_message=None,
            livemode=False,
            metadata={},
            method="standard",
            original_payout=None,
            reconciliation_status="in_progress",
            reversed_by=None,
            source_type="card",
            statement_descriptor=None,
            status="in_transit",
            type="bank_account",
            _fails_with=failure_of(bank),
        )
        self.core.put(payout, account_id)
        self.core.emit("payout.created", payout, Ctx(account=account_id), account=account_id)
        self.core.store.add_job(now + PAYOUT_ARRIVAL_SECONDS, "payout_paid", {"payout": payout_id})
        return payout

    def _sweep(self, account_id: str, currency: str, payout_id: str) -> None:
        """Mark every available balance transaction not paid out yet as paid out by this
        payout (what `GET /v1/balance_transactions?payout=` lists): together they are the
        whole available balance the payout takes."""
        for txn in self.core.store.query(
            "balance_transaction",
            owner=account_id,
            where="json_extract(data, '$.currency') = ? AND "
            "json_extract(data, '$.available_on') <= ? AND "
            "json_extract(data, '$._payout') IS NULL AND json_extract(data, '$.type') != 'payout'",
            args=(currency, self.core.now()),
        ):
            txn["_payout"] = payout_id
            self.core.put(txn, account_id)

    def mark_paid(self, job: J) -> None:
        """A payout in transit reaches the bank on its arrival date, or, sent to one of
        Stripe's failing test bank accounts, fails then."""
        payout = self.core.store.get(job["payout"])
        if payout is None or payout.get("status") != "in_transit":
            return
        ctx = account_ctx(self.core.store.owner_of(payout["id"]))
        if payout.get("_fails_with"):
            self._fail(payout, ctx)
            return
        self.core.update(
            payout,
            {"status": "paid", "reconciliation_status": "completed"},
            "payout.paid",
            ctx,
            account=ctx.account,
        )

    def _fail(self, payout: J, ctx: Ctx) -> None:
        """As Stripe: the payout turns `failed` with a failure code and message, its amount
        comes back to the available balance as a `payout_failure` balance transaction
        (`failure_balance_transaction`), and the bank account is `errored`, which pauses the
        account's payouts until it gets a new one. https://docs.stripe.com/api/payouts/object
        and https://docs.stripe.com/api/payouts/failures"""
        account_id = str(ctx.account)
        code = str(payout["_fails_with"])
        txn = self.core.ledger.book(
            account_id,
            amount=int(payout["amount"]),
            currency=str(payout["currency"]),
            type_="payout_failure",
            source=payout["id"],
            description="STRIPE PAYOUT FAILURE",
        )
        account = self.core.store.get(account_id)
        if account is not None and account.get("_bank_account"):
            account["_bank_account"]["status"] = "errored"
            self.core.put(account, PLATFORM)
        changes = {
            "status": "failed",
            "failure_code": code,
            "failure_message": FAILURE_MESSAGES[code],
            "failure_balance_transaction": txn["id"],
            "reconciliation_status": "completed",
        }
        self.core.update(payout, changes, "payout.failed", ctx, account=account_id)
