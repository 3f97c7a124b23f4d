"""Connected accounts, account links, login links and simulated onboarding."""

from __future__ import annotations

import copy
import secrets

from souq.sandbox.base import (
    APPLICATION_ID,
    CONTROL,
    PLATFORM,
    Ctx,
    EngineBase,
    J,
    new_id,
    out,
    template,
)
from souq.sandbox.errors import StripeError, invalid
from souq.sandbox.rules import check_metadata, merge_metadata
from souq.sandbox.wire import as_bool, opt_str, req_str, sub

LINK_TTL = 300
INITIAL_REQUIREMENTS = [
    "business_profile.mcc",
    "business_profile.url",
    "business_type",
    "external_account",
    "representative.first_name",
    "representative.last_name",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]


COUNTRY_CURRENCY = {
    "US": "usd",
    "GB": "gbp",
    "CA": "cad",
    "AU": "aud",
    "JP": "jpy",
    "FR": "eur",
    "DE": "eur",
    "NL": "eur",
    "IE": "eur",
    "ES": "eur",
    "IT": "eur",
    "AE": "aed",
    "SG": "sgd",
    "MX": "mxn",
    "KW": "kwd",
}


class Accounts(EngineBase):
    def create_account(self, params: J, ctx: Ctx) -> J:
        if ctx.account is not None:
            raise StripeError(
                403,
                "You cannot create connected accounts on behalf of a connected account.",
                type_="invalid_request_error",
            )
        type_ = opt_str(params, "type")
        controller = sub(params, "controller")
        dashboard = sub(controller, "stripe_dashboard").get("type")
        fees_payer = sub(controller, "fees").get("payer")
        losses = sub(controller, "losses").get("payments")
        collection = controller.get("requirement_collection")
        if type_ is not None and controller:
            raise invalid("You cannot specify both `type` and `controller`.", param="controller")
        if type_ is None and not controller:
            raise invalid(
                "You must specify either `type` or `controller`.",
                param="type",
                code="parameter_missing",
            )
        if type_ is not None and type_ not in ("express", "standard", "custom"):
            raise invalid(f"Invalid type: {type_}", param="type", code="parameter_invalid_string")
        if fees_payer in ("application_express", "application_custom"):
            raise invalid(
                f"Invalid controller[fees][payer]: {fees_payer}",
                param="controller[fees][payer]",
            )
        if controller:
            dashboard = dashboard or "full"
            fees_payer = fees_payer or "account"
            losses = losses or "stripe"
            collection = collection or "stripe"
            if dashboard == "express" and (
                losses == "stripe" or fees_payer == "account" or collection == "application"
            ):
                raise invalid(
                    "Accounts with the Express Dashboard must have "
                    "controller[losses][payments]=application, "
                    "controller[fees][payer]=application and "
                    "controller[requirement_collection]=stripe.",
                    param="controller",
                )
            controller_view: J = {
                "type": "application",
                "is_controller": True,
                "fees": {"payer": fees_payer},
                "losses": {"payments": losses},
                "requirement_collection": collection,
                "stripe_dashboard": {"type": dashboard},
            }
            account_type = "none"
        else:
            account_type = str(type_)
            dashboard = {"express": "express", "standard": "full", "custom": "none"}[account_type]
            controller_view = {
                "type": "application",
                "is_controller": True,
                "fees": {
                    "payer": {"express": "application_express", "custom": "application_custom"}.get(
                        account_type, "account"
                    )
                },
                "losses": {"payments": "stripe" if account_type == "standard" else "application"},
                "requirement_collection": "stripe" if account_type != "custom" else "application",
                "stripe_dashboard": {"type": dashboard},
            }
        requested = sub(params, "capabilities")
        capabilities: J = {}
        for name in requested:
            if as_bool(sub(requested, name).get("requested", "false"), f"capabilities[{name}]"):
                capabilities[name] = "inactive"
        country = (opt_str(params, "country") or "US").upper()
        account = template("account")
        account_id = new_id("acct_", 16)
        account.update(
            id=account_id,
            created=self.now(),
            type=account_type,
            controller=controller_view,
            country=country,
            default_currency=opt_str(params, "default_currency")
            or COUNTRY_CURRENCY.get(country, "usd"),
            email=opt_str(params, "email"),
            business_type=opt_str(params, "business_type"),
            metadata=check_metadata(params.get("metadata")),
            capabilities=capabilities,
            charges_enabled=False,
            payouts_enabled=False,
            details_submitted=False,
            requirements=self._requirements(INITIAL_REQUIREMENTS, "requirements.past_due"),
            future_requirements=self._requirements([], None),
            external_accounts={
                "object": "list",
                "data": [],
                "has_more": False,
                "url": f"/v1/accounts/{account_id}/external_accounts",
            },
            tos_acceptance={"date": None, "ip": None, "user_agent": None},
            _dashboard=dashboard,
        )
        account["business_profile"].update(
            {k: v for k, v in sub(params, "business_profile").items() if isinstance(v, str)}
        )
        with self.store.transaction():
            return self._put(account, PLATFORM)

    @staticmethod
    def _requirements(due: list[str], reason: str | None) -> J:
        return {
            "alternatives": [],
            "current_deadline": None,
            "currently_due": list(due),
            "disabled_reason": reason,
            "errors": [],
            "eventually_due": list(due),
            "past_due": list(due),
            "pending_verification": [],
        }

    def get_account(self, account_id: str, param: str = "account") -> J:
        return self._get(account_id, "account", "account", None, param=param)

    def update_account(self, account_id: str, params: J, ctx: Ctx) -> J:
        with self.store.transaction():
            account = self.get_account(account_id)
            changes: J = {}
            for key in ("email", "business_type", "default_currency"):
                if key in params:
                    changes[key] = opt_str(params, key)
            if "business_profile" in params:
                profile = dict(account["business_profile"])
                profile.update(
                    {k: v for k, v in sub(params, "business_profile").items() if isinstance(v, str)}
                )
                changes["business_profile"] = profile
            if "metadata" in params:
                changes["metadata"] = merge_metadata(account["metadata"], params["metadata"])
            schedule = sub(sub(sub(params, "settings"), "payouts"), "schedule")
            if schedule:
                changes["settings"] = self._payout_schedule(account, schedule)
            if "capabilities" in params:
                caps = dict(account["capabilities"])
                for name in sub(params, "capabilities"):
                    wanted = as_bool(
                        sub(sub(params, "capabilities"), name).get("requested", "false"),
                        f"capabilities[{name}][requested]",
                    )
                    if wanted and name not in caps:
                        caps[name] = "active" if account["details_submitted"] else "inactive"
                    elif not wanted:
                        caps.pop(name, None)
                changes["capabilities"] = caps
            return self._update_with_event(
                account, changes, "account.updated", ctx, account=account_id
            )

    @staticmethod
    def _payout_schedule(account: J, schedule: J) -> J:
        """`settings[payouts][schedule][interval]`: `daily` (the default, paid out
        automatically once funds are available) or `manual` (no automatic payouts)."""
        interval = schedule.get("interval")
        if interval not in (None, "daily", "manual"):
            raise invalid(
                "The sandbox supports only the daily and manual payout schedules.",
                param="settings[payouts][schedule][interval]",
            )
        settings: J = copy.deepcopy(account["settings"])
        current = settings["payouts"]["schedule"]
        if interval == "manual":
            settings["payouts"]["schedule"] = {
                "delay_days": current["delay_days"],
                "interval": "manual",
            }
        elif interval == "daily":
            settings["payouts"]["schedule"] = {"delay_days": 2, "interval": "daily"}
        return settings

    def delete_account(self, account_id: str) -> J:
        with self.store.transaction():
            self.get_account(account_id)
            self.store.delete(account_id)
            return {"id": account_id, "object": "account", "deleted": True}

    def onboard(self, account_id: str, outcome: str) -> J:
        """What the hosted onboarding form does: finish, leave early, or get rejected."""
        with self.store.transaction():
            account = self.get_account(account_id)
            if outcome == "complete":
                caps = {name: "pending" for name in account["capabilities"]}
                self._update_with_event(
                    account,
                    {
                        "details_submitted": True,
                        "capabilities": caps,
                        "requirements": self._requirements([], None),
                        "tos_acceptance": {
                            "date": self.now(),
                            "ip": "127.0.0.1",
                            "user_agent": "souq-sandbox",
                        },
                    },
                    "account.updated",
                    CONTROL,
                    account=account_id,
                )
                caps = {name: "active" for name in account["capabilities"]}
                self._update_with_event(
                    account,
                    {
                        "capabilities": caps,
                        "charges_enabled": "card_payments" in caps or "transfers" in caps,
                        "payouts_enabled": True,
                    },
                    "account.updated",
                    CONTROL,
                    account=account_id,
                )
            elif outcome == "requirements_due":
                due = ["external_account", "tos_acceptance.date", "tos_acceptance.ip"]
                self._update_with_event(
                    account,
                    {
                        "requirements": self._requirements(due, "requirements.past_due"),
                        "capabilities": {n: "inactive" for n in account["capabilities"]},
                        "charges_enabled": False,
                        "payouts_enabled": False,
                    },
                    "account.updated",
                    CONTROL,
                    account=account_id,
                )
            elif outcome == "rejected":
                requirements = dict(account["requirements"])
                requirements["disabled_reason"] = "rejected.fraud"
                self._update_with_event(
                    account,
                    {
                        "requirements": requirements,
                        "charges_enabled": False,
                        "payouts_enabled": False,
                        "capabilities": {n: "inactive" for n in account["capabilities"]},
                    },
                    "account.updated",
                    CONTROL,
                    account=account_id,
                )
            else:
                raise invalid(
                    "outcome must be one of complete, requirements_due, rejected",
                    param="outcome",
                )
            return account

    def deauthorize(self, account_id: str) -> J:
        with self.store.transaction():
            account = self.get_account(account_id)
            application = {"id": APPLICATION_ID, "object": "application", "name": "Souq"}
            self.emit(
                "account.application.deauthorized",
                account,
                CONTROL,
                account=account_id,
                snapshot=application,
            )
            account["_deauthorized"] = True
            return self._put(account, PLATFORM)

    def _usable_account(self, account_id: str, param: str) -> J:
        account = self.store.get(account_id)
        if account is None or account.get("object") != "account" or account.get("_deauthorized"):
            raise invalid(
                f"No such destination: '{account_id}'", param=param, code="resource_missing"
            )
        return account

    def _check_destination(self, account_id: str, param: str) -> J:
        account = self._usable_account(account_id, param)
        if account["capabilities"].get("transfers") != "active":
            raise invalid(
                "Your destination account needs to have at least one of the following "
                "capabilities enabled: transfers, crypto_transfers, legacy_payments",
                param=param,
                code="insufficient_capabilities_for_transfer",
            )
        return account

    def create_account_link(self, params: J, ctx: Ctx) -> J:
        account_id = req_str(params, "account")
        link_type = req_str(params, "type")
        if link_type not in ("account_onboarding", "account_update"):
            raise invalid(f"Invalid type: {link_type}", param="type")
        with self.store.transaction():
            account = self.get_account(account_id)
            if link_type == "account_update" and account["_dashboard"] in ("express", "full"):
                raise invalid(
                    "You cannot create `account_update` type Account Links for accounts with "
                    "access to a Stripe-hosted dashboard (Express or Standard). Use "
                    "`account_onboarding` instead.",
                    param="type",
                )
            link_id = new_id("", 32)
            link: J = {
                "object": "account_link",
                "created": self.now(),
                "expires_at": self.now() + LINK_TTL,
                "url": f"{self.public_url}/onboarding/{link_id}",
                "id": "acctlink_" + link_id,
                "_account": account_id,
                "_type": link_type,
                "_refresh_url": opt_str(params, "refresh_url"),
                "_return_url": opt_str(params, "return_url"),
                "_visited": False,
                "_visit_token": None,
            }
            self._put(link, PLATFORM)
            view = out(link)
            del view["id"]
            return view

    def visit_link(self, link_id: str) -> tuple[str, J | None, J | None]:
        """A person opens a link: ("page", link, account) the first time, else
        ("redirect", link, None) to its refresh_url; ("missing", None, None) if unknown."""
        with self.store.transaction():
            link = self.store.get("acctlink_" + link_id)
            if link is None:
                return "missing", None, None
            account = self.store.get(link["_account"])
            rejected = account is None or str(
                account["requirements"].get("disabled_reason") or ""
            ).startswith("rejected")
            if link["_visited"] or link["expires_at"] <= self.now() or rejected:
                link["_visited"] = True
                self._put(link, PLATFORM)
                return "redirect", link, None
            link["_visited"] = True
            link["_visit_token"] = secrets.token_urlsafe(16)
            self._put(link, PLATFORM)
            return "page", link, account

    def submit_link(self, link_id: str, token: str, outcome: str) -> J | None:
        """The onboarding form's answer; the link's visit token is single use."""
        with self.store.transaction():
            link = self.store.get("acctlink_" + link_id)
            if link is None or not token or link["_visit_token"] != token:
                return None
            link["_visit_token"] = None
            self._put(link, PLATFORM)
            if outcome in ("complete", "requirements_due"):
                self.onboard(link["_account"], outcome)
            return link

    def create_login_link(self, account_id: str, ctx: Ctx) -> J:
        with self.store.transaction():
            account = self.get_account(account_id, param="account")
            if account["_dashboard"] != "express":
                raise invalid(
                    "Cannot create a login link for an account without access to the Express "
                    "Dashboard.",
                    param="account",
                )
            # Stricter pick (UNVERIFIED): Stripe refuses until onboarding was submitted.
            if not account["details_submitted"]:
                raise invalid(
                    "Cannot create a login link for an account that has not completed onboarding.",
                    param="account",
                )
            token = secrets.token_urlsafe(24)
            self.store.set_meta(f"login:{token}", account_id)
            return {
                "object": "login_link",
                "created": self.now(),
                "url": f"{self.public_url}/express/{token}",
            }

    def login_account(self, token: str) -> J | None:
        account_id = self.store.get_meta(f"login:{token}")
        return None if account_id is None else self.store.get(str(account_id))
