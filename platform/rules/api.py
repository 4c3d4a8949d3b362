"""Routing rules as code: the JSON API (the field registry, the draft, validation, simulation,
replay, publishing and withdrawing versions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, get, post, put
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal, signed_in
from core.deps import DEPS
from core.idempotency import idempotent_create
from core.pages import client_ip
from core.params import NumberParam
from core.problems import invalid
from rules import fields, routing, schedule, service
from rules.guards import manage_rules, try_rules
from rules.lab import RoutingLab
from rules.models import RuleVersion
from rules.schemas import DraftIn, PublishIn, ReplayIn, SimulateIn


def aware(value: datetime | None, timezone: str, name: str) -> datetime | None:
    """An instant from the API: as given with its offset, or a wall-clock time in the company's zone."""
    if value is None or value.tzinfo is not None:
        return value
    try:
        return schedule.local_to_utc(value.date(), value.time(), timezone)
    except schedule.LocalTimeError as error:
        raise invalid({name: str(error)}, detail=str(error)) from None
    except OverflowError:  # the first hours of year 1, west of its zone
        raise invalid({name: "Give a date between the years 1900 and 2999."}) from None


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
        rule_set, all_versions, in_force = await service.overview(db, principal)
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
          status_code=200, guards=[try_rules])
    async def simulate(self, db: AsyncSession, principal: Principal, routing_lab: RoutingLab,
                       data: SimulateIn) -> dict[str, Any]:
        sample = msgspec.structs.replace(data.order, at=aware(data.order.at, principal.timezone, "at"))
        return await routing_lab.simulate(db, principal, sample, version=data.version)

    @post("/rule-sets/routing/replay", summary="Replay recent orders with the draft and the version in force",
          status_code=200, guards=[try_rules])
    async def replay(self, db: AsyncSession, principal: Principal, routing_lab: RoutingLab,
                     data: ReplayIn) -> dict[str, Any]:
        return await routing_lab.replay(db, principal, days=data.days, limit=data.limit, version=data.version,
                                        traces=data.traces)

    @get("/rule-sets/routing/versions", summary="Published versions, newest first")
    async def list_versions(self, db: AsyncSession, principal: Principal) -> list[dict[str, Any]]:
        _, all_versions, _ = await service.overview(db, principal)
        return [version_out(v, all_versions, principal.timezone) for v in all_versions]

    @get("/rule-sets/routing/versions/{number:int}", summary="A published version with its document")
    async def get_version(self, db: AsyncSession, principal: Principal, number: NumberParam) -> dict[str, Any]:
        rule_set, all_versions, _ = await service.overview(db, principal)
        return version_out(await service.version(db, rule_set, number), all_versions, principal.timezone,
                           document=True)

    @post("/rule-sets/routing/versions", summary="Publish the draft, or republish a version, now or from a date",
          guards=[manage_rules], status_code=201)
    async def publish(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      data: PublishIn) -> Response[Any]:
        async def create() -> dict[str, Any]:
            published = await service.publish(
                db, principal, source=data.source_version,
                effective_from=aware(data.effective_from, principal.timezone, "effective_from"),
                effective_to=aware(data.effective_to, principal.timezone, "effective_to"),
                note=data.note, ip=client_ip(request))
            _, all_versions, _ = await service.overview(db, principal)
            return version_out(published, all_versions, principal.timezone)
        return await idempotent_create(request, db, principal, create)

    @post("/rule-sets/routing/versions/{number:int}/withdraw", summary="Withdraw a scheduled version",
          guards=[manage_rules], status_code=200)
    async def withdraw(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       number: NumberParam) -> dict[str, Any]:
        withdrawn = await service.withdraw(db, principal, number, ip=client_ip(request))
        _, all_versions, _ = await service.overview(db, principal)
        return version_out(withdrawn, all_versions, principal.timezone)


route_handlers = [RulesApiController]
