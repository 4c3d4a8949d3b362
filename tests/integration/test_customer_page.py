"""The customer's page and GET /api/v1/customers/{id}: every channel's orders, figures net of
refunds, returns, refunds, exchanges, notes, open tasks and one timeline; within the reader's
reach; 404 for another company's customer."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from httpx import AsyncClient
from test_orders import (
    act_ok,
    by_priority,
    cancel,
    capture,
    member,
    network,
    order_body,
    publish_rules,
    routed_order,
)

from factories import bearer, create_tenant, login, post_form, unique

API = "/api/v1/customers"


async def customer_id_of(tenant: Any, email: str) -> uuid.UUID:
    from sqlalchemy import select

    from core.db import get_database
    from customers.models import Customer

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        found = await session.scalar(select(Customer.id).where(Customer.tenant_id == tenant.tenant_id,
                                                               Customer.email == email))
    assert found is not None
    return found


async def history(client: AsyncClient, key: str, customer_id: uuid.UUID, expect: int = 200) -> dict[str, Any]:
    response = await client.get(f"{API}/{customer_id}", headers=bearer(key))
    assert response.status_code == expect, response.text
    return response.json()


async def place(client: AsyncClient, tenant: Any, email: str, *lines: tuple[str, int, int], ship: bool = False,
                **options: Any) -> dict[str, Any]:
    order = await routed_order(client, tenant, order_body(*lines, email=email, **options))
    if ship:
        await act_ok(client, tenant.api_key, order["fulfilments"][0]["id"], "accept", "pick", "pack", "ship")
    return order


async def set_placed_at(tenant: Any, order_id: str, days_ago: int) -> None:
    """Orders placed on different days, so that newest-first is unambiguous."""
    from sqlalchemy import update

    from core import clock
    from core.db import get_database
    from orders.models import Order

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await session.execute(update(Order).where(Order.tenant_id == tenant.tenant_id, Order.id == uuid.UUID(order_id))
                              .values(placed_at=clock.now() - timedelta(days=days_ago)))


async def test_figures_count_orders_cancellations_and_refunds_net(client) -> None:
    """Lifetime value is what was captured less refunds, plus what open orders will cost (their
    total less cancelled units); a cancelled order adds nothing; the average is over the orders
    not cancelled; another customer's orders are not counted."""
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 50}, "sku2": {"wh": 50}})
    await publish_rules(client, key, by_priority(types=("warehouse",)))
    email = f"{unique('carla')}@example.test"

    shipped = await place(client, tenant, email, (c["sku"], 2, 2500), ship=True)  # captured 5,000
    await goodwill(tenant, shipped["id"], 1200, "Scratched box")
    open_order = await place(client, tenant, email, (c["sku2"], 1, 4000))  # nothing captured yet: 4,000
    cancelled = await place(client, tenant, email, (c["sku"], 1, 2500))
    assert (await cancel(client, key, cancelled["id"], reason="Changed her mind")).status_code == 200
    partly = await place(client, tenant, email, (c["sku"], 3, 2500))  # one unit cancelled: 5,000
    assert (await cancel(client, key, partly["id"], lines=[{"line_no": 1, "quantity": 1}])).status_code == 200
    await place(client, tenant, f"{unique('other')}@example.test", (c["sku"], 1, 2500))
    for order, days in ((shipped, 30), (open_order, 20), (cancelled, 10), (partly, 5)):
        await set_placed_at(tenant, order["id"], days)

    customer = await history(client, key, await customer_id_of(tenant, email))
    figures = customer["figures"]
    assert figures["currency"] == "EUR"
    assert (figures["orders_count"], figures["cancelled_count"]) == (4, 1)
    assert figures["lifetime_value_minor"] == (5000 - 1200) + 4000 + 0 + 5000
    assert figures["refunded_minor"] == 1200
    assert figures["average_basket_minor"] == round(12800 / 3)  # 4,267
    assert figures["first_order_at"][:10] == shipped_day(customer, shipped["number"])
    assert figures["last_order_at"] > figures["first_order_at"]
    assert figures["stores"] == []  # shipped from the warehouse only
    assert figures["limited_to_locations"] is None

    assert customer["record"]["email"] == email and customer["record"]["name"] == "Bea Buyer"
    assert customer["orders"]["total"] == 4
    assert [o["number"] for o in customer["orders"]["items"]] == [
        partly["number"], cancelled["number"], open_order["number"], shipped["number"]]
    assert [(r["order_number"], r["source"], r["amount_minor"]) for r in customer["refunds"]] == [
        (shipped["number"], "goodwill", 1200)]
    assert customer["returns"] == [] and customer["exchanges"] == [] and customer["open_tasks"] == []

    timeline = customer["timeline"]
    assert [e["at"] for e in timeline] == sorted((e["at"] for e in timeline), reverse=True)
    kinds = [e["kind"] for e in timeline]
    assert kinds.count("order.placed") == 4 and "order.cancelled" in kinds and "refund" in kinds
    assert "order.lines_cancelled" in kinds and "order.shipped" in kinds
    assert timeline[-1] == timeline[-1] | {"kind": "order.placed", "order_number": shipped["number"]}
    # In the company's time zone (Europe/Paris): an offset, not UTC's "Z".
    assert re.search(r"[+-]0[12]:00$", timeline[0]["at"]), timeline[0]["at"]


async def goodwill(tenant: Any, order_id: str, amount: int, reason: str) -> None:
    """A goodwill refund on the order's ledger, as customer service's refund makes it."""
    from sqlalchemy import select

    from core.db import get_database
    from orders import payments
    from orders.models import Order

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        order = await session.scalar(select(Order).where(Order.tenant_id == tenant.tenant_id,
                                                         Order.id == uuid.UUID(order_id)).with_for_update())
        await payments.record_refund(session, order, amount, actor="agent@example.test", reason=reason,
                                     source="goodwill", exact=True)


def shipped_day(customer: dict[str, Any], number: str) -> str:
    [order] = [o for o in customer["orders"]["items"] if o["number"] == number]
    return str(order["placed_at"])[:10]


async def test_notes_are_added_shown_and_audited_and_bad_notes_refused(client, make_client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key)
    await publish_rules(client, key, by_priority())
    email = f"{unique('nora')}@example.test"
    order = await place(client, tenant, email, (c["sku"], 1, 2500))
    customer_id = await customer_id_of(tenant, email)
    await login(client, tenant.email)
    url = f"/app/customers/{customer_id}"

    page = await client.get(url)
    assert page.status_code == 200
    assert "Bea Buyer" in page.text and email in page.text and order["number"] in page.text
    assert "No note yet." in page.text

    empty = await post_form(client, f"{url}/notes", {"body": "   "})
    assert empty.status_code == 422
    assert "Write the note" in empty.text
    too_long = await post_form(client, f"{url}/notes", {"body": "x" * 2001})
    assert too_long.status_code == 422 and "under 2,000 characters" in too_long.text
    assert (await history(client, key, customer_id))["notes"] == []

    added = await post_form(client, f"{url}/notes", {"body": "Prefers a call after 6 pm."})
    assert added.status_code == 303
    assert added.headers["location"] == f"{url}?done=customer_note_added#notes"
    shown = await client.get(url, params={"done": "customer_note_added"})
    assert "Note added" in shown.text and "Prefers a call after 6 pm." in shown.text

    # An order note (another part writes them on the order's timeline as "note.added").
    await order_note(tenant, order["id"], "Asked for gift wrapping.")

    customer = await history(client, key, customer_id)
    assert [(n["about"], n["body"], n["order_number"]) for n in customer["notes"]] == [
        ("order", "Asked for gift wrapping.", order["number"]), ("customer", "Prefers a call after 6 pm.", None)]
    assert customer["notes"][1]["author"] == tenant.email
    assert [e["kind"] for e in customer["timeline"][:2]] == ["note.order", "note.customer"]

    audit = await client.get("/app/settings/audit-log")
    assert "customer.note_added" in audit.text

    # Read-only members read the page but write no note.
    viewer = await make_client()
    await login(viewer, await member(tenant.tenant_id, "read_only"))
    seen = await viewer.get(url)
    assert seen.status_code == 200 and "Prefers a call after 6 pm." in seen.text
    assert 'action="/app/customers/' not in seen.text
    assert (await post_form(viewer, f"{url}/notes", {"body": "sneaky"})).status_code == 403
    assert len((await history(client, key, customer_id))["notes"]) == 2


async def order_note(tenant: Any, order_id: str, text: str) -> None:
    from sqlalchemy import select

    from core.db import get_database
    from orders import lifecycle
    from orders.models import Order

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        order = await session.scalar(select(Order).where(Order.tenant_id == tenant.tenant_id,
                                                         Order.id == uuid.UUID(order_id)))
        lifecycle.record(session, order, "note.added", actor="agent@example.test", reason=text)


async def test_returns_exchanges_and_tasks_are_on_the_history(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 20}, "sku2": {"wh": 20}})
    await publish_rules(client, key, by_priority(types=("warehouse",)))
    email = f"{unique('ezra')}@example.test"
    original = await place(client, tenant, email, (c["sku"], 2, 2500), ship=True)
    replacement = await place(client, tenant, email, (c["sku2"], 1, 4000))  # not captured: adds nothing
    await link_exchange(tenant, replacement["id"], original["id"])
    await set_placed_at(tenant, original["id"], 3)
    number = await add_return(tenant, original, received=True, exchange=(replacement["id"], 2500))
    await open_task(tenant, original["id"])

    customer_id = await customer_id_of(tenant, email)
    customer = await history(client, key, customer_id)
    assert (customer["figures"]["orders_count"], customer["figures"]["lifetime_value_minor"]) == (1, 5000)
    # Once the replacement ships, what the customer paid on top of the returned unit's value counts.
    await act_ok(client, key, replacement["fulfilments"][0]["id"], "accept", "pick", "pack", "ship")
    customer = await history(client, key, customer_id)
    assert customer["figures"]["lifetime_value_minor"] == 5000 + (4000 - 2500)
    assert customer["figures"]["average_basket_minor"] == 6500
    assert customer["orders"]["total"] == 2  # the replacement is listed, not counted as an order of its own
    assert [(x["original_order_number"], x["replacement_order_number"]) for x in customer["exchanges"]] == [
        (original["number"], replacement["number"])]
    [ret] = customer["returns"]
    assert (ret["number"], ret["status"], ret["order_number"], ret["lines_count"], ret["units"]) == (
        number, "received", original["number"], 1, 1)
    assert [t["kind"] for t in customer["open_tasks"]] == ["delivery_exception"]
    kinds = [e["kind"] for e in customer["timeline"]]
    assert kinds.index("task.opened") < kinds.index("return.received") < kinds.index("return.opened")

    await login(client, tenant.email)
    page = (await client.get(f"/app/customers/{customer_id}")).text
    assert number in page and f"Return {number} received" in page
    assert "Delivery problem" in page and replacement["number"] in page
    # The order page links to the customer's history.
    order_page = (await client.get(f"/app/orders/{original['id']}")).text
    assert f'href="/app/customers/{customer_id}"' in order_page


async def link_exchange(tenant: Any, replacement_id: str, original_id: str) -> None:
    from sqlalchemy import update

    from core.db import get_database
    from orders.models import Order

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await session.execute(update(Order).where(Order.tenant_id == tenant.tenant_id,
                                                  Order.id == uuid.UUID(replacement_id))
                              .values(exchange_for=uuid.UUID(original_id)))


async def add_return(tenant: Any, order: dict[str, Any], *, received: bool,
                     exchange: tuple[str, int] | None = None) -> str:
    """A return of one unit of the order's first line, written as the returns part stores it."""
    from core import clock
    from core.db import get_database
    from core.ids import uuid7
    from support.models import Return, ReturnLine

    number = f"R-{uuid.uuid4().hex[:6].upper()}"
    line = order["lines"][0]
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        from sqlalchemy import select

        from orders.models import Order, OrderLine

        stored = await session.scalar(select(Order).where(Order.tenant_id == tenant.tenant_id,
                                                          Order.id == uuid.UUID(order["id"])))
        order_line = await session.scalar(select(OrderLine).where(OrderLine.tenant_id == tenant.tenant_id,
                                                                  OrderLine.order_id == stored.id))
        opened = clock.now() - timedelta(hours=2)
        ret = Return(tenant_id=tenant.tenant_id, id=uuid7(), number=number, order_id=stored.id,
                     order_number=stored.number, customer_id=stored.customer_id, status="received" if received
                     else "requested", method="post", expected_location_code=order["fulfilments"][0]["location"],
                     received_location_code=order["fulfilments"][0]["location"] if received else None,
                     opened_by="agent@example.test", received_by="clerk@example.test" if received else None,
                     created_at=opened, updated_at=opened,
                     received_at=opened + timedelta(hours=1) if received else None,
                     exchange_order_id=uuid.UUID(exchange[0]) if exchange else None,
                     exchange_credit_minor=exchange[1] if exchange else 0)
        session.add(ret)
        await session.flush()
        session.add(ReturnLine(tenant_id=tenant.tenant_id, id=uuid7(), return_id=ret.id, order_line_id=order_line.id,
                               line_no=line["line_no"], sku=line["sku"], quantity=1, reason_code="too_small"))
    return number


async def open_task(tenant: Any, order_id: str) -> None:
    from sqlalchemy import select

    from core.db import get_database
    from orders import service_tasks
    from orders.models import Order

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        order = await session.scalar(select(Order).where(Order.tenant_id == tenant.tenant_id,
                                                         Order.id == uuid.UUID(order_id)).with_for_update())
        await service_tasks.open_task(session, order, "delivery_exception", "Parcel damaged in transit",
                                      actor="carrier")


async def test_a_store_associate_sees_only_their_locations_orders(client, make_client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 10, "store": 5}, "sku2": {"wh": 10}})
    await publish_rules(client, key, by_priority("Click and collect", types=("store", "warehouse")))
    email = f"{unique('sam')}@example.test"
    pickup = await place(client, tenant, email, (c["sku"], 1, 2500), pickup=c["store"])
    home = await place(client, tenant, email, (c["sku2"], 1, 4000))
    assert home["fulfilments"][0]["location"] == c["wh"]
    customer_id = await customer_id_of(tenant, email)

    everything = await history(client, key, customer_id)
    assert everything["orders"]["total"] == 2 and everything["figures"]["lifetime_value_minor"] == 6500
    assert [(s["code"], s["orders"]) for s in everything["figures"]["stores"]] == [(c["store"], 1)]

    associate = await make_client()
    await login(associate, await member(tenant.tenant_id, "store_associate", [c["store"]]))
    page = await associate.get(f"/app/customers/{customer_id}")
    assert page.status_code == 200
    assert pickup["number"] in page.text and home["number"] not in page.text
    assert "You see the orders of your location" in page.text
    assert re.search(r'id="figure-orders"><dt>Orders</dt><dd>1</dd>', page.text)
    added = await post_form(associate, f"/app/customers/{customer_id}/notes", {"body": "Collects on Saturdays."})
    assert added.status_code == 303
    assert [n["body"] for n in (await history(client, key, customer_id))["notes"]] == ["Collects on Saturdays."]

    # An associate of a location with none of the customer's orders doesn't see the customer.
    elsewhere = await make_client()
    await login(elsewhere, await member(tenant.tenant_id, "store_associate", [c["wh2"]]))
    assert (await elsewhere.get(f"/app/customers/{customer_id}")).status_code == 404
    assert (await post_form(elsewhere, f"/app/customers/{customer_id}/notes", {"body": "x"})).status_code == 404


async def test_another_company_unknown_or_malformed_ids_and_narrow_keys_are_refused(client, make_client) -> None:
    from test_orders import key_with_role

    a = await create_tenant()
    c = await network(client, a.api_key)
    await publish_rules(client, a.api_key, by_priority())
    email = f"{unique('alice')}@example.test"
    await capture(client, a.api_key, order_body((c["sku"], 1, 2500), email=email))
    customer_id = await customer_id_of(a, email)
    b = await create_tenant()

    for key in (b.api_key,):
        refused = await client.get(f"{API}/{customer_id}", headers=bearer(key))
        assert refused.status_code == 404
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert email not in refused.text and refused.json()["detail"] == "Customer not found."
    assert (await client.get(f"{API}/{uuid.uuid4()}", headers=bearer(a.api_key))).status_code == 404
    assert (await client.get(f"{API}/not-an-id", headers=bearer(a.api_key))).status_code == 404
    intake = await key_with_role(a, "order_intake")
    assert (await client.get(f"{API}/{customer_id}", headers=bearer(intake))).status_code == 403
    reader = await key_with_role(a, "read_only")
    assert (await history(client, reader, customer_id))["record"]["email"] == email

    intruder = await make_client()
    await login(intruder, b.email)
    page = await intruder.get(f"/app/customers/{customer_id}")
    assert page.status_code == 404 and email not in page.text
    assert (await post_form(intruder, f"/app/customers/{customer_id}/notes", {"body": "hi"})).status_code == 404
    assert (await intruder.get("/app/customers/12345")).status_code == 404
    assert (await history(client, a.api_key, customer_id))["notes"] == []
