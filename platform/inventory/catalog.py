"""The catalog: products (SKUs) with price in minor units, imported by file or API, or kept one by
one in the console.

Catalog files come as spreadsheets export them: CSV separated by commas, semicolons or tabs, in
UTF-8 (with or without a byte order mark), Windows-1252 or Latin-1, with prices in major units
written the company's way ("59,90", "1 234,56 €") or in minor units (``price_minor``)."""

from __future__ import annotations

import codecs
import csv
import functools
import io
import re
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import anyio
import msgspec
import pycountry
from sqlalchemy import ARRAY, String, any_, bindparam, case, exists, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core import forms
from core.auth import Principal
from core.boundary import check_json
from core.db import Prepared, utcnow
from core.forms import parse_int
from core.ids import uuid7
from core.limits import MONEY_MAX
from core.locale import format_money, money_input, parse_money
from core.problems import ProblemError, invalid, not_found
from inventory.availability import AVAILABLE
from inventory.models import InventoryLevel, Location, Product
from inventory.schemas import (
    ATTRIBUTE_KEY_MAX,
    MAX_ATTRIBUTES,
    MAX_QUANTITY,
    PRODUCT_STATUSES,
    ProductIn,
    ProductOut,
    attribute_problem,
)

MAX_IMPORT_BYTES = 20 * 1024 * 1024
CATALOG_COLUMNS = ("sku", "name", "price")  # "price" in major units (59.90), or "price_minor" (5990)
PRICE_COLUMNS = ("price", "price_minor")
OPTIONAL_COLUMNS = ("category", "brand", "currency", "weight_grams", "status")

# What a file may be written in, as the import form offers it ("auto": found from the content).
ENCODINGS = {"auto": "Automatic", "utf-8": "UTF-8", "cp1252": "Windows-1252", "latin-1": "Latin-1 (ISO-8859-1)"}
ENCODING_NAMES = {"utf-8": "UTF-8", "utf-16": "UTF-16", "cp1252": "Windows-1252", "latin-1": "Latin-1"}
SEPARATORS = {"auto": "Automatic", "comma": "Comma ( , )", "semicolon": "Semicolon ( ; )", "tab": "Tab"}
SEPARATOR_CHARS = {"comma": ",", "semicolon": ";", "tab": "\t"}
SEPARATOR_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs"}
SNIFF_SAMPLE = 8 * 1024  # characters the separator is guessed from

_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$")


@dataclass
class RowError:
    row: int
    column: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass
class ParsedCatalog:
    products: list[ProductIn] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # the file row of each product, for messages
    text: str = ""  # the file as read (line endings made \n), to apply what was previewed
    encoding: str = "utf-8"  # how it was read
    separator: str = ","  # of a CSV file's columns

    def add(self, row: int, product: ProductIn) -> None:
        self.products.append(product)
        self.rows.append(row)


@dataclass(frozen=True)
class ImportCounts:
    created: int
    updated: int
    unchanged: int

    @property
    def changes_nothing(self) -> bool:
        """Every product is already in the catalog as the file has it: importing would do nothing."""
        return self.created == 0 and self.updated == 0

    @property
    def message(self) -> str:
        """ "12 products created, 3 updated, 0 unchanged." """
        noun = "product" if self.created == 1 else "products"
        return f"{self.created} {noun} created, {self.updated} updated, {self.unchanged} unchanged."


def product_out(product: Product) -> ProductOut:
    return ProductOut(id=product.id, sku=product.sku, name=product.name, price_minor=product.price_minor,
                      currency=product.currency, category=product.category, brand=product.brand,
                      weight_grams=product.weight_grams, attributes=product.attributes, status=product.status)


def read_text(content: bytes, *, limit: int = MAX_IMPORT_BYTES, encoding: str = "utf-8") -> tuple[str, str]:
    """An uploaded file's text (line endings of any system made ``\\n``) and the encoding it was
    read with. ``encoding`` is "utf-8" (with or without a byte order mark), "cp1252", "latin-1",
    or "auto": a UTF-16 byte order mark, else strict UTF-8, else Windows-1252, else Latin-1 (which
    reads any bytes). Refuses files over ``limit`` and text with a NUL character."""
    if len(content) > limit:
        raise ProblemError(413, "File too large",
                           f"The file is {len(content) / 1_048_576:.1f} MB; the limit is {limit // 1_048_576} MB.")
    if encoding not in ENCODINGS:
        raise ProblemError(422, "Unknown encoding", f"Choose one of: {', '.join(ENCODINGS.values())}.")
    text: str | None = None
    used = encoding
    if encoding == "auto":
        if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # "Unicode text" from a spreadsheet
            used = "utf-16"
            try:
                text = content.decode("utf-16")
            except UnicodeDecodeError:
                raise ProblemError(422, "Bad encoding", "The file starts like UTF-16 text but is not: export it "
                                                        "again as CSV (UTF-8 or Windows-1252).") from None
        else:
            for used in ("utf-8", "cp1252", "latin-1"):
                try:
                    text = content.decode("utf-8-sig" if used == "utf-8" else used)
                    break
                except UnicodeDecodeError:
                    continue
    elif encoding == "utf-8":
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ProblemError(422, "Bad encoding",
                               f"The file is not UTF-8 text (byte {exc.start} is not valid UTF-8). "
                               "Export it as UTF-8 CSV or JSON.") from None
    elif encoding == "cp1252":
        try:
            text = content.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise ProblemError(422, "Bad encoding",
                               f"The file is not Windows-1252 text (byte {exc.start}, 0x{content[exc.start]:02X}, "
                               "is not a Windows-1252 character). Choose Latin-1 or UTF-8.") from None
    else:
        text = content.decode("latin-1")
    assert text is not None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ProblemError(422, "Not text", f"Line {line} contains a NUL character: the file is not a CSV or JSON "
                                            "text file (is it a spreadsheet? export it as CSV).")
    # Line endings of any system: a CR alone (old Mac exports) is a line break too.
    return text.replace("\r\n", "\n").replace("\r", "\n"), used


def decode_upload(content: bytes, *, limit: int = MAX_IMPORT_BYTES) -> str:
    """An uploaded file's text, which must be UTF-8 (stock feeds, JSON)."""
    return read_text(content, limit=limit)[0]


def sniff_separator(text: str, choice: str = "auto", expected: Collection[str] = ()) -> str:
    """The column separator of CSV text: the one chosen ("comma", "semicolon", "tab"), else what
    ``csv.Sniffer`` finds in the first lines when the header, split by it, names an ``expected``
    column, else the separator the header line holds most of (a comma when it holds none)."""
    if choice in SEPARATOR_CHARS:
        return SEPARATOR_CHARS[choice]
    header = text[:SNIFF_SAMPLE].partition("\n")[0]
    sample = text[:SNIFF_SAMPLE]
    if len(text) > SNIFF_SAMPLE and "\n" in sample:
        sample = sample[:sample.rindex("\n")]  # whole lines only
    wanted = {name.lower() for name in expected}
    try:
        found = csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        found = ""
    if found and (not wanted or wanted & {cell.strip().strip('"').lower() for cell in header.split(found)}):
        return found
    counts = {separator: header.count(separator) for separator in (",", ";", "\t")}
    best = max(counts, key=lambda separator: counts[separator])
    return best if counts[best] else ","


def csv_rows(rows: Any) -> Any:
    """The rows of a csv reader (or what a callable reads from it), with the module's errors (a
    field longer than it allows, a stray quote) as a refusal naming the line."""
    if callable(rows):
        try:
            return rows()
        except csv.Error as exc:
            raise ProblemError(422, "Invalid CSV", f"Line 1: {exc}.") from None
    return _checked_rows(rows)


def _checked_rows(reader: Any) -> Any:
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ProblemError(422, "Invalid CSV", f"Line {reader.line_num}: {exc}.") from None
        yield row


def _offset(error: msgspec.DecodeError) -> int:
    found = re.search(r"\(byte (\d+)\)", str(error))
    return int(found.group(1)) if found else 0


def json_items(text: str, key: str, *, what: str, example: str) -> list[Any]:
    """The list in a JSON upload: the document itself, or the list under ``key``."""
    content = text.encode()
    check_json(content, what="file")  # nesting and text, as for a request's body
    try:
        data = msgspec.json.decode(content)
    except msgspec.DecodeError as exc:  # strict JSON: no NaN, no unpaired surrogate
        line = text.count("\n", 0, _offset(exc)) + 1
        raise ProblemError(422, "Invalid JSON", f"Line {line}: {exc}.") from None
    items = data.get(key) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ProblemError(422, f"Invalid {what}", f"Send {example}.")
    return items


def known_currency(code: str) -> bool:
    return len(code) == 3 and code.isascii() and pycountry.currencies.get(alpha_3=code.upper()) is not None


def product_from_text(values: Mapping[str, str], attributes: Mapping[str, Any], *, currency: str,
                      locale: str | None) -> tuple[ProductIn | None, dict[str, str]]:
    """A product from what a person typed or a spreadsheet holds, or every problem at once, by
    field, in plain words. ``values`` holds text: sku, name, either price (major units, read the
    way the company writes amounts: "59,90", "1 234,56 €") or price_minor (whole minor units), and
    optionally category, brand, currency (the company's when empty), weight_grams and status."""
    errors: dict[str, str] = {}
    item: dict[str, Any] = {}
    sku = values.get("sku", "").strip()
    if not sku:
        errors["sku"] = "Give the product a SKU."
    elif len(sku) > 64:
        errors["sku"] = "A SKU is at most 64 characters."
    elif not _SKU.match(sku):
        errors["sku"] = (f"{sku[:64]!r} is not a SKU: use letters, digits and . _ - / only, with no spaces, "
                         "starting with a letter or a digit.")
    item["sku"] = sku
    name = values.get("name", "").strip()
    if not name:
        errors["name"] = "Give the product a name."
    elif len(name) > 300:
        errors["name"] = f"A name is at most 300 characters (this one has {len(name)})."
    item["name"] = name
    for column in ("category", "brand"):
        text = values.get(column, "").strip()
        if len(text) > 100:
            errors[column] = f"A {column} is at most 100 characters."
        item[column] = text or None
    code = values.get("currency", "").strip().upper()
    if code and not known_currency(code):
        errors["currency"] = f"{code[:10]!r} is not a currency code (three letters, such as EUR or USD)."
    item["currency"] = code or None
    money_currency = code if code and "currency" not in errors else currency.upper()
    if "price_minor" in values:
        raw = values["price_minor"].strip()
        minor = parse_int(raw, lo=-MONEY_MAX * 1000, hi=MONEY_MAX * 1000)
        if minor is None:
            errors["price_minor"] = (f"{raw[:30]!r} is not a whole number of minor units." if raw
                                     else "Give the product a price (in minor units: 1999 for 19.99).")
        else:
            item["price_minor"] = minor
    else:
        raw = values.get("price", "").strip()
        minor = parse_money(raw, money_currency, locale) if raw else None
        if minor is None:
            example = money_input(5990, money_currency, locale)
            errors["price"] = (f"{raw[:30]!r} is not a price: write it like {example}." if raw
                               else "Give the product a price.")
        else:
            item["price_minor"] = minor
    price_field = "price_minor" if "price_minor" in values else "price"
    if "price_minor" in item:
        if item["price_minor"] < 0:
            errors[price_field] = "A price can't be negative."
        elif item["price_minor"] > MONEY_MAX:
            errors[price_field] = f"A price is at most {format_money(MONEY_MAX, money_currency, locale)}."
    weight = values.get("weight_grams", "").strip()
    if weight:
        grams = parse_int(weight, lo=0, hi=MAX_QUANTITY)
        if grams is None:
            errors["weight_grams"] = f"{weight[:30]!r} is not a weight: a whole number of grams, 0 or more."
        item["weight_grams"] = grams
    status = values.get("status", "").strip().lower() or "active"
    if status not in PRODUCT_STATUSES:
        errors["status"] = f"{status[:20]!r} is not a status: active or inactive."
    item["status"] = status
    if problem := attributes_problem(attributes):
        errors["attributes"] = problem
    item["attributes"] = dict(attributes)
    if errors:
        return None, errors
    if problems := forms.problems(item, ProductIn):  # checked above; this is the last word
        return None, problems
    return msgspec.convert(item, ProductIn), {}


def attributes_problem(attributes: Mapping[str, Any]) -> str | None:
    """What is wrong with a product's attributes as a whole, in plain words, or None."""
    if len(attributes) > MAX_ATTRIBUTES:
        return f"A product has at most {MAX_ATTRIBUTES} attributes (this one has {len(attributes)})."
    for key, value in attributes.items():
        if not key.strip():
            return "Every attribute needs a name."
        if len(key) > ATTRIBUTE_KEY_MAX:
            return f"An attribute's name is at most {ATTRIBUTE_KEY_MAX} characters ({key[:20]!r}… is longer)."
        if problem := attribute_problem(key, value):
            return problem
    return None


async def read_catalog(content: bytes, content_format: str, **options: Any) -> ParsedCatalog:
    """``parse_catalog`` in a worker thread: a 20 MB file takes seconds of CPU to read and check,
    which the event loop (every company's requests) must not wait on."""
    return await anyio.to_thread.run_sync(functools.partial(parse_catalog, content, content_format, **options))


def parse_catalog(content: bytes, content_format: str, *, currency: str = "EUR", locale: str | None = None,
                  encoding: str = "utf-8", separator: str = "auto", limit: int = MAX_IMPORT_BYTES) -> ParsedCatalog:
    """Every product of a CSV or JSON catalog file, or every error with its row and column.
    ``currency`` and ``locale`` (the company's) read prices in major units; ``encoding`` and
    ``separator`` are the file's, or "auto" to find them."""
    text, used = read_text(content, encoding=encoding, limit=limit)
    parsed = ParsedCatalog(text=text, encoding=used)
    if content_format == "json":
        items = json_items(text, "products", what="catalog", example='a list of products, or {"products": [...]}')
        for number, entry in enumerate(items, start=1):
            if problems := forms.problems(entry, ProductIn):
                parsed.errors.extend(RowError(number, field, message) for field, message in problems.items())
            else:
                parsed.add(number, msgspec.convert(entry, ProductIn))
    else:
        _parse_csv(parsed, text, separator, currency=currency, locale=locale)
    seen: dict[str, int] = {}
    unique: list[tuple[int, ProductIn]] = []
    for number, product in zip(parsed.rows, parsed.products, strict=True):
        if product.currency and not known_currency(product.currency):
            parsed.errors.append(RowError(number, "currency", f"Unknown currency {product.currency!r}."))
            continue
        if product.sku in seen:
            parsed.errors.append(RowError(number, "sku",
                                          f"SKU {product.sku!r} appears twice in the file "
                                          f"(also on row {seen[product.sku]})."))
            continue
        seen[product.sku] = number
        unique.append((number, product))
    parsed.rows = [number for number, _ in unique]
    parsed.products = [product for _, product in unique]
    parsed.errors.sort(key=lambda e: e.row)
    return parsed


def _parse_csv(parsed: ParsedCatalog, text: str, separator: str, *, currency: str, locale: str | None) -> None:
    parsed.separator = sniff_separator(text, separator, expected=("sku", "name", *PRICE_COLUMNS))
    reader = csv.reader(io.StringIO(text), delimiter=parsed.separator)
    lines = csv_rows(reader)
    raw_header: list[str] = next(lines, [])
    # Known columns whatever their case ("SKU", "Price"); attributes keep the name given after "attr:".
    header = [f"attr:{h.strip()[5:].strip()}" if h.strip().lower().startswith("attr:") else h.strip().lower()
              for h in raw_header]
    missing = [c for c in ("sku", "name") if c not in header]
    if not any(c in header for c in PRICE_COLUMNS):
        missing.append("price (or price_minor)")
    unknown = [h for h in header if h not in CATALOG_COLUMNS + PRICE_COLUMNS + OPTIONAL_COLUMNS
               and not h.startswith("attr:")]
    detail = []
    if missing:
        detail.append(f"missing column(s): {', '.join(missing)}")
    if unknown:
        detail.append(f"unknown column(s): {', '.join(repr(u[:40]) if u else 'an empty one' for u in unknown[:10])}")
    if all(c in header for c in PRICE_COLUMNS):
        detail.append("prices are in one column, price (59.90) or price_minor (5990), not both")
    attributes = [h for h in header if h.startswith("attr:")]
    for name in attributes:
        if not name[5:] or len(name[5:]) > ATTRIBUTE_KEY_MAX:
            detail.append(f"{name[:40]!r} is not an attribute column: attr: and a name of 1 to "
                          f"{ATTRIBUTE_KEY_MAX} characters")
    if len(attributes) > MAX_ATTRIBUTES:
        detail.append(f"{len(attributes)} attribute columns; a product has at most {MAX_ATTRIBUTES}")
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        detail.append(f"column(s) given twice: {', '.join(duplicates)}")
    if detail:
        found = SEPARATOR_NAMES.get(parsed.separator, repr(parsed.separator))
        raise ProblemError(422, "Wrong header", "The CSV header is wrong: " + "; ".join(detail) +
                           f". Expected sku, name, price (or price_minor) and optionally "
                           f"{', '.join(OPTIONAL_COLUMNS)} and attr:<name> columns (columns read as separated "
                           f"by {found}).")
    for number, cells in enumerate(lines, start=2):
        if not any(cell.strip() for cell in cells):
            continue  # the empty lines spreadsheets leave at the end
        if any(cell.strip() for cell in cells[len(header):]):
            # "59,90" unquoted in a comma-separated file would otherwise import as 59.
            parsed.errors.append(RowError(number, None, (
                f"This row has {len(cells)} columns but the header has {len(header)}: is a value holding "
                f"the separator ({SEPARATOR_NAMES.get(parsed.separator, parsed.separator)[:-1]}) not quoted, "
                "such as a price like 59,90?")))
            continue
        row = {column: (cells[i].strip() if i < len(cells) else "") for i, column in enumerate(header)}
        values = {k: v for k, v in row.items() if not k.startswith("attr:")}
        product, errors = product_from_text(
            values, {k[5:]: v for k, v in row.items() if k.startswith("attr:") and v},
            currency=currency, locale=locale)
        if product is None:
            parsed.errors.extend(RowError(number, column, message) for column, message in errors.items())
        else:
            parsed.add(number, product)


_COMPARED = ("name", "category", "brand", "price_minor", "currency", "weight_grams", "attributes", "status")


def _row(principal: Principal, product: ProductIn) -> dict[str, Any]:
    return {"name": product.name, "category": product.category, "brand": product.brand,
            "price_minor": product.price_minor, "currency": (product.currency or principal.currency).upper(),
            "weight_grams": product.weight_grams, "attributes": product.attributes, "status": product.status}


def _same(before: Any, values: dict[str, Any]) -> bool:
    """Whether a saved product (a row or an entity) already has every compared value."""
    return all(getattr(before, c) == v for c, v in values.items())


async def _existing(session: AsyncSession, principal: Principal, products: list[ProductIn]) -> dict[str, Any]:
    """The compared columns of the products already saved under these SKUs, by SKU (one query)."""
    return {row.sku: row for row in await session.execute(
        select(Product.sku, *(getattr(Product, c) for c in _COMPARED))
        .where(Product.tenant_id == principal.tenant_id,
               Product.sku == any_(bindparam("skus", [p.sku for p in products], ARRAY(String)))))}


async def save_products(session: AsyncSession, principal: Principal, products: list[ProductIn]) -> ImportCounts:
    """Create or update by SKU; a product whose every field is already as given is left alone."""
    if not products:
        return ImportCounts(0, 0, 0)
    existing = await _existing(session, principal, products)
    now = utcnow()
    rows = []
    unchanged = 0
    for p in products:
        values = _row(principal, p)
        before = existing.get(p.sku)
        if before is not None and _same(before, values):
            unchanged += 1
            continue
        rows.append({"tenant_id": principal.tenant_id, "id": uuid7(), "sku": p.sku, **values, "created_at": now,
                     "updated_at": now})
    for start in range(0, len(rows), 2000):
        stmt = insert(Product).values(rows[start:start + 2000])
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["tenant_id", "sku"],
            set_={c: stmt.excluded[c] for c in (*_COMPARED, "updated_at")},
        ))
    created = sum(1 for p in products if p.sku not in existing)
    return ImportCounts(created=created, updated=len(products) - created - unchanged, unchanged=unchanged)


async def import_plan(session: AsyncSession, principal: Principal, products: list[ProductIn]) -> ImportCounts:
    """What saving these products would do, without saving them (for a preview)."""
    if not products:
        return ImportCounts(0, 0, 0)
    existing = await _existing(session, principal, products)
    created = unchanged = 0
    for p in products:
        before = existing.get(p.sku)
        if before is None:
            created += 1
        elif _same(before, _row(principal, p)):
            unchanged += 1
    return ImportCounts(created=created, updated=len(products) - created - unchanged, unchanged=unchanged)


async def upsert_products(session: AsyncSession, principal: Principal, products: list[ProductIn]) -> tuple[int, int]:
    """Create or update by SKU; returns (created, updated), the products already there counted as
    updated whether or not anything changed (what the API has always answered)."""
    counts = await save_products(session, principal, products)
    return counts.created, counts.updated + counts.unchanged


async def create_product(session: AsyncSession, principal: Principal, data: ProductIn) -> Product:
    """A new product; its SKU must be new (the API's create-or-update is ``upsert_products``)."""
    if await session.scalar(select(Product.id).where(Product.tenant_id == principal.tenant_id,
                                                     Product.sku == data.sku)) is not None:
        raise invalid({"sku": f"A product with SKU {data.sku!r} already exists."})
    product = Product(tenant_id=principal.tenant_id, id=uuid7(), sku=data.sku, **_row(principal, data),
                      created_at=utcnow(), updated_at=utcnow())
    session.add(product)
    await session.flush()
    return product


async def update_product(session: AsyncSession, principal: Principal, product: Product, data: ProductIn) -> bool:
    """Everything but the SKU (channels, feeds and orders know the product by it); True when
    something changed."""
    values = _row(principal, data)
    if _same(product, values):
        return False
    for column, value in values.items():
        setattr(product, column, value)
    product.updated_at = utcnow()
    await session.flush()
    return True


async def set_status(session: AsyncSession, principal: Principal, product: Product, status: str) -> None:
    """Inactive: no new order may take the product; orders already placed go on as they are."""
    if status not in PRODUCT_STATUSES:
        raise invalid({"status": "A product is active or inactive."})
    if product.status != status:
        product.status = status
        product.updated_at = utcnow()
        await session.flush()


async def search_products(session: AsyncSession, principal: Principal, *, q: str = "", category: str = "",
                          status: str = "", limit: int = 50, after: str | None = None) -> list[Product]:
    stmt = select(Product).where(Product.tenant_id == principal.tenant_id)
    if q:
        pattern = f"%{_like(q[:100].lower())}%"
        stmt = stmt.where(or_(func.lower(Product.sku).like(pattern, escape="\\"),
                              func.lower(Product.name).like(pattern, escape="\\"),
                              func.lower(func.coalesce(Product.brand, "")).like(pattern, escape="\\")))
    if category:
        stmt = stmt.where(Product.category == category)
    if status:
        stmt = stmt.where(Product.status == status)
    if after:
        stmt = stmt.where(Product.sku > after)
    return list(await session.scalars(stmt.order_by(Product.sku).limit(limit)))


async def categories(session: AsyncSession, tenant_id: uuid.UUID) -> list[str]:
    return [c for c in await session.scalars(
        select(Product.category).where(Product.tenant_id == tenant_id, Product.category.is_not(None))
        .distinct().order_by(Product.category)) if c]


async def all_skus(session: AsyncSession, tenant_id: uuid.UUID) -> set[str]:
    """Every SKU of the catalog, whatever its status (what a promotions document may name)."""
    return set(await session.scalars(select(Product.sku).where(Product.tenant_id == tenant_id)))


async def stock_outs_by_category(session: AsyncSession, tenant_id: uuid.UUID) -> list[tuple[str, int, int]]:
    """Per category ('' for none): the active SKUs with nothing available at any active location
    (none at all, or all of it reserved or kept as safety stock), and the category's active SKUs;
    the most stock-outs first."""
    available_somewhere = exists().where(
        InventoryLevel.tenant_id == Product.tenant_id, InventoryLevel.product_id == Product.id,
        Location.tenant_id == InventoryLevel.tenant_id, Location.id == InventoryLevel.location_id,
        Location.status == "active", AVAILABLE > 0)
    category = func.coalesce(Product.category, "").label("category")
    out = func.count().filter(~available_somewhere).label("out")
    rows = await session.execute(
        select(category, out, func.count()).where(Product.tenant_id == tenant_id, Product.status == "active")
        .group_by(category).order_by(out.desc(), category))
    return [(name, int(stock_outs), int(skus)) for name, stock_outs, skus in rows]


class ProductRef(NamedTuple):
    """What an order line copies from its product."""

    id: uuid.UUID
    sku: str
    name: str
    category: str | None
    status: str


_REFS = Prepared(select(Product.id, Product.sku, Product.name, Product.category, Product.status).where(
    Product.tenant_id == bindparam("tenant"), Product.sku == any_(bindparam("skus", type_=ARRAY(String)))))


async def product_refs(session: AsyncSession, tenant_id: uuid.UUID, skus: Collection[str]) -> dict[str, ProductRef]:
    """The products with these SKUs, by SKU, in one prepared statement (order capture's hot path)."""
    if not skus:
        return {}
    return {row["sku"]: ProductRef._make(row) for row in await _REFS.fetch(session, tenant=tenant_id, skus=list(skus))}


async def products_by_sku(session: AsyncSession, tenant_id: uuid.UUID, skus: Collection[str]) -> dict[str, ProductOut]:
    if not skus:
        return {}
    rows = await session.scalars(select(Product).where(Product.tenant_id == tenant_id, Product.sku.in_(list(skus))))
    return {product.sku: product_out(product) for product in rows}


async def get_product(session: AsyncSession, principal: Principal, product_id: uuid.UUID) -> Product:
    product = await session.scalar(select(Product).where(Product.tenant_id == principal.tenant_id,
                                                         Product.id == product_id))
    if product is None:
        raise not_found("Product")
    return product


async def product_by_sku(session: AsyncSession, principal: Principal, sku: str) -> Product:
    product = await session.scalar(select(Product).where(Product.tenant_id == principal.tenant_id,
                                                         Product.sku == sku))
    if product is None:
        raise not_found(f"Product {sku!r}")
    return product


def _like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (its %, _ and \\ escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def find_for_sale(session: AsyncSession, tenant_id: uuid.UUID, q: str, *, limit: int = 20) -> list[ProductOut]:
    """Active products whose SKU or name contains ``q`` in any case, for someone taking an order:
    an exact SKU first, then SKUs that start with it, then the rest by SKU."""
    q = q.strip().lower()
    if not q:
        return []
    contains = f"%{_like(q)}%"
    sku = func.lower(Product.sku)
    rank = case((sku == q, 0), (sku.like(f"{_like(q)}%", escape="\\"), 1), else_=2)
    rows = await session.scalars(
        select(Product).where(Product.tenant_id == tenant_id, Product.status == "active",
                              or_(sku.like(contains, escape="\\"),
                                  func.lower(Product.name).like(contains, escape="\\")))
        .order_by(rank, Product.sku).limit(limit))
    return [product_out(product) for product in rows]
