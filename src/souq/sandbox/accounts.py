"""Connected accounts: creation rules, updates, simulated onboarding and deauthorization."""

from __future__ import annotations

import copy

from souq.sandbox.bank_accounts import bank_account
from souq.sandbox.core import Core
from souq.sandbox.errors import StripeError, invalid
from souq.sandbox.objects import APPLICATION_ID, CONTROL, PLATFORM, Ctx, J, new_id, template
from souq.sandbox.rules import check_metadata, merge_metadata
from souq.sandbox.wire import as_bool, opt_str, sub

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
    "US": "usd", "GB": "gbp", "CA": "cad", "AU": "aud", "JP": "jpy", "FR": "eur", "DE": "eur",
    "NL": "eur", "IE": "eur", "ES": "eur", "IT": "eur", "AE": "aed", "SG": "sgd", "MX": "mxn",
    "KW": "kwd",
}  # fmt: skip

# What `type=` implies for the controller properties
# (https://docs.stripe.com/connect/migrate-to-controller-properties).
_TYPE_DASHBOARD = {"express": "express", "standard": "full", "custom": "none"}
_TYPE_FEES_PAYER = {"express": "application_express", "custom": "application_custom"}


def requirements(due: list[str], reason: str | None) -> J:
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


def _controller_for_type(account_type: str) -> J:
    return {
        "type": "application",
        "is_controller": True,
        "fees": {"payer": _TYPE_FEES_PAYER.get(account_type, "account")},
        "losses": {"payments": "stripe" if account_type == "standard" else "application"},
        "requirement_collection": "stripe" if account_type != "custom" else "application",
        "stripe_dashboard": {"type": _TYPE_DASHBOARD[account_type]},
    }


def _controller_from_params(controller: J) -> J:
    dashboard = sub(controller, "stripe_dashboard").get("type") or "full"
    fees_payer = sub(controller, "fees").get("payer") or "account"
    losses = sub(controller, "losses").get("payments") or "stripe"
    collection = controller.get("requirement_collection") or "stripe"
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
    return {
        "type": "application",
        "is_controller": True,
        "fees": {"payer": fees_payer},
        "losses": {"payments": losses},
        "requirement_collection": collection,
        "stripe_dashboard": {"type": dashboard},
    }


def _controller(params: J) -> tuple[str, J]:
    """The account's `type` and its controller properties, from `type` or `controller`."""
    type_ = opt_str(params, "type")
    controller = sub(params, "controller")
    fees_payer = sub(controller, "fees").get("payer")
    if type_ is not None and controller:
        raise invalid("You cannot specify both `type` and `controller`.", param="controller")
    if type_ is None and not controller:
        raise invalid(
            "You must specify either `type` or `controller`.",
            param="type",
            code="parameter_missing",
        )
    if type_ is not None and type_ not in _TYPE_DASHBOARD:
        raise invalid(f"Invalid type: {type_}", param="type", code="parameter_invalid_string")
    if fees_payer in ("application_express", "application_custom"):
        raise invalid(
            f"Invalid controller[fees][payer]: {fees_payer}", param="controller[fees][payer]"
        )
    if type_ is None:
        return "none", _controller_from_params(controller)
    return type_, _controller_for_type(type_)


def _profile(params: J) -> dict[str, str]:
    return {k: v for k, v in sub(params, "business_profile").items() if isinstance(v, str)}


class Accounts:
    def __init__(self, core: Core) -> None:
        self.core = core

    def create(self, ctx: Ctx, params: J) -> J:
        if ctx.account is not None:
            raise StripeError(
                403, "You cannot create connected accounts on behalf of a connected account."
            )
        account_type, controller = _controller(params)
        requested = sub(params, "capabilities")
        capabilities = {
            name: "inactive"
            for name in requested
            if as_bool(sub(requested, name).get("requested", "false"), f"capabilities[{name}]")
        }
        country = (opt_str(params, "country") or "US").upper()
        account_id = new_id("acct_", 16)
        account = template("account")
        account.update(
            id=account_id,
            created=self.core.now(),
            type=account_type,
            controller=controller,
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
            requirements=requirements(INITIAL_REQUIREMENTS, "requirements.past_due"),
            future_requirements=requirements([], None),
            external_accounts={
                "object": "list",
                "data": [],
                "has_more": False,
                "url": f"/v1/accounts/{account_id}/external_accounts",
            },
            tos_acceptance={"date": None, "ip": None, "user_agent": None},
            _dashboard=controller["stripe_dashboard"]["type"],
        )
        account["business_profile"].update(_profile(params))
        with self.core.store.transaction():
            return self.core.put(account, PLATFORM)

    def retrieve(self, ctx: Ctx | None, params: J, account_id: str) -> J:
        return self.get(account_id)

    def get(self, account_id: str, param: str = "account") -> J:
        return self.core.get(account_id, "account", "account", None, param=param)

    def all(self, ctx: Ctx, params: J) -> list[J]:
        return self.core.store.query("account")

    def update(self, ctx: Ctx, params: J, account_id: str) -> J:
        with self.core.store.transaction():
            account = self.get(account_id)
            changes: J = {key: opt_str(params, key) for key in _PLAIN_FIELDS if key in params}
            if "business_profile" in params:
                changes["business_profile"] = {**account["business_profile"], **_profile(params)}
            if "metadata" in params:
                changes["metadata"] = merge_metadata(account["metadata"], params["metadata"])
            schedule = sub(sub(sub(params, "settings"), "payouts"), "schedule")
            if schedule:
                changes["settings"] = _payout_schedule(account, schedule)
            if "capabilities" in params:
                changes["capabilities"] = _capabilities(account, sub(params, "capabilities"))
            return self.core.update(account, changes, "account.updated", ctx, account=account_id)

    def delete(self, ctx: Ctx, params: J, account_id: str) -> J:
        with self.core.store.transaction():
            self.get(account_id)
            self.core.store.delete(account_id)
            return {"id": account_id, "object": "account", "deleted": True}

    def onboard(self, account_id: str, outcome: str) -> J:
        """What the hosted onboarding form does: finish, leave early, or get rejected."""
        steps = _ONBOARDING.get(outcome)
        if steps is None:
            raise invalid(
                "outcome must be one of complete, requirements_due, rejected", param="outcome"
            )
        with self.core.store.transaction():
            account = self.get(account_id)
            for step in steps:
                changes = step(account, self.core.now())
                self.core.update(account, changes, "account.updated", CONTROL, account=account_id)
            return account

    def deauthorize(self, account_id: str) -> J:
        with self.core.store.transaction():
            account = self.get(account_id)
            application = {"id": APPLICATION_ID, "object": "application", "name": "Souq"}
            self.core.emit(
                "account.application.deauthorized",
                account,
                CONTROL,
                account=account_id,
                snapshot=application,
            )
            account["_deauthorized"] = True
            return self.core.put(account, PLATFORM)

    def set_bank_account(self, account_id: str, number: object) -> J:
        """What the bank account step of the hosted form does: the account's payouts go to
        this account from now on (an errored one is replaced, so payouts start again)."""
        bank = bank_account(number)
        with self.core.store.transaction():
            account = self.get(account_id)
            account["_bank_account"] = bank
            self.core.put(account, PLATFORM)
            return bank

    def usable(self, account_id: str, param: str) -> J:
        """A connected account money may be sent to or on behalf of (not deauthorized)."""
        account = self.core.store.get(account_id)
        if account is None or account.get("object") != "account" or account.get("_deauthorized"):
            raise invalid(
                f"No such destination: '{account_id}'", param=param, code="resource_missing"
            )
        return account

    def destination(self, account_id: str, param: str) -> J:
        """A connected account that can receive transfers."""
        account = self.usable(account_id, param)
        if account["capabilities"].get("transfers") != "active":
            raise invalid(
                "Your destination account needs to have at least one of the following "
                "capabilities enabled: transfers, crypto_transfers, legacy_payments",
                param=param,
                code="insufficient_capabilities_for_transfer",
            )
        return account


_PLAIN_FIELDS = ("email", "business_type", "default_currency")


def _capabilities(account: J, requested: J) -> J:
    caps = dict(account["capabilities"])
    for name in requested:
        wanted = as_bool(
            sub(requested, name).get("requested", "false"), f"capabilities[{name}][requested]"
        )
        if wanted and name not in caps:
            caps[name] = "active" if account["details_submitted"] else "inactive"
        elif not wanted:
            caps.pop(name, None)
    return caps


def _payout_schedule(account: J, schedule: J) -> J:
    """`settings[payouts][schedule][interval]`: `daily` (the default, paid out automatically
    once funds are available) or `manual` (no automatic payouts)."""
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


def _submitted(account: J, now: int) -> J:
    return {
        "details_submitted": True,
        "capabilities": {name: "pending" for name in account["capabilities"]},
        "requirements": requirements([], None),
        "tos_acceptance": {"date": now, "ip": "127.0.0.1", "user_agent": "souq-sandbox"},
    }


def _verified(account: J, now: int) -> J:
    caps = {name: "active" for name in account["capabilities"]}
    return {
        "capabilities": caps,
        "charges_enabled": "card_payments" in caps or "transfers" in caps,
        "payouts_enabled": True,
    }


def _requirements_due(account: J, now: int) -> J:
    due = ["external_account", "tos_acceptance.date", "tos_acceptance.ip"]
    return {
        "requirements": requirements(due, "requirements.past_due"),
        "capabilities": {n: "inactive" for n in account["capabilities"]},
        "charges_enabled": False,
        "payouts_enabled": False,
    }


def _rejected(account: J, now: int) -> J:
    return {
        "requirements": dict(account["requirements"], disabled_reason="rejected.fraud"),
        "charges_enabled": False,
        "payouts_enabled": False,
        "capabilities": {n: "inactive" for n in account["capabilities"]},
    }


# Each outcome is one or more account.updated steps: a completed form is first submitted
# (capabilities pending), then verified (active), as two events.
_ONBOARDING = {
    "complete": (_submitted, _verified),
    "requirements_due": (_requirements_due,),
    "rejected": (_rejected,),
}
