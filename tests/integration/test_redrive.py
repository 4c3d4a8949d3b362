"""Pending work is found from the database and sent again when the broker lost its message: an
order's routing and its confirmation mail, a feed, a webhook delivery, backorders once stock
arrived. Work that is merely recent, or that a worker is processing, is left alone; an item that
keeps waiting is sent again with growing pauses, then left for a person in Stuck work."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from test_webhooks import Receiver

from factories import bearer, create_tenant, login, post_form
from inventory_factories import API, one_warehouse_shop, send_feed
from workers import eventually, running_worker

PARIS = {"country": "FR", "latitude": 48.86, "longitude": 2.35}


def _order(sku: str, number: str) -> dict[str, Any]:
    return {"channel": "web", "external_number": number, "currency": "EUR",
            "lines": [{"sku": sku, "quantity": 1, "unit_price_minor": 1000}],
            "customer": {"email": f"{number.lower()}@example.test", "name": "Rita Redrive"},
            "delivery": {"mode": "ship", "address": PARIS}, "total_minor": 1000}


async def _lose_every_message() -> None:
    """Whatever was relayed to Redis is gone: the outbox marked it sent, no worker ever gets it."""
    from core.deps import _background

    for task in list(_background):
        await task
    dramatiq.get_broker().flush_all()


async def _status(client: AsyncClient, key: str, order_id: str) -> str:
    return str((await client.get(f"{API}/orders/{order_id}", headers=bearer(key))).json()["status"])


async def _redrives(tenant_id: uuid.UUID) -> dict[str, list[int]]:
    from core.db import get_database
    from core.models import Redrive

    async with get_database().transaction(tenant_id=tenant_id) as session:
        rows = await session.scalars(select(Redrive).where(Redrive.tenant_id == tenant_id))
        found: dict[str, list[int]] = {}
        for row in rows:
            found.setdefault(row.kind, []).append(row.count)
        return found


async def _sweep_later(tenant_id: uuid.UUID, minutes: float) -> dict[str, int]:
    """The company's sweep as the scheduler would run it ``minutes`` from now."""
    from core import clock, redrive
    from core.db import get_database

    with clock.frozen_at(clock.now() + timedelta(minutes=minutes)):
        return await redrive.sweep_company(get_database(), tenant_id)


async def _relay() -> None:
    from core.broker import broker
    from core.db import get_database
    from core.outbox import relay_all

    await relay_all(get_database(), broker)


async def test_a_lost_routing_message_and_a_lost_mail_are_found_and_finished(client: AsyncClient) -> None:
    from factories import mail_to

    tenant = await create_tenant()
    await one_warehouse_shop(client, tenant.api_key, location="WH-RD", sku="RD-1", quantity=10)
    created = await client.post(f"{API}/orders", headers=bearer(tenant.api_key), json=_order("RD-1", "RD-100"))
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    await _lose_every_message()
    async with running_worker():
        assert await _status(client, tenant.api_key, order_id) == "received"
        assert [m.status for m in await mail_to(tenant.tenant_id, "rd-100@example.test")] == ["queued"]
        # Recent work is not the sweep's business: it may be in a queue under load.
        assert await _sweep_later(tenant.tenant_id, 0) == {}
        assert await _sweep_later(tenant.tenant_id, 4) == {"orders.routing": 1, "mail.send": 1}
        await _relay()

        async def routed() -> bool:
            return await _status(client, tenant.api_key, order_id) == "routed"

        await eventually(routed, what="the re-driven order routed")

        async def mailed() -> bool:
            return [m.status for m in await mail_to(tenant.tenant_id, "rd-100@example.test")] == ["sent"]

        await eventually(mailed, what="the re-driven mail sent")
    order = (await client.get(f"{API}/orders/{order_id}", headers=bearer(tenant.api_key))).json()
    assert len(order["fulfilments"]) == 1
    assert [e["kind"] for e in order["events"]].count("order.routed") == 1
    assert await _redrives(tenant.tenant_id) == {"orders.routing": [1], "mail.send": [1]}
    # Done work is no longer pending: a later sweep finds nothing.
    assert await _sweep_later(tenant.tenant_id, 30) == {}

    await login(client, tenant.email)
    page = await client.get("/app/settings/stuck-work")
    assert page.status_code == 200
    assert "Orders waiting to be routed" in page.text and "Mails waiting to be sent" in page.text


async def test_a_lost_feed_is_applied_and_its_backorders_routed(client: AsyncClient) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await one_warehouse_shop(client, key, location="WH-FD", sku="FD-1", quantity=0)
    document = {"rules": [{"id": "r1", "name": "Everything", "enabled": True, "when": None,
                           "then": {"location_types": ["warehouse"], "fallback": ["backorder"]}}],
                "otherwise": "backorder"}
    assert (await client.put(f"{API}/rule-sets/routing/draft", headers=bearer(key),
                             json={"document": document})).status_code == 200
    assert (await client.post(f"{API}/rule-sets/routing/versions", headers=bearer(key), json={})).status_code == 201
    created = await client.post(f"{API}/orders", headers=bearer(key), json=_order("FD-1", "FD-100"))
    order_id = created.json()["id"]
    async with running_worker():
        await _relay()

        async def backordered() -> bool:
            return await _status(client, key, order_id) == "backordered"

        await eventually(backordered, what="the order backordered for want of stock")
    sent = await send_feed(client, key, "feed-lost", "delta", [("FD-1", "WH-FD", 5)])
    assert sent.status_code == 202, sent.text
    feed_id = sent.json()["id"]
    await _lose_every_message()
    assert (await client.get(f"{API}/inventory/feeds/{feed_id}", headers=bearer(key))).json()["status"] == "accepted"
    # The backorder is not late: no stock arrived since it was routed.
    assert await _sweep_later(tenant.tenant_id, 4) == {"inventory.feeds": 1}
    async with running_worker():
        await _relay()

        async def applied() -> bool:
            response = await client.get(f"{API}/inventory/feeds/{feed_id}", headers=bearer(key))
            return response.json()["status"] == "applied"

        await eventually(applied, what="the re-driven feed applied")
        await _lose_every_message()  # and the feed's word to route the backorders is lost too
        assert await _status(client, key, order_id) == "backordered"
        assert await _sweep_later(tenant.tenant_id, 4) == {"orders.backorders": 1}
        await _relay()

        async def routed() -> bool:
            return await _status(client, key, order_id) == "routed"

        await eventually(routed, what="the backorder routed on the stock the feed brought")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.server.shutdown()


async def test_a_lost_webhook_delivery_is_sent_when_due(client: AsyncClient, receiver: Receiver) -> None:
    from core.db import get_database
    from core.models import WebhookDelivery

    tenant = await create_tenant()
    key = tenant.api_key
    added = await client.post(f"{API}/webhook-endpoints", headers=bearer(key),
                              json={"url": receiver.url, "events": ["order.created"]})
    assert added.status_code == 201, added.text
    await one_warehouse_shop(client, key, location="WH-WH", sku="WH-1", quantity=3)
    assert (await client.post(f"{API}/orders", headers=bearer(key), json=_order("WH-1", "WH-9"))).status_code == 201
    await _lose_every_message()
    swept = await _sweep_later(tenant.tenant_id, 4)
    assert swept.get("webhooks.deliver") == 1, swept
    async with running_worker():
        await _relay()

        async def delivered() -> bool:
            async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
                statuses = list(await session.scalars(select(WebhookDelivery.status)))
            return statuses == ["delivered"]

        await eventually(delivered, what="the re-driven webhook delivered")
    assert receiver.events() == ["order.created"]


async def test_work_a_worker_holds_is_left_alone(client: AsyncClient, owner_engine) -> None:
    tenant = await create_tenant()
    await one_warehouse_shop(client, tenant.api_key, location="WH-HD", sku="HD-1", quantity=3)
    created = await client.post(f"{API}/orders", headers=bearer(tenant.api_key), json=_order("HD-1", "HD-1"))
    order_id = created.json()["id"]
    await _lose_every_message()
    async with owner_engine.connect() as worker_busy:  # a routing transaction holds the order's row
        await worker_busy.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant.tenant_id)})
        await worker_busy.execute(text("SELECT 1 FROM orders WHERE id = :o FOR UPDATE"), {"o": order_id})
        swept = await _sweep_later(tenant.tenant_id, 4)
        await worker_busy.rollback()
    assert "orders.routing" not in swept
    assert "orders.routing" not in await _redrives(tenant.tenant_id)


async def test_work_that_keeps_waiting_is_sent_again_less_often_then_left_for_a_person(client: AsyncClient) -> None:
    from core import redrive

    tenant = await create_tenant()
    await one_warehouse_shop(client, tenant.api_key, location="WH-GU", sku="GU-1", quantity=3)
    created = await client.post(f"{API}/orders", headers=bearer(tenant.api_key), json=_order("GU-1", "GU-1"))
    order_id = created.json()["id"]
    threshold = redrive.PENDING_WORK["orders.routing"].threshold / timedelta(minutes=1)
    minute = 0.0
    sends = []
    # No worker ever runs: every sweep that finds the order due sends it again.
    while minute < 40 * threshold:
        minute += threshold / 2
        sends.append(minute if (await _sweep_later(tenant.tenant_id, minute)).get("orders.routing") else None)
    sent_at = [m for m in sends if m is not None]
    assert len(sent_at) == redrive.MAX_REDRIVES
    pauses = [b - a for a, b in itertools.pairwise(sent_at)]
    assert pauses == sorted(pauses) and pauses[-1] >= 8 * threshold, pauses
    assert (await _redrives(tenant.tenant_id))["orders.routing"] == [redrive.MAX_REDRIVES]

    await login(client, tenant.email)
    page = await client.get("/app/settings/stuck-work")
    assert order_id in page.text and "Still waiting after every re-send" in page.text
    again = await post_form(client, f"/app/settings/stuck-work/pending/orders.routing/{order_id}/send")
    assert again.status_code == 303 and "done=work_sent_again" in again.headers["location"]
    async with running_worker():
        await _relay()

        async def routed() -> bool:
            return await _status(client, tenant.api_key, order_id) == "routed"

        await eventually(routed, what="the order sent again by hand routed")
    done = await post_form(client, f"/app/settings/stuck-work/pending/orders.routing/{order_id}/send")
    assert "done=work_done" in done.headers["location"]


async def test_the_sweep_learns_which_companies_wait_without_seeing_anything_else(client: AsyncClient) -> None:
    from core import clock, redrive
    from core.db import get_database
    from core.settings import get_settings

    waiting, idle = await create_tenant(), await create_tenant()
    await one_warehouse_shop(client, waiting.api_key, location="WH-SC", sku="SC-1", quantity=3)
    await one_warehouse_shop(client, idle.api_key, location="WH-SI", sku="SI-1", quantity=3)
    await client.post(f"{API}/orders", headers=bearer(waiting.api_key), json=_order("SC-1", "SC-1"))
    await _lose_every_message()
    work = redrive.PENDING_WORK["orders.routing"]
    later = clock.now() + timedelta(minutes=10)
    companies = await redrive.companies_with_overdue(get_database(), work, later - work.threshold)
    assert waiting.tenant_id in companies and idle.tenant_id not in companies

    # As the sweep's role, pending rows of every company are readable, nothing else is, and
    # nothing is writable.
    role = f'SET LOCAL ROLE "{get_settings().sweeper_db_role}"'
    async with get_database().transaction() as session:
        await session.execute(text(role))
        assert await session.scalar(text("SELECT count(*) FROM orders WHERE tenant_id = :t"),
                                    {"t": waiting.tenant_id}) == 1
        # Only the rows of work due: pending, or to close at the end of the return window.
        assert await session.scalar(text(
            "SELECT count(*) FROM orders WHERE NOT (status IN ('received', 'backordered', 'delivered', "
            "'collected', 'shipped') OR payment_status = 'capture_pending')")) == 0
    for statement in ("SELECT count(*) FROM customers", "SELECT count(*) FROM locations",
                      "SELECT customer_email FROM orders", "SELECT kwargs FROM outbox_messages",
                      "SELECT response_body FROM idempotency_records",
                      f"UPDATE orders SET hold_reason = 'x' WHERE tenant_id = '{waiting.tenant_id}'",
                      "DELETE FROM mail_messages"):
        with pytest.raises(DBAPIError, match="permission denied"):
            async with get_database().transaction() as session:
                await session.execute(text(role))
                await session.execute(text(statement))
    # The app role itself sees no other company's pending work.
    async with get_database().transaction(tenant_id=idle.tenant_id) as session:
        assert await session.scalar(text("SELECT count(*) FROM orders WHERE status = 'received'")) == 0
