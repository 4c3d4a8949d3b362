"""Faults on the real stack, `oms run` with its web server, worker and scheduler as processes on
the test run's PostgreSQL and Redis, while clients keep posting orders:

- the Dramatiq worker process killed with SIGKILL (what the OOM killer does): intake and
  ``/readyz`` keep answering, `oms run` starts the worker again, and every accepted order ends
  routed exactly once;
- Redis paused (SIGSTOP) for several seconds, then resumed: every accepted order ends routed
  exactly once, messages stranded in the broker included, with nothing done by hand.

The re-drive threshold is shortened to a few seconds so that the tests need not wait minutes;
the figures printed are the time from the fault to the last order routed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from factories import bearer, create_tenant
from inventory_factories import API, one_warehouse_shop
from processes import ROOT, stop_process

REDRIVE_AFTER_S = 4
ORDERS = 150
CLIENTS = 6


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.asynccontextmanager
async def oms_run(tmp_path: Path) -> AsyncIterator[Stack]:
    from core.embedded import free_port

    port = free_port()
    env = dict(os.environ, PORT=str(port), OMS_VAR_DIR=str(tmp_path / "var"), LOG_LEVEL="WARNING",
               REDRIVE_AFTER_SECONDS=str(REDRIVE_AFTER_S), REDRIVE_EVERY_SECONDS="1")
    log = tmp_path / "oms-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "oms.cli", "run", "--threads", "4"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    stack = Stack(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 60
        while "OMS is running" not in stack.output():
            assert process.poll() is None, stack.output()[-3000:]
            assert time.monotonic() < deadline, stack.output()[-3000:]
            await asyncio.sleep(0.2)
        yield stack
    finally:
        stop_process(process, timeout=30)
    assert "stopped" in stack.output().splitlines()[-1], stack.output()[-2000:]


def _order(n: int, sku: str) -> dict[str, Any]:
    return {"channel": "web", "external_number": f"F-{n}", "currency": "EUR",
            "lines": [{"sku": sku, "quantity": 1, "unit_price_minor": 1500}],
            "customer": {"email": f"fault-{n % 17}@example.test", "name": "Faye Fault"},
            "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.86, "longitude": 2.35}},
            "total_minor": 1500}


@dataclass
class Stream:
    accepted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    posted: int = 0


async def _stream(stack: Stack, key: str, sku: str, stream: Stream) -> None:
    """CLIENTS clients post ORDERS orders between them, one at a time each."""
    numbers = iter(range(ORDERS))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=stack.url, headers=bearer(key), timeout=30) as http:
            for n in numbers:
                stream.posted += 1
                try:
                    response = await http.post(f"{API}/orders", json=_order(n, sku))
                except httpx.HTTPError as exc:
                    stream.refused.append(f"F-{n}: {exc!r}")
                    continue
                if response.status_code == 201:
                    stream.accepted.append(response.json()["id"])
                else:
                    stream.refused.append(f"F-{n}: {response.status_code} {response.text[:200]}")
                await asyncio.sleep(0.02)

    await asyncio.gather(*(client() for _ in range(CLIENTS)))


async def _routed_once(owner_engine: Any, tenant_id: Any, order_ids: list[str], *, timeout: float) -> float:
    """Waits until every order is routed; checks each was routed once. Returns the wait."""
    started = time.monotonic()
    while True:
        async with owner_engine.connect() as conn:
            await conn.execute(text("SELECT set_config('app.tenant_id', :t, false)"), {"t": str(tenant_id)})
            statuses = dict((await conn.execute(text(
                "SELECT id::text, status FROM orders WHERE tenant_id = :t"), {"t": tenant_id})).all())
        if all(statuses.get(order_id) == "routed" for order_id in order_ids):
            break
        if time.monotonic() - started > timeout:
            waiting = {s for o, s in statuses.items() if o in order_ids and s != "routed"}
            raise AssertionError(f"{sum(1 for o in order_ids if statuses.get(o) != 'routed')} orders not routed "
                                 f"after {timeout:.0f} s ({waiting})")
        await asyncio.sleep(0.25)
    waited = time.monotonic() - started
    async with owner_engine.connect() as conn:
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, false)"), {"t": str(tenant_id)})
        twice = (await conn.execute(text("""
            SELECT o.number, (SELECT count(*) FROM fulfilments f WHERE f.tenant_id = o.tenant_id AND f.order_id = o.id),
                   (SELECT count(*) FROM order_events e WHERE e.tenant_id = o.tenant_id AND e.order_id = o.id
                      AND e.kind = 'order.routed')
            FROM orders o WHERE o.tenant_id = :t"""), {"t": tenant_id})).all()
        reservations = await conn.scalar(text(
            "SELECT count(*) FROM inventory_movements WHERE tenant_id = :t AND reason = 'reservation'"),
            {"t": tenant_id})
        reserved = await conn.scalar(text("SELECT sum(reserved) FROM inventory_levels WHERE tenant_id = :t"),
                                     {"t": tenant_id})
    assert [row for row in twice if (row[1], row[2]) != (1, 1)] == []
    assert len(twice) == len(order_ids)
    # Reservations are written per routing pass: at most one per order, and every unit reserved once.
    assert reservations <= len(order_ids) and reserved == len(order_ids)
    return waited


def _dramatiq_workers(supervisor_pid: int) -> list[int]:
    """The worker processes Dramatiq forked (children of the `oms worker` process)."""
    tree: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        tree.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry.name))
    [worker] = [pid for pid in tree.get(supervisor_pid, []) if "oms.cli worker" in commands.get(pid, "")
                or "dramatiq" in commands.get(pid, "")]
    return [pid for pid in tree.get(worker, []) if "dramatiq" in commands.get(pid, "")]


async def test_a_killed_worker_stops_nothing_and_every_order_is_routed_once(client, owner_engine,
                                                                            tmp_path: Path) -> None:
    tenant = await create_tenant()
    await one_warehouse_shop(client, tenant.api_key, location="WH-KILL", sku="KILL-1", quantity=10_000)
    async with oms_run(tmp_path) as stack:
        stream = Stream()
        ready: list[int] = []

        async def killer() -> float:
            while len(stream.accepted) < ORDERS // 3:
                await asyncio.sleep(0.05)
            workers = _dramatiq_workers(stack.process.pid)
            assert workers, "no Dramatiq worker process found"
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            return time.monotonic()

        async def readiness() -> None:
            async with httpx.AsyncClient(base_url=stack.url, timeout=5) as http:
                while stream.posted < ORDERS:
                    ready.append((await http.get("/readyz")).status_code)
                    await asyncio.sleep(0.1)

        killed_at, _, _ = await asyncio.gather(killer(), _stream(stack, tenant.api_key, "KILL-1", stream),
                                               readiness())
        assert stream.refused == [] and len(stream.accepted) == ORDERS
        assert set(ready) == {200}, ready
        await _routed_once(owner_engine, tenant.tenant_id, stream.accepted, timeout=60)
        recovered = time.monotonic() - killed_at
        output = stack.output()
    assert "worker (pid" in output and "stopped unexpectedly" in output and "worker started again" in output, \
        output[-3000:]
    print(f"\nworker killed: every order routed {recovered:.1f} s after the kill (re-drive after {REDRIVE_AFTER_S} s)")


async def test_redis_paused_mid_stream_strands_nothing(client, owner_engine, tmp_path: Path, redis_server) -> None:
    tenant = await create_tenant()
    await one_warehouse_shop(client, tenant.api_key, location="WH-STALL", sku="STALL-1", quantity=10_000)
    async with oms_run(tmp_path) as stack:
        stream = Stream()

        async def stall() -> float:
            while len(stream.accepted) < ORDERS // 3:
                await asyncio.sleep(0.05)
            os.kill(redis_server.pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(8)
            finally:
                os.kill(redis_server.pid, signal.SIGCONT)
            return time.monotonic()

        resumed_at, _ = await asyncio.gather(stall(), _stream(stack, tenant.api_key, "STALL-1", stream))
        assert stream.refused == [] and len(stream.accepted) == ORDERS
        await _routed_once(owner_engine, tenant.tenant_id, stream.accepted, timeout=90)
        recovered = time.monotonic() - resumed_at
    print(f"\nRedis paused 8 s: every order routed {recovered:.1f} s after it resumed "
          f"(re-drive after {REDRIVE_AFTER_S} s)")


@pytest.fixture(autouse=True)
def _no_leftover_messages() -> None:
    """These tests' processes share the test run's Redis: start from an empty queue."""
    import dramatiq

    dramatiq.get_broker().flush_all()
