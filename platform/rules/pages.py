"""The routing rules console: the timeline of versions, the visual builder, simulation,
publishing and withdrawing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock, forms
from core.auth import MERCHANDISERS, Principal, signed_in
from core.deps import DEPS
from core.forms import parse_float, parse_int
from core.limits import LINE_QUANTITY_MAX
from core.locale import format_money, parse_money
from core.pages import NOTICES, client_ip, form_data, form_errors, page, redirect
from core.params import NumberParam, OptionalNumberParam
from core.problems import ProblemError, invalid
from rules import builder, fields, routing, schedule, service, summary
from rules.conditions import Problem
from rules.guards import manage_rules, try_rules
from rules.lab import BuilderChoices, RoutingLab
from rules.models import RuleSet, RuleVersion
from rules.schemas import MAX_REPLAY_DAYS, MAX_REPLAY_ORDERS, SampleOrder

NOTICES.update({
    "published": "Version published.",
    "scheduled": "Version scheduled: it takes effect by itself at the time shown.",
    "withdrawn": "Scheduled version withdrawn.",
    "copied": "Version copied into the draft.",
    "draft_conflict": "Someone saved the draft since you opened it. Your last change was not saved. "
                      "Here is the draft as it is now.",
})


TRY_RULES = (*MERCHANDISERS, "read_only")  # who may simulate and replay (see rules.guards)


def _money(principal: Principal) -> Callable[[int], str]:
    """Amounts as the company reads them: its currency, in its locale ("59,00 €")."""
    return lambda minor: format_money(minor, principal.currency, principal.locale)


async def _builder_context(db: AsyncSession, principal: Principal, lab: RoutingLab, rule_set: RuleSet,
                           rules: list[dict[str, Any]] | None = None, otherwise: str | None = None,
                           ) -> dict[str, Any]:
    rules = builder.editable(rule_set.draft) if rules is None else rules
    otherwise = otherwise or rule_set.draft.get("otherwise", "hold")
    document, where = builder.document_of(copy.deepcopy(rules), otherwise)
    problems = routing.validate_document(document)
    placed = builder.place_problems(problems, where)
    choices = await lab.choices(db, principal.tenant_id)
    return {
        "rule_set": rule_set, "rules": rules, "otherwise": otherwise, "problems": problems,
        "row_errors": placed.rows, "controls": placed.controls, "rule_errors": placed.per_rule,
        "problem_index": placed.links, "empty": not rules,
        "can_manage": principal.role in MERCHANDISERS, "can_try": principal.role in TRY_RULES,
        "fields": fields.fields_for("routing"), "operators": fields.OPERATORS, "modes": builder.MODES,
        "filters": routing.FILTERS, "sorts": routing.SORTS, "fallbacks": routing.FALLBACKS,
        "location_types": fields.LOCATION_TYPES, "currency": principal.currency,
        "major": lambda minor, currency: builder.major(minor, currency, principal.locale),
        "choices": _choice_lists(choices), "locations": choices.locations, "as_list": builder.as_list,
        "as_pair": builder.as_pair,
        "field_groups": list(dict.fromkeys(f.group for f in fields.fields_for("routing").values())),
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


def local_input(day: str, at: str, timezone: str, name: str) -> datetime:
    """A date and time typed in the company's zone, as a UTC instant; refused in words."""
    try:
        parsed_day, parsed_time = date.fromisoformat(day.strip()), time.fromisoformat(at.strip() or "00:00")
    except ValueError:
        raise invalid({name: "Give a date (YYYY-MM-DD) and a time (HH:MM)."}) from None
    try:
        return schedule.local_to_utc(parsed_day, parsed_time.replace(second=0, microsecond=0), timezone)
    except schedule.LocalTimeError as error:
        raise invalid({name: str(error)}, detail=str(error)) from None


def publish_window(data: Any, timezone: str) -> tuple[datetime | None, datetime | None]:
    """The publish form's start ("later": a date and time) and optional end, in the company's
    zone, as UTC instants; both refused at once, in words, when they can't be read."""
    errors: dict[str, str] = {}
    start = until = None
    if data.get("when") == "later":
        try:
            start = local_input(data.get("from_day", ""), data.get("from_time", ""), timezone, "effective_from")
        except ProblemError as problem:
            errors.update(form_errors(problem))
    if data.get("until_day", "").strip():
        try:
            until = local_input(data.get("until_day", ""), data.get("until_time", ""), timezone, "effective_to")
        except ProblemError as problem:
            errors.update(form_errors(problem))
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    return start, until


SAMPLE_LINES = 5


def _sample_from_form(form: Any, principal: Principal) -> SampleOrder:
    """The simulation form as a sample order; every problem is reported at its field at once."""
    lines = []
    errors: dict[str, str] = {}

    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    for k in range(SAMPLE_LINES):
        sku = text(f"line.{k}.sku")
        if not sku:
            continue
        if len(sku) > 64:
            errors[f"line.{k}.sku"] = f"Line {k + 1}: a SKU has at most 64 characters."
            continue
        quantity = parse_int(text(f"line.{k}.quantity") or "1", lo=1, hi=LINE_QUANTITY_MAX)
        if quantity is None:
            errors[f"line.{k}.quantity"] = f"Line {k + 1}: the quantity is a whole number from 1."
            continue
        lines.append({"sku": sku, "quantity": quantity})
    if not lines and not errors:
        errors["line.0.sku"] = "Add at least one line: a SKU and a quantity."
    tags = [t.strip() for t in text("customer_tags").split(",") if t.strip()]
    if len(tags) > 50 or any(len(t) > 200 for t in tags):
        errors["customer_tags"] = "At most 50 tags, each of up to 200 characters."
    raw: dict[str, Any] = {"lines": lines, "channel": text("channel")[:200] or "web",
                           "delivery_mode": "pickup" if text("delivery_mode") == "pickup" else "ship",
                           "customer_tags": tags}
    country = text("country")
    if country:
        if len(country) != 2 or not country.isascii() or not country.isalpha():
            errors["country"] = "A country is its two-letter code, such as FR."
        else:
            raw["country"] = country.upper()
    postcode = text("postcode")
    if postcode:
        if len(postcode) > 20:
            errors["postcode"] = "A postcode has at most 20 characters."
        else:
            raw["postcode"] = postcode
    pickup = text("pickup_location")
    if pickup:
        raw["pickup_location"] = pickup[:64]
    for name, bound in (("latitude", 90.0), ("longitude", 180.0)):
        typed = text(name)
        if typed:
            number = parse_float(typed, lo=-bound, hi=bound)
            if number is None:
                errors[name] = f"The {name} is a number between -{bound:g} and {bound:g}, such as 48.86."
            else:
                raw[name] = number
    typed = text("customer_orders_count")
    if typed:
        count = parse_int(typed, lo=0)
        if count is None:
            errors["customer_orders_count"] = "The number of previous orders is a whole number from 0."
        else:
            raw["customer_orders_count"] = count
    total = text("total")
    if total:
        minor = parse_money(total, principal.currency, principal.locale)
        if minor is None or minor < 0:
            example = format_money(5900, principal.currency, principal.locale)
            errors["total"] = f"“{total[:20]}” is not an amount in {principal.currency}: write it like {example}."
        else:
            raw["total_minor"] = minor
    day = text("day")
    if day:
        try:
            raw["at"] = local_input(day, text("time") or "12:00", principal.timezone, "day").isoformat()
        except ProblemError as problem:
            errors.update(form_errors(problem))
    if errors:
        raise invalid(errors, detail="Check the sample order: " + next(iter(errors.values())))
    return forms.convert(raw, SampleOrder)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _replay_rows(result: dict[str, Any], show_unchanged: bool) -> tuple[list[dict[str, Any]], int]:
    """The rows to show: changed orders first, each group oldest first, with their times as
    times (for the company's time zone); unchanged ones only when asked. And how many are hidden."""
    rows = []
    for row in result.get("rows", []):
        row = dict(row)
        try:
            row["placed"] = datetime.fromisoformat(row["placed_at"])
        except (KeyError, TypeError, ValueError):
            row["placed"] = None
        rows.append(row)
    rows.sort(key=lambda r: (not r.get("changed"), r["placed"] is None, r["placed"] or _EPOCH))
    shown = rows if show_unchanged else [r for r in rows if r.get("changed")]
    return shown, len(rows) - len(shown)


def _summary_context(principal: Principal) -> dict[str, Any]:
    money_text = _money(principal)
    return {"summarize": lambda document: summary.summarize(document, money_text),
            "otherwise_words": summary.otherwise_words}


def _diff(before: RuleVersion | None, after: dict[str, Any], principal: Principal) -> summary.Diff:
    return summary.diff(before.document if before is not None else None, after, _money(principal))


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
                    draft_problems=len(routing.validate_document(rule_set.draft)),
                    draft_empty=not rule_set.draft.get("rules"))

    @get("/draft")
    async def draft(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                    routing_lab: RoutingLab) -> Template:
        rule_set = await service.routing_set(db, principal)
        return page(request, "rules/draft.html", **await _builder_context(db, principal, routing_lab, rule_set),
                    **_summary_context(principal), sample_lines=SAMPLE_LINES)

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
        rules, otherwise = builder.read_form(rule_set.draft, get, getall, principal.currency, principal.locale)
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
        values = {k: v for k, v in form.items() if isinstance(v, str) and k != "_csrf_token"}
        choices = await routing_lab.choices(db, principal.tenant_id)
        context = {"values": values, "choices": _choice_lists(choices), "locations": choices.locations,
                   "sample_lines": SAMPLE_LINES}
        try:
            sample = _sample_from_form(form, principal)
            result = await routing_lab.simulate(db, principal, sample)
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            errors = form_errors(problem) if problem.title != "Invalid rules" else {}
            return _partial(request, "rules/_simulation.html", result=None, errors=errors, problem=problem,
                            **context)
        return _partial(request, "rules/_simulation.html", result=result, problem=None, **context)

    @post("/replay", guards=[try_rules])
    async def replay(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                     routing_lab: RoutingLab) -> Template:
        data = await form_data(request)
        days = parse_int(data.get("days"), lo=1, hi=MAX_REPLAY_DAYS) or 7
        limit = parse_int(data.get("limit"), lo=1, hi=MAX_REPLAY_ORDERS) or 1000
        show_unchanged = bool(data.get("show_unchanged"))
        try:
            result = await routing_lab.replay(db, principal, days=days, limit=limit, traces=20)
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            return _partial(request, "rules/_replay.html", result=None, problem=problem)
        rows, hidden = _replay_rows(result, show_unchanged)
        return _partial(request, "rules/_replay.html", result=result, problem=None, rows=rows, hidden=hidden,
                        show_unchanged=show_unchanged, days=days, limit=limit)

    async def _publish_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                            source: int | None, *, values: dict[str, Any], errors: dict[str, str] | None = None,
                            problems: list[Any] | None = None, status_code: int = 200) -> Template:
        rule_set, _, in_force = await service.overview(db, principal)
        document = rule_set.draft if source is None else (await service.version(db, rule_set, source)).document
        if problems is None:
            problems = service.publish_problems(document, source)
        links: list[tuple[str, str]] = []
        if source is None and problems:  # each problem links to the builder's control at fault
            _, where = builder.document_of(builder.editable(document), document.get("otherwise", "hold"))
            links = builder.place_problems(problems, where).links
        return page(request, "rules/publish.html", status_code=status_code, source=source, in_force=in_force,
                    problems=problems, problem_links=links, values=values, errors=errors or {}, now=clock.now(),
                    changes=_diff(in_force, document, principal), **_summary_context(principal))

    @get("/publish", guards=[manage_rules])
    async def publish_form(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           source: OptionalNumberParam = None) -> Template:
        return await self._publish_page(request, db, principal, source, values={"when": "now"})

    @post("/publish", guards=[manage_rules])
    async def publish(self, request: Request[Any, Any, Any], db: AsyncSession,
                      principal: Principal) -> Template | Redirect:
        data = await form_data(request)
        source = parse_int(data.get("source"), lo=1)
        start: datetime | None = None
        try:
            start, until = publish_window(data, principal.timezone)
            await service.publish(db, principal, source=source, effective_from=start, effective_to=until,
                                  note=data.get("note", ""), ip=client_ip(request))
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            document_problems = [Problem(e.field, e.message) for e in problem.errors
                                 if e.field.startswith(("rules", "otherwise"))]
            field_errors = {k: v for k, v in form_errors(problem).items()
                            if not k.startswith(("rules", "otherwise"))}
            return await self._publish_page(request, db, principal, source, values=data, errors=field_errors,
                                            problems=document_problems or None, status_code=422)
        return redirect("/app/rules", done="scheduled" if start else "published")

    @get("/versions/{number:int}")
    async def version_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           number: NumberParam) -> Template:
        rule_set, all_versions, in_force = await service.overview(db, principal)
        found = await service.version(db, rule_set, number)
        previous = next((v for v in all_versions if v.number == number - 1), None)
        return page(request, "rules/version.html", version=found, in_force=in_force, previous=previous,
                    status=schedule.status(found, all_versions, clock.now()),
                    can_manage=principal.role in MERCHANDISERS, changes=_diff(previous, found.document, principal),
                    **_summary_context(principal))

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


route_handlers = [RulesPagesController]
