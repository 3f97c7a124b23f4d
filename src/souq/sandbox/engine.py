"""The sandbox's Stripe: objects, the rules Stripe enforces, money movement and events.

Every public method runs inside one store transaction; a StripeError rolls the whole call back.
The engine is assembled from one class per area, each building on the one before:
EngineBase (base.py) -> Accounts -> Payments -> Checkout -> Engine.
"""

from __future__ import annotations

import hashlib
import json

from souq.sandbox.base import CONTROL, PLATFORM, Ctx, J, new_id, template
from souq.sandbox.checkout import Checkout

DAY = 86_400
PAYOUT_ARRIVAL_SECONDS = DAY


class Engine(Checkout):
    """The whole sandbox Stripe (see the module docstring)."""

    def get_event(self, event_id: str, ctx: Ctx) -> J:
        return self._get(event_id, "event", "event", ctx)

    def list_events(self, params: J, ctx: Ctx) -> list[J]:
        events = self.store.query("event", owner=ctx.owner)
        wanted = params.get("type")
        if isinstance(wanted, str):
            if wanted.endswith(".*"):
                events = [e for e in events if e["type"].startswith(wanted[:-1])]
            else:
                events = [e for e in events if e["type"] == wanted]
        types = params.get("types")
        if isinstance(types, list):
            events = [e for e in events if e["type"] in types]
        return events

    def tick(self) -> int:
        """Do whatever the clock says is due: expire sessions, settle delayed payments,
        finish pending refunds, pay out connected accounts' available balances and mark
        payouts paid on their arrival date. Answers how many things happened."""
        done = 0
        with self.store.transaction():
            now = self.now()
            for session in self.store.query(
                "checkout.session",
                where="json_extract(data, '$.status') = 'open' AND "
                "json_extract(data, '$.expires_at') <= ?",
                args=(now,),
            ):
                self._expire(session, CONTROL)
                done += 1
            for kind, payload in self.store.take_due_jobs(self.now_f()):
                if kind == "settle_delayed":
                    self._settle_delayed(payload)
                elif kind == "refund_status":
                    self._refund_status(payload)
                elif kind == "payout_paid":
                    self._payout_paid(payload)
                done += 1
            done += self._automatic_payouts()
        return done

    def _automatic_payouts(self) -> int:
        """The default Express schedule (daily, funds paid out once available): each connected
        account with payouts enabled gets one payout per currency per sandbox day of its whole
        available balance. Paying the balance out brings it to zero, so a tick run twice (or
        the clock moved back) pays nothing twice."""
        made = 0
        today = self.now() // DAY
        for account in self.store.query("account", owner=PLATFORM):
            if not account.get("payouts_enabled") or account.get("_deauthorized"):
                continue
            schedule = (account.get("settings") or {}).get("payouts", {}).get("schedule", {})
            if schedule.get("interval") == "manual":
                continue
            available = self.balance_parts(account["id"])[0]
            for currency, amount in sorted(available.items()):
                if amount <= 0:
                    continue
                paid_today = self.store.query(
                    "payout",
                    owner=account["id"],
                    where="json_extract(data, '$.currency') = ? AND "
                    "json_extract(data, '$.automatic') AND "
                    "json_extract(data, '$.created') >= ?",
                    args=(currency, today * DAY),
                )
                if paid_today:
                    continue
                self._payout(account["id"], amount, currency)
                made += 1
        return made

    def _payout(self, account_id: str, amount: int, currency: str) -> J:
        payout_id = new_id("po_")
        now = self.now()
        txn = self._txn(
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
            destination=None,
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
        )
        self._put(payout, account_id)
        ctx = Ctx(account=account_id)
        self.emit("payout.created", payout, ctx, account=account_id)
        self.store.add_job(now + PAYOUT_ARRIVAL_SECONDS, "payout_paid", {"payout": payout_id})
        return payout

    def _payout_paid(self, job: J) -> None:
        payout = self.store.get(job["payout"])
        if payout is None or payout.get("status") != "in_transit":
            return
        account_id = self.store.owner_of(payout["id"]) or PLATFORM
        ctx = Ctx(account=account_id)
        self._update_with_event(
            payout,
            {"status": "paid", "reconciliation_status": "completed"},
            "payout.paid",
            ctx,
            account=account_id,
        )

    def get_payout(self, payout_id: str, ctx: Ctx) -> J:
        return self._get(payout_id, "payout", "payout", ctx)

    def list_payouts(self, params: J, ctx: Ctx) -> list[J]:
        payouts = self.store.query("payout", owner=ctx.owner)
        for key in ("status", "destination"):
            if isinstance(params.get(key), str):
                payouts = [p for p in payouts if p[key] == params[key]]
        return payouts

    def fingerprint(self, method: str, path: str, params: J) -> str:
        blob = json.dumps([method, path, params], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()
