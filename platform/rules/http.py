"""Routing rules: the JSON API (rules as code) and the console (timeline, builder, simulation,
publishing)."""

from __future__ import annotations

import copy
from datetime import date, datetime, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import MERCHANDISERS, Principal, requires, signed_in
from core.deps import DEPS
from core.idempotency import idempotent_create
from core.pages import NOTICES, client_ip, form_data, form_errors, page, redirect
from core.problems import ProblemError, invalid
from orders import sourcing
from rules import builder, conditions, fields, routing, schedule, service, simulation
from rules.facts import LineFacts, OrderFacts
from rules.models import RuleSet, RuleVersion

manage_rules = requires(*MERCHANDISERS)

NOTICES.update({
    "published": "Version published.",
    "scheduled": "Version scheduled: it takes effect by itself at the time shown.",
    "withdrawn": "Scheduled version withdrawn.",
    "copied": "Version copied into the draft.",
    "draft_conflict": "Someone saved the draft since you opened it. Your last change was not saved. "
                      "Here is the draft as it is now.",
})

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Short = Annotated[str, msgspec.Meta(max_length=200)]


class SampleLine(msgspec.Struct, forbid_unknown_fields=True):
    sku: Code
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    category: Short | None = None
    unit_price_minor: Annotated[int, msgspec.Meta(ge=0)] | None = None


class SampleOrder(msgspec.Struct, forbid_unknown_fields=True):
    lines: Annotated[list[SampleLine], msgspec.Meta(min_length=1, max_length=100)]
    channel: Short = "web"
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] | None = None
    total_minor: Annotated[int, msgspec.Meta(ge=0)] | None = None
    delivery_mode: Literal["ship", "pickup"] = "ship"
    country: Annotated[str, msgspec.Meta(pattern="^[A-Za-z]{2}$")] | None = None
    postcode: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    pickup_location: Code | None = None
    customer_tags: Annotated[list[Short], msgspec.Meta(max_length=50)] = []
    customer_orders_count: Annotated[int, msgspec.Meta(ge=0)] = 0
    at: datetime | None = None  # judge the order as if placed then (default: now)


class SimulateIn(msgspec.Struct, forbid_unknown_fields=True):
    order: SampleOrder
    version: int | None = None  # a published version to try instead of the draft


class ReplayIn(msgspec.Struct, forbid_unknown_fields=True):
    days: Annotated[int, msgspec.Meta(ge=1, le=simulation.MAX_REPLAY_DAYS)] = 7
    limit: Annotated[int, msgspec.Meta(ge=1, le=simulation.MAX_REPLAY_ORDERS)] = 1000
    version: int | None = None
    traces: Annotated[int, msgspec.Meta(ge=0, le=200)] = 20


class DraftIn(msgspec.Struct, forbid_unknown_fields=True):
    document: dict[str, Any]
    revision: int | None = None  # the revision you started from: a newer draft is not overwritten


class PublishIn(msgspec.Struct, forbid_unknown_fields=True):
    effective_from: datetime | None = None  # default now; a time without offset is in the company's time zone
    effective_to: datetime | None = None
    source_version: int | None = None  # republish this version (a rollback) instead of the draft
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


def _aware(value: datetime | None, timezone: str, name: str) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    try:
        return schedule.local_to_utc(value.date(), value.time(), timezone)
    except schedule.LocalTimeError as error:
        raise invalid({name: str(error)}, detail=str(error)) from None


def version_out(version: RuleVersion, versions: list[RuleVersion], timezone: str, *,
                document: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "number": version.number, "status": schedule.status(version, versions, clock.now()),
        "effective_from": version.effective_from, "effective_to": version.effective_to,
        "effective_from_local": version.effective_from.astimezone(ZoneInfo(timezone)).isoformat(),
        "effective_to_local": version.effective_to.astimezone(ZoneInfo(timezone)).isoformat()
        if version.effective_to else None,
        "published_at": version.published_at, "published_by": version.published_by, "note": version.note,
        "republished_from": version.republished_from, "withdrawn_at": version.cancelled_at,
        "rules": len(version.document.get("rules", [])),
    }
    if document:
        data["document"] = version.document
    return data


async def _overview(db: AsyncSession, principal: Principal) -> tuple[RuleSet, list[RuleVersion],
                                                                      RuleVersion | None]:
    rule_set = await service.routing_set(db, principal)
    all_versions = await service.versions(db, rule_set)
    return rule_set, all_versions, schedule.version_at(all_versions, clock.now())


async def _order_facts(db: AsyncSession, principal: Principal, sample: SampleOrder) -> OrderFacts:
    """A sample order with categories and prices filled in from the catalog."""
    known = await sourcing.products(db, principal.tenant_id, {line.sku for line in sample.lines})
    lines = []
    for line in sample.lines:
        product = known.get(line.sku)
        lines.append(LineFacts(
            sku=line.sku, quantity=line.quantity,
            category=line.category if line.category is not None else (product.category if product else None),
            unit_price_minor=line.unit_price_minor if line.unit_price_minor is not None
            else (product.price_minor if product else 0)))
    total = sample.total_minor if sample.total_minor is not None else sum(
        line.unit_price_minor * line.quantity for line in lines)
    at = _aware(sample.at, principal.timezone, "at")
    return OrderFacts(
        lines=tuple(lines), reference="sample", channel=sample.channel, currency=sample.currency or principal.currency,
        total_minor=total, delivery_mode=sample.delivery_mode, country=(sample.country or "").upper() or None,
        postcode=sample.postcode, latitude=sample.latitude, longitude=sample.longitude,
        pickup_location=sample.pickup_location, customer_tags=frozenset(sample.customer_tags),
        customer_orders_count=sample.customer_orders_count, placed_at=at,
    )


class RulesApiController(Controller):
    path = "/api/v1"
    tags = ["Routing rules"]
    guards = [signed_in]
    dependencies = DEPS

    @get("/rules/fields", summary="The condition language's fields, types and operators")
    async def field_registry(self) -> list[dict[str, object]]:
        return fields.registry()

    @get("/rule-sets/routing", summary="The routing rule set: versions, the one in force, upcoming changes")
    async def routing_overview(self, db: AsyncSession, principal: Principal) -> dict[str, Any]:
        rule_set, all_versions, in_force = await _overview(db, principal)
        return {
            "id": rule_set.id, "kind": rule_set.kind, "timezone": principal.timezone,
            "draft_revision": rule_set.draft_revision, "draft_updated_at": rule_set.draft_updated_at,
            "in_force": in_force.number if in_force else None,
            "upcoming": [{"from": p.start, "until": p.end, "version": p.version.number if p.version else None}
                         for p in schedule.upcoming(all_versions, clock.now())],
            "versions": [version_out(v, all_versions, principal.timezone) for v in all_versions],
        }

    @get("/rule-sets/routing/draft", summary="The draft, with its problems if any")
    async def get_draft(self, db: AsyncSession, principal: Principal) -> dict[str, Any]:
        rule_set = await service.routing_set(db, principal)
        return {"revision": rule_set.draft_revision, "document": rule_set.draft,
                "updated_at": rule_set.draft_updated_at, "updated_by": rule_set.draft_updated_by,
                "problems": [{"path": p.path, "message": p.message}
                             for p in routing.validate_document(rule_set.draft)]}

    @put("/rule-sets/routing/draft", summary="Replace the draft (refused, unchanged, when invalid)",
         guards=[manage_rules])
    async def put_draft(self, db: AsyncSession, principal: Principal, data: DraftIn) -> dict[str, Any]:
        problems = routing.validate_document(data.document)
        if problems:
            raise service.problems_error(problems)
        rule_set = await service.save_draft(db, principal, data.document, revision=data.revision)
        return {"revision": rule_set.draft_revision, "document": rule_set.draft, "problems": []}

    @post("/rule-sets/routing/validate", summary="Check a document without saving it", status_code=200)
    async def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        problems = routing.validate_document(data.get("document", data))
        return {"valid": not problems, "problems": [{"path": p.path, "message": p.message} for p in problems]}

    @post("/rule-sets/routing/simulate", summary="Route a sample order with the draft and the version in force",
          status_code=200)
    async def simulate(self, db: AsyncSession, principal: Principal, data: SimulateIn) -> dict[str, Any]:
        order = await _order_facts(db, principal, data.order)
        return await simulation.simulate(db, principal, order, number=data.version)

    @post("/rule-sets/routing/replay", summary="Replay recent orders with the draft and the version in force",
          status_code=200)
    async def replay(self, db: AsyncSession, principal: Principal, data: ReplayIn) -> dict[str, Any]:
        return await simulation.replay(db, principal, days=data.days, limit=data.limit, number=data.version,
                                       with_traces=data.traces)

    @get("/rule-sets/routing/versions", summary="Published versions, newest first")
    async def list_versions(self, db: AsyncSession, principal: Principal) -> list[dict[str, Any]]:
        _, all_versions, _ = await _overview(db, principal)
        return [version_out(v, all_versions, principal.timezone) for v in all_versions]

    @get("/rule-sets/routing/versions/{number:int}", summary="A published version with its document")
    async def get_version(self, db: AsyncSession, principal: Principal, number: int) -> dict[str, Any]:
        rule_set, all_versions, _ = await _overview(db, principal)
        return version_out(await service.version(db, rule_set, number), all_versions, principal.timezone,
                           document=True)

    @post("/rule-sets/routing/versions", summary="Publish the draft, or republish a version, now or from a date",
          guards=[manage_rules], status_code=201)
    async def publish(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      data: PublishIn) -> Response[Any]:
        async def create() -> dict[str, Any]:
            published = await service.publish(
                db, principal, source=data.source_version,
                effective_from=_aware(data.effective_from, principal.timezone, "effective_from"),
                effective_to=_aware(data.effective_to, principal.timezone, "effective_to"),
                note=data.note, ip=client_ip(request))
            _, all_versions, _ = await _overview(db, principal)
            return version_out(published, all_versions, principal.timezone)
        return await idempotent_create(request, db, principal, create)

    @post("/rule-sets/routing/versions/{number:int}/withdraw", summary="Withdraw a scheduled version",
          guards=[manage_rules], status_code=200)
    async def withdraw(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       number: int) -> dict[str, Any]:
        withdrawn = await service.withdraw(db, principal, number, ip=client_ip(request))
        _, all_versions, _ = await _overview(db, principal)
        return version_out(withdrawn, all_versions, principal.timezone)


# --- console -------------------------------------------------------------------------------------

async def _builder_context(db: AsyncSession, principal: Principal, rule_set: RuleSet,
                           rules: list[dict[str, Any]] | None = None, otherwise: str | None = None,
                           ) -> dict[str, Any]:
    rules = builder.editable(rule_set.draft) if rules is None else rules
    otherwise = otherwise or rule_set.draft.get("otherwise", "hold")
    document, where = builder.document_of(copy.deepcopy(rules), otherwise)
    problems = routing.validate_document(document)
    rows, per_rule = builder.row_errors(problems, where)
    locations = await sourcing.active_locations(db, principal.tenant_id)
    return {
        "rule_set": rule_set, "rules": rules, "otherwise": otherwise, "problems": problems,
        "row_errors": rows, "rule_errors": per_rule, "can_manage": principal.role in MERCHANDISERS,
        "fields": fields.FIELDS, "operators": fields.OPERATORS, "modes": builder.MODES,
        "filters": routing.FILTERS, "sorts": routing.SORTS, "fallbacks": routing.FALLBACKS,
        "location_types": fields.LOCATION_TYPES, "currency": principal.currency, "major": builder.major,
        "choices": _choice_lists(locations, await sourcing.categories(db, principal.tenant_id)),
        "locations": locations, "as_list": builder.as_list, "as_pair": builder.as_pair,
        "field_groups": list(dict.fromkeys(f.group for f in fields.FIELDS.values())),
        "sort_units": routing.SORT_UNITS,
    }


def _choice_lists(locations: list[Any], categories: list[str]) -> dict[str, list[tuple[str, str]]]:
    lists = {name: fields.static_choices(name) for name in ("channels", "delivery_modes", "weekdays", "countries",
                                                            "currencies")}
    lists["categories"] = [(c, c) for c in categories]
    lists["locations"] = [(loc.code, f"{loc.code} — {loc.name}") for loc in locations]
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
        quantity = (form.get(f"line.{k}.quantity") or "1").strip()
        if not quantity.isdigit() or int(quantity) < 1:
            errors[f"line.{k}.quantity"] = f"Line {k + 1}: the quantity is a whole number from 1."
            continue
        lines.append({"sku": sku, "quantity": int(quantity)})
    if not lines:
        errors["line.0.sku"] = "Add at least one line: a SKU and a quantity."
    raw: dict[str, Any] = {"lines": lines, "channel": form.get("channel") or "web",
                           "delivery_mode": form.get("delivery_mode") or "ship",
                           "customer_tags": [t.strip() for t in (form.get("customer_tags") or "").split(",")
                                             if t.strip()]}
    for name in ("country", "postcode", "pickup_location"):
        if (form.get(name) or "").strip():
            raw[name] = form.get(name).strip()
    for name, kind in (("latitude", float), ("longitude", float), ("customer_orders_count", int)):
        text = (form.get(name) or "").strip()
        if text:
            try:
                raw[name] = kind(text)
            except ValueError:
                errors[name] = f"{text!r} is not a number."
    total = (form.get("total") or "").strip()
    if total:
        minor = builder.to_minor(total, principal.currency)
        if isinstance(minor, str) or minor < 0:
            errors["total"] = f"{total!r} is not an amount."
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
        rule_set, all_versions, in_force = await _overview(db, principal)
        now = clock.now()
        return page(request, "rules/overview.html", rule_set=rule_set, versions=all_versions, in_force=in_force,
                    periods=schedule.upcoming(all_versions, now), now=now, status=schedule.status,
                    can_manage=principal.role in MERCHANDISERS,
                    draft_problems=len(routing.validate_document(rule_set.draft)))

    @get("/draft")
    async def draft(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        rule_set = await service.routing_set(db, principal)
        return page(request, "rules/draft.html", **await _builder_context(db, principal, rule_set),
                    sample={}, now_local=clock.now().astimezone(ZoneInfo(principal.timezone)))

    @post("/draft", guards=[manage_rules])
    async def save_draft(self, request: Request[Any, Any, Any], db: AsyncSession,
                         principal: Principal) -> Template | Redirect:
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
                                                revision=int(revision) if revision and revision.isdigit() else None)
        except ProblemError as problem:
            if problem.status != 409:
                raise
            await db.rollback()
            rule_set = await service.routing_set(db, principal)
            edited, notice = None, problem.detail + " Your last change was not saved."
        if not _is_htmx(request):
            return redirect("/app/rules/draft", done="draft_conflict" if notice else None)
        context = await _builder_context(db, principal, rule_set, *(edited or (None, None)))
        return page(request, "rules/_builder.html", **context, conflict=notice)

    @post("/simulate")
    async def simulate(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            sample = _sample_from_form(form, principal)
            result = await simulation.simulate(db, principal, await _order_facts(db, principal, sample))
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            return _partial(request, "rules/_simulation.html", result=None, values=values,
                            errors=form_errors(problem), problem=problem)
        return _partial(request, "rules/_simulation.html", result=result, values=values, problem=None)

    @post("/replay")
    async def replay(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        data = await form_data(request)
        days = int(data["days"]) if data.get("days", "").isdigit() else 7
        limit = int(data["limit"]) if data.get("limit", "").isdigit() else 1000
        try:
            result = await simulation.replay(db, principal, days=max(1, min(days, simulation.MAX_REPLAY_DAYS)),
                                             limit=max(1, min(limit, simulation.MAX_REPLAY_ORDERS)), with_traces=20)
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            return _partial(request, "rules/_replay.html", result=None, problem=problem)
        return _partial(request, "rules/_replay.html", result=result, problem=None)

    @get("/publish", guards=[manage_rules])
    async def publish_form(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           source: int | None = None) -> Template:
        rule_set, _, in_force = await _overview(db, principal)
        document = rule_set.draft if source is None else (await service.version(db, rule_set, source)).document
        return page(request, "rules/publish.html", source=source, in_force=in_force,
                    problems=routing.validate_document(document), values={"when": "now"},
                    now_local=clock.now().astimezone(ZoneInfo(principal.timezone)))

    @post("/publish", guards=[manage_rules])
    async def publish(self, request: Request[Any, Any, Any], db: AsyncSession,
                      principal: Principal) -> Template | Redirect:
        data = await form_data(request)
        source = int(data["source"]) if data.get("source", "").isdigit() else None
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
            _, _, in_force = await _overview(db, principal)
            document_problems = [e for e in problem.errors if e.field.startswith(("rules", "otherwise"))]
            return page(request, "rules/publish.html", status_code=422, source=source, in_force=in_force,
                        problems=document_problems, values=data, errors=form_errors(problem),
                        now_local=clock.now().astimezone(ZoneInfo(principal.timezone)))
        return redirect("/app/rules", done="scheduled" if start else "published")

    @get("/versions/{number:int}")
    async def version_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           number: int) -> Template:
        rule_set, all_versions, in_force = await _overview(db, principal)
        found = await service.version(db, rule_set, number)
        return page(request, "rules/version.html", version=found, in_force=in_force,
                    status=schedule.status(found, all_versions, clock.now()),
                    can_manage=principal.role in MERCHANDISERS, rules=builder.editable(found.document),
                    describe=lambda tree: _describe_rows(tree, principal.currency), filters=routing.FILTERS,
                    sorts=routing.SORTS, fallbacks=routing.FALLBACKS, major=builder.major,
                    currency=principal.currency)

    @post("/versions/{number:int}/withdraw", guards=[manage_rules])
    async def withdraw(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       number: int) -> Redirect:
        await service.withdraw(db, principal, number, ip=client_ip(request))
        return redirect("/app/rules", done="withdrawn")

    @post("/versions/{number:int}/to-draft", guards=[manage_rules])
    async def copy_to_draft(self, db: AsyncSession, principal: Principal, number: int) -> Redirect:
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


route_handlers = [RulesApiController, RulesPagesController]
