"""Helpers for the locations / catalog / inventory / feeds tests (issue 4)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from httpx import AsyncClient

from factories import bearer

API = "/api/v1"

Levels = dict[tuple[str, str], tuple[int, int, int]]


def location_body(code: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code, "name": f"Location {code}", "kind": "warehouse", "country": "FR",
        "timezone": "Europe/Paris", "address_line1": "1 rue de la Paix", "city": "Paris", "postcode": "75002",
        "ships_to_customers": True, "priority": 10,
    }
    body.update(overrides)
    return body


def product_body(sku: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"sku": sku, "name": f"Product {sku}", "price_minor": 1999, "category": "shoes",
                            "brand": "Acme", "weight_grams": 450, "attributes": {"colour": "red"}}
    body.update(overrides)
    return body


def noon_timezone(now: datetime | None = None) -> tuple[str, str]:
    """An IANA zone (Etc/GMT±N) where it is between 09:00 and 15:00 right now, and the local
    weekday key, so opening-hour assertions never depend on when the tests run."""
    now = now or datetime.now(UTC)
    for offset in range(-12, 15):
        local_hour = (now.hour + offset) % 24
        if 9 <= local_hour <= 14:
            # Etc/GMT signs are inverted: Etc/GMT-3 is UTC+3.
            name = "Etc/UTC" if offset == 0 else (f"Etc/GMT-{offset}" if offset > 0 else f"Etc/GMT+{-offset}")
            import zoneinfo

            local = now.astimezone(zoneinfo.ZoneInfo(name))
            return name, ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
    raise AssertionError("no zone found")  # pragma: no cover


async def make_locations(client: AsyncClient, key: str, *bodies: dict[str, Any]) -> dict[str, str]:
    """code -> id"""
    ids = {}
    for body in bodies:
        response = await client.post(f"{API}/locations", json=body, headers=bearer(key))
        assert response.status_code == 201, response.text
        ids[body["code"]] = response.json()["id"]
    return ids


async def make_products(client: AsyncClient, key: str, *skus: str) -> None:
    response = await client.post(f"{API}/products/import", json={"products": [product_body(s) for s in skus]},
                                 headers=bearer(key))
    assert response.status_code == 200, response.text


async def adjust(client: AsyncClient, key: str, sku: str, location: str, quantity: int,
                 reason: str = "receipt") -> Any:
    return await client.post(f"{API}/inventory/adjustments",
                             json={"sku": sku, "location": location, "quantity": quantity, "reason": reason},
                             headers=bearer(key))


async def stock_up(client: AsyncClient, key: str, quantities: dict[tuple[str, str], int]) -> None:
    for (sku, location), quantity in quantities.items():
        response = await adjust(client, key, sku, location, quantity)
        assert response.status_code == 201, response.text


async def levels(tenant_id: uuid.UUID) -> Levels:
    """(sku, location code) -> (on_hand, reserved, safety_stock), straight from the database."""
    from sqlalchemy import select

    from core.db import get_database
    from inventory.models import InventoryLevel, Location, Product

    async with get_database().transaction(tenant_id=tenant_id) as session:
        rows = await session.execute(
            select(Product.sku, Location.code, InventoryLevel.on_hand, InventoryLevel.reserved,
                   InventoryLevel.safety_stock)
            .join(Product, (Product.tenant_id == InventoryLevel.tenant_id) & (Product.id == InventoryLevel.product_id))
            .join(Location, (Location.tenant_id == InventoryLevel.tenant_id)
                  & (Location.id == InventoryLevel.location_id))
            .where(InventoryLevel.tenant_id == tenant_id)
        )
        return {(sku, code): (on_hand, reserved, safety) for sku, code, on_hand, reserved, safety in rows}


async def on_hand(tenant_id: uuid.UUID) -> dict[tuple[str, str], int]:
    """Non-zero on_hand per (sku, location)."""
    return {key: value[0] for key, value in (await levels(tenant_id)).items() if value[0]}


async def movement_count(tenant_id: uuid.UUID) -> int:
    from sqlalchemy import func, select

    from core.db import get_database
    from inventory.models import InventoryMovement

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return int(await session.scalar(select(func.count()).select_from(InventoryMovement)
                                        .where(InventoryMovement.tenant_id == tenant_id)) or 0)


async def ledger_mismatches(tenant_id: uuid.UUID) -> list[str]:
    """Levels whose on_hand/reserved differ from the sums of their movements, or that break
    the basic invariants; [] when the ledger is consistent."""
    from sqlalchemy import and_, func, select

    from core.db import get_database
    from inventory.models import InventoryLevel, InventoryMovement

    async with get_database().transaction(tenant_id=tenant_id) as session:
        sums = (
            select(InventoryMovement.product_id, InventoryMovement.location_id,
                   func.sum(InventoryMovement.on_hand_delta).label("on_hand"),
                   func.sum(InventoryMovement.reserved_delta).label("reserved"),
                   func.sum(InventoryMovement.safety_stock_delta).label("safety"))
            .where(InventoryMovement.tenant_id == tenant_id)
            .group_by(InventoryMovement.product_id, InventoryMovement.location_id)
            .subquery()
        )
        rows = (await session.execute(
            select(InventoryLevel.product_id, InventoryLevel.location_id, InventoryLevel.on_hand,
                   InventoryLevel.reserved, InventoryLevel.safety_stock,
                   func.coalesce(sums.c.on_hand, 0), func.coalesce(sums.c.reserved, 0),
                   func.coalesce(sums.c.safety, 0))
            .outerjoin(sums, and_(sums.c.product_id == InventoryLevel.product_id,
                                  sums.c.location_id == InventoryLevel.location_id))
            .where(InventoryLevel.tenant_id == tenant_id)
        )).all()
        orphans = (await session.execute(
            select(sums.c.product_id, sums.c.location_id)
            .outerjoin(InventoryLevel, and_(InventoryLevel.tenant_id == tenant_id,
                                            InventoryLevel.product_id == sums.c.product_id,
                                            InventoryLevel.location_id == sums.c.location_id))
            .where(InventoryLevel.id.is_(None))
        )).all()
    problems = []
    for product_id, location_id, level_on_hand, reserved, safety, sum_on_hand, sum_reserved, sum_safety in rows:
        where = f"{product_id}@{location_id}"
        if level_on_hand != sum_on_hand:
            problems.append(f"{where}: on_hand {level_on_hand} != sum of movements {sum_on_hand}")
        if reserved != sum_reserved:
            problems.append(f"{where}: reserved {reserved} != sum of movements {sum_reserved}")
        if safety != sum_safety:
            problems.append(f"{where}: safety stock {safety} != sum of movements {sum_safety}")
        if level_on_hand < 0 or reserved < 0 or safety < 0:
            problems.append(f"{where}: negative figure ({level_on_hand}, {reserved}, {safety})")
    problems += [f"movements without a level: {p}@{loc}" for p, loc in orphans]
    return problems


async def line_for(tenant_id: uuid.UUID, sku: str, code: str, quantity: int) -> Any:
    from sqlalchemy import select

    from core.db import get_database
    from inventory.ledger import Line
    from inventory.models import Location, Product

    async with get_database().transaction(tenant_id=tenant_id) as session:
        product_id = await session.scalar(select(Product.id).where(Product.tenant_id == tenant_id,
                                                                    Product.sku == sku))
        location_id = await session.scalar(select(Location.id).where(Location.tenant_id == tenant_id,
                                                                      Location.code == code))
    assert product_id is not None and location_id is not None, (sku, code)
    return Line(product_id, location_id, quantity)


async def reserve(tenant_id: uuid.UUID, *lines: Any, reference: str = "order-1") -> bool:
    """True when the reservation won, False when refused for lack of stock."""
    from core.db import get_database
    from inventory.ledger import InsufficientStock
    from inventory.ledger import reserve as reserve_lines

    try:
        async with get_database().transaction(tenant_id=tenant_id) as session:
            await reserve_lines(session, tenant_id, list(lines), reference=reference, actor="test")
    except InsufficientStock:
        return False
    return True


async def send_feed(client: AsyncClient, key: str, feed_id: str, kind: str,
                    rows: list[tuple[str, str, Any]]) -> Any:
    return await client.post(f"{API}/inventory/feeds", headers=bearer(key), json={
        "feed_id": feed_id, "kind": kind,
        "rows": [{"sku": s, "location": loc, "quantity": q} for s, loc, q in rows],
    })


async def send_csv_feed(client: AsyncClient, key: str, feed_id: str, kind: str, body: bytes | str) -> Any:
    content = body.encode() if isinstance(body, str) else body
    return await client.post(f"{API}/inventory/feeds", params={"feed_id": feed_id, "kind": kind}, content=content,
                             headers={**bearer(key), "Content-Type": "text/csv"})


async def apply_feeds(tenant_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    """Run the tenant's queued work inline; returns the apply_feed calls that ran."""
    from factories import run_outbox_inline

    return [item for item in await run_outbox_inline(tenant_id) if item[0] == "inventory.apply_feed"]


async def feed_status(client: AsyncClient, key: str, feed_uuid: str) -> dict[str, Any]:
    response = await client.get(f"{API}/inventory/feeds/{feed_uuid}", headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


async def one_warehouse_shop(client: AsyncClient, key: str, *, location: str, sku: str, quantity: int) -> None:
    """The smallest shop that routes orders: a warehouse near Paris with ``quantity`` of one SKU,
    and a published routing rule that sends every order there."""
    from rules.routing import new_rule

    await make_locations(client, key, location_body(location, latitude=48.8, longitude=2.3, ships_to_customers=True))
    await make_products(client, key, sku)
    assert (await adjust(client, key, sku, location, quantity)).status_code == 201
    document = {"rules": [new_rule("all", "Everything")], "otherwise": "hold"}
    saved = await client.put(f"{API}/rule-sets/routing/draft", headers=bearer(key), json={"document": document})
    assert saved.status_code == 200, saved.text
    published = await client.post(f"{API}/rule-sets/routing/versions", headers=bearer(key), json={})
    assert published.status_code == 201, published.text
