"""The promotions console: the timeline of versions, the builder, simulation on a sample cart and
replay of recent orders, publishing and withdrawing. It is routing's console for another kind of
rule set: same versions and schedule (``rules.service`` through ``marketing.promotions``), same
condition rows, same local-time handling."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock, forms
from core.auth import Principal, signed_in
from core.deps import DEPS
from core.forms import parse_int
from core.limits import LINE_QUANTITY_MAX
from core.locale import format_money, parse_money
from core.pages import NOTICES, client_ip, form_data, form_errors, page, redirect
from core.params import NumberParam, OptionalNumberParam
from core.problems import ProblemError, invalid
from marketing import promotion_builder as pb
from marketing import promotions, simulation
from marketing.guards import MARKETERS, manage_marketing, see_marketing
from marketing.schemas import MAX_CODES, CartIn
from orders.simulation import LAB
from rules import builder, fields, schedule
from rules import promotions as pure
from rules import service as rule_sets
from rules.conditions import Problem
from rules.pages import local_input, publish_window

BASE = "/app/marketing/promotions"
NOTICES.update({
    "promotions_published": "Promotions published.",
    "promotions_scheduled": "Promotions scheduled: they take effect by themselves at the time shown.",
    "promotions_withdrawn": "Scheduled promotions withdrawn.",
    "promotions_copied": "Version copied into the promotions draft.",
    "promotions_conflict": "Someone saved the promotions draft since you opened it. Your last change was not "
                           "saved. Here is the draft as it is now.",
})
TRY = (*MARKETERS, "read_only")  # who may simulate and replay (see marketing.guards)
SAMPLE_LINES = 5


def _money(principal: Principal) -> Callable[[int], str]:
    return lambda minor: format_money(minor, principal.currency, principal.locale)


def _is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("HX-Request") == "true"


def _partial(request: Request[Any, Any, Any], name: str, **context: Any) -> Template:
    """An htmx fragment, or the same inside the console layout when JavaScript is off."""
    if _is_htmx(request):
        return page(request, name, **context)
    return page(request, "marketing/promotions/result_page.html", partial=name, **context)


def _choice_lists(categories: list[str], locations: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    lists = {name: fields.static_choices(name)
             for name in {f.choices for f in pb.promotion_fields().values() if f.choices} - set(fields.OPEN_CHOICES)}
    lists["channels"] = fields.static_choices("channels")
    lists["categories"] = [(c, c) for c in categories]
    lists["locations"] = locations
    return lists


def _words(principal: Principal, segments: dict[str, str]) -> dict[str, Any]:
    """What the read-only summaries need: promotions in words, amounts in the company's locale."""
    money_text = _money(principal)
    return {"summarize": lambda document: pb.summarize(document, money_text, segments),
            "within_words": pb.within_words}


async def _builder_context(db: AsyncSession, principal: Principal, rule_set: Any,
                           edited: tuple[list[dict[str, Any]], str] | None = None) -> dict[str, Any]:
    promotions_list, within_class = edited if edited is not None else (
        pb.editable(rule_set.draft), str(rule_set.draft.get("within_class") or "priority"))
    document, where = pb.document_of(promotions_list, within_class)
    problems = await promotions.problems(db, principal.tenant_id, document)
    placed = pb.place_problems(problems, where)
    choices = await LAB.choices(db, principal.tenant_id)
    segments = await promotions.segment_names(db, principal.tenant_id)
    offered = pb.promotion_fields()
    return {
        "rule_set": rule_set, "promotions": promotions_list, "within_class": within_class, "problems": problems,
        "row_errors": placed.rows, "controls": placed.controls, "rule_errors": placed.per_rule,
        "problem_index": placed.links, "empty": not promotions_list,
        "can_manage": principal.role in MARKETERS, "can_try": principal.role in TRY,
        "fields": offered, "operators": fields.OPERATORS, "modes": builder.MODES,
        "field_groups": list(dict.fromkeys(f.group for f in offered.values())),
        "choices": _choice_lists(choices.categories, [(loc.code, f"{loc.code} — {loc.name}")
                                                      for loc in choices.locations]),
        "currency": principal.currency, "as_list": builder.as_list, "as_pair": builder.as_pair,
        "major": lambda minor, currency: builder.major(minor, currency, principal.locale),
        "segments": segments, "effect_kinds": pure.EFFECT_KINDS, "targets": pb.TARGETS, "classes": pure.CLASSES,
        "within_choices": pure.WITHIN_CLASS, "klass": pb.klass, "tree_path": pb.tree_path,
        **_words(principal, segments),
    }


def _lab_context(principal: Principal) -> dict[str, Any]:
    return {"sample_lines": SAMPLE_LINES, "channels": fields.static_choices("channels"),
            "max_days": simulation.MAX_DAYS, "max_orders": simulation.MAX_ORDERS}


def _cart_from_form(form: dict[str, str], principal: Principal) -> tuple[CartIn, list[int], set[int]]:
    """The sample cart form as a cart, the form row of each of its lines, and the lines without a
    typed price (the catalog's is used); every problem is reported at its field at once."""
    errors: dict[str, str] = {}
    lines: list[dict[str, Any]] = []
    rows: list[int] = []
    unpriced: set[int] = set()
    example = format_money(5900, principal.currency, principal.locale)

    def text(name: str) -> str:
        return form.get(name, "").strip()

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
        typed = text(f"line.{k}.price")
        price = parse_money(typed, principal.currency, principal.locale) if typed else 0
        if price is None or price < 0:
            errors[f"line.{k}.price"] = f"Line {k + 1}: “{typed[:20]}” is not a price: write it like {example}."
            continue
        if not typed:
            unpriced.add(len(lines))
        rows.append(k)
        lines.append({"sku": sku, "quantity": quantity, "unit_price_minor": price})
    if not lines and not errors:
        errors["line.0.sku"] = "Add at least one line: a SKU and a quantity."
    raw: dict[str, Any] = {"lines": lines, "channel": text("channel") or "web"}
    email = text("email")
    if email:
        if "@" not in email or len(email) > 320:
            errors["email"] = "An email address, such as someone@example.com."
        else:
            raw["customer"] = {"email": email}
    codes = [c.strip().upper() for c in text("coupon_codes").replace(";", ",").split(",") if c.strip()]
    if len(codes) > MAX_CODES or any(len(c) > 40 for c in codes):
        errors["coupon_codes"] = f"At most {MAX_CODES} codes, each of up to 40 characters, separated by commas."
    raw["coupon_codes"] = list(dict.fromkeys(codes))
    shipping = text("shipping")
    if shipping:
        fee = parse_money(shipping, principal.currency, principal.locale)
        if fee is None or fee < 0:
            errors["shipping"] = f"“{shipping[:20]}” is not an amount in {principal.currency}: write it like {example}."
        else:
            raw["shipping_fee_minor"] = fee
    if text("day"):
        try:
            raw["placed_at"] = local_input(text("day"), text("time") or "12:00", principal.timezone,
                                            "day").isoformat()
        except ProblemError as problem:
            errors.update(form_errors(problem))
    if errors:
        raise invalid(errors, detail="Check the sample cart: " + next(iter(errors.values())))
    return forms.convert(raw, CartIn), rows, unpriced


_LINE_FIELD = re.compile(r"lines\[(\d+)\]\.(\w+)")
_FORM_FIELD = {"sku": "sku", "quantity": "quantity", "unit_price_minor": "price", "discount_minor": "price"}


def _at_form_rows(errors: dict[str, str], rows: list[int]) -> dict[str, str]:
    """Pricing's problems ("lines[1].sku") at the form's fields ("line.3.sku")."""
    out = {}
    for key, message in errors.items():
        match = _LINE_FIELD.fullmatch(key)
        if match and int(match[1]) < len(rows):
            key = f"line.{rows[int(match[1])]}.{_FORM_FIELD.get(match[2], 'sku')}"
        elif key.startswith("coupon_codes"):
            key = "coupon_codes"
        out[key] = message
    return out


class PromotionPagesController(Controller):
    path = BASE
    include_in_schema = False
    guards = [signed_in, see_marketing]
    dependencies = DEPS

    @get("/")
    async def overview(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        rule_set, all_versions, in_force = await promotions.overview(db, principal)
        now = clock.now()
        draft = rule_set.draft
        return page(request, "marketing/promotions/overview.html", rule_set=rule_set, versions=all_versions,
                    in_force=in_force, periods=schedule.upcoming(all_versions, now), now=now, status=schedule.status,
                    can_manage=principal.role in MARKETERS,
                    draft_problems=len(await promotions.problems(db, principal.tenant_id, draft)),
                    draft_empty=not draft.get("promotions"), draft_count=len(draft.get("promotions") or []))

    @get("/draft")
    async def draft(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        rule_set = await rule_sets.rule_set_of(db, principal, promotions.KIND)
        return page(request, "marketing/promotions/draft.html", **await _builder_context(db, principal, rule_set),
                    **_lab_context(principal))

    @post("/draft", guards=[manage_marketing])
    async def save_draft(self, request: Request[Any, Any, Any], db: AsyncSession,
                         principal: Principal) -> Template | Redirect:
        form = await request.form()

        def get(name: str) -> str | None:
            value = form.get(name)
            return value if isinstance(value, str) else None

        def getall(name: str) -> list[str]:
            return [v for v in form.getall(name, []) if isinstance(v, str)]

        rule_set = await rule_sets.rule_set_of(db, principal, promotions.KIND)
        edited_list, within_class = pb.read_form(rule_set.draft, get, getall, principal.currency, principal.locale)
        action = get("drop_action") or get("action")  # a drag and drop, or the button pressed
        if action:
            edited_list = pb.apply_action(edited_list, action, get)
        document, _ = pb.document_of(edited_list, within_class)
        notice = None
        edited: tuple[list[dict[str, Any]], str] | None = (edited_list, within_class)
        try:
            rule_set = await promotions.save_draft(db, principal, document, revision=parse_int(get("revision"), lo=1))
        except ProblemError as problem:
            if problem.status != 409:
                raise
            await db.rollback()
            rule_set = await rule_sets.rule_set_of(db, principal, promotions.KIND)
            edited, notice = None, problem.detail + " Your last change was not saved."
        if not _is_htmx(request):
            return redirect(f"{BASE}/draft", done="promotions_conflict" if notice else None)
        context = await _builder_context(db, principal, rule_set, edited)
        return page(request, "marketing/promotions/_builder.html", **context, conflict=notice)

    @post("/simulate")
    async def simulate(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        values = await form_data(request)
        context = {"values": values, **_lab_context(principal)}
        rows: list[int] = []
        try:
            cart, rows, unpriced = _cart_from_form(values, principal)
            result = await simulation.price_sample(db, principal, cart, unpriced=unpriced)
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            errors = _at_form_rows(form_errors(problem), rows) if problem.title != "Invalid rules" else {}
            return _partial(request, "marketing/promotions/_simulation.html", result=None, errors=errors,
                            problem=problem, **context)
        return _partial(request, "marketing/promotions/_simulation.html", result=result, problem=None, **context)

    @post("/replay")
    async def replay(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        data = await form_data(request)
        days = parse_int(data.get("days"), lo=1, hi=simulation.MAX_DAYS) or 7
        limit = parse_int(data.get("limit"), lo=1, hi=simulation.MAX_ORDERS) or 1000
        try:
            result = await simulation.replay(db, principal, days=days, limit=limit)
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            return _partial(request, "marketing/promotions/_replay.html", result=None, problem=problem)
        return _partial(request, "marketing/promotions/_replay.html", result=result, problem=None)

    async def _publish_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                            source: int | None, *, values: dict[str, Any], errors: dict[str, str] | None = None,
                            problems: list[Problem] | None = None, status_code: int = 200) -> Template:
        rule_set, _, in_force = await promotions.overview(db, principal)
        document = rule_set.draft if source is None else (await rule_sets.version(db, rule_set, source)).document
        if problems is None:
            problems = await promotions.problems(db, principal.tenant_id, document)
        links: list[tuple[str, str]] = []
        if source is None and problems:  # each problem links to the builder's control at fault
            _, where = pb.document_of(pb.editable(document), str(document.get("within_class") or "priority"))
            links = pb.place_problems(problems, where).links
        segments = await promotions.segment_names(db, principal.tenant_id)
        before = in_force.document if in_force is not None else None
        return page(request, "marketing/promotions/publish.html", status_code=status_code, source=source,
                    in_force=in_force, problems=problems, problem_links=links, values=values, errors=errors or {},
                    now=clock.now(), changes=pb.diff(before, document, _money(principal), segments),
                    within_change=pb.within_change(before, document), empty=not document.get("promotions"),
                    **_words(principal, segments))

    @get("/publish", guards=[manage_marketing])
    async def publish_form(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           source: OptionalNumberParam = None) -> Template:
        return await self._publish_page(request, db, principal, source, values={"when": "now"})

    @post("/publish", guards=[manage_marketing])
    async def publish(self, request: Request[Any, Any, Any], db: AsyncSession,
                      principal: Principal) -> Template | Redirect:
        data = await form_data(request)
        source = parse_int(data.get("source"), lo=1)
        start: datetime | None = None
        try:
            start, until = publish_window(data, principal.timezone)
            await promotions.publish(db, principal, source=source, effective_from=start, effective_to=until,
                                     note=data.get("note", ""), ip=client_ip(request))
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            document_problems = [Problem(e.field, e.message) for e in problem.errors
                                 if e.field.startswith(("promotions", "within_class", "document"))]
            field_errors = {k: v for k, v in form_errors(problem).items()
                            if not k.startswith(("promotions", "within_class", "document"))}
            return await self._publish_page(request, db, principal, source, values=data, errors=field_errors,
                                            problems=document_problems or None, status_code=422)
        return redirect(BASE, done="promotions_scheduled" if start else "promotions_published")

    @get("/versions/{number:int}")
    async def version_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           number: NumberParam) -> Template:
        rule_set, all_versions, in_force = await promotions.overview(db, principal)
        found = await rule_sets.version(db, rule_set, number)
        previous = next((v for v in all_versions if v.number == number - 1), None)
        segments = await promotions.segment_names(db, principal.tenant_id)
        before = previous.document if previous is not None else None
        return page(request, "marketing/promotions/version.html", version=found, in_force=in_force,
                    previous=previous, status=schedule.status(found, all_versions, clock.now()),
                    can_manage=principal.role in MARKETERS,
                    changes=pb.diff(before, found.document, _money(principal), segments),
                    within_change=pb.within_change(before, found.document), **_words(principal, segments))

    @post("/versions/{number:int}/withdraw", guards=[manage_marketing])
    async def withdraw(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       number: NumberParam) -> Redirect:
        await promotions.withdraw(db, principal, number, ip=client_ip(request))
        return redirect(BASE, done="promotions_withdrawn")

    @post("/versions/{number:int}/to-draft", guards=[manage_marketing])
    async def copy_to_draft(self, db: AsyncSession, principal: Principal, number: NumberParam) -> Redirect:
        rule_set = await rule_sets.rule_set_of(db, principal, promotions.KIND)
        found = await rule_sets.version(db, rule_set, number)
        await promotions.save_draft(db, principal, copy.deepcopy(found.document))
        return redirect(f"{BASE}/draft", done="promotions_copied")


route_handlers = [PromotionPagesController]
