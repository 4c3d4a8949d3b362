"""Settings → Returns and ``GET``/``PUT /api/v1/settings/returns``: the company's return policy
and each role's goodwill limits, for owners and admins. Every problem is said at once, in the
console next to its field."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import ROLES, Principal, admins_only
from core.deps import DEPS
from core.forms import BODY, parse_int
from core.locale import money_input, parse_money
from core.pages import NOTICES, client_ip, page, redirect
from core.problems import ProblemError, invalid
from inventory import catalog
from orders.guards import TAKERS
from support import policy as policies
from support.policy_schemas import ReturnSettings

NOTICES.update({"returns_saved": "Return policy saved: new returns and goodwill refunds follow it."})

# Roles whose goodwill limits the console shows: those that may refund goodwill at all.
LIMIT_ROLES = tuple(role for role in policies.GOODWILL_ROLES if role in TAKERS)
PERCENT = re.compile(r"\s*([0-9]{1,3})(?:[.,]([0-9]{1,2}))?\s*%?\s*")
PERCENT_MESSAGE = "Give a percent from 0 to 100 with at most two decimals, such as 2.5."
DAYS_MESSAGE = "Give a whole number of days from 0 to 3,650."


class ReturnSettingsApiController(Controller):
    path = "/api/v1/settings/returns"
    tags = ["Account"]
    guards = [admins_only]
    dependencies = DEPS

    @get("/", summary="The company's return policy and goodwill limits (amounts in minor units)")
    async def get_settings(self, db: AsyncSession, principal: Principal) -> ReturnSettings:
        return policies.settings_of(await policies.current(db, principal.tenant_id))

    @put("/", summary="Change the company's return policy and goodwill limits",
         description="Every field is given: window_days (0 to 3,650, from delivery or collection), "
                     "non_returnable_categories (product categories), restocking_fee_bp (hundredths of a percent: "
                     "250 is 2.5 %), refund_return_shipping, override_roles (roles that may accept a return after "
                     "the window), refund_on (received or inspected), reason_codes (the company's return reasons), "
                     'goodwill_limits ({"customer_service": {"per_refund": 5000, "per_month": 50000}}, minor '
                     "units, null for no limit; a role left out has the default limits). Refused with every "
                     "problem at once (422).")
    async def put_settings(self, request: Request[Any, Any, Any], db: AsyncSession,
                           principal: Principal) -> ReturnSettings:
        try:
            raw = msgspec.json.decode(await request.body())
        except msgspec.DecodeError as exc:
            raise ProblemError(422, "Invalid JSON", f"The body is not valid JSON: {exc}.") from None
        if not isinstance(raw, dict):
            raise invalid({BODY: "Give an object with named fields."})
        saved = await policies.save(db, principal, policies.checked(raw), ip=client_ip(request))
        return policies.settings_of(saved)


class ReturnSettingsPagesController(Controller):
    path = "/app/settings/returns"
    include_in_schema = False
    guards = [admins_only]
    dependencies = DEPS

    @get("/")
    async def settings_page(self, request: Request[Any, Any, Any], db: AsyncSession,
                            principal: Principal) -> Template:
        policy = await policies.current(db, principal.tenant_id)
        return await _form(request, db, principal, _values(policy, principal), policy.non_returnable_categories)

    @post("/")
    async def save(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal
                   ) -> Template | Redirect:
        form = await request.form()

        def one(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        def every(name: str) -> list[str]:
            return [v for v in form.getall(name, []) if isinstance(v, str)]

        values: dict[str, Any] = {name: one(name) for name in ("window_days", "restocking_fee", "refund_on",
                                                                "reason_codes", "refund_return_shipping")}
        values |= {name: one(name) for role in LIMIT_ROLES for name in (f"limit_{role}_per_refund",
                                                                         f"limit_{role}_per_month")}
        values["override_roles"] = every("override_roles")
        values["non_returnable_categories"] = every("non_returnable_categories")
        raw, errors = _read(values, principal)
        current = await policies.current(db, principal.tenant_id)
        for role in policies.GOODWILL_ROLES:  # the limits the form doesn't show stay as they are
            if role not in LIMIT_ROLES:
                limit = current.goodwill_limit(role)
                raw["goodwill_limits"][role] = {"per_refund": limit.per_refund, "per_month": limit.per_month}
        for field, message in policies.problems(raw).items():
            name, message = _form_field(field, message, values)
            errors.setdefault(name, message)
        if errors:
            return await _form(request, db, principal, values, values["non_returnable_categories"], errors=errors,
                               status_code=422)
        await policies.save(db, principal, msgspec.convert(raw, ReturnSettings), ip=client_ip(request))
        return redirect("/app/settings/returns", done="returns_saved")


def _values(policy: policies.Policy, principal: Principal) -> dict[str, Any]:
    """The policy as the form shows it: amounts and the percent in the company's locale."""
    values: dict[str, Any] = {
        "window_days": str(policy.window_days), "restocking_fee": policies.percent(policy.restocking_fee_bp,
                                                                                  principal.locale),
        "refund_return_shipping": "1" if policy.refund_return_shipping else "", "refund_on": policy.refund_on,
        "reason_codes": "\n".join(policy.reason_codes), "override_roles": list(policy.override_roles),
        "non_returnable_categories": list(policy.non_returnable_categories)}
    for role in LIMIT_ROLES:
        limit = policy.goodwill_limit(role)
        values[f"limit_{role}_per_refund"] = money_input(limit.per_refund, principal.currency, principal.locale)
        values[f"limit_{role}_per_month"] = money_input(limit.per_month, principal.currency, principal.locale)
    return values


def _code(line: str) -> str:
    """A reason as typed ("Too small") as its code (too_small)."""
    return re.sub(r"[\s-]+", "_", line.strip().lower())


def _read(values: dict[str, Any], principal: Principal) -> tuple[dict[str, Any], dict[str, str]]:
    """The form read into the API's shape, and what could not be read at all (by form field)."""
    errors: dict[str, str] = {}
    days = parse_int(values["window_days"], lo=-10**6, hi=10**6)
    if days is None:
        errors["window_days"] = DAYS_MESSAGE
    fee = PERCENT.fullmatch(values["restocking_fee"] or "0")
    if fee is None:
        errors["restocking_fee"] = PERCENT_MESSAGE
    limits: dict[str, dict[str, int | None]] = {}
    example = money_input(5000, principal.currency, principal.locale)
    for role in LIMIT_ROLES:
        limits[role] = {}
        for part in ("per_refund", "per_month"):
            name = f"limit_{role}_per_{part.removeprefix('per_')}"
            typed = values[name].strip()
            amount = parse_money(typed, principal.currency, principal.locale) if typed else None
            if typed and amount is None:
                errors[name] = f"{typed[:30]!r} is not an amount: type it such as {example}, or leave it empty " \
                               "for no limit."
            limits[role][part] = amount
    raw = {"window_days": days if days is not None else 0,
           "non_returnable_categories": [c.strip() for c in values["non_returnable_categories"] if c.strip()],
           "restocking_fee_bp": int(fee.group(1)) * 100 + int((fee.group(2) or "0").ljust(2, "0")) if fee else 0,
           "refund_return_shipping": values["refund_return_shipping"] == "1",
           "override_roles": values["override_roles"], "refund_on": values["refund_on"],
           "reason_codes": [_code(line) for line in values["reason_codes"].splitlines() if line.strip()],
           "goodwill_limits": limits}
    return raw, errors


def _form_field(field: str, message: str, values: dict[str, Any]) -> tuple[str, str]:
    """The form's field for a problem the API would name ``field``, and its words there."""
    top = re.split(r"[.\[]", field, maxsplit=1)[0]
    if top == "restocking_fee_bp":
        return "restocking_fee", PERCENT_MESSAGE
    if top == "reason_codes" and "[" in field:
        index = int(field[field.index("[") + 1:field.index("]")])
        lines = [line.strip() for line in values["reason_codes"].splitlines() if line.strip()]
        return "reason_codes", f"{lines[index]!r}: {message}" if index < len(lines) else message
    if top == "goodwill_limits" and field.count(".") == 2:
        _, role, part = field.split(".")
        return f"limit_{role}_{part}", "Give an amount of zero or more, or leave it empty for no limit."
    return top, message


async def _form(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, values: dict[str, Any],
                saved_categories: Any, *, errors: dict[str, str] | None = None, status_code: int = 200) -> Template:
    categories = sorted({*await catalog.categories(db, principal.tenant_id), *saved_categories})
    return page(request, "settings/returns.html", status_code=status_code, values=values, errors=errors or {},
                categories=categories, roles=[(role, policies.ROLE_NAMES[role]) for role in ROLES],
                limit_roles=[(role, policies.ROLE_NAMES[role]) for role in LIMIT_ROLES],
                refund_on=policies.REFUND_ON, currency=principal.currency)


route_handlers = [ReturnSettingsApiController, ReturnSettingsPagesController]
