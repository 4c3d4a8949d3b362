"""Locations, catalog, inventory, feeds and availability: the JSON API."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post, put
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import FOR_FEED_KEYS, FOR_ORDER_KEYS, Principal, signed_in
from core.boundary import check_json
from core.db import utcnow
from core.deps import DEPS
from core.forms import decode_json
from core.idempotency import idempotent_create
from core.params import PageSize
from core.problems import ProblemError, invalid
from inventory import availability, catalog, feeds, ledger, locations
from inventory.guards import UPLOAD_LIMIT, manage_stock
from inventory.models import InventoryFeed
from inventory.schemas import (
    AdjustmentIn,
    FeedIn,
    FeedOut,
    ImportResult,
    LevelOut,
    LocationIn,
    LocationOut,
    MovementOut,
    ProductIn,
    ProductOut,
    SafetyStockIn,
    SkuAvailability,
    StockOut,
)


def feed_out(feed: InventoryFeed) -> FeedOut:
    return FeedOut(id=feed.id, feed_id=feed.external_id, kind=feed.kind, status=feed.status,
                   rows_total=feed.rows_total, rows_changed=feed.rows_changed, stock_exceptions=feed.exceptions,
                   errors=feed.errors, created_at=feed.created_at, finished_at=feed.finished_at)


async def _line(db: AsyncSession, principal: Principal, sku: str, location_code: str, quantity: int) -> ledger.Line:
    product = await catalog.product_by_sku(db, principal, sku)
    location = await locations.location_by_code(db, principal, location_code)
    return ledger.Line(product.id, location.id, quantity)


class InventoryApiController(Controller):
    path = "/api/v1"
    tags = ["Locations, catalog and inventory"]
    guards = [signed_in]
    dependencies = DEPS

    @get("/locations", summary="Locations")
    async def list_locations(self, db: AsyncSession, principal: Principal) -> list[LocationOut]:
        return [locations.to_out(loc) for loc in await locations.list_locations(db, principal)]

    @post("/locations", summary="Create a location", guards=[manage_stock], status_code=201)
    async def create_location(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                              data: LocationIn) -> Response[LocationOut]:
        async def create() -> LocationOut:
            return locations.to_out(await locations.save_location(db, principal, data))

        return await idempotent_create(request, db, principal, create)

    @get("/locations/{location_id:uuid}", summary="A location")
    async def get_location(self, db: AsyncSession, principal: Principal, location_id: uuid.UUID) -> LocationOut:
        return locations.to_out(await locations.get_location(db, principal, location_id))

    @put("/locations/{location_id:uuid}", summary="Replace a location's settings", guards=[manage_stock])
    async def update_location(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                              location_id: uuid.UUID) -> LocationOut:
        # Find the location before reading the body: another tenant's id is a 404, never a 422.
        location = await locations.get_location(db, principal, location_id)
        data = _decode(await request.body(), LocationIn)
        return locations.to_out(await locations.save_location(db, principal, data, location))

    @get("/products", summary="Search the catalog", opt=FOR_ORDER_KEYS)
    async def list_products(self, db: AsyncSession, principal: Principal, q: str = "", category: str = "",
                            after: str | None = None, limit: PageSize = 50) -> list[ProductOut]:
        limit = max(1, min(limit, 500))
        found = await catalog.search_products(db, principal, q=q, category=category, limit=limit, after=after)
        return [catalog.product_out(p) for p in found]

    @post("/products", summary="Create or update a product by SKU", guards=[manage_stock], status_code=201)
    async def create_product(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                             data: ProductIn) -> Response[ProductOut]:
        async def create() -> ProductOut:
            await catalog.upsert_products(db, principal, [data])
            return catalog.product_out(await catalog.product_by_sku(db, principal, data.sku))

        return await idempotent_create(request, db, principal, create)

    @post("/products/import", summary='Create or update many products: {"products": [...]}',
          guards=[manage_stock], status_code=200, request_max_body_size=UPLOAD_LIMIT)
    async def import_products(self, request: Request[Any, Any, Any], db: AsyncSession,
                              principal: Principal) -> Response[ImportResult]:
        """Checks every row and reports every bad one by its position (1-based) before changing anything."""
        body = await request.body()

        async def create() -> ImportResult:
            parsed = await catalog.read_catalog(body, "json")
            if parsed.errors:
                raise _row_problem(parsed.errors)
            created, updated = await catalog.upsert_products(db, principal, parsed.products)
            return ImportResult(created=created, updated=updated)

        return await idempotent_create(request, db, principal, create, status_code=200)

    @get("/products/{product_id:uuid}", summary="A product", opt=FOR_ORDER_KEYS)
    async def get_product(self, db: AsyncSession, principal: Principal, product_id: uuid.UUID) -> ProductOut:
        return catalog.product_out(await catalog.get_product(db, principal, product_id))

    @get("/inventory", summary="Stock of SKUs at every location")
    async def levels(self, db: AsyncSession, principal: Principal, sku: list[str]) -> list[StockOut]:
        """Every level of the SKUs; the total counts active locations only, as routing does."""
        if len(sku) > 500:
            raise invalid({"sku": "Ask for at most 500 SKUs at a time."})
        out: dict[str, StockOut] = {s: StockOut(sku=s, levels=[], total_available=0) for s in sku}
        for row in await availability.levels_for_skus(db, principal, sku):
            entry = out[row.product.sku]
            entry.levels.append(LevelOut(location=row.location.code, on_hand=row.level.on_hand,
                                         reserved=row.level.reserved, safety_stock=row.level.safety_stock,
                                         available=row.available))
            if row.location.status == "active":
                entry.total_available += max(0, row.available)
        return list(out.values())

    @post("/inventory/adjustments", summary="Add or remove stock at a location", guards=[manage_stock],
          status_code=201)
    async def adjust(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                     data: AdjustmentIn) -> Response[LevelOut]:
        async def create() -> LevelOut:
            line = await _line(db, principal, data.sku, data.location, data.quantity)
            await ledger.adjust(db, principal.tenant_id, line, reason=data.reason, actor=principal.label,
                                   reference=data.reference)
            return await _level_out(db, principal, line, data.location)

        return await idempotent_create(request, db, principal, create)

    @put("/inventory/safety-stock", summary="Set safety stock", guards=[manage_stock])
    async def safety_stock(self, db: AsyncSession, principal: Principal, data: SafetyStockIn) -> LevelOut:
        line = await _line(db, principal, data.sku, data.location, data.safety_stock)
        await ledger.set_safety_stock(db, principal.tenant_id, line, actor=principal.label)
        return await _level_out(db, principal, line, data.location)

    @get("/inventory/movements", summary="The stock ledger, newest first")
    async def movements(self, db: AsyncSession, principal: Principal, sku: str | None = None,
                        location: str | None = None, limit: PageSize = 200) -> list[MovementOut]:
        product_id = (await catalog.product_by_sku(db, principal, sku)).id if sku else None
        location_id = (await locations.location_by_code(db, principal, location)).id if location else None
        rows = await availability.movements(db, principal, product_id=product_id, location_id=location_id,
                                     limit=max(1, min(limit, 1000)))
        return [MovementOut(id=m.id, sku=s, location=c, on_hand_delta=m.on_hand_delta,
                            reserved_delta=m.reserved_delta, safety_stock_delta=m.safety_stock_delta,
                            reason=m.reason, reference=m.reference, actor=m.actor,
                            created_at=m.created_at) for m, s, c in rows]

    @post("/inventory/feeds", summary="Send a stock feed (JSON, or CSV with ?feed_id=&kind=)",
          guards=[manage_stock], status_code=202, request_max_body_size=UPLOAD_LIMIT, opt=FOR_FEED_KEYS)
    async def send_feed(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                        feed_id: str | None = None, kind: str | None = None) -> Response[FeedOut]:
        body = await request.body()
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in ("text/csv", "application/csv"):
            payload, fmt = body, "csv"
            external_id, feed_kind = feed_id or "", kind or ""
        else:
            check_json(body)  # larger than the boundary reads: the same check here
            parsed = decode_json(body, FeedIn)
            external_id, feed_kind, fmt = parsed.feed_id, parsed.kind, "json"
            payload = msgspec.json.encode({"rows": parsed.rows})
        feed, created = await feeds.accept_feed(db, principal, external_id=external_id, kind=feed_kind,
                                                content_format=fmt, payload=payload, source="api")
        return Response(feed_out(feed), status_code=202 if created else 200)

    @get("/inventory/feeds", summary="Recent feeds", opt=FOR_FEED_KEYS)
    async def list_feeds(self, db: AsyncSession, principal: Principal) -> list[FeedOut]:
        return [feed_out(f) for f in await feeds.list_feeds(db, principal)]

    @get("/inventory/feeds/{feed_uuid:uuid}", summary="A feed: status and errors", opt=FOR_FEED_KEYS)
    async def get_feed(self, db: AsyncSession, principal: Principal, feed_uuid: uuid.UUID) -> FeedOut:
        return feed_out(await feeds.get_feed(db, principal, feed_uuid))

    @get("/availability", summary="Network and pickup availability of SKUs", opt=FOR_ORDER_KEYS)
    async def availability(self, db: AsyncSession, principal: Principal, sku: list[str],
                           lat: float | None = None, lon: float | None = None, country: str | None = None,
                           location: str | None = None) -> list[SkuAvailability]:
        if len(sku) > 100:
            raise invalid({"sku": "Ask for at most 100 SKUs at a time."})
        if (lat is None) != (lon is None):
            raise invalid({"lat": "Give both lat and lon, or neither."})
        return await availability.availability(db, principal, sku, at=utcnow(), latitude=lat, longitude=lon,
                                        country=country, pickup_location=location)


async def _level_out(db: AsyncSession, principal: Principal, line: ledger.Line, code: str) -> LevelOut:
    level = await availability.level_of(db, principal, line.product_id, line.location_id)
    assert level is not None  # the adjustment or safety-stock change just wrote it
    return LevelOut(location=code, on_hand=level.on_hand, reserved=level.reserved, safety_stock=level.safety_stock,
                    available=level.on_hand - level.reserved - level.safety_stock)


def _decode(body: bytes, kind: type[LocationIn]) -> LocationIn:
    return decode_json(body, kind)  # every problem at once, in plain words


def _row_problem(errors: list[catalog.RowError]) -> ProblemError:
    from core.problems import FieldError

    return ProblemError(422, "Invalid rows", f"{len(errors)} row(s) are not valid; nothing was changed.",
                        errors=[FieldError(f"row {e.row}" + (f" {e.column}" if e.column else ""), e.message)
                                for e in errors[:1000]])


route_handlers = [InventoryApiController]
