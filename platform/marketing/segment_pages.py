"""Segments in the console and the API: the list with live counts, the editor built on the rules
builder's condition rows (restricted to customer fields), a live count and preview of the members
of the condition being edited, and the JSON API.

The editor keeps the condition being edited in the form (``structure``, the condition as the page
shows it) and reads the rows' values over it by position, exactly as the routing builder reads its
draft: nothing is saved until "Save", and every problem is shown at its row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.boundary import check_json
from core.deps import DEPS
from core.forms import decode_json, parse_int
from core.idempotency import idempotent_create
from core.locale import format_money
from core.pages import NOTICES, form_errors, page, redirect
from core.params import id_cursor
from core.problems import ProblemError
from customers import segments as members_of
from inventory import catalog, locations
from marketing import segments
from marketing.guards import MARKETERS, manage_marketing, see_marketing
from marketing.models import Segment
from rules import builder, fields
from rules.builder import MODES
from rules.fields import OPERATORS

NOTICES.update({
    "segment_created": "Segment created.",
    "segment_saved": "Segment saved.",
    "segment_archived": "Segment archived: it is no longer offered to promotions and campaigns.",
})

SEGMENTS = "/app/marketing/segments"
ROOT = "r0"  # the builder's name of the condition's top group (the one rule of the routing builder's form)
DEFAULT_FIELD = "customer.orders_count"
PREVIEW = 20
STRUCTURE_MAX = 200_000  # characters of the condition the form carries
ACTIONS = ("add_condition", "add_group", "delete_node", "move_node", "move_node_to")
CHANGED = {"HX-Trigger": "segment-changed"}  # the live count refreshes after rows are added or removed


def segment_fields() -> dict[str, fields.Field]:
    return fields.fields_for("segments")


# --- the editor's form -----------------------------------------------------------------------------

@dataclass
class Edited:
    """The editor's state after a post: what was typed, the rows, and the condition they make."""

    name: str
    description: str
    tree: dict[str, Any]
    condition: dict[str, Any] | None
    where: dict[str, str]  # language paths -> builder paths, to place problems at their rows
    structural: bool  # rows were added, removed or moved (nothing to save)
    save: bool  # the Save button


def _structure(raw: str | None) -> dict[str, Any] | None:
    """The condition the page was rendered with; anything else (tampered, too big) is no condition."""
    if not raw or len(raw) > STRUCTURE_MAX:
        return None
    try:
        check_json(raw.encode())
        value = msgspec.json.decode(raw)
    except (ProblemError, msgspec.DecodeError):
        return None
    return value if isinstance(value, dict) else None


def _node_at(tree: dict[str, Any], path: str) -> dict[str, Any] | None:
    node = tree
    for part in path.split(".")[1:]:
        children = node.get("children") or []
        index = parse_int(part, lo=0)
        if index is None or index >= len(children):
            return None
        node = children[index]
    return node


def _condition_of(tree: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    where: dict[str, str] = {}
    if not tree["children"]:
        return None, where
    return builder.from_tree(tree, ROOT, segments.CONDITION, where), where


def read_editor(form: Any, principal: Principal) -> Edited:
    """The posted editor: values read over the structure it was rendered with, then the button's edit."""

    def get(name: str) -> str | None:
        value = form.get(name)
        return value if isinstance(value, str) else None

    def getall(name: str) -> list[str]:
        return [v for v in form.getall(name, []) if isinstance(v, str)]

    structure = _structure(get("structure"))
    document = {"rules": [{"id": "segment", "name": "", "when": structure, "then": {}}], "otherwise": "hold"}
    try:
        rules, _ = builder.read_form(document, get, getall, principal.currency, principal.locale)
    except (TypeError, AttributeError, KeyError, ValueError):  # a tampered structure: start again
        rules, _ = builder.read_form({"rules": [{"id": "segment", "when": None, "then": {}}]}, get, getall,
                                     principal.currency, principal.locale)
    action = get("drop_action") or get("action") or ""
    name, _, arg = action.partition(":")
    structural = name in ACTIONS and (arg == ROOT or arg.startswith(ROOT + "."))
    if structural:
        known = segment_fields()

        def get_new(key: str) -> str | None:  # a condition is added on a customer field, never an order's
            value = get(key)
            if key.endswith(".new_field") and value not in known:
                return DEFAULT_FIELD
            return value

        rules = builder.apply_action(rules, action, get_new)
        if name == "add_group" and (group := _node_at(rules[0]["tree"], arg)) is not None and group["children"]:
            added = group["children"][-1]
            if added.get("type") == "group":
                added["children"] = [builder.new_leaf(DEFAULT_FIELD)]
    tree = rules[0]["tree"]
    condition, where = _condition_of(tree)
    return Edited(name=(get("name") or "").strip(), description=(get("description") or "").strip(), tree=tree,
                  condition=condition, where=where, structural=structural, save=action == "save")


def _choice_lists(categories: list[str], stores: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    lists = {f.choices: fields.static_choices(f.choices) for f in segment_fields().values()
             if f.choices and f.choices not in fields.OPEN_CHOICES}
    lists["categories"] = [(c, c) for c in categories]
    lists["locations"] = stores
    return lists


async def _builder_context(db: AsyncSession, principal: Principal, tree: dict[str, Any],
                           condition: dict[str, Any] | None, where: dict[str, str],
                           problems: list[Any] | None) -> dict[str, Any]:
    """What the condition rows need (the rules builder's names), with the problems at their rows."""
    placed = builder.place_problems(problems or [], where)
    every = await locations.list_locations(db, principal)
    own = segment_fields()
    return {
        "tree": tree, "structure": msgspec.json.encode(condition).decode(), "fields": own,
        "operators": OPERATORS, "modes": MODES, "currency": principal.currency,
        "major": lambda minor, currency: builder.major(minor, currency, principal.locale),
        "as_list": builder.as_list, "as_pair": builder.as_pair,
        "field_groups": list(dict.fromkeys(f.group for f in own.values())),
        "choices": _choice_lists(await catalog.categories(db, principal.tenant_id),
                                 [(loc.code, f"{loc.code} — {loc.name}") for loc in every]),
        "row_errors": placed.rows, "controls": placed.controls, "problem_links": placed.links,
        "general_problems": placed.per_rule.get(-1, []),
        "problems": problems or [],
    }


def _is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("HX-Request") == "true"


# --- words for those who read a segment -----------------------------------------------------------

_HEADS = {"all": "Customers for whom all of these hold:", "any": "Customers for whom any of these holds:",
          "none": "Customers for whom none of these holds:", "not_all": "Customers for whom not all of these hold:"}


def condition_lines(condition: dict[str, Any] | None, money: Callable[[int], str]) -> list[tuple[int, str]]:
    """A segment's condition as indented lines of words."""
    from rules.summary import describe_leaf

    def leaf(node: dict[str, Any]) -> str:
        return describe_leaf(node, money)

    def rows(tree: dict[str, Any], depth: int) -> list[tuple[int, str]]:
        if tree["type"] == "leaf":
            return [(depth, leaf(tree))]
        lines = [(depth, f"{MODES.get(tree['mode'], tree['mode']).capitalize()}:")]
        for child in tree["children"]:
            lines += rows(child, depth + 1)
        return lines

    tree = builder.to_tree(condition)
    if not tree["children"]:
        return [(0, "No condition")]
    lines = [(0, _HEADS.get(tree["mode"], "Customers for whom:"))]
    for child in tree["children"]:
        lines += rows(child, 1)
    return lines


# --- counts ---------------------------------------------------------------------------------------

async def count_context(db: AsyncSession, principal: Principal, condition: dict[str, Any] | None,
                        *, with_preview: bool = True) -> dict[str, Any]:
    """The live count (and the first members) of a condition, or why there is none yet."""
    problems = segments.condition_problems(condition) if condition is not None else []
    if condition is None or problems:
        return {"count": None, "members": [], "count_problems": problems}
    count = await members_of.count(db, principal.tenant_id, condition, timezone=principal.timezone)
    preview = await members_of.preview(db, principal.tenant_id, condition, timezone=principal.timezone,
                                       limit=PREVIEW) if with_preview and count else []
    return {"count": count, "members": preview, "count_problems": []}


# --- the console ----------------------------------------------------------------------------------

class SegmentPagesController(Controller):
    path = SEGMENTS
    include_in_schema = False
    guards = [see_marketing]
    dependencies = DEPS

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                        archived: bool = False) -> Template:
        return page(request, "marketing/segments/list.html", archived=archived,
                    segments=await segments.list_segments(db, principal.tenant_id, archived=archived),
                    can_manage=principal.role in MARKETERS)

    @get("/new", guards=[manage_marketing])
    async def new_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        tree = builder.to_tree(None)
        return await self._editor(request, db, principal, None, Edited("", "", tree, None, {}, False, False))

    @post("/new", guards=[manage_marketing])
    async def create(self, request: Request[Any, Any, Any], db: AsyncSession,
                     principal: Principal) -> Template | Redirect | Response[Any]:
        return await self._post(request, db, principal, None)

    @post("/count")
    async def live_count(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        """The count and first members of the condition being edited (saved or not)."""
        edited = read_editor(await request.form(), principal)
        return page(request, "marketing/segments/_count.html",
                    **await count_context(db, principal, edited.condition))

    @get("/{segment_id:uuid}")
    async def edit_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                        segment_id: uuid.UUID) -> Template:
        segment = await segments.get_segment(db, principal.tenant_id, segment_id)
        tree = builder.to_tree(segment.condition)
        condition, where = _condition_of(tree)
        problems = segments.condition_problems(condition)
        return await self._editor(request, db, principal, segment,
                                  Edited(segment.name, segment.description, tree, condition, where, False, False),
                                  problems=problems)

    @post("/{segment_id:uuid}", guards=[manage_marketing])
    async def update(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                     segment_id: uuid.UUID) -> Template | Redirect | Response[Any]:
        segment = await segments.get_segment(db, principal.tenant_id, segment_id)
        return await self._post(request, db, principal, segment)

    @post("/{segment_id:uuid}/archive", guards=[manage_marketing])
    async def archive(self, db: AsyncSession, principal: Principal, segment_id: uuid.UUID) -> Redirect:
        await segments.archive_segment(db, principal, segment_id)
        return redirect(SEGMENTS, done="segment_archived")

    @get("/{segment_id:uuid}/count")
    async def saved_count(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                          segment_id: uuid.UUID) -> Template:
        """A saved segment's member count, alone (the lists load it after the page)."""
        segment = await segments.get_segment(db, principal.tenant_id, segment_id)
        context = await count_context(db, principal, segment.condition, with_preview=False)
        return page(request, "marketing/segments/_count_badge.html", segment=segment, **context)

    async def _post(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                    segment: Segment | None) -> Template | Redirect | Response[Any]:
        edited = read_editor(await request.form(), principal)
        segment_id = segment.id if segment is not None else None  # read before a rollback expires it
        if not edited.save:  # a row added, removed or moved, or a field changed: show the rows again
            response = await self._editor(request, db, principal, segment, edited,
                                          partial=_is_htmx(request))
            if edited.structural:
                response.headers.update(CHANGED)
            return response
        try:
            if segment_id is None:
                saved = await segments.create_segment(db, principal, name=edited.name, condition=edited.condition,
                                                      description=edited.description)
            else:
                saved = await segments.update_segment(db, principal, segment_id, name=edited.name,
                                                      condition=edited.condition, description=edited.description)
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            errors = form_errors(problem)
            problems = segments.condition_problems(edited.condition)
            if segment_id is not None:
                segment = await segments.get_segment(db, principal.tenant_id, segment_id)
            return await self._editor(request, db, principal, segment, edited, problems=problems,
                                      errors={k: v for k, v in errors.items() if k in ("name", "description")},
                                      partial=_is_htmx(request), status_code=200 if _is_htmx(request) else 422)
        done = "segment_created" if segment is None else "segment_saved"
        target = f"{SEGMENTS}/{saved.id}?done={done}"
        if _is_htmx(request):
            return Response(b"", status_code=204, headers={"HX-Redirect": target})
        return redirect(f"{SEGMENTS}/{saved.id}", done=done)

    async def _editor(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      segment: Segment | None, edited: Edited, *, problems: list[Any] | None = None,
                      errors: dict[str, str] | None = None, partial: bool = False,
                      status_code: int = 200) -> Template:
        if problems is None and edited.condition is not None:
            problems = segments.condition_problems(edited.condition)
        context = await _builder_context(db, principal, edited.tree, edited.condition, edited.where, problems)
        action = f"{SEGMENTS}/{segment.id}" if segment is not None else f"{SEGMENTS}/new"

        def money(minor: int) -> str:
            return format_money(minor, principal.currency, principal.locale)
        values = {"name": edited.name, "description": edited.description}
        common = {"segment": segment, "action": action, "values": values, "errors": errors or {},
                  "can_manage": principal.role in MARKETERS and (segment is None or segment.archived_at is None),
                  "name_max": segments.NAME_MAX, "description_max": segments.DESCRIPTION_MAX, **context}
        if partial:
            return page(request, "marketing/segments/_form.html", status_code=status_code, **common)
        return page(request, "marketing/segments/edit.html", status_code=status_code,
                    lines=condition_lines(edited.condition, money),
                    **await count_context(db, principal, edited.condition), **common)


# --- the API --------------------------------------------------------------------------------------

class SegmentIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=segments.NAME_MAX)]
    condition: dict[str, Any]
    description: Annotated[str, msgspec.Meta(max_length=segments.DESCRIPTION_MAX)] = ""


def segment_out(segment: Segment) -> dict[str, Any]:
    return {"id": segment.id, "name": segment.name, "description": segment.description,
            "condition": segment.condition, "created_at": segment.created_at, "created_by": segment.created_by,
            "updated_at": segment.updated_at, "updated_by": segment.updated_by, "archived_at": segment.archived_at}


def member_out(member: Any) -> dict[str, Any]:
    return {"id": member.id, "email": member.email, "name": member.name, "orders_count": member.orders_count,
            "lifetime_value_minor": member.lifetime_value_minor, "last_order_at": member.last_order_at}


MemberLimit = Annotated[int, Parameter(ge=1, le=1000)]


class SegmentApiController(Controller):
    path = "/api/v1/segments"
    tags = ["Marketing: segments"]
    guards = [see_marketing]
    dependencies = DEPS

    @get("/", summary="The company's segments (archived ones with archived=true)")
    async def list_segments(self, db: AsyncSession, principal: Principal,
                            archived: bool = False) -> list[dict[str, Any]]:
        return [segment_out(s) for s in await segments.list_segments(db, principal.tenant_id, archived=archived)]

    @post("/", summary="Create a segment: a name and a condition over customer fields", guards=[manage_marketing],
          status_code=201)
    async def create_segment(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                             data: SegmentIn) -> Response[Any]:
        async def create() -> dict[str, Any]:
            return segment_out(await segments.create_segment(db, principal, name=data.name,
                                                             condition=data.condition,
                                                             description=data.description))
        return await idempotent_create(request, db, principal, create)

    @get("/{segment_id:uuid}", summary="A segment")
    async def get_segment(self, db: AsyncSession, principal: Principal, segment_id: uuid.UUID) -> dict[str, Any]:
        return segment_out(await segments.get_segment(db, principal.tenant_id, segment_id))

    @put("/{segment_id:uuid}", summary="Replace a segment's name, description and condition",
         guards=[manage_marketing])
    async def update_segment(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                             segment_id: uuid.UUID) -> dict[str, Any]:
        # Find the segment before reading the body: another company's id is a 404, never a 422.
        await segments.get_segment(db, principal.tenant_id, segment_id)
        data = decode_json(await request.body(), SegmentIn)
        return segment_out(await segments.update_segment(db, principal, segment_id, name=data.name,
                                                         condition=data.condition, description=data.description))

    @delete("/{segment_id:uuid}", summary="Archive a segment", guards=[manage_marketing], status_code=200)
    async def archive_segment(self, db: AsyncSession, principal: Principal, segment_id: uuid.UUID) -> dict[str, Any]:
        return segment_out(await segments.archive_segment(db, principal, segment_id))

    @get("/{segment_id:uuid}/count", summary="How many customers are in the segment now")
    async def count(self, db: AsyncSession, principal: Principal, segment_id: uuid.UUID) -> dict[str, Any]:
        segment = await segments.get_segment(db, principal.tenant_id, segment_id)
        return {"id": segment.id, "count": await members_of.count(db, principal.tenant_id, segment.condition,
                                                                  timezone=principal.timezone)}

    @get("/{segment_id:uuid}/members", summary="The segment's members now, by id; page on with after=next_after")
    async def members(self, db: AsyncSession, principal: Principal, segment_id: uuid.UUID, limit: MemberLimit = 100,
                      after: str | None = None) -> dict[str, Any]:
        segment = await segments.get_segment(db, principal.tenant_id, segment_id)
        found = await members_of.members(db, principal.tenant_id, segment.condition, timezone=principal.timezone,
                                         after=id_cursor(after), limit=limit)
        return {"members": [member_out(m) for m in found],
                "next_after": str(found[-1].id) if len(found) == limit else None}


route_handlers = [SegmentPagesController, SegmentApiController]
