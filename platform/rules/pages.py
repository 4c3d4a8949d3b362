"""The routing rules console: the timeline of versions, the visual builder, simulation,
publishing and withdrawing."""

from __future__ import annotations

import copy
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock, money
from core.auth import MERCHANDISERS, Principal, signed_in
from core.deps import DEPS
from core.forms import parse_float, parse_int
from core.limits import LINE_QUANTITY_MAX
from core.pages import NOTICES, client_ip, form_data, form_errors, page, redirect
from core.params import NumberParam, OptionalNumberParam
from core.problems import ProblemError, invalid
from rules import builder, conditions, fields, routing, schedule, service
from rules.guards import manage_rules, try_rules
from rules.lab import BuilderChoices, RoutingLab
from rules.models import RuleSet
from rules.schemas import MAX_REPLAY_DAYS, MAX_REPLAY_ORDERS, SampleOrder

NOTICES.update({
    "published": "Version published.",
    "scheduled": "Version scheduled: it takes effect by itself at the time shown.",
    "withdrawn": "Scheduled version withdrawn.",
    "copied": "Version copied into the draft.",
    "draft_conflict": "Someone saved the draft since you opened it. Your last change was not saved. "
                      "Here is the draft as it is now.",
})


async def _builder_context(db: AsyncSession, principal: Principal, lab: RoutingLab, rule_set: RuleSet,
                           rules: list[dict[str, Any]] | None = None, otherwise: str | None = None,
                           ) -> dict[str, Any]:
    rules = builder.editable(rule_set.draft) if rules is None else rules
    otherwise = otherwise or rule_set.draft.get("otherwise", "hold")
    document, where = builder.document_of(copy.deepcopy(rules), otherwise)
    problems = routing.validate_document(document)
    rows, per_rule = builder.row_errors(problems, where)
    choices = await lab.choices(db, principal.tenant_id)
    return {
        "rule_set": rule_set, "rules": rules, "otherwise": otherwise, "problems": problems,
        "row_errors": rows, "rule_errors": per_rule, "can_manage": principal.role in MERCHANDISERS,
        "fields": fields.FIELDS, "operators": fields.OPERATORS, "modes": builder.MODES,
        "filters": routing.FILTERS, "sorts": routing.SORTS, "fallbacks": routing.FALLBACKS,
        "location_types": fields.LOCATION_TYPES, "currency": principal.currency, "major": builder.major,
        "choices": _choice_lists(choices), "locations": choices.locations, "as_list": builder.as_list,
        "as_pair": builder.as_pair,
        "field_groups": list(dict.fromkeys(f.group for f in fields.FIELDS.values())),
        "sort_units": routing.SORT_UNITS,
    }


def _choice_lists(choices: BuilderChoices) -> dict[str, list[tuple[str, str]]]:
    lists = {name: fields.static_choices(name) for name in ("channels", "delivery_modes", "weekdays", "countries",
                                                            "currencies")}
    lists["categories"] = [(c, c) for c in choices.categories]
    lists["locations"] = [(loc.code, f"{loc.code} — {loc.name}") for loc in choices.locations]
    return lists


def _is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("HX-Request") == "true"


def _partial(request: Request[Any, Any, Any], name: str, **context: Any) -> Template:
    """An htmx fragment, or the same inside the console layout when JavaScript is off."""
    if _is_htmx(request):
        return page(request, name, **context)
    return page(request, "rules/result_page.html", partial=name, **context)


def _local_input(day: str, at: str, timezone: str, name: str) -> datetime:
    try:
        parsed_day, parsed_time = date.fromisoformat(day.strip()), time.fromisoformat(at.strip() or "00:00")
    except ValueError:
        raise invalid({name: "Give a date (YYYY-MM-DD) and a time (HH:MM)."}) from None
    try:
        return schedule.local_to_utc(parsed_day, parsed_time.replace(second=0, microsecond=0), timezone)
    except schedule.LocalTimeError as error:
        raise invalid({name: str(error)}, detail=str(error)) from None


def _sample_from_form(form: Any, principal: Principal) -> SampleOrder:
    """The simulation form as a sample order; field problems are refused like API input."""
    lines = []
    errors: dict[str, str] = {}
    for k in range(8):
        sku = (form.get(f"line.{k}.sku") or "").strip()
        if not sku:
            continue
        quantity = parse_int(form.get(f"line.{k}.quantity") or "1", lo=1, hi=LINE_QUANTITY_MAX)
        if quantity is None:
            errors[f"line.{k}.quantity"] = f"Line {k + 1}: the quantity is a whole number from 1."
            continue
        lines.append({"sku": sku, "quantity": quantity})
    if not lines:
        errors["line.0.sku"] = "Add at least one line: a SKU and a quantity."
    raw: dict[str, Any] = {"lines": lines, "channel": form.get("channel") or "web",
                           "delivery_mode": form.get("delivery_mode") or "ship",
                           "customer_tags": [t.strip() for t in (form.get("customer_tags") or "").split(",")
                                             if t.strip()]}
    for name in ("country", "postcode", "pickup_location"):
        if (form.get(name) or "").strip():
            raw[name] = form.get(name).strip()
    for name, bound in (("latitude", 90.0), ("longitude", 180.0)):
        text = (form.get(name) or "").strip()
        if text:
            number = parse_float(text, lo=-bound, hi=bound)
            if number is None:
                errors[name] = f"{text[:20]!r} is not a number (a {name} is between -{bound:g} and {bound:g})."
            else:
                raw[name] = number
    text = (form.get("customer_orders_count") or "").strip()
    if text:
        count = parse_int(text, lo=0)
        if count is None:
            errors["customer_orders_count"] = f"{text[:20]!r} is not a number of orders."
        else:
            raw["customer_orders_count"] = count
    total = (form.get("total") or "").strip()
    if total:
        minor = money.to_minor(total, principal.currency)
        if minor is None or minor < 0:
            errors["total"] = f"{total[:20]!r} is not an amount."
        else:
            raw["total_minor"] = minor
    day = (form.get("day") or "").strip()
    if day:
        try:
            raw["at"] = _local_input(day, form.get("time") or "12:00", principal.timezone, "day").isoformat()
        except ProblemError as problem:
            errors.update(form_errors(problem))
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    try:
        return msgspec.convert(raw, SampleOrder)
    except msgspec.ValidationError as exc:
        raise invalid({"__all__": str(exc)}, detail=str(exc)) from None


class RulesPagesController(Controller):
    path = "/app/rules"
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @get("/")
    async def overview(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        rule_set, all_versions, in_force = await service.overview(db, principal)
        now = clock.now()
        return page(request, "rules/overview.html", rule_set=rule_set, versions=all_versions, in_force=in_force,
                    periods=schedule.upcoming(all_versions, now), now=now, status=schedule.status,
                    can_manage=principal.role in MERCHANDISERS,
                    draft_problems=len(routing.validate_document(rule_set.draft)))

    @get("/draft")
    async def draft(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                    routing_lab: RoutingLab) -> Template:
        rule_set = await service.routing_set(db, principal)
        return page(request, "rules/draft.html", **await _builder_context(db, principal, routing_lab, rule_set),
                    sample={}, now_local=clock.now().astimezone(ZoneInfo(principal.timezone)))

    @post("/draft", guards=[manage_rules])
    async def save_draft(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                         routing_lab: RoutingLab) -> Template | Redirect:
        form = await request.form()

        def get(name: str) -> str | None:
            value = form.get(name)
            return value if isinstance(value, str) else None

        def getall(name: str) -> list[str]:
            return [v for v in form.getall(name, []) if isinstance(v, str)]

        rule_set = await service.routing_set(db, principal)
        revision = get("revision")
        rules, otherwise = builder.read_form(rule_set.draft, get, getall, principal.currency)
        action = get("drop_action") or get("action")  # a drag and drop, or the button pressed
        if action:
            rules = builder.apply_action(rules, action, get)
        document, _ = builder.document_of(copy.deepcopy(rules), otherwise)
        notice = None
        edited: tuple[list[dict[str, Any]], str] | None = (rules, otherwise)
        try:
            rule_set = await service.save_draft(db, principal, document,
                                                revision=parse_int(revision, lo=1))
        except ProblemError as problem:
            if problem.status != 409:
                raise
            await db.rollback()
            rule_set = await service.routing_set(db, principal)
            edited, notice = None, problem.detail + " Your last change was not saved."
        if not _is_htmx(request):
            return redirect("/app/rules/draft", done="draft_conflict" if notice else None)
        context = await _builder_context(db, principal, routing_lab, rule_set, *(edited or (None, None)))
        return page(request, "rules/_builder.html", **context, conflict=notice)

    @post("/simulate", guards=[try_rules])
    async def simulate(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       routing_lab: RoutingLab) -> Template:
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            sample = _sample_from_form(form, principal)
            result = await routing_lab.simulate(db, principal, sample)
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            return _partial(request, "rules/_simulation.html", result=None, values=values,
                            errors=form_errors(problem), problem=problem)
        return _partial(request, "rules/_simulation.html", result=result, values=values, problem=None)

    @post("/replay", guards=[try_rules])
    async def replay(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                     routing_lab: RoutingLab) -> Template:
        data = await form_data(request)
        days = parse_int(data.get("days"), lo=1, hi=MAX_REPLAY_DAYS) or 7
        limit = parse_int(data.get("limit"), lo=1, hi=MAX_REPLAY_ORDERS) or 1000
        try:
            result = await routing_lab.replay(db, principal, days=max(1, min(days, MAX_REPLAY_DAYS)),
                                              limit=max(1, min(limit, MAX_REPLAY_ORDERS)), traces=20)
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            return _partial(request, "rules/_replay.html", result=None, problem=problem)
        return _partial(request, "rules/_replay.html", result=result, problem=None)

    @get("/publish", guards=[manage_rules])
    async def publish_form(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           source: OptionalNumberParam = None) -> Template:
        rule_set, _, in_force = await service.overview(db, principal)
        document = rule_set.draft if source is None else (await service.version(db, rule_set, source)).document
        return page(request, "rules/publish.html", source=source, in_force=in_force,
                    problems=routing.validate_document(document), values={"when": "now"},
                    now_local=clock.now().astimezone(ZoneInfo(principal.timezone)))

    @post("/publish", guards=[manage_rules])
    async def publish(self, request: Request[Any, Any, Any], db: AsyncSession,
                      principal: Principal) -> Template | Redirect:
        data = await form_data(request)
        source = parse_int(data.get("source"), lo=1)
        start: datetime | None = None
        try:
            if data.get("when") == "later":
                start = _local_input(data.get("from_day", ""), data.get("from_time", ""), principal.timezone,
                                     "effective_from")
            until = None
            if data.get("until_day", "").strip():
                until = _local_input(data.get("until_day", ""), data.get("until_time", ""), principal.timezone,
                                     "effective_to")
            await service.publish(db, principal, source=source, effective_from=start, effective_to=until,
                                  note=data.get("note", ""), ip=client_ip(request))
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            _, _, in_force = await service.overview(db, principal)
            document_problems = [e for e in problem.errors if e.field.startswith(("rules", "otherwise"))]
            return page(request, "rules/publish.html", status_code=422, source=source, in_force=in_force,
                        problems=document_problems, values=data, errors=form_errors(problem),
                        now_local=clock.now().astimezone(ZoneInfo(principal.timezone)))
        return redirect("/app/rules", done="scheduled" if start else "published")

    @get("/versions/{number:int}")
    async def version_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           number: NumberParam) -> Template:
        rule_set, all_versions, in_force = await service.overview(db, principal)
        found = await service.version(db, rule_set, number)
        return page(request, "rules/version.html", version=found, in_force=in_force,
                    status=schedule.status(found, all_versions, clock.now()),
                    can_manage=principal.role in MERCHANDISERS, rules=builder.editable(found.document),
                    describe=lambda tree: _describe_rows(tree, principal.currency), filters=routing.FILTERS,
                    sorts=routing.SORTS, fallbacks=routing.FALLBACKS, major=builder.major,
                    currency=principal.currency)

    @post("/versions/{number:int}/withdraw", guards=[manage_rules])
    async def withdraw(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       number: NumberParam) -> Redirect:
        await service.withdraw(db, principal, number, ip=client_ip(request))
        return redirect("/app/rules", done="withdrawn")

    @post("/versions/{number:int}/to-draft", guards=[manage_rules])
    async def copy_to_draft(self, db: AsyncSession, principal: Principal, number: NumberParam) -> Redirect:
        rule_set = await service.routing_set(db, principal)
        found = await service.version(db, rule_set, number)
        await service.save_draft(db, principal, copy.deepcopy(found.document))
        return redirect("/app/rules/draft", done="copied")


def _describe_rows(tree: dict[str, Any], currency: str, depth: int = 0) -> list[tuple[int, str]]:
    """A condition tree as indented lines of words, for read-only views."""
    if tree["type"] == "leaf":
        if tree.get("field") in fields.FIELDS and tree.get("op") in fields.OPERATORS:
            return [(depth, conditions.describe(tree, currency))]
        return [(depth, f"{tree.get('field')} {tree.get('op')} {tree.get('value')}")]
    lines = [(depth, f"{builder.MODES[tree['mode']]}:")]
    for child in tree["children"]:
        lines += _describe_rows(child, currency, depth + 1)
    return lines


route_handlers = [RulesPagesController]
