"""Live pages at rest and in a burst: a real web server process (`oms web`, no worker, no
scheduler), 200 signed-in server-sent-event streams on the orders list and an order's page.

- ``live_idle_queries_per_s``: the web process's statements per second while the 200 pages are open
  and nothing changes, from ``pg_stat_activity``: each of its connections (the pool's and the
  listener's) shows when its last statement began, so a connection that ran none in the window ran
  none at all (a connection that ran some counts once: then the figure is a lower bound). The whole
  database's transactions per second (``pg_stat_database``, read 11 s after the last activity on
  either side, since idle backends report theirs up to 10 s late) are printed beside it:
  autovacuum's are among them.
- ``live_fanout_ms``: a note posted on the watched order (its timeline entry, written just before
  the commit) to the event on the 200th stream, median of 5 (the orders list hears every order's
  entries, the order's pages theirs).
- ``live_fanout_new_order_ms``: an order posted to its event on the 100th orders-list stream.

Printed as `bench NAME: VALUE UNIT`; `make bench` runs it. Nothing here asserts a speed.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from factories import PASSWORD, bearer, create_tenant, login, unique
from inventory_factories import one_warehouse_shop
from processes import start_oms, stop_process, wait_healthy

STREAMS = int(os.environ.get("BENCH_LIVE_STREAMS", "200"))
PER_USER = 5  # core.live.LIVE_PER_USER (the bench runs against a separate process: no import)
IDLE_S = float(os.environ.get("BENCH_LIVE_IDLE_S", "20"))
SETTLE_S = 11.0  # an idle backend reports its statistics within 10 s (PGSTAT_IDLE_INTERVAL)
ROUNDS = 5
SPACING_S = 0.7  # between changes: past the streams' coalescing window (0.5 s)


class Listener:
    """One page's EventSource: the arrival times of its events."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.opened = asyncio.Event()
        self.arrivals: list[float] = []
        self.refused = False

    async def run(self, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", self.path) as response:
            assert response.status_code == 200, self.path
            async for line in response.aiter_lines():
                if line == ": listening":
                    self.opened.set()
                elif line.startswith("event:"):
                    self.arrivals.append(time.time())
                    self.refused = self.refused or line == "event: limit"
                    self.opened.set()


async def _member(tenant_id: uuid.UUID) -> str:
    from core.db import get_database
    from core.security import hash_password
    from tenants.models import Membership, User

    email = f"{unique('agent')}@example.test"
    async with get_database().transaction(tenant_id=tenant_id) as session:
        user = User(email=email, name="An agent", password_hash=await hash_password(PASSWORD))
        session.add(user)
        await session.flush()
        session.add(Membership(tenant_id=tenant_id, user_id=user.id, role="customer_service", locations=[]))
    return email


async def _transactions(owner_engine: Any) -> int:
    async with owner_engine.connect() as conn:
        return int((await conn.execute(text("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                                            "WHERE datname = current_database()"))).scalar_one())


async def _database_now(owner_engine: Any) -> datetime:
    async with owner_engine.connect() as conn:
        moment: datetime = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
        return moment


async def _web_connections(owner_engine: Any, since: datetime) -> tuple[int, int]:
    """(the app's connections that began a statement or opened since ``since``, all of them)."""
    async with owner_engine.connect() as conn:
        moved, total = (await conn.execute(text(
            "SELECT count(*) FILTER (WHERE query_start >= :s OR backend_start >= :s), count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name IN ('oms', 'oms-live')"), {"s": since})).one()
        return int(moved), int(total)


async def _autovacuumed(owner_engine: Any, since: datetime) -> int:
    """Tables autovacuum analysed or vacuumed since ``since`` (its transactions are the database's)."""
    async with owner_engine.connect() as conn:
        return int((await conn.execute(text(
            "SELECT count(*) FROM pg_stat_all_tables WHERE last_autoanalyze >= :s OR last_autovacuum >= :s"),
            {"s": since})).scalar_one())


def _order(sku: str) -> dict[str, Any]:
    return {"channel": "web", "currency": "EUR", "total_minor": 1000,
            "lines": [{"sku": sku, "quantity": 1, "unit_price_minor": 1000}],
            "customer": {"email": f"{unique('buyer')}@example.test", "name": "Bea Buyer"},
            "delivery": {"mode": "ship", "address": {"country": "FR", "city": "Paris", "postcode": "75001",
                                                     "line1": "1 rue de Rivoli", "latitude": 48.86, "longitude": 2.35}},
            "payment": {"provider": "external", "method": "card", "authorized_minor": 1000}}


def _wall(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def test_live_pages_idle_and_fanout(owner_engine: Any, tmp_path: Path) -> None:
    from core.db import close_database
    from core.embedded import free_port

    tenant = await create_tenant()
    people = [tenant.email, *[await _member(tenant.tenant_id) for _ in range(-(-STREAMS // PER_USER) - 1)]]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PUBLIC_URL=base, LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
    web = start_oms(["web", "--port", str(port)], env, tmp_path / "web.log")
    clients: list[httpx.AsyncClient] = []
    readers: list[asyncio.Task[None]] = []
    try:
        wait_healthy(f"{base}/healthz", web[0], tmp_path / "web.log")
        api = httpx.AsyncClient(base_url=base, headers=bearer(tenant.api_key), timeout=60)
        clients.append(api)
        await one_warehouse_shop(api, tenant.api_key, location="WH-LIVE", sku="LIVE-SKU", quantity=1000)
        created = await api.post("/api/v1/orders", json=_order("LIVE-SKU"))
        assert created.status_code == 201, created.text
        watched = created.json()["id"]

        listeners: list[Listener] = []
        for n, email in enumerate(people):
            browser = httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(30, read=None),
                                        limits=httpx.Limits(max_connections=PER_USER + 2))
            clients.append(browser)
            await login(browser, email, PASSWORD)
            for k in range(min(PER_USER, STREAMS - n * PER_USER)):
                listener = Listener("/app/orders/live" if k % 2 == 0 else f"/app/orders/{watched}/live")
                readers.append(asyncio.create_task(listener.run(browser)))
                listeners.append(listener)
        async with asyncio.timeout(60):
            await asyncio.gather(*(listener.opened.wait() for listener in listeners))
        assert not any(listener.refused for listener in listeners)
        lists = [listener for listener in listeners if listener.path == "/app/orders/live"]

        await close_database()  # this process's own pool: every 'oms' connection left is the web server's
        await asyncio.sleep(SETTLE_S)  # the sign-ins' and stream openings' statistics land first
        before, since = await _transactions(owner_engine), await _database_now(owner_engine)
        began = time.monotonic()
        await asyncio.sleep(IDLE_S)
        moved, connections = await _web_connections(owner_engine, since)
        spent = time.monotonic() - began
        await asyncio.sleep(SETTLE_S)  # whatever ran in the window reaches the statistics
        database = await _transactions(owner_engine) - before - 3  # the bench's own readings taken out
        tables = await _autovacuumed(owner_engine, since)
        assert not any(listener.arrivals for listener in listeners)
        print(f"\nbench live_idle_queries_per_s: {moved / spent:.2f} q/s ({len(listeners)} streams; {moved} of the "
              f"web server's {connections} database connections ran a statement in {spent:.0f} s; the whole "
              f"database: {database / spent:.2f} transactions/s, autovacuum's among them: {tables} tables done)")

        fanout = []
        for n in range(ROUNDS):
            heard = [len(listener.arrivals) for listener in listeners]
            note = await api.post(f"/api/v1/orders/{watched}/notes", json={"body": f"Round {n}"})
            assert note.status_code == 201, note.text
            written = _wall(note.json()["created_at"])
            async with asyncio.timeout(30):
                while any(len(listener.arrivals) == count for listener, count in zip(listeners, heard, strict=True)):
                    await asyncio.sleep(0.005)
            last = max(listener.arrivals[count] for listener, count in zip(listeners, heard, strict=True))
            fanout.append((last - written) * 1000)
            await asyncio.sleep(SPACING_S)
        print(f"bench live_fanout_ms: {statistics.median(fanout):.1f} ms (a note's timeline entry to the "
              f"{len(listeners)}th stream's event, median of {ROUNDS})")

        new_order = []
        for _ in range(ROUNDS):
            heard = [len(listener.arrivals) for listener in lists]
            posted = await api.post("/api/v1/orders", json=_order("LIVE-SKU"))
            assert posted.status_code == 201, posted.text
            async with owner_engine.connect() as conn, conn.begin():
                await conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant.tenant_id)})
                written = (await conn.execute(text("SELECT min(created_at) FROM order_events WHERE tenant_id = :t "
                                                   "AND order_id = :o"), {"t": tenant.tenant_id,
                                                                          "o": uuid.UUID(posted.json()["id"])})
                           ).scalar_one().timestamp()
            async with asyncio.timeout(30):
                while any(len(listener.arrivals) == count for listener, count in zip(lists, heard, strict=True)):
                    await asyncio.sleep(0.005)
            last = max(listener.arrivals[count] for listener, count in zip(lists, heard, strict=True))
            new_order.append((last - written) * 1000)
            await asyncio.sleep(SPACING_S)
        print(f"bench live_fanout_new_order_ms: {statistics.median(new_order):.1f} ms (an order posted to the "
              f"{len(lists)}th orders-list stream's event, median of {ROUNDS})")
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for client in clients:
            await client.aclose()
        stop_process(web[0])
        web[1].close()
