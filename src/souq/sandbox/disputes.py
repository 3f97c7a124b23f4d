"""Disputes: opened by a test card after a successful charge, answered with evidence."""

from __future__ import annotations

from souq.sandbox.core import Core
from souq.sandbox.errors import invalid
from souq.sandbox.ledger import fee_detail
from souq.sandbox.objects import DAY, Ctx, J, new_id, template
from souq.sandbox.rules import merge_metadata
from souq.sandbox.wire import opt_bool, sub

DISPUTE_FEE = 1500
EVIDENCE_DAYS = 7
_CLOSED = ("won", "lost", "warning_closed")


class Disputes:
    def __init__(self, core: Core) -> None:
        self.core = core

    def open(self, charge: J, reason: str, ctx: Ctx) -> None:
        """The cardholder disputes `charge`: its amount and the dispute fee are withdrawn."""
        dispute_id = new_id("du_")
        amount, currency = int(charge["amount"]), charge["currency"]
        txn = self.core.ledger.book(
            ctx.owner,
            amount=-amount,
            currency=currency,
            type_="adjustment",
            source=dispute_id,
            fees=[fee_detail("dispute", DISPUTE_FEE, currency)],
            description=f"Chargeback withdrawal for {charge['id']}",
            category="dispute",
        )
        now = self.core.now()
        dispute = template("dispute")
        dispute.update(
            id=dispute_id,
            created=now,
            amount=amount,
            currency=currency,
            charge=charge["id"],
            payment_intent=charge["payment_intent"],
            reason=reason,
            status="needs_response",
            balance_transactions=[self.core.render(txn)],
            is_charge_refundable=False,
            metadata={},
            livemode=False,
            evidence_details={
                "due_by": now + EVIDENCE_DAYS * DAY,
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
            },
        )
        self.core.put(dispute, ctx.owner)
        charge["disputed"] = True
        self.core.put(charge, ctx.owner)
        self.core.emit("charge.dispute.created", dispute, ctx, account=ctx.account)
        self.core.emit("charge.dispute.funds_withdrawn", dispute, ctx, account=ctx.account)

    def retrieve(self, ctx: Ctx, params: J, dispute_id: str) -> J:
        return self._open_one(dispute_id, ctx, closed_ok=True)

    def _open_one(self, dispute_id: str, ctx: Ctx, *, closed_ok: bool = False) -> J:
        dispute = self.core.get(dispute_id, "dispute", "dispute", ctx)
        if not closed_ok and dispute["status"] in _CLOSED:
            raise invalid("This dispute is already closed.", param="dispute")
        return dispute

    def all(self, ctx: Ctx, params: J) -> list[J]:
        items = self.core.store.query("dispute", owner=ctx.owner)
        for key in ("charge", "payment_intent"):
            if isinstance(params.get(key), str):
                items = [i for i in items if i[key] == params[key]]
        return items

    def update(self, ctx: Ctx, params: J, dispute_id: str) -> J:
        """Evidence `uncategorized_text=winning_evidence` wins, `losing_evidence` loses."""
        with self.core.store.transaction():
            dispute = self._open_one(dispute_id, ctx)
            evidence = sub(params, "evidence")
            changes: J = {}
            if evidence:
                changes["evidence"] = {
                    **dispute["evidence"],
                    **{k: v for k, v in evidence.items() if isinstance(v, str)},
                }
                changes["evidence_details"] = dict(dispute["evidence_details"], has_evidence=True)
            if "metadata" in params:
                changes["metadata"] = merge_metadata(dispute["metadata"], params["metadata"])
            submit = opt_bool(params, "submit")
            text = (changes.get("evidence") or dispute["evidence"]).get("uncategorized_text")
            if submit is None or submit:
                if text == "winning_evidence":
                    changes["status"] = "won"
                elif text == "losing_evidence":
                    changes["status"] = "lost"
                elif evidence:
                    changes["status"] = "under_review"
            self.core.update(dispute, changes, "charge.dispute.updated", ctx, account=ctx.account)
            if dispute["status"] in ("won", "lost"):
                self._closed(dispute, ctx)
            return dispute

    def close(self, ctx: Ctx, params: J, dispute_id: str) -> J:
        """Accept the dispute: it is lost."""
        with self.core.store.transaction():
            dispute = self._open_one(dispute_id, ctx)
            dispute["status"] = "lost"
            dispute["is_charge_refundable"] = False
            self.core.put(dispute, ctx.owner)
            self._closed(dispute, ctx)
            return dispute

    def _closed(self, dispute: J, ctx: Ctx) -> None:
        """A won dispute gives the amount back (not the fee); either way it is closed."""
        if dispute["status"] == "won":
            txn = self.core.ledger.book(
                ctx.owner,
                amount=int(dispute["amount"]),
                currency=dispute["currency"],
                type_="adjustment",
                source=dispute["id"],
                category="dispute_reversal",
                description=f"Chargeback reversal for {dispute['charge']}",
            )
            dispute["balance_transactions"] = [
                *dispute["balance_transactions"],
                self.core.render(txn),
            ]
            self.core.put(dispute, ctx.owner)
        self.core.emit("charge.dispute.closed", dispute, ctx, account=ctx.account)
        if dispute["status"] == "won":
            self.core.emit("charge.dispute.funds_reinstated", dispute, ctx, account=ctx.account)
