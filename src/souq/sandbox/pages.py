"""The hosted pages a person clicks through: onboarding, checkout, the Express dashboard."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from souq.sandbox.delivery import Deliverer
from souq.sandbox.engine import Engine
from souq.sandbox.errors import StripeError
from souq.sandbox.rules import format_amount

J = dict[str, Any]
FULFILMENT_WAIT = 10.0


class Pages:
    def __init__(self, engine: Engine, deliverer: Deliverer) -> None:
        self.engine = engine
        self.deliverer = deliverer
        self.templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

    def routes(self) -> list[Route]:
        return [
            Route("/onboarding/{link}", self.onboarding, methods=["GET", "POST"]),
            Route("/checkout/{session}", self.checkout, methods=["GET", "POST"]),
            Route("/checkout/{session}/authenticate", self.authenticate, methods=["POST"]),
            Route("/express/{token}", self.express, methods=["GET"]),
        ]

    def _render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    def _message(
        self,
        request: Request,
        heading: str,
        text: str,
        status: int = 200,
        link: str | None = None,
        link_text: str = "Continue",
    ) -> Response:
        return self._render(
            request,
            "message.html",
            status,
            heading=heading,
            text=text,
            link=link,
            link_text=link_text,
        )

    @staticmethod
    def _redirect(url: str) -> Response:
        return RedirectResponse(url, status_code=303)

    def _url(self, path: str) -> str:
        return f"{self.engine.core.public_url}{path}"

    async def onboarding(self, request: Request) -> Response:
        link_id = request.path_params["link"]
        links = self.engine.account_links
        if request.method == "POST":
            form = await request.form()
            link = links.submit(link_id, str(form.get("token", "")), str(form.get("outcome", "")))
            if link is None:
                stale = links.find(link_id)
                if stale is not None and stale["_refresh_url"]:
                    return self._redirect(str(stale["_refresh_url"]))
                return self._message(
                    request, "Link expired", "This onboarding link can no longer be used.", 400
                )
            if link["_return_url"]:
                return self._redirect(str(link["_return_url"]))
            return self._message(request, "Done", "You can close this page.")
        state, link, account = links.visit(link_id)
        if state == "missing" or link is None:
            return self._message(request, "Link not found", "This link does not exist.", 404)
        if state == "redirect" or account is None:
            if link["_refresh_url"]:
                return self._redirect(str(link["_refresh_url"]))
            return self._message(
                request,
                "Link expired",
                "This onboarding link has expired or was already used.",
                400,
            )
        return self._render(
            request,
            "onboarding.html",
            account=account,
            token=link["_visit_token"],
            action=self._url(f"/onboarding/{link_id}"),
        )

    def _checkout_context(self, session: J) -> J:
        currency = session["currency"]
        return {
            "items": [
                {
                    "description": i["description"],
                    "quantity": i["quantity"],
                    "amount": format_amount(int(i["amount_total"]), currency),
                }
                for i in session["_line_items"]
            ],
            "total": format_amount(int(session["amount_total"]), currency),
            "cancel_url": session["cancel_url"],
            "email": session["customer_email"],
            "action": self._url(f"/checkout/{session['id']}"),
        }

    async def _await_fulfilment(self, session_id: str) -> None:
        """Checkout waits up to 10 s for the first answer to checkout.session.completed before it
        redirects (https://docs.stripe.com/checkout/fulfillment), so the success page usually
        sees a paid order."""
        deadline = time.monotonic() + FULFILMENT_WAIT
        while time.monotonic() < deadline:
            waiting = self.engine.store.execute(
                "SELECT COUNT(*) FROM deliveries d JOIN objects e ON e.id = d.event_id "
                "WHERE d.status = 'pending' AND d.attempts = 0 "
                "AND json_extract(e.data, '$.type') = 'checkout.session.completed' "
                "AND json_extract(e.data, '$.data.object.id') = ?",
                (session_id,),
            ).fetchone()[0]
            if not waiting:
                return
            await self.deliverer.deliver_due()
            await asyncio.sleep(0.05)

    async def _success(self, session: J) -> Response:
        await self._await_fulfilment(str(session["id"]))
        url = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session["id"])
        return self._redirect(url)

    def _closed(self, request: Request, session: J) -> Response:
        if session["status"] == "complete":
            url = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session["id"])
            return self._message(request, "Already paid", "This checkout is complete.", link=url)
        return self._message(
            request,
            "Checkout expired",
            "This checkout session has expired.",
            410,
            link=session["cancel_url"],
            link_text="Go back",
        )

    async def checkout(self, request: Request) -> Response:
        session_id = request.path_params["session"]
        session = self.engine.store.get(session_id)
        if session is None or session.get("object") != "checkout.session":
            return self._message(request, "Not found", "No such checkout session.", 404)
        if session["status"] == "open" and session["expires_at"] <= self.engine.core.now():
            self.engine.tick()
            session = self.engine.store.get(session_id) or session
        if session["status"] != "open":
            return self._closed(request, session)
        if request.method == "GET":
            return self._render(request, "checkout.html", **self._checkout_context(session))
        form = await request.form()
        method = str(form.get("method") or "card")
        email = str(form.get("email") or "") or None
        try:
            if method == "delayed":
                session, error = self.engine.checkout_sessions.pay(
                    session_id,
                    method="delayed",
                    outcome=str(form.get("outcome", "succeeded")),
                    email=email,
                )
            else:
                session, error = self.engine.checkout_sessions.pay(
                    session_id, card=str(form.get("card", "")), email=email
                )
        except StripeError as exc:
            return self._message(request, "Checkout unavailable", exc.message, 400)
        if error is not None:
            context = self._checkout_context(session)
            context["email"] = email or context["email"]
            return self._render(request, "checkout.html", 402, error=error.message, **context)
        if session["status"] == "complete":
            return await self._success(session)
        return self._render(
            request,
            "authenticate.html",
            total=self._checkout_context(session)["total"],
            action=self._url(f"/checkout/{session_id}/authenticate"),
        )

    async def authenticate(self, request: Request) -> Response:
        session_id = request.path_params["session"]
        form = await request.form()
        outcome = "approve" if form.get("outcome") == "approve" else "fail"
        try:
            session, error = self.engine.checkout_sessions.pay(session_id, authentication=outcome)
        except StripeError as exc:
            return self._message(request, "Checkout unavailable", exc.message, 400)
        if error is not None:
            return self._render(
                request,
                "checkout.html",
                402,
                error=error.message,
                **self._checkout_context(session),
            )
        return await self._success(session)

    async def express(self, request: Request) -> Response:
        account = self.engine.login_links.redeem(request.path_params["token"])
        if account is None:
            return self._message(
                request,
                "Link expired",
                "This login link was already used, has expired, or is not valid. "
                "Ask the platform for a new one.",
                404,
            )
        available, pending = self.engine.core.ledger.balance_parts(account["id"])
        currencies = sorted(set(available) | set(pending)) or [account["default_currency"]]
        balance = [
            {
                "currency": c,
                "available": format_amount(available.get(c, 0), c),
                "pending": format_amount(pending.get(c, 0), c),
            }
            for c in currencies
        ]
        payments = [
            {
                "id": p["id"],
                "amount": format_amount(int(p["amount"]), p["currency"]),
                "date": dt.datetime.fromtimestamp(int(p["created"]), dt.UTC).strftime("%Y-%m-%d"),
            }
            for p in self.engine.store.query("charge", owner=account["id"])
        ]
        payouts = [
            {
                "id": p["id"],
                "amount": format_amount(int(p["amount"]), p["currency"]),
                "status": str(p["status"]).replace("_", " ").capitalize(),
                "arrival": dt.datetime.fromtimestamp(int(p["arrival_date"]), dt.UTC).strftime(
                    "%Y-%m-%d"
                ),
            }
            for p in self.engine.store.query("payout", owner=account["id"])
        ]
        return HTMLResponse(
            self.templates.get_template("express.html").render(
                account=account, balance=balance, payments=payments, payouts=payouts
            )
        )
