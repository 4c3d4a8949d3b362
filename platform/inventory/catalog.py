"""The catalog: products (SKUs) with price in minor units, imported by file or API."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec
import pycountry
from sqlalchemy import ARRAY, String, any_, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.boundary import check_json
from core.db import Prepared, utcnow
from core.ids import uuid7
from core.problems import ProblemError, not_found
from inventory.models import Product
from inventory.schemas import ProductIn, ProductOut

MAX_IMPORT_BYTES = 20 * 1024 * 1024
CATALOG_COLUMNS = ("sku", "name", "price_minor")
OPTIONAL_COLUMNS = ("category", "brand", "currency", "weight_grams", "status")


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

    def add(self, row: int, product: ProductIn) -> None:
        self.products.append(product)
        self.rows.append(row)


def product_out(product: Product) -> ProductOut:
    return ProductOut(id=product.id, sku=product.sku, name=product.name, price_minor=product.price_minor,
                      currency=product.currency, category=product.category, brand=product.brand,
                      weight_grams=product.weight_grams, attributes=product.attributes, status=product.status)


def decode_upload(content: bytes, *, limit: int = MAX_IMPORT_BYTES) -> str:
    if len(content) > limit:
        raise ProblemError(413, "File too large",
                           f"The file is {len(content) / 1_048_576:.1f} MB; the limit is {limit // 1_048_576} MB.")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProblemError(422, "Bad encoding",
                           f"The file is not UTF-8 text (byte {exc.start} is not valid UTF-8). "
                           "Export it as UTF-8 CSV or JSON.") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ProblemError(422, "Not text", f"Line {line} contains a NUL character: the file is not a CSV or JSON "
                                            "text file (is it a spreadsheet? export it as CSV).")
    # Line endings of any system: a CR alone (old Mac exports) is a line break too.
    return text.replace("\r\n", "\n").replace("\r", "\n")


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


def parse_catalog(content: bytes, content_format: str) -> ParsedCatalog:
    """Every product of a CSV or JSON catalog file, or every error with its row and column."""
    text = decode_upload(content)
    parsed = ParsedCatalog()
    if content_format == "json":
        items = json_items(text, "products", what="catalog", example='a list of products, or {"products": [...]}')
        for number, entry in enumerate(items, start=1):
            try:
                parsed.add(number, msgspec.convert(entry, ProductIn))
            except msgspec.ValidationError as exc:
                parsed.errors.append(RowError(number, _path_column(str(exc)), str(exc)))
    else:
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip() for h in (csv_rows(lambda: reader.fieldnames) or [])]
        missing = [c for c in CATALOG_COLUMNS if c not in header]
        unknown = [c for c in header if c not in CATALOG_COLUMNS + OPTIONAL_COLUMNS and not c.startswith("attr:")]
        if missing or unknown:
            detail = []
            if missing:
                detail.append(f"missing column(s): {', '.join(missing)}")
            if unknown:
                detail.append(f"unknown column(s): {', '.join(unknown)}")
            raise ProblemError(422, "Wrong header", "The CSV header is wrong: " + "; ".join(detail) +
                               f". Expected {', '.join(CATALOG_COLUMNS)} and optionally "
                               f"{', '.join(OPTIONAL_COLUMNS)} and attr:<name> columns.")
        for number, raw in enumerate(csv_rows(reader), start=2):
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            item: dict[str, Any] = {"sku": row["sku"], "name": row["name"]}
            try:
                item["price_minor"] = int(row["price_minor"])
            except ValueError:
                parsed.errors.append(RowError(number, "price_minor",
                                              f"{row['price_minor']!r} is not a whole number of minor units."))
                continue
            for column in ("category", "brand", "currency", "status"):
                if row.get(column):
                    item[column] = row[column]
            if row.get("weight_grams"):
                try:
                    item["weight_grams"] = int(row["weight_grams"])
                except ValueError:
                    parsed.errors.append(RowError(number, "weight_grams", f"{row['weight_grams']!r} is not a number."))
                    continue
            item["attributes"] = {k[5:]: v for k, v in row.items() if k.startswith("attr:") and v}
            try:
                parsed.add(number, msgspec.convert(item, ProductIn))
            except msgspec.ValidationError as exc:
                parsed.errors.append(RowError(number, _path_column(str(exc)), str(exc)))
    seen: dict[str, int] = {}
    unique: list[tuple[int, ProductIn]] = []
    for number, product in zip(parsed.rows, parsed.products, strict=True):
        if product.currency and pycountry.currencies.get(alpha_3=product.currency.upper()) is None:
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


def _path_column(message: str) -> str | None:
    if "`$." in message:
        return message.split("`$.")[1].split("`")[0].split("[")[0]
    return None


async def upsert_products(session: AsyncSession, principal: Principal, products: list[ProductIn]) -> tuple[int, int]:
    """Create or update by SKU; returns (created, updated)."""
    if not products:
        return 0, 0
    existing = set(await session.scalars(
        select(Product.sku).where(Product.tenant_id == principal.tenant_id,
                                  Product.sku == any_(bindparam("skus", [p.sku for p in products], ARRAY(String))))
    ))
    now = utcnow()
    rows = [
        {"tenant_id": principal.tenant_id, "id": uuid7(), "sku": p.sku, "name": p.name, "category": p.category,
         "brand": p.brand, "price_minor": p.price_minor, "currency": (p.currency or principal.currency).upper(),
         "weight_grams": p.weight_grams, "attributes": p.attributes, "status": p.status, "created_at": now,
         "updated_at": now}
        for p in products
    ]
    for start in range(0, len(rows), 2000):
        stmt = insert(Product).values(rows[start:start + 2000])
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["tenant_id", "sku"],
            set_={c: stmt.excluded[c] for c in ("name", "category", "brand", "price_minor", "currency",
                                               "weight_grams", "attributes", "status", "updated_at")},
        ))
    updated = sum(1 for p in products if p.sku in existing)
    return len(products) - updated, updated


async def search_products(session: AsyncSession, principal: Principal, *, q: str = "", category: str = "",
                          limit: int = 50, after: str | None = None) -> list[Product]:
    stmt = select(Product).where(Product.tenant_id == principal.tenant_id)
    if q:
        pattern = f"%{q.lower()}%"
        stmt = stmt.where(or_(func.lower(Product.sku).like(pattern), func.lower(Product.name).like(pattern),
                              func.lower(func.coalesce(Product.brand, "")).like(pattern)))
    if category:
        stmt = stmt.where(Product.category == category)
    if after:
        stmt = stmt.where(Product.sku > after)
    return list(await session.scalars(stmt.order_by(Product.sku).limit(limit)))


async def categories(session: AsyncSession, tenant_id: uuid.UUID) -> list[str]:
    return [c for c in await session.scalars(
        select(Product.category).where(Product.tenant_id == tenant_id, Product.category.is_not(None))
        .distinct().order_by(Product.category)) if c]


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
