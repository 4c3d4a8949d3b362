"""Locations, catalog, inventory and feeds in the console: location forms, catalog import with
a preview, the stock grid, the movements ledger, stock exceptions, and feeds with live status."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.response import Redirect, ServerSentEvent, Template
from litestar.response.sse import ServerSentEventMessage
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import MERCHANDISERS, Principal, signed_in
from core.db import get_database
from core.deps import DEPS
from core.forms import parse_float, parse_int
from core.pages import NOTICES, form_data, form_errors, page, redirect
from core.problems import ProblemError, invalid
from core.sessions import hand_over_once, take_once
from inventory import availability, catalog, feeds, locations
from inventory.guards import UPLOAD_LIMIT, manage_stock
from inventory.schemas import LocationIn

NOTICES.update({
    "location_saved": "Location saved.",
    "location_paused": "Location paused: it takes no new orders.",
    "location_active": "Location active again.",
    "catalog_imported": "Catalog imported.",
    "feed_known": "This feed was already received: nothing changed.",
    "exception_resolved": "Stock exception marked as resolved.",
})


LOCATION_FLAGS = ("ships_to_customers", "click_and_collect", "ship_from_store", "receives_transfers",
                  "accepts_returns")


def _location_from_form(data: dict[str, str], timezone: str, country: str) -> LocationIn:
    raw: dict[str, Any] = {
        "code": data.get("code", "").strip(), "name": data.get("name", "").strip(),
        "kind": data.get("kind", "warehouse"), "country": (data.get("country") or country).strip().upper(),
        "timezone": (data.get("timezone") or timezone).strip(), "address_line1": data.get("address_line1", ""),
        "city": data.get("city", ""), "postcode": data.get("postcode", ""),
        "priority": data.get("priority") or 100, "status": data.get("status", "active"),
        "tags": [t.strip() for t in data.get("tags", "").split(",") if t.strip()],
    }
    for flag in LOCATION_FLAGS:
        raw[flag] = data.get(flag) == "on"
    errors: dict[str, str] = {}
    for number_field in ("latitude", "longitude", "daily_capacity", "priority", "shipping_cost_minor"):
        value = str(raw.get(number_field, data.get(number_field, ""))).strip()
        if value in ("", "None"):
            raw.pop(number_field, None)
            continue
        bound = {"latitude": 90.0, "longitude": 180.0}.get(number_field)
        number = parse_float(value, lo=-bound, hi=bound) if bound else parse_int(value)
        if number is None:
            errors[number_field] = f"{value[:20]!r} is not a number" + (
                f" (a {number_field} is between -{bound:g} and {bound:g})." if bound else " (a whole one).")
        else:
            raw[number_field] = number
    hours: dict[str, list[list[str]]] = {}
    for day in locations.DAYS:
        opens, closes = data.get(f"open_{day}", "").strip(), data.get(f"close_{day}", "").strip()
        if opens and closes:
            hours[day] = [[opens, closes]]
    raw["opening_hours"] = hours
    if errors:
        raise invalid(errors)
    try:
        return msgspec.convert(raw, LocationIn)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = message.split("`$.")[1].split("`")[0] if "`$." in message else "__all__"
        raise invalid({field: message}) from None


class InventoryPagesController(Controller):
    path = "/app"
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @get("/locations")
    async def locations_page(self, request: Request[Any, Any, Any], db: AsyncSession,
                             principal: Principal) -> Template:
        return page(request, "inventory/locations.html", locations=await locations.list_locations(db, principal),
                    can_manage=principal.role in MERCHANDISERS)

    @get("/locations/new", guards=[manage_stock])
    async def new_location(self, request: Request[Any, Any, Any], principal: Principal) -> Template:
        return page(request, "inventory/location_form.html", location=None, days=locations.DAYS,
                    values={"timezone": principal.timezone, "kind": "warehouse", "priority": "100"})

    @post("/locations/new", guards=[manage_stock])
    async def create_location(self, request: Request[Any, Any, Any], db: AsyncSession,
                              principal: Principal) -> Template | Redirect:
        data = await form_data(request)
        try:
            tenant_country = (await _tenant_country(db, principal))
            await locations.save_location(db, principal, _location_from_form(data, principal.timezone,
                                                                             tenant_country))
        except ProblemError as problem:
            if not problem.errors:
                raise
            await db.rollback()
            return page(request, "inventory/location_form.html", status_code=422, location=None,
                        days=locations.DAYS, values=data, errors=form_errors(problem))
        return redirect("/app/locations", done="location_saved")

    @get("/locations/{location_id:uuid}")
    async def edit_location(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                            location_id: uuid.UUID) -> Template:
        location = await locations.get_location(db, principal, location_id)
        values: dict[str, Any] = {f: getattr(location, f) for f in LocationIn.__struct_fields__}
        values["tags"] = ", ".join(location.tags)
        for day, windows in location.opening_hours.items():
            if windows:
                values[f"open_{day}"], values[f"close_{day}"] = windows[0]
        return page(request, "inventory/location_form.html", location=location, days=locations.DAYS, values=values,
                    can_manage=principal.role in MERCHANDISERS)

    @post("/locations/{location_id:uuid}", guards=[manage_stock])
    async def update_location(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                              location_id: uuid.UUID) -> Template | Redirect:
        location = await locations.get_location(db, principal, location_id)
        data = await form_data(request)
        try:
            await locations.save_location(db, principal, _location_from_form(data, principal.timezone,
                                                                             location.country), location)
        except ProblemError as problem:
            if not problem.errors:
                raise
            await db.rollback()
            return page(request, "inventory/location_form.html", status_code=422, location=location,
                        days=locations.DAYS, values=data, errors=form_errors(problem), can_manage=True)
        return redirect("/app/locations", done="location_saved")

    @post("/locations/{location_id:uuid}/status", guards=[manage_stock])
    async def location_status(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                              location_id: uuid.UUID) -> Redirect:
        data = await form_data(request)
        location = await locations.set_status(db, principal, location_id, data.get("status", ""))
        return redirect("/app/locations", done=f"location_{location.status}")

    @get("/catalog")
    async def catalog_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           q: str = "", category: str = "", after: str | None = None) -> Template:
        products = await catalog.search_products(db, principal, q=q, category=category, after=after, limit=51)
        return page(request, "inventory/catalog.html", products=products[:50],
                    next_after=products[49].sku if len(products) > 50 else None, q=q, category=category,
                    categories=await catalog.categories(db, principal.tenant_id),
                    can_manage=principal.role in MERCHANDISERS)

    @get("/catalog/import", guards=[manage_stock])
    async def import_form(self, request: Request[Any, Any, Any]) -> Template:
        return page(request, "inventory/catalog_import.html", preview=None)

    @post("/catalog/import", guards=[manage_stock], request_max_body_size=UPLOAD_LIMIT)
    async def import_preview(self, request: Request[Any, Any, Any], principal: Principal) -> Template:
        """Check the file and show its first rows and every error; nothing is saved yet."""
        upload = await _upload(request)
        if upload is None:
            return page(request, "inventory/catalog_import.html", status_code=422, preview=None,
                        errors={"file": "Choose a CSV or JSON file."})
        filename, content = upload
        fmt = "json" if filename.lower().endswith(".json") else "csv"
        try:
            parsed = catalog.parse_catalog(content, fmt)
        except ProblemError as problem:
            return page(request, "inventory/catalog_import.html", status_code=problem.status, preview=None,
                        errors={"file": f"{problem.title}: {problem.detail}"})
        ready = not parsed.errors and bool(parsed.products)
        if ready:
            await hand_over_once(principal, "catalog_import", {"format": fmt, "content": content.decode("utf-8-sig")})
        return page(request, "inventory/catalog_import.html", status_code=200 if ready else 422,
                    preview=parsed.products[:10], total=len(parsed.products), row_errors=parsed.errors[:200],
                    error_count=len(parsed.errors), filename=filename, ready=ready)

    @post("/catalog/import/apply", guards=[manage_stock])
    async def import_apply(self, request: Request[Any, Any, Any], db: AsyncSession,
                           principal: Principal) -> Template | Redirect:
        pending = await take_once(principal, "catalog_import")
        if not pending:
            return page(request, "inventory/catalog_import.html", status_code=409, preview=None,
                        errors={"file": "The previewed file has expired or was already imported; upload it again."})
        parsed = catalog.parse_catalog(pending["content"].encode(), pending["format"])
        await catalog.upsert_products(db, principal, parsed.products)
        return redirect("/app/catalog", done="catalog_imported")

    @get("/inventory")
    async def inventory_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                             sku: str = "", location: str = "", category: str = "", low: bool = False) -> Template:
        location_id = None
        if location:
            try:
                location_id = uuid.UUID(location)
            except ValueError:
                location_id = None
        rows = await availability.inventory_grid(db, principal, sku=sku, location_id=location_id, category=category,
                                          low_stock=low)
        return page(request, "inventory/grid.html", rows=rows, sku=sku, location=location, category=category,
                    exceptions=await availability.open_exceptions(db, principal),
                    can_manage=principal.role in MERCHANDISERS,
                    low=low, locations=await locations.list_locations(db, principal),
                    categories=await catalog.categories(db, principal.tenant_id))

    @post("/inventory/exceptions/{exception_id:uuid}/resolve", guards=[manage_stock])
    async def resolve_exception(self, db: AsyncSession, principal: Principal, exception_id: uuid.UUID) -> Redirect:
        await availability.resolve_exception(db, principal, exception_id)
        return redirect("/app/inventory", done="exception_resolved")

    @get("/inventory/movements")
    async def movements_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                             product: uuid.UUID | None = None, location: uuid.UUID | None = None) -> Template:
        rows = await availability.movements(db, principal, product_id=product, location_id=location)
        return page(request, "inventory/movements.html", rows=rows)

    @get("/inventory/feeds")
    async def feeds_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        return page(request, "inventory/feeds.html", feeds=await feeds.list_feeds(db, principal),
                    can_manage=principal.role in MERCHANDISERS)

    @post("/inventory/feeds", guards=[manage_stock], request_max_body_size=UPLOAD_LIMIT)
    async def upload_feed(self, request: Request[Any, Any, Any], db: AsyncSession,
                          principal: Principal) -> Template | Redirect:
        upload = await _upload(request)
        form = await request.form()
        kind = str(form.get("kind", "delta"))
        if upload is None:
            return page(request, "inventory/feeds.html", status_code=422, feeds=await feeds.list_feeds(db, principal),
                        can_manage=True, errors={"file": "Choose a CSV or JSON file."})
        filename, content = upload
        fmt = "json" if filename.lower().endswith(".json") else "csv"
        external_id = str(form.get("feed_id") or "").strip() or feeds.default_feed_id(filename, content)
        try:
            feed, created = await feeds.accept_feed(db, principal, external_id=external_id, kind=kind,
                                                    content_format=fmt, payload=content, source="upload",
                                                    filename=filename)
        except ProblemError as problem:
            await db.rollback()
            return page(request, "inventory/feeds.html", status_code=problem.status,
                        feeds=await feeds.list_feeds(db, principal), can_manage=True,
                        errors={"file": f"{problem.title}: {problem.detail}"})
        return redirect(f"/app/inventory/feeds/{feed.id}", done=None if created else "feed_known")

    @get("/inventory/feeds/{feed_uuid:uuid}")
    async def feed_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                        feed_uuid: uuid.UUID) -> Template:
        return page(request, "inventory/feed.html", feed=await feeds.get_feed(db, principal, feed_uuid))

    @get("/inventory/feeds/{feed_uuid:uuid}/status")
    async def feed_status(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                          feed_uuid: uuid.UUID) -> Template:
        """The status block alone, for htmx to swap."""
        return page(request, "inventory/_feed_status.html", feed=await feeds.get_feed(db, principal, feed_uuid))

    @get("/inventory/feeds/{feed_uuid:uuid}/events")
    async def feed_events(self, db: AsyncSession, principal: Principal, feed_uuid: uuid.UUID,
                          since: str = "") -> ServerSentEvent:
        """Server-sent events: a ``status`` event when the feed's status differs from ``since``
        (what the page shows), then at each change, until it is done."""
        await feeds.get_feed(db, principal, feed_uuid)  # 404 for anything but the caller's own feed

        async def changes() -> AsyncIterator[ServerSentEventMessage]:
            last = since
            for _ in range(600):
                async with get_database().transaction(tenant_id=principal.tenant_id) as session:
                    feed = await feeds.get_feed(session, principal, feed_uuid)
                state = feed.status
                if state != last:
                    last = state
                    yield ServerSentEventMessage(event="status", data=feed.status)
                if feed.status in ("applied", "rejected", "failed"):
                    return
                await asyncio.sleep(0.5)

        return ServerSentEvent(changes())


async def _tenant_country(db: AsyncSession, principal: Principal) -> str:
    from tenants.service import get_tenant

    return (await get_tenant(db, principal)).country


async def _upload(request: Request[Any, Any, Any]) -> tuple[str, bytes] | None:
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not getattr(upload, "filename", ""):
        return None
    content = await upload.read()
    return str(upload.filename)[-300:], content


route_handlers = [InventoryPagesController]
