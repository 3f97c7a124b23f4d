"""Account links (the onboarding page) and login links (the Express dashboard): single-use
URLs a person follows, expiring by the sandbox clock."""

from __future__ import annotations

import secrets

from souq.sandbox.accounts import Accounts
from souq.sandbox.core import Core
from souq.sandbox.errors import invalid
from souq.sandbox.objects import PLATFORM, Ctx, J, new_id, out
from souq.sandbox.rules import opt_url
from souq.sandbox.wire import req_str

# Stripe publishes no exact lifetime for either kind of link, only that they are short-lived
# ("expires a brief period after you retrieve it"); the sandbox gives both five minutes.
LINK_TTL = 300
LOGIN_LINK_TTL = 300


class AccountLinks:
    def __init__(self, core: Core, accounts: Accounts) -> None:
        self.core = core
        self.accounts = accounts

    def create(self, ctx: Ctx, params: J) -> J:
        account_id = req_str(params, "account")
        link_type = req_str(params, "type")
        if link_type not in ("account_onboarding", "account_update"):
            raise invalid(f"Invalid type: {link_type}", param="type")
        refresh_url = opt_url(params, "refresh_url")
        return_url = opt_url(params, "return_url")
        with self.core.store.transaction():
            account = self.accounts.get(account_id)
            if link_type == "account_update" and account["_dashboard"] in ("express", "full"):
                raise invalid(
                    "You cannot create `account_update` type Account Links for accounts with "
                    "access to a Stripe-hosted dashboard (Express or Standard). Use "
                    "`account_onboarding` instead.",
                    param="type",
                )
            link_id = new_id("", 32)
            now = self.core.now()
            link: J = {
                "object": "account_link",
                "created": now,
                "expires_at": now + LINK_TTL,
                "url": f"{self.core.public_url}/onboarding/{link_id}",
                "id": "acctlink_" + link_id,
                "_account": account_id,
                "_type": link_type,
                "_refresh_url": refresh_url,
                "_return_url": return_url,
                "_visited": False,
                "_visit_token": None,
            }
            self.core.put(link, PLATFORM)
            view = out(link)
            del view["id"]
            return view

    def find(self, link_id: str) -> J | None:
        return self.core.store.get("acctlink_" + link_id)

    def visit(self, link_id: str) -> tuple[str, J | None, J | None]:
        """A person opens a link: ("page", link, account) the first time, else
        ("redirect", link, None) to its refresh_url; ("missing", None, None) if unknown."""
        with self.core.store.transaction():
            link = self.find(link_id)
            if link is None:
                return "missing", None, None
            account = self.core.store.get(link["_account"])
            rejected = account is None or str(
                account["requirements"].get("disabled_reason") or ""
            ).startswith("rejected")
            usable = not link["_visited"] and link["expires_at"] > self.core.now()
            link["_visited"] = True
            if not usable or rejected:
                self.core.put(link, PLATFORM)
                return "redirect", link, None
            link["_visit_token"] = secrets.token_urlsafe(16)
            self.core.put(link, PLATFORM)
            return "page", link, account

    def submit(self, link_id: str, token: str, outcome: str) -> J | None:
        """The onboarding form's answer; the link's visit token is single use."""
        with self.core.store.transaction():
            link = self.find(link_id)
            if link is None or not token or link["_visit_token"] != token:
                return None
            link["_visit_token"] = None
            self.core.put(link, PLATFORM)
            if outcome in ("complete", "requirements_due"):
                self.accounts.onboard(link["_account"], outcome)
            return link


class LoginLinks:
    def __init__(self, core: Core, accounts: Accounts) -> None:
        self.core = core
        self.accounts = accounts

    def create(self, ctx: Ctx, params: J, account_id: str) -> J:
        with self.core.store.transaction():
            account = self.accounts.get(account_id, param="account")
            if account["_dashboard"] != "express":
                raise invalid(
                    "Cannot create a login link for an account without access to the Express "
                    "Dashboard.",
                    param="account",
                )
            # Stricter pick (unverified): refused until onboarding was submitted.
            if not account["details_submitted"]:
                raise invalid(
                    "Cannot create a login link for an account that has not completed onboarding.",
                    param="account",
                )
            token = secrets.token_urlsafe(24)
            now = self.core.now()
            link: J = {
                "id": f"loginlink_{token}",
                "object": "login_link",
                "created": now,
                "url": f"{self.core.public_url}/express/{token}",
                "_account": account_id,
                "_expires_at": now + LOGIN_LINK_TTL,
                "_used": False,
            }
            self.core.put(link, PLATFORM)
            return {k: link[k] for k in ("object", "created", "url")}

    def redeem(self, token: str) -> J | None:
        """The account a login link opens, once and before it expires; None otherwise."""
        with self.core.store.transaction():
            link = self.core.store.get(f"loginlink_{token}")
            if link is None or link.get("object") != "login_link" or link["_used"]:
                return None
            link["_used"] = True
            self.core.put(link, PLATFORM)
            if link["_expires_at"] <= self.core.now():
                return None
            account = self.core.store.get(str(link["_account"]))
            if account is None or account.get("_deauthorized"):
                return None
            return account
