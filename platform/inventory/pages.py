"""Locations, catalog, inventory and feeds in the console: location forms, catalog import with
a preview, the stock grid, the movements ledger, stock exceptions, and feeds with live status."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.response import Redirect, ServerSentEvent, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core import live
from core.auth import MERCHANDISERS, Principal, signed_in
from core.db import get_database
from core.deps import DEPS
from core.forms import parse_int
from core.locale import money_input
from core.pages import NOTICES, form_data, form_errors, page, redirect
from core.problems import ProblemError
from core.sessions import hand_over_once, take_once
from inventory import availability, catalog, feeds, ledger, location_form, locations
from inventory.guards import UPLOAD_LIMIT, manage_stock
from inventory.models import Product
from inventory.schemas import (
    ATTRIBUTE_KEY_MAX,
    ATTRIBUTE_VALUE_MAX,
    MAX_ATTRIBUTES,
    MAX_QUANTITY,
    PRODUCT_STATUSES,
    LocationIn,
)

NOTICES.update({
    "location_saved": "Location saved.",
    "location_paused": "Location paused: it takes no new orders.",
    "location_active": "Location active again.",
    "catalog_imported": "Catalog imported.",
    "product_created": "Product created.",
    "product_saved": "Product saved.",
    "product_unchanged": "Nothing to save: the product was already so.",
    "product_inactive": "Product deactivated: new orders can't take it; orders already placed go on as they are.",
    "product_active": "Product active again: it can be ordered.",
    "stock_adjusted": "Stock adjusted.",
    "safety_stock_set": "Safety stock saved.",
    "feed_known": "This feed was already received: nothing changed.",
    "exception_resolved": "Stock exception marked as resolved.",
})


LOCATION_FLAGS = location_form.FLAGS
FEED_DONE = ("applied", "rejected", "failed")  # a feed's live status stops there


def _location_from_form(data: dict[str, str], principal: Principal, country: str) -> LocationIn:
    """Every problem at once, each on its field; the shipping cost as the company writes amounts."""
    return location_form.read(data, timezone=principal.timezone, country=country, currency=principal.currency,
                              locale=principal.locale)


def _location_form(request: Request[Any, Any, Any], location: Any, principal: Principal, *, status_code: int = 200,
                   **context: Any) -> Template:
    from core.validation import countries, timezones

    context.setdefault("placed", {})
    return page(request, "inventory/location_form.html", status_code=status_code, location=location,
                days=locations.DAYS, rules=location_form.RULES, country_pattern=location_form.COUNTRY_HTML_PATTERN,
                countries=countries(), timezones=timezones(), can_manage=principal.role in MERCHANDISERS,
                checks=location_form.browser_checks(principal.currency, principal.locale), **context)


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
    async def new_location(self, request: Request[Any, Any, Any], db: AsyncSession,
                           principal: Principal) -> Template:
        return _location_form(request, None, principal, values={
            "timezone": principal.timezone, "kind": "warehouse", "priority": "100",
            "country": await _tenant_country(db, principal)})

    @post("/locations/new", guards=[manage_stock])
    async def create_location(self, request: Request[Any, Any, Any], db: AsyncSession,
                              principal: Principal) -> Template | Redirect:
        data = await form_data(request)
        try:
            tenant_country = (await _tenant_country(db, principal))
            wanted, placement = await location_form.place(_location_from_form(data, principal, tenant_country))
            location = await locations.save_location(db, principal, wanted)
        except ProblemError as problem:
            if not problem.errors:
                raise
            await db.rollback()
            return _location_form(request, None, principal, status_code=422, values=data,
                                  errors=form_errors(problem))
        return await _saved(principal, location.id, wanted, placement)

    @get("/locations/geocode", guards=[manage_stock])
    async def geocode(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      city: str = "", postcode: str = "", country: str = "") -> Template:
        """The coordinates of a city, filled into the form's fields for checking (htmx); nothing is saved."""
        from inventory import geocoding

        city, postcode = city.strip()[:100], postcode.strip()[:20]
        country = (country.strip()[:2] or await _tenant_country(db, principal)).upper()
        values: dict[str, Any] = {"latitude": request.query_params.get("latitude", "")[:30],
                                  "longitude": request.query_params.get("longitude", "")[:30]}
        placed: dict[str, str] = {}
        if not city:
            placed["need_city"] = "Enter the city first, then find its coordinates."
        else:
            found = await geocoding.locate(city, country, postcode)
            if found is None:
                placed = location_form.Placement(tried=True).note(city, country)
            else:
                values = {"latitude": str(found.latitude), "longitude": str(found.longitude)}
                placed = {"found": f"Found {found.short}: check the coordinates, then save."}
        return page(request, "inventory/_coordinates.html", values=values, placed=placed, partial=True,
                    rules=location_form.RULES, checks=location_form.browser_checks(principal.currency,
                                                                                   principal.locale))

    @get("/locations/{location_id:uuid}")
    async def edit_location(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                            location_id: uuid.UUID) -> Template:
        location = await locations.get_location(db, principal, location_id)
        placed = await take_once(principal, f"location_placed:{location_id}") if principal.role in MERCHANDISERS \
            else None
        return _location_form(request, location, principal, placed=placed or {},
                              values=location_form.values_of(location, principal.currency, principal.locale))

    @post("/locations/{location_id:uuid}", guards=[manage_stock])
    async def update_location(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                              location_id: uuid.UUID) -> Template | Redirect:
        location = await locations.get_location(db, principal, location_id)
        data = await form_data(request)
        try:
            wanted, placement = await location_form.place(_location_from_form(data, principal, location.country))
            await locations.save_location(db, principal, wanted, location)
        except ProblemError as problem:
            if not problem.errors:
                raise
            await db.rollback()
            return _location_form(request, location, principal, status_code=422, values=data,
                                  errors=form_errors(problem))
        return await _saved(principal, location_id, wanted, placement)

    @post("/locations/{location_id:uuid}/status", guards=[manage_stock])
    async def location_status(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                              location_id: uuid.UUID) -> Redirect:
        data = await form_data(request)
        location = await locations.set_status(db, principal, location_id, data.get("status", ""))
        return redirect("/app/locations", done=f"location_{location.status}")

    @get("/catalog")
    async def catalog_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           q: str = "", category: str = "", status: str = "", after: str | None = None) -> Template:
        status = status if status in PRODUCT_STATUSES else ""
        products = await catalog.search_products(db, principal, q=q, category=category, status=status, after=after,
                                                 limit=51)
        extra: dict[str, Any] = {}
        if request.query_params.get("done") == "catalog_imported":  # "12 products created, 3 updated, ..."
            imported = await take_once(principal, "catalog_import_result")
            if imported and imported.get("message"):
                extra["notice"] = imported["message"]
        return page(request, "inventory/catalog.html", products=products[:50],
                    next_after=products[49].sku if len(products) > 50 else None, q=q, category=category,
                    status=status, categories=await catalog.categories(db, principal.tenant_id),
                    can_manage=principal.role in MERCHANDISERS, **extra)

    @get("/catalog/import", guards=[manage_stock])
    async def import_form(self, request: Request[Any, Any, Any]) -> Template:
        return page(request, "inventory/catalog_import.html", preview=None, **_import_choices({}))

    @post("/catalog/import", guards=[manage_stock], request_max_body_size=UPLOAD_LIMIT)
    async def import_preview(self, request: Request[Any, Any, Any], db: AsyncSession,
                             principal: Principal) -> Template:
        """Check the file and show its first rows and every error; nothing is saved yet."""
        upload = await _upload(request)
        form = await request.form()
        choices = _import_choices({k: form.get(k) for k in ("encoding", "separator")})
        if upload is None:
            return page(request, "inventory/catalog_import.html", status_code=422, preview=None,
                        errors={"file": "Choose a CSV or JSON file."}, **choices)
        filename, content = upload
        fmt = "json" if filename.lower().endswith(".json") else "csv"
        try:
            parsed = await catalog.read_catalog(content, fmt, currency=principal.currency, locale=principal.locale,
                                           encoding=choices["encoding"], separator=choices["separator"])
        except ProblemError as problem:
            return page(request, "inventory/catalog_import.html", status_code=problem.status, preview=None,
                        errors={"file": f"{problem.title}: {problem.detail}"}, **choices)
        ready = not parsed.errors and bool(parsed.products)
        plan = await catalog.import_plan(db, principal, parsed.products) if ready else None
        if plan is not None and plan.changes_nothing:
            # Nothing to create or update: no import is offered, and none previewed before is left to apply.
            ready = False
            await take_once(principal, "catalog_import")
        elif ready:
            await hand_over_once(principal, "catalog_import", {
                "format": fmt, "content": parsed.text,
                "separator": {c: name for name, c in catalog.SEPARATOR_CHARS.items()}.get(parsed.separator, "auto")})
        return page(request, "inventory/catalog_import.html", status_code=200 if plan is not None else 422,
                    preview=parsed.products[:10], total=len(parsed.products), row_errors=parsed.errors[:200],
                    error_count=len(parsed.errors), filename=filename, ready=ready, plan=plan, format=fmt,
                    read_as=catalog.ENCODING_NAMES.get(parsed.encoding, parsed.encoding),
                    separated_by=catalog.SEPARATOR_NAMES.get(parsed.separator, parsed.separator), **choices)

    @post("/catalog/import/apply", guards=[manage_stock])
    async def import_apply(self, request: Request[Any, Any, Any], db: AsyncSession,
                           principal: Principal) -> Template | Redirect:
        pending = await take_once(principal, "catalog_import")
        if not pending:
            return page(request, "inventory/catalog_import.html", status_code=409, preview=None,
                        errors={"file": "The previewed file has expired or was already imported; upload it again."},
                        **_import_choices({}))
        # The text as previewed, kept in UTF-8 whatever the file was written in.
        parsed = await catalog.read_catalog(pending["content"].encode(), pending["format"], currency=principal.currency,
                                       locale=principal.locale, separator=pending.get("separator", "auto"),
                                       limit=4 * catalog.MAX_IMPORT_BYTES)
        counts = await catalog.save_products(db, principal, parsed.products)
        await hand_over_once(principal, "catalog_import_result", {"message": counts.message})
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
        return page(request, "inventory/movements.html", rows=rows, reason_label=ledger.reason_label)

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
        last = since

        async def status() -> live.Update:
            """Read when the stream opens and when the feed's row is announced changed."""
            nonlocal last
            async with get_database().transaction(tenant_id=principal.tenant_id) as session:
                feed = await feeds.get_feed(session, principal, feed_uuid)
            changed, last = feed.status != last, feed.status
            return live.Update(feed.status if changed else None, done=feed.status in FEED_DONE)

        return live.stream(principal, live.Interest(tenant_id=principal.tenant_id, kinds=frozenset({"feeds"}),
                                                    ids=frozenset({str(feed_uuid)})), event="status", check=status)


async def _saved(principal: Principal, location_id: uuid.UUID, saved: LocationIn,
                 placement: location_form.Placement) -> Redirect:
    """Back to the list; or, when the coordinates were looked up from the city, to the location's
    form, which tells what was found (or not) so that it can be corrected."""
    if not placement.tried:
        return redirect("/app/locations", done="location_saved")
    await hand_over_once(principal, f"location_placed:{location_id}", placement.note(saved.city, saved.country))
    return redirect(f"/app/locations/{location_id}", done="location_saved")


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


# --- Products one by one: the product page, its form, its stock -------------------------------

# What happened to the stock, as the adjustment form offers it: the ledger's reason, its label, and
# what the quantity typed means (+1: units that came in, -1: units that went, 0: a signed
# correction, None: the units counted, which on hand becomes).
ADJUST_REASONS: dict[str, tuple[str, int | None]] = {
    "receipt": ("Received", 1),
    "return": ("Returned to stock", 1),
    "damage": ("Damaged or lost", -1),
    "adjustment": ("Correction (+ or -)", 0),
    "count": ("Counted", None),
}
NOTE_MAX = 200  # a movement's reference
PRODUCT_FIELDS = ("name", "category", "brand", "price", "currency", "weight_grams", "status")


def _attribute_text(value: Any) -> str:
    """An attribute's value as a form shows it: text as it is, anything else (numbers, lists sent
    through the API) as JSON."""
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _attribute_rows(data: dict[str, str]) -> list[tuple[str, str]]:
    """The key/value rows the form posted (``attr.<i>.key``, ``attr.<i>.value``), blank ones included."""
    count = parse_int(data.get("attr_rows"), lo=0, hi=MAX_ATTRIBUTES + 1) or 0
    return [(data.get(f"attr.{i}.key", ""), data.get(f"attr.{i}.value", "")) for i in range(count)]


def _rows_after(action: str, rows: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """The rows after "add a row" or "remove row i"; None when the action is saving."""
    if action == "add_attribute":
        return [*rows, ("", "")] if len(rows) < MAX_ATTRIBUTES else rows
    if action.startswith("remove_attribute:"):
        index = parse_int(action.partition(":")[2], lo=0, hi=MAX_ATTRIBUTES)
        return [row for i, row in enumerate(rows) if i != index]
    return None


def _attributes(rows: list[tuple[str, str]], before: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The attributes typed in the rows, and every problem by row (``attr.<i>``). A value that is
    not text (sent through the API) and was left as shown keeps its type."""
    attributes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for i, (raw_key, raw_value) in enumerate(rows):
        key, value = raw_key.strip(), raw_value.strip()
        if not key and not value:
            continue  # a blank row
        if not key:
            errors[f"attr.{i}"] = "Give this value a name, or clear the row."
        elif len(key) > ATTRIBUTE_KEY_MAX:
            errors[f"attr.{i}"] = f"A name is at most {ATTRIBUTE_KEY_MAX} characters (this one has {len(key)})."
        elif not value:
            errors[f"attr.{i}"] = f"Give {key!r} a value, or clear the row."
        elif len(value) > ATTRIBUTE_VALUE_MAX:
            errors[f"attr.{i}"] = f"A value is at most {ATTRIBUTE_VALUE_MAX} characters (this one has {len(value)})."
        elif key in attributes:
            errors[f"attr.{i}"] = f"{key!r} is given twice: keep one row for it."
        else:
            original = before.get(key)
            keep = original is not None and not isinstance(original, str) and value == _attribute_text(original)
            attributes[key] = original if keep else value
    if len(attributes) > MAX_ATTRIBUTES:
        errors["attributes"] = f"A product has at most {MAX_ATTRIBUTES} attributes."
    return attributes, errors


def _read_product(data: dict[str, str], rows: list[tuple[str, str]], principal: Principal, *, sku: str,
                  before: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """The product the form describes, or every problem at once, each by its field."""
    attributes, attribute_errors = _attributes(rows, before)
    values = {name: data.get(name, "") for name in PRODUCT_FIELDS}
    values["sku"] = sku
    product, errors = catalog.product_from_text(values, attributes, currency=principal.currency,
                                                locale=principal.locale)
    errors.update(attribute_errors)
    return (None if errors else product), errors


async def _find_product(db: AsyncSession, principal: Principal, ref: str) -> Product:
    """A product by its id or its SKU."""
    try:
        product_id = uuid.UUID(ref)
    except ValueError:
        product_id = None
    if product_id is not None:
        try:
            return await catalog.get_product(db, principal, product_id)
        except ProblemError:
            pass  # a SKU may look like an id
    return await catalog.product_by_sku(db, principal, ref[:64])


def _form_page(request: Request[Any, Any, Any], principal: Principal, categories: list[str], *,
               product: Product | None, values: dict[str, str], rows: list[tuple[str, str]],
               errors: dict[str, str] | None = None, status_code: int = 200, focus: str = "") -> Template:
    return page(request, "inventory/product_form.html", status_code=status_code, product=product,
                values=values, rows=rows, errors=errors or {}, categories=categories, focus=focus,
                statuses=PRODUCT_STATUSES, max_attributes=MAX_ATTRIBUTES, key_max=ATTRIBUTE_KEY_MAX,
                value_max=ATTRIBUTE_VALUE_MAX, max_quantity=MAX_QUANTITY,
                price_example=money_input(5990, values.get("currency") or principal.currency, principal.locale))


def _focus_after(action: str, rows: list[tuple[str, str]]) -> str:
    return f"attr.{len(rows) - 1}.key" if action == "add_attribute" and rows else "add-attribute"


async def _posted_form(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, *,
                       product: Product | None
                       ) -> tuple[dict[str, str], list[tuple[str, str]], list[str], Template | None]:
    """The posted product form: its fields, attribute rows and the categories, and the form again
    when the button pressed only added or removed an attribute row (None when it saves)."""
    data = await form_data(request)
    rows = _attribute_rows(data)
    categories = await catalog.categories(db, principal.tenant_id)
    action = data.get("action", "save")
    again = None
    if (changed := _rows_after(action, rows)) is not None:
        again = _form_page(request, principal, categories, product=product, values=data, rows=changed,
                           focus=_focus_after(action, changed))
    return data, rows, categories, again


async def _product_page(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, product: Product,
                        *, status_code: int = 200, errors: dict[str, str] | None = None,
                        values: dict[str, str] | None = None, selected: str = "") -> Template:
    every_location = await locations.list_locations(db, principal)
    levels = {row.location.id: row.level for row in await availability.levels_for_skus(db, principal, [product.sku])}
    stock = [(location, levels.get(location.id)) for location in every_location]
    total = sum(max(0, level.on_hand - level.reserved - level.safety_stock)
                for location, level in stock if level is not None and location.status == "active")
    return page(request, "inventory/product.html", status_code=status_code, product=product, stock=stock,
                total_available=total, recent=await availability.movements(db, principal, product_id=product.id,
                                                                           limit=10),
                attributes=[(key, _attribute_text(value)) for key, value in sorted(product.attributes.items())],
                can_manage=principal.role in MERCHANDISERS, reasons=ADJUST_REASONS, reason_label=ledger.reason_label,
                errors=errors or {},
                values=values or {}, selected=selected, note_max=NOTE_MAX, max_quantity=MAX_QUANTITY)


def _location_in(raw: str | None, every_location: list[Any]) -> Any:
    return next((location for location in every_location if str(location.id) == (raw or "").strip()), None)


class CatalogPagesController(Controller):
    """A product: its page (details, attributes, stock at each location, recent movements), its
    form, and the stock changes made from it through the ledger, as the API makes them."""

    path = "/app/catalog"
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @get("/new", guards=[manage_stock])
    async def new_product(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        return _form_page(request, principal, await catalog.categories(db, principal.tenant_id), product=None,
                          values={"currency": principal.currency, "status": "active"}, rows=[("", "")])

    @post("/new", guards=[manage_stock])
    async def create_product(self, request: Request[Any, Any, Any], db: AsyncSession,
                             principal: Principal) -> Template | Redirect:
        data, rows, categories, again = await _posted_form(request, db, principal, product=None)
        if again is not None:
            return again
        product, errors = _read_product(data, rows, principal, sku=data.get("sku", ""), before={})
        if product is not None:
            try:
                created = await catalog.create_product(db, principal, product)
            except ProblemError as problem:
                errors = form_errors(problem)
            else:
                return redirect(f"/app/catalog/{created.id}", done="product_created")
        return _form_page(request, principal, categories, product=None, values=data, rows=rows or [("", "")],
                          errors=errors, status_code=422)

    @get("/{ref:str}")
    async def product_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           ref: str, location: str = "") -> Template:
        product = await _find_product(db, principal, ref)
        return await _product_page(request, db, principal, product, selected=location[:36])

    @get("/{ref:str}/edit", guards=[manage_stock])
    async def edit_product(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           ref: str) -> Template:
        product = await _find_product(db, principal, ref)
        values = {"name": product.name, "category": product.category or "", "brand": product.brand or "",
                  "price": money_input(product.price_minor, product.currency, principal.locale),
                  "currency": product.currency, "status": product.status,
                  "weight_grams": "" if product.weight_grams is None else str(product.weight_grams)}
        rows = [(key, _attribute_text(value)) for key, value in sorted(product.attributes.items())]
        if len(rows) < MAX_ATTRIBUTES:
            rows.append(("", ""))
        return _form_page(request, principal, await catalog.categories(db, principal.tenant_id), product=product,
                          values=values, rows=rows)

    @post("/{ref:str}/edit", guards=[manage_stock])
    async def update_product(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                             ref: str) -> Template | Redirect:
        product = await _find_product(db, principal, ref)
        data, rows, categories, again = await _posted_form(request, db, principal, product=product)
        if again is not None:
            return again
        read, errors = _read_product(data, rows, principal, sku=product.sku, before=dict(product.attributes))
        if read is None:
            return _form_page(request, principal, categories, product=product, values=data,
                              rows=rows or [("", "")], errors=errors, status_code=422)
        changed_any = await catalog.update_product(db, principal, product, read)
        return redirect(f"/app/catalog/{product.id}", done="product_saved" if changed_any else "product_unchanged")

    @post("/{ref:str}/status", guards=[manage_stock])
    async def product_status(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                             ref: str) -> Redirect:
        product = await _find_product(db, principal, ref)
        status = (await form_data(request)).get("status", "")
        await catalog.set_status(db, principal, product, status)
        return redirect(f"/app/catalog/{product.id}", done=f"product_{product.status}")

    @post("/{ref:str}/adjust", guards=[manage_stock])
    async def adjust_stock(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           ref: str) -> Template | Redirect:
        """Units received, returned, damaged, corrected or counted at one location: written to the
        ledger with the reason, the note and who did it, as the API's adjustments are."""
        product = await _find_product(db, principal, ref)
        data = await form_data(request)
        every_location = await locations.list_locations(db, principal)
        location = _location_in(data.get("location"), every_location)
        reason = data.get("reason", "")
        note = data.get("note", "").strip()
        errors: dict[str, str] = {}
        if location is None:
            errors["location"] = "Choose the location whose stock changed."
        quantity: int | None = None
        typed = data.get("quantity", "").strip()
        if reason not in ADJUST_REASONS:
            errors["reason"] = "Choose what happened: received, returned, damaged, a correction or a count."
        elif ADJUST_REASONS[reason][1] is None:
            quantity = parse_int(typed, lo=0, hi=MAX_QUANTITY)
            if quantity is None:
                errors["quantity"] = f"Type the units you counted: a whole number from 0 to {MAX_QUANTITY:,}."
        elif ADJUST_REASONS[reason][1] == 0:
            quantity = parse_int(typed, lo=-MAX_QUANTITY, hi=MAX_QUANTITY)
            if not quantity:
                errors["quantity"] = "Type the units to add (12) or to remove (-3)."
        else:
            quantity = parse_int(typed, lo=1, hi=MAX_QUANTITY)
            if quantity is None:
                errors["quantity"] = f"Type how many units: a whole number from 1 to {MAX_QUANTITY:,}."
        if len(note) > NOTE_MAX:
            errors["note"] = f"A note is at most {NOTE_MAX} characters (this one has {len(note)})."
        if errors or location is None or quantity is None:
            return await _product_page(request, db, principal, product, status_code=422, errors=errors,
                                       values=data, selected=data.get("location", "")[:36])
        sign = ADJUST_REASONS[reason][1]
        line = ledger.Line(product.id, location.id, quantity * sign if sign else quantity)
        try:
            if sign is None:
                await ledger.count(db, principal.tenant_id, line, actor=principal.label, reference=note or None)
            else:
                await ledger.adjust(db, principal.tenant_id, line, reason=reason, actor=principal.label,
                                    reference=note or None, keep_reserved=True)
        except ProblemError as problem:
            await db.rollback()  # nothing of the refused change stays, not even an empty level
            product = await _find_product(db, principal, str(line.product_id))  # read again after the rollback
            return await _product_page(request, db, principal, product, status_code=problem.status,
                                       errors={"quantity": problem.detail}, values=data,
                                       selected=str(line.location_id))
        return redirect(f"/app/catalog/{product.id}?location={location.id}", done="stock_adjusted")

    @post("/{ref:str}/safety-stock", guards=[manage_stock])
    async def safety_stock(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           ref: str) -> Template | Redirect:
        """The units kept back at one location: routing and availability leave them alone."""
        product = await _find_product(db, principal, ref)
        data = await form_data(request)
        location = _location_in(data.get("safety_location"), await locations.list_locations(db, principal))
        units = parse_int(data.get("safety_stock", ""), lo=0, hi=MAX_QUANTITY)
        errors: dict[str, str] = {}
        if location is None:
            errors["safety_location"] = "Choose the location."
        if units is None:
            errors["safety_stock"] = f"Type the units to keep back: a whole number from 0 to {MAX_QUANTITY:,}."
        if errors or location is None or units is None:
            return await _product_page(request, db, principal, product, status_code=422, errors=errors,
                                       values=data, selected=data.get("safety_location", "")[:36])
        await ledger.set_safety_stock(db, principal.tenant_id, ledger.Line(product.id, location.id, units),
                                      actor=principal.label)
        return redirect(f"/app/catalog/{product.id}?location={location.id}", done="safety_stock_set")


def _import_choices(form: dict[str, Any]) -> dict[str, Any]:
    """The encoding and separator chosen in the import form ("auto" unless one offered), and the offers."""
    encoding, separator = str(form.get("encoding") or "auto"), str(form.get("separator") or "auto")
    return {"encoding": encoding if encoding in catalog.ENCODINGS else "auto",
            "separator": separator if separator in catalog.SEPARATORS else "auto",
            "encodings": catalog.ENCODINGS, "separators": catalog.SEPARATORS}


route_handlers = [InventoryPagesController, CatalogPagesController]
