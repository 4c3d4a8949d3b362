"""The orders benchmark with promotions: the same end-to-end capture as ``test_orders_bench`` (the
real processes, clients posting orders over HTTP under Idempotency-Keys), run twice on the same
machine at the same time, for a company without promotions and for one with eleven active
(limits, a budget, a per-customer limit, tiers, buy X get Y, a code some orders carry).

Prints captured orders per second for both and their ratio (the issue's aim: no more than 10 %
below), and checks from the database that no order was lost and no limit exceeded. Nothing here
asserts a speed.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from test_orders_bench import (
    ORDERS,
    ROUTE_TIMEOUT_S,
    WEB_PROCESSES,
    WORKER_PROCESSES,
    WORKER_THREADS,
    _capture,
    _checks,
)
from test_orders_bench import _network as network
from test_orders_bench import _order as plain_order

from factories import create_tenant
from processes import start_oms, stop_process, wait_healthy

CODE = "BENCH20"  # carried by one order in five
SINGLE_USE_EVERY = 10  # one order in ten carries a single-use code of its own
BUDGET_MINOR = 50_000
TOTAL_USES = 400


def _promotions() -> list[dict[str, Any]]:
    from rules.promotions import new_promotion

    def made(promotion_id: str, name: str, effect: dict[str, Any], **fields: Any) -> dict[str, Any]:
        promotion = new_promotion(promotion_id, name)
        promotion.update(effect=effect, **fields)
        return promotion

    bench = {"field": "line.category", "op": "eq", "value": "bench"}
    everything = ["line", "order", "shipping"]
    return [
        made("p-code", "Code 20 %", {"kind": "percent_off", "target": "order", "percent": 20, "lines": None},
             coupon=True, priority=5, combines_with=everything),
        made("p-single", "Single-use 5 EUR", {"kind": "fixed_off", "target": "order", "amount_minor": 500,
                                               "lines": None}, coupon=True, priority=6, combines_with=everything),
        made("p-limited", "First 400 orders 15 %", {"kind": "percent_off", "target": "order", "percent": 15,
                                                     "lines": None}, priority=10, combines_with=everything,
             limits={"total_uses": TOTAL_USES, "per_customer": None, "budget_minor": None}),
        made("p-budget", "2 EUR while the budget lasts", {"kind": "fixed_off", "target": "order",
                                                         "amount_minor": 200, "lines": None},
             priority=20, combines_with=everything,
             limits={"total_uses": None, "per_customer": None, "budget_minor": BUDGET_MINOR}),
        made("p-customer", "Twice per customer 3 %", {"kind": "percent_off", "target": "order", "percent": 3,
                                                     "lines": None}, priority=30, combines_with=everything,
             limits={"total_uses": None, "per_customer": 2, "budget_minor": None}),
        made("p-tiers", "Spend more, save more", {"kind": "tiered", "tiers": [
            {"min_minor": 4000, "percent": 5}, {"min_minor": 6000, "percent": 8}]}, priority=90,
             combines_with=everything),
        made("p-lines", "Bench items 10 %", {"kind": "percent_off", "target": "lines", "percent": 10,
                                             "lines": bench}, priority=50, combines_with=everything),
        made("p-bxgy", "Buy 2 get 1 half price", {"kind": "buy_x_get_y", "buy": {"lines": bench, "quantity": 2},
                                                  "get": {"lines": bench, "quantity": 1, "percent": 50},
                                                  "max_per_order": 1}, priority=40, combines_with=everything),
        made("p-shipping", "Free shipping over 50", {"kind": "free_shipping"}, combines_with=everything,
             when={"field": "order.total", "op": "gte", "value": 5000}),
        made("p-market", "Marketplace only", {"kind": "percent_off", "target": "order", "percent": 7,
                                              "lines": None}, channels=["marketplace"]),
        made("p-weekend", "Weekend 4 %", {"kind": "percent_off", "target": "order", "percent": 4, "lines": None},
             priority=95, when={"field": "now.weekday", "op": "in", "value": ["sat", "sun"]}),
    ]


def _promoted_order(n: int, skus: list[str]) -> dict[str, Any]:
    body = plain_order(n, skus)
    codes = ([CODE] if n % 5 == 0 else []) + ([f"S-{n:06d}"] if n % SINGLE_USE_EVERY == 3 else [])
    return {**body, "coupon_codes": codes} if codes else body


def _shifted(make: Callable[[int, list[str]], dict[str, Any]], offset: int) -> Callable[..., dict[str, Any]]:
    """Orders numbered from ``offset`` (a second run sends new channel order numbers)."""
    return lambda n, skus: make(n + offset, skus)


async def _set_up_promotions(client: httpx.AsyncClient, tenant_id: uuid.UUID, orders: int) -> None:
    from core.db import get_database
    from marketing.models import Coupon

    document = {"promotions": _promotions(), "within_class": "priority"}
    saved = await client.put("/api/v1/rule-sets/promotions/draft", json={"document": document})
    assert saved.status_code == 200, saved.text
    assert (await client.post("/api/v1/rule-sets/promotions/versions", json={})).status_code == 201
    async with get_database().transaction(tenant_id=tenant_id) as session:
        session.add(Coupon(tenant_id=tenant_id, code=CODE, promotion_id="p-code"))
        session.add_all(Coupon(tenant_id=tenant_id, code=f"S-{n:06d}", promotion_id="p-single", max_uses=1)
                        for n in range(3, orders, SINGLE_USE_EVERY))


async def _routed(owner_engine: Any, tenant_id: uuid.UUID) -> None:
    """Wait for the worker to route what was captured, so that the next run has the machine."""
    deadline = time.monotonic() + ROUTE_TIMEOUT_S
    async with owner_engine.connect() as conn:
        while time.monotonic() < deadline:
            await conn.execute(text("SELECT set_config('app.tenant_id', :t, false)"), {"t": str(tenant_id)})
            if not (await conn.execute(text("SELECT count(*) FROM orders WHERE tenant_id = :t AND "
                                            "status = 'received'"), {"t": tenant_id})).scalar():
                return
            await asyncio.sleep(0.5)


async def _spent(owner_engine: Any, tenant_id: uuid.UUID) -> dict[str, int]:
    async with owner_engine.connect() as conn:
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, false)"), {"t": str(tenant_id)})
        given = dict((await conn.execute(text(
            "SELECT promotion_id, sum(amount_minor - given_back_minor) FROM redemptions WHERE tenant_id = :t "
            "GROUP BY promotion_id"), {"t": tenant_id})).all())
        uses = dict((await conn.execute(text(
            "SELECT promotion_id, count(*) FROM redemptions WHERE tenant_id = :t AND NOT use_given_back "
            "GROUP BY promotion_id"), {"t": tenant_id})).all())
        over_customer = (await conn.execute(text(
            "SELECT count(*) FROM (SELECT 1 FROM redemptions WHERE tenant_id = :t AND promotion_id = 'p-customer' "
            "AND NOT use_given_back GROUP BY customer_id HAVING count(*) > 2) o"), {"t": tenant_id})).scalar()
        single_over = (await conn.execute(text(
            "SELECT count(*) FROM (SELECT 1 FROM redemptions WHERE tenant_id = :t AND promotion_id = 'p-single' "
            "AND NOT use_given_back GROUP BY coupon_id HAVING count(*) > 1) o"), {"t": tenant_id})).scalar()
        orders = (await conn.execute(text("SELECT count(DISTINCT order_id) FROM redemptions WHERE tenant_id = :t"),
                                     {"t": tenant_id})).scalar()
    exceeded = int(given.get("p-budget", 0) > BUDGET_MINOR) + int(uses.get("p-limited", 0) > TOTAL_USES) \
        + int(over_customer or 0) + int(single_over or 0)
    return {"exceeded": exceeded, "discounted_orders": int(orders or 0), "given": int(sum(given.values()))}


async def test_orders_with_promotions_against_without(owner_engine: Any, tmp_path: Path) -> None:
    from core.embedded import free_port

    plain, promoted = await create_tenant(), await create_tenant()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PUBLIC_URL=base, LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
               DB_POOL_SIZE="20")
    processes = [start_oms(["web", "--port", str(port), "--workers", str(WEB_PROCESSES)], env, tmp_path / "web.log"),
                 start_oms(["worker", "--processes", str(WORKER_PROCESSES), "--threads", str(WORKER_THREADS)], env,
                           tmp_path / "worker.log"),
                 start_oms(["scheduler"], env, tmp_path / "scheduler.log")]
    rates: dict[str, float] = {}
    try:
        wait_healthy(f"{base}/healthz", processes[0][0], tmp_path / "web.log")
        skus: dict[uuid.UUID, list[str]] = {}
        for tenant in (plain, promoted):
            async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {tenant.api_key}"},
                                         timeout=60) as client:
                skus[tenant.tenant_id] = await network(client)
                if tenant is promoted:
                    await _set_up_promotions(client, tenant.tenant_id, 2 * ORDERS)
        # Without, then with, then each again: the machine's drift falls on both alike.
        runs = [(plain, "without", plain_order), (promoted, "with", _promoted_order)]
        accepted: dict[str, dict[str, str]] = {"without": {}, "with": {}}
        spans: dict[str, float] = {"without": 0.0, "with": 0.0}
        for half in (0, 1):
            for tenant, name, make in runs:
                got, _, seconds = await _capture(base, tenant.api_key, skus[tenant.tenant_id],
                                                 make_order=_shifted(make, half * ORDERS))
                accepted[name].update(got)
                spans[name] += seconds
                await _routed(owner_engine, tenant.tenant_id)
        rates = {name: len(accepted[name]) / spans[name] for name in spans}
        checks = {name: await _checks(owner_engine, tenant.tenant_id, accepted[name])
                  for tenant, name, _ in runs}
        spent = await _spent(owner_engine, promoted.tenant_id)
    finally:
        for process, log_file in processes:
            stop_process(process)
            log_file.close()
    print(f"\nbench orders_without_promotions: {rates['without']:.0f} orders/s")
    print(f"bench orders_with_promotions: {rates['with']:.0f} orders/s")
    print(f"bench orders_promotions_ratio: {rates['with'] / rates['without']:.2f} (with / without; aim >= 0.90)")
    print(f"bench orders_promotions_discounted: {spent['discounted_orders']} of {len(accepted['with'])} orders, "
          f"{spent['given'] / 100:.2f} EUR given")
    print(f"bench orders_promotions_limits_exceeded: {spent['exceeded']}")
    for name in ("without", "with"):
        print(f"bench orders_{name}_promotions_lost: {checks[name]['lost']} orders, "
              f"duplicated: {checks[name]['duplicated']}, oversold: {checks[name]['oversold']}")
