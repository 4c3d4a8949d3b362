"""The console's home: the company's KPI cards and charts from real orders (the numbers checked
against the orders themselves), each chart's CSV, a store associate's home with their location
only, customer service's tasks and returns of the day, the checklist folding away once complete,
plain errors for a bad period, and another company's figures never shown."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from test_orders import act_ok, by_priority, cancel, member, network, order_body, publish_rules, routed_order
from test_returns import accept_returns

from core import clock
from core.locale import format_money
from factories import bearer, create_tenant, login, run_outbox_inline
from inventory_factories import API

LOCALE = "fr_FR"  # a French company's console (create_tenant: country FR)


def card(html: str, key: str) -> dict[str, str]:
    """A KPI card's value, change and previous value as the page shows them."""
    found = re.search(rf'data-kpi="{key}">(.*?)</div>', html, re.S)
    assert found, f"no card {key}"
    block = found.group(1)
    value = re.search(r'class="kpi-value">(.*?)</dd>', block, re.S)
    previous = re.search(r"<small class=\"muted\">vs (.*?)</small>", block, re.S)
    change = re.search(r'class="kpi-change[^"]*">(.*?)<small', block, re.S)
    return {"value": value.group(1).strip() if value else "",
            "previous": previous.group(1).strip() if previous else "",
            "change": re.sub(r"<[^>]+>", "", change.group(1)).strip() if change else ""}


def csv_rows(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def local_day(at: datetime) -> date:
    return at.astimezone(ZoneInfo("Europe/Paris")).date()


async def refresh_figures(tenant_id: uuid.UUID) -> None:
    """What the figures worker does: the day rows of past days."""
    from core.db import get_database
    from orders import figures

    async with get_database().transaction(tenant_id=tenant_id) as session:
        await figures.refresh(session, tenant_id, "Europe/Paris")


async def shop(client: Any, rule_name: str = "Priority rule") -> tuple[Any, dict[str, str]]:
    tenant = await create_tenant()
    c = await network(client, tenant.api_key, stock={"sku": {"wh": 50}, "sku2": {"wh": 50, "store": 5}})
    await publish_rules(client, tenant.api_key, by_priority(rule_name))
    return tenant, c


async def test_the_owners_home_shows_cards_and_charts_that_match_the_orders(client) -> None:
    tenant, c = await shop(client, "DASH-RULE")
    week_ago = clock.now() - timedelta(days=7)
    before = []
    with clock.frozen_at(week_ago):  # the same weekday last week: what today is compared with
        for _ in range(2):
            before.append(await routed_order(client, tenant, order_body((c["sku"], 1, 2500))))
    today = [await routed_order(client, tenant, order_body((c["sku"], 2, 2500))),
             await routed_order(client, tenant, order_body((c["sku2"], 1, 4000), shipping=500)),
             await routed_order(client, tenant, order_body((c["sku"], 1, 2500), channel="phone"))]
    cancelled = today[2]
    assert (await cancel(client, tenant.api_key, cancelled["id"], reason="changed mind")).status_code == 200
    await refresh_figures(tenant.tenant_id)

    await login(client, tenant.email)
    home = await client.get("/app")
    assert home.status_code == 200
    html = home.text
    gross = sum(o["total_minor"] for o in today)
    units = sum(line["quantity"] for o in today for line in o["lines"])
    assert card(html, "orders") == {"value": "3", "previous": "2", "change": "▲ +50\u00a0% (up, good)"}
    assert card(html, "gross_sales")["value"] == format_money(gross, "EUR", LOCALE)
    assert card(html, "gross_sales")["previous"] == format_money(sum(o["total_minor"] for o in before), "EUR",
                                                                 LOCALE)
    # Cancelled: its value is no sale (nothing was captured yet, so nothing was refunded).
    assert card(html, "net_sales")["value"] == format_money(gross - cancelled["total_minor"], "EUR", LOCALE)
    assert card(html, "units")["value"] == str(units)
    assert card(html, "average_basket")["value"] == format_money(round(gross / 3), "EUR", LOCALE)
    assert card(html, "refunds")["value"] == format_money(0, "EUR", LOCALE)
    assert card(html, "goodwill")["change"] == "—"
    assert card(html, "split_rate")["value"] == "0\u00a0%"
    # Every chart is there, with its figures on hover and its CSV.
    for name in ("orders", "sales", "channels", "locations", "rules", "stockouts"):
        assert f'id="chart-{name}"' in html
        assert f'href="/app/dashboard/charts/{name}.csv?period=today"' in html
    assert "<title>Web: 2 orders</title>" in html and "<title>Phone: 1 orders</title>" in html
    assert "DASH-RULE: 3 orders: 100\u00a0% of orders" in html
    assert "Getting started" in html  # the checklist stays above while incomplete

    by_hour = csv_rows(await client.get("/app/dashboard/charts/orders.csv", params={"period": "today"}))
    assert sum(int(r["orders"] or 0) for r in by_hour) == 3 and sum(int(r["previous orders"]) for r in by_hour) == 2
    assert len(by_hour) == 24
    sales = csv_rows(await client.get("/app/dashboard/charts/sales.csv", params={"period": "today"}))
    assert sum(float(r["gross sales (EUR)"] or 0) for r in sales) == gross / 100
    channels = await client.get("/app/dashboard/charts/channels.csv", params={"period": "today"})
    assert {(r["channel"], r["orders"]) for r in csv_rows(channels)} == {("web", "2"), ("phone", "1")}
    day = local_day(clock.now())
    assert channels.headers["content-disposition"] == f'attachment; filename="channels-{day.isoformat()}.csv"'
    shipped = csv_rows(await client.get("/app/dashboard/charts/locations.csv", params={"period": "today"}))
    # Routed to the warehouse, nothing shipped yet: it is listed, with none.
    assert shipped == [{"location": c["wh"], "shipped or ready": "0"}]

    # A chosen range: the days of both weeks, the previous range empty ("—").
    first = (day - timedelta(days=7)).isoformat()
    ranged = await client.get("/app", params={"period": "range", "from": first, "to": day.isoformat()})
    assert ranged.status_code == 200
    assert card(ranged.text, "orders") == {"value": "5", "previous": "0", "change": "—"}
    daily = csv_rows(await client.get("/app/dashboard/charts/orders.csv",
                                      params={"period": "range", "from": first, "to": day.isoformat()}))
    assert [(r["day"], r["orders"]) for r in daily if r["orders"] != "0"] == [(first, "2"), (day.isoformat(), "3")]

    # The live block alone, for the same period.
    block = await client.get("/app/dashboard/figures", params={"period": "range", "from": first,
                                                                "to": day.isoformat()})
    assert block.status_code == 200 and "<html" not in block.text and 'data-kpi="orders"' in block.text
    assert card(block.text, "orders")["value"] == "5"
    assert 'sse-connect="/app/dashboard/live"' in html
    assert 'hx-get="/app/dashboard/figures?period=today"' in html


async def test_operations_lists_link_where_each_is_handled(client) -> None:
    tenant, c = await shop(client)
    late = await routed_order(client, tenant, order_body((c["sku"], 1, 2500)))
    held = await routed_order(client, tenant, order_body((c["sku2"], 500, 4000)))  # more than anyone has
    assert held["status"] in ("on_hold", "backordered"), held
    await login(client, tenant.email)
    with clock.frozen_at(clock.now() + timedelta(hours=30)):  # past the warehouse's 24 h promise
        html = (await client.get("/app")).text
    late_list = html[html.index('id="ops-late"'):html.index('id="ops-hold"')]
    assert f'href="/app/orders/{late["id"]}"' in late_list and late["number"] in late_list
    waiting = html[html.index('id="ops-hold"'):html.index('id="ops-stuck"')]
    assert f'href="/app/orders/{held["id"]}"' in waiting
    assert "Nothing stuck" in html


async def test_a_store_associate_sees_their_location_only(client) -> None:
    tenant, c = await shop(client)
    here = await routed_order(client, tenant, order_body((c["sku2"], 1, 4000), pickup=c["store"]))
    elsewhere = await routed_order(client, tenant, order_body((c["sku"], 1, 2500)))
    assert here["fulfilments"][0]["location"] == c["store"] and elsewhere["fulfilments"][0]["location"] == c["wh"]
    await refresh_figures(tenant.tenant_id)
    associate = await member(tenant.tenant_id, "store_associate", [c["store"]])
    await login(client, associate)
    later = clock.now() + timedelta(hours=30)  # both late, and "today" is the day after they were placed
    days = {"period": "range", "from": local_day(clock.now()).isoformat(), "to": local_day(later).isoformat()}
    with clock.frozen_at(later):
        home = await client.get("/app", params=days, follow_redirects=False)
    assert home.status_code == 200
    html = home.text
    assert c["store"] in html and card(html, "fulfilments")["value"] == "1"
    assert card(html, "open")["value"] == "1"
    assert here["number"] in html  # late at their store
    assert f'hx-get="/app/fulfilments?location={c["store"]}"' in html  # their queue
    for other in (c["wh"], c["wh2"], elsewhere["number"], elsewhere["fulfilments"][0]["number"], "Lyon DC"):
        assert other not in html
    assert "Getting started" not in html and 'id="chart-' not in html
    assert (await client.get("/app", params={"location": c["wh"]})).status_code == 404
    assert (await client.get("/app/dashboard/charts/orders.csv")).status_code == 403
    block = await client.get("/app/dashboard/figures", params={"period": "week"})
    assert block.status_code == 200 and c["store"] in block.text and c["wh"] not in block.text


async def test_customer_services_home_is_their_tasks_and_the_days_returns(client) -> None:
    from sqlalchemy import select

    from core.db import get_database
    from orders import service_tasks
    from orders.models import Order

    tenant, c = await shop(client)
    key = tenant.api_key
    orders = [await routed_order(client, tenant, order_body((c["sku"], 1, 2500))) for _ in range(2)]
    agent = await member(tenant.tenant_id, "customer_service")
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        tasks = []
        for made in orders:
            order = await session.scalar(select(Order).where(Order.tenant_id == tenant.tenant_id,
                                                             Order.id == uuid.UUID(made["id"])).with_for_update())
            tasks.append(await service_tasks.open_task(session, order, "delivery_exception", "Parcel lost",
                                                       actor="test"))
    assigned = await client.post(f"{API}/service-tasks/{tasks[0].id}/assign", headers=bearer(key),
                                 json={"assignee": agent})
    assert assigned.status_code == 200, assigned.text
    await accept_returns(client, key, c["wh"])
    [parcel] = orders[1]["fulfilments"]
    await act_ok(client, key, parcel["id"], "accept", "pick", "pack")
    await act_ok(client, key, parcel["id"], "ship", carrier="colissimo", tracking_number="6A12345678901")
    opened = await client.post(f"{API}/returns", headers=bearer(key), json={
        "order_id": orders[1]["id"], "lines": [{"line_no": 1, "quantity": 1, "reason_code": "too_small"}]})
    assert opened.status_code == 201, opened.text

    await login(client, agent)
    html = (await client.get("/app")).text
    mine = html[html.index('id="my-tasks"'):html.index('id="unassigned-tasks"')]
    assert f'href="/app/service-tasks/{tasks[0].id}"' in mine and orders[0]["number"] in mine
    unassigned = html[html.index('id="unassigned-tasks"'):html.index('id="todays-returns"')]
    assert f'href="/app/service-tasks/{tasks[1].id}"' in unassigned
    returns = html[html.index('id="todays-returns"'):]
    assert opened.json()["number"] in returns and f'href="/app/returns/{opened.json()["id"]}"' in returns
    assert 'id="chart-' not in html and "period-picker" not in html


async def test_the_checklist_folds_away_once_every_step_is_done(client) -> None:
    fresh = await create_tenant()
    await login(client, fresh.email)
    html = (await client.get("/app")).text
    assert '<article class="checklist"' in html and "1 of 7 done" in html  # its API key is made with it
    assert "No orders yet in this period" in html  # the charts' empty states guide

    tenant, c = await shop(client)
    await routed_order(client, tenant, order_body((c["sku"], 1, 2500)))
    await member(tenant.tenant_id, "merchandiser")
    await login(client, tenant.email)
    html = (await client.get("/app")).text
    assert '<article class="checklist"' not in html
    folded = re.search(r'<details class="checklist checklist-done"[^>]*>\s*<summary>(.*?)</summary>', html)
    assert folded and folded.group(1) == "Getting started: all 7 steps done"
    assert " open" not in folded.group(0)


async def test_a_bad_period_is_a_plain_error_on_the_page(client) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    bad = await client.get("/app", params={"period": "range", "from": "2026-13-01", "to": "soon"})
    assert bad.status_code == 422
    assert "&#39;2026-13-01&#39; is not a date: write it as YYYY-MM-DD." in bad.text
    assert "&#39;soon&#39; is not a date" in bad.text and 'data-kpi="orders"' in bad.text  # today's, meanwhile
    unknown = await client.get("/app", params={"period": "forever"})
    assert unknown.status_code == 422 and "Unknown period" in unknown.text
    too_long = await client.get("/app", params={"period": "range", "from": "2020-01-01", "to": "2022-01-01"})
    assert too_long.status_code == 422 and "400 days at most" in too_long.text
    refused = await client.get("/app/dashboard/charts/orders.csv", params={"period": "range", "from": "x"})
    assert refused.status_code == 422
    assert "is not a date: write it as YYYY-MM-DD" in refused.text and "Choose the end date" in refused.text
    assert (await client.get("/app/dashboard/charts/nothing.csv")).status_code == 404
    assert (await client.get("/app/dashboard/charts/orders.json")).status_code == 404


async def test_another_companys_figures_never_appear(client, make_client) -> None:
    tenant, c = await shop(client, "ALPHA-ONLY-RULE")
    order = await routed_order(client, tenant, order_body((c["sku"], 3, 2500), channel="marketplace"))
    await refresh_figures(tenant.tenant_id)
    await run_outbox_inline(tenant.tenant_id)
    other = await create_tenant()
    intruder = await make_client()
    await login(intruder, other.email)
    for params in ({}, {"period": "month"}):
        html = (await intruder.get("/app", params=params)).text
        assert card(html, "orders")["value"] == "0"
        for secret in ("ALPHA-ONLY-RULE", order["number"], c["wh"], "Marketplace"):
            assert secret not in html
    for name in ("orders", "channels", "rules", "locations", "stockouts"):
        text = (await intruder.get(f"/app/dashboard/charts/{name}.csv", params={"period": "month"})).text
        assert "ALPHA-ONLY-RULE" not in text and "marketplace" not in text and c["wh"] not in text
