"""Every route the app registers, called by a second tenant against the first tenant's objects.

Nothing here lists routes by hand: a route added later is enumerated and tried the same way.
Each uuid path parameter is filled with every id tenant A owns (whatever the table), each
string parameter with a forged token naming tenant A. Console routes go with tenant B's
signed-in session (and a valid CSRF token), API routes with tenant B's key. Routes that
address an object must answer 403 or 404; no response may contain anything of A's; and A's
rows must be exactly as they were.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import pytest
from litestar.routes import HTTPRoute
from sqlalchemy import text

from factories import bearer, create_tenant, csrf_headers, login, mail_to, post_form, run_outbox_inline

PARAM = re.compile(r"\{(\w+):(\w+)\}")
SKIP_PREFIXES = ("/static", "/api/docs")
# Company-wide event streams run for minutes; what they send is checked by the orders tests.
STREAMS = {"/app/orders/live", "/app/fulfilments/live", "/app/dashboard/live", "/app/service-tasks/live",
           "/app/billing/usage/live"}
VOLATILE = {"sent_at", "attempts", "last_error", "last_used_at"}
KEYED_OTHERWISE = {  # tenant tables with no id column
    "customer_search_keys": "key, customer_id", "marketing_settings": "tenant_id",
    "promotion_counters": "promotion_id", "promotion_customer_uses": "promotion_id, customer_id",
    "campaign_recipients": "campaign_id, customer_id",
}


async def tenant_tables(owner_engine) -> list[str]:
    async with owner_engine.connect() as conn:
        return list((await conn.execute(text("""
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
            WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1
        """))).scalars())


async def snapshot(owner_engine, tables: list[str], tenant_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """Every row tenant A owns, read as the owner with A's scope set (RLS is forced even for it)."""
    result: dict[str, list[dict[str, Any]]] = {}
    async with owner_engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)})
        for table in tables:
            order = KEYED_OTHERWISE.get(table, "id")
            rows = (await conn.execute(text(f"SELECT * FROM {table} WHERE tenant_id = :t ORDER BY {order}"),
                                       {"t": tenant_id})).mappings().all()
            result[table] = [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]
    return result


async def build_tenant_a(client, make_client) -> tuple[Any, dict[str, str]]:
    """Tenant A with one of everything the kernel has: members, invitation, keys, mail, stuck work."""
    from core.dead_letters import record_failure

    a = await create_tenant(name=f"Alpha-{uuid.uuid4().hex[:8]}")
    await login(client, a.email)
    member_email = f"alpha-member-{uuid.uuid4().hex[:6]}@example.test"
    invited = (await client.post("/api/v1/invitations", json={"email": member_email, "role": "marketing"},
                                 headers=bearer(a.api_key))).json()
    assert invited["email"] == member_email
    await client.post("/api/v1/invitations", json={"email": "pending@example.test", "role": "read_only"},
                      headers=bearer(a.api_key))
    await run_outbox_inline(a.tenant_id)
    [invitation_mail] = await mail_to(a.tenant_id, member_email)
    link = re.search(r"/invitations/(inv_[\w-]+)", invitation_mail.body_text).group(1)
    teammate = await make_client()
    await teammate.get("/login")
    accepted = await post_form(teammate, f"/invitations/{link}", {"name": "Alpha Mate",
                                                                 "password": "quiet river stones"})
    assert accepted.status_code == 303
    await post_form(client, "/app/settings/api-keys", {"name": "Alpha second key"})
    await record_failure(message_id=uuid.uuid4().hex, actor_name="mail.send", queue_name="default",
                         kwargs={"tenant_id": str(a.tenant_id), "message_id": str(uuid.uuid4())},
                         error="RuntimeError: alpha-failure-marker", retries=3)
    await add_inventory(client, a)
    hook_secret = await add_rules_and_orders(client, a)
    await add_shipping_and_mail_texts(client, a)
    await add_customer_note(client, a)
    await add_service_task(client, a)
    await add_return_policy_and_goodwill_request(client, a)
    await add_billing(client, a)
    await add_marketing(client, a)
    secrets = {"hook_secret": hook_secret, "customer": "alpha-customer@example.test", "name": a.name,
               "email": a.email, "member": member_email, "key": a.api_key, "failure": "alpha-failure-marker",
               "sku": "ALPHA-SECRET-SKU", "location": "ALPHA-DEPOT", "rule": "ALPHA-SECRET-RULE",
               "order": "ALPHA-ORDER-1", "hook": "alpha-hooks", "stripe": "ALPHA_STRIPE",
               "tracking": "ALPHATRACK123", "mail_text": "ALPHA-SECRET-SUBJECT",
               "return_note": "ALPHA-RETURN-NOTE"}
    secrets["customer_note"] = "ALPHA-SECRET-NOTE"
    secrets["task_comment"] = "ALPHA-TASK-COMMENT"
    secrets["goodwill"] = "ALPHA-GOODWILL-REASON"
    secrets["billing"] = "ALPHA-BILLING-LEGAL-NAME"
    secrets["credit"] = "ALPHA-CREDIT-REASON"
    secrets.update(segment="ALPHA-SECRET-SEGMENT", promotion="ALPHA-SECRET-PROMO", coupon="ALPHACODE42",
                   campaign="ALPHA-SECRET-CAMPAIGN")
    return a, secrets


async def add_marketing(client, a) -> None:
    """Tenant A's segment, a promotion in force with a coupon code, an order that used it (a
    redemption, counters), a batch of codes, a scheduled campaign and its marketing settings."""
    from datetime import timedelta

    from core import clock

    key = bearer(a.api_key)
    segment = await client.post("/api/v1/segments", headers=key, json={
        "name": "ALPHA-SECRET-SEGMENT", "condition": {"field": "customer.orders_count", "op": "gte", "value": 1}})
    assert segment.status_code == 201, segment.text
    document = {"within_class": "priority", "promotions": [{
        "id": "p-alpha", "name": "ALPHA-SECRET-PROMO", "enabled": True, "priority": 100, "exclusive": False,
        "combines_with": [], "when": None, "channels": [], "segment": None, "coupon": True,
        "effect": {"kind": "percent_off", "target": "order", "percent": 10, "lines": None},
        "limits": {"total_uses": 100, "per_customer": 5, "budget_minor": 100000}}]}
    saved = await client.put("/api/v1/rule-sets/promotions/draft", headers=key, json={"document": document})
    assert saved.status_code == 200, saved.text
    published = await client.post("/api/v1/rule-sets/promotions/versions", headers=key, json={})
    assert published.status_code == 201, published.text
    coupon = await client.post("/api/v1/coupons", headers=key, json={"promotion_id": "p-alpha",
                                                                     "code": "ALPHACODE42"})
    assert coupon.status_code == 201, coupon.text
    batch = await client.post("/api/v1/coupon-batches", headers=key, json={"promotion_id": "p-alpha", "count": 1,
                                                                           "prefix": "ALPHAB"})
    assert batch.status_code == 201, batch.text
    order = await client.post("/api/v1/orders", headers=key, json={
        "channel": "web", "external_number": "ALPHA-ORDER-PROMO", "currency": "EUR", "coupon_codes": ["ALPHACODE42"],
        "lines": [{"sku": "ALPHA-SECRET-SKU", "quantity": 1, "unit_price_minor": 1999}],
        "customer": {"email": "alpha-customer@example.test", "name": "Alpha Customer", "email_consent": True},
        "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.8, "longitude": 2.3}},
        "total_minor": 1999})
    assert order.status_code == 201, order.text
    assert order.json()["discount_minor"] == 199, order.json()  # 10 % of 19.99, rounded down
    campaign = await client.post("/api/v1/campaigns", headers=key, json={
        "name": "ALPHA-SECRET-CAMPAIGN", "segment_id": segment.json()["id"], "subject": "Alpha news",
        "body": "Hello", "coupon_code": "ALPHACODE42",
        "scheduled_at": (clock.now() + timedelta(days=3)).isoformat()})
    assert campaign.status_code == 201, campaign.text
    scheduled = await client.post(f"/api/v1/campaigns/{campaign.json()['id']}/schedule", headers=key, json={})
    assert scheduled.status_code in (200, 201), scheduled.text
    settings = await client.put("/api/v1/settings/marketing", headers=key,
                                json={"capture_mode": "apply", "refuse_invalid_coupons": False})
    assert settings.status_code == 200, settings.text


async def add_inventory(client, a) -> None:
    """A location, a product, stock, a reservation, a feed and a stock exception for tenant A."""
    from core.db import get_database
    from inventory import ledger

    key = bearer(a.api_key)
    location = await client.post("/api/v1/locations", headers=key, json={
        "code": "ALPHA-DEPOT", "name": "Alpha depot", "kind": "warehouse", "country": "FR",
        "timezone": "Europe/Paris", "ships_to_customers": True, "accepts_returns": True})
    assert location.status_code == 201, location.text
    product = await client.post("/api/v1/products", headers=key,
                                json={"sku": "ALPHA-SECRET-SKU", "name": "Alpha product", "price_minor": 1999})
    assert product.status_code == 201, product.text
    adjusted = await client.post("/api/v1/inventory/adjustments", headers=key,
                                 json={"sku": "ALPHA-SECRET-SKU", "location": "ALPHA-DEPOT", "quantity": 5})
    assert adjusted.status_code == 201, adjusted.text
    async with get_database().transaction(tenant_id=a.tenant_id) as session:
        await ledger.reserve(session, a.tenant_id, [ledger.Line(uuid.UUID(product.json()["id"]),
                                                                      uuid.UUID(location.json()["id"]), 3)],
                                reference="order A-1", actor="test")
    feed = await client.post("/api/v1/inventory/feeds", headers=key, json={
        "feed_id": "alpha-feed-1", "kind": "snapshot",
        "rows": [{"sku": "ALPHA-SECRET-SKU", "location": "ALPHA-DEPOT", "quantity": 1}]})
    assert feed.status_code == 202, feed.text
    await run_outbox_inline(a.tenant_id)
    applied = await client.get(f"/api/v1/inventory/feeds/{feed.json()['id']}", headers=key)
    assert applied.json()["stock_exceptions"] == 1


async def add_rules_and_orders(client, a) -> str:
    """A routing draft, a version in force and a scheduled one, a routed order with its customer,
    fulfilment and timeline, a Stripe account, and a webhook endpoint with a delivery, for tenant
    A; returns the endpoint's secret."""
    from datetime import timedelta

    from core import clock
    from rules.routing import new_rule

    key = bearer(a.api_key)
    document = {"rules": [new_rule("alpha", "ALPHA-SECRET-RULE")], "otherwise": "hold"}
    saved = await client.put("/api/v1/rule-sets/routing/draft", headers=key, json={"document": document})
    assert saved.status_code == 200, saved.text
    for body in ({}, {"effective_from": (clock.now() + timedelta(days=30)).isoformat()}):
        published = await client.post("/api/v1/rule-sets/routing/versions", headers=key, json=body)
        assert published.status_code == 201, published.text
    adjusted = await client.post("/api/v1/inventory/adjustments", headers=key,
                                 json={"sku": "ALPHA-SECRET-SKU", "location": "ALPHA-DEPOT", "quantity": 10})
    assert adjusted.status_code == 201, adjusted.text
    stripe = await client.put("/api/v1/payment-accounts/stripe", headers=key,
                              json={"secret_key": "sk_test_ALPHA_STRIPE_SECRET"})
    assert stripe.status_code == 200, stripe.text
    hook = await client.post("/api/v1/webhook-endpoints", headers=key, json={
        "url": "http://127.0.0.1:9/alpha-hooks", "events": ["fulfilment.created"]})
    assert hook.status_code == 201, hook.text
    order = await client.post("/api/v1/orders", headers=key, json={
        "channel": "web", "external_number": "ALPHA-ORDER-1", "currency": "EUR",
        "lines": [{"sku": "ALPHA-SECRET-SKU", "quantity": 2, "unit_price_minor": 1999}],
        "customer": {"email": "alpha-customer@example.test", "name": "Alpha Customer"},
        "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.8, "longitude": 2.3}},
        "total_minor": 3998})
    assert order.status_code == 201, order.text
    await run_outbox_inline(a.tenant_id)  # routes it: a fulfilment, and a webhook delivery waiting to go
    routed = await client.get(f"/api/v1/orders/{order.json()['id']}", headers=key)
    assert routed.json()["status"] == "routed", routed.json()
    return hook.json()["secret"]


async def add_shipping_and_mail_texts(client, a) -> None:
    """Tenant A's parcel shipped with a carrier and tracking number, and its own text for a mail."""
    key = bearer(a.api_key)
    orders = (await client.get("/api/v1/orders", headers=key)).json()["orders"]
    order = (await client.get(f"/api/v1/orders/{orders[0]['id']}", headers=key)).json()
    [parcel] = order["fulfilments"]
    for action in ("accept", "pick", "pack"):
        moved = await client.post(f"/api/v1/fulfilments/{parcel['id']}/{action}", headers=key, json={})
        assert moved.status_code == 200, moved.text
    shipped = await client.post(f"/api/v1/fulfilments/{parcel['id']}/ship", headers=key,
                                json={"carrier": "colissimo", "tracking_number": "ALPHATRACK123"})
    assert shipped.status_code == 200, shipped.text
    saved = await post_form(client, "/app/settings/notifications/shipped/fr", {
        "action": "save", "subject": "ALPHA-SECRET-SUBJECT {order_number}", "intro": "Alpha intro"})
    assert saved.status_code == 303, saved.text
    returned = await client.post("/api/v1/returns", headers=key, json={
        "order_id": order["id"], "lines": [{"line_no": 1, "quantity": 1, "reason_code": "too_small"}],
        "note": "ALPHA-RETURN-NOTE"})
    assert returned.status_code == 201, returned.text


async def add_customer_note(client, a) -> None:
    """A note on tenant A's customer, written on the customer's page."""
    from sqlalchemy import select

    from core.db import get_database
    from customers.models import Customer

    async with get_database().transaction(tenant_id=a.tenant_id) as session:
        customer_id = await session.scalar(select(Customer.id).where(Customer.tenant_id == a.tenant_id,
                                                                     Customer.email == "alpha-customer@example.test"))
    added = await post_form(client, f"/app/customers/{customer_id}/notes", {"body": "ALPHA-SECRET-NOTE"})
    assert added.status_code == 303, added.text


async def add_service_task(client, a) -> None:
    """An open customer-service task on tenant A's order, assigned to its owner, with a comment."""
    from sqlalchemy import select

    from core.db import get_database
    from orders import service_tasks
    from orders.models import Order

    async with get_database().transaction(tenant_id=a.tenant_id) as session:
        order = await session.scalar(select(Order).where(Order.tenant_id == a.tenant_id,
                                                         Order.external_number == "ALPHA-ORDER-1").with_for_update())
        task = await service_tasks.open_task(session, order, "delivery_exception", "Alpha parcel lost", actor="test")
    for path, body in (("assign", {"assignee": a.email}), ("comments", {"body": "ALPHA-TASK-COMMENT"})):
        done = await client.post(f"/api/v1/service-tasks/{task.id}/{path}", headers=bearer(a.api_key), json=body)
        assert done.status_code in (200, 201), done.text



async def add_return_policy_and_goodwill_request(client, a) -> None:
    """Tenant A's return policy, and a goodwill refund waiting for approval on its order, with its task."""
    from sqlalchemy import select

    from core.db import get_database
    from orders import service_tasks
    from orders.models import Order
    from support.models import GoodwillRequest

    key = bearer(a.api_key)
    policy = (await client.get("/api/v1/settings/returns", headers=key)).json()
    saved = await client.put("/api/v1/settings/returns", headers=key, json={**policy, "window_days": 14})
    assert saved.status_code == 200, saved.text
    async with get_database().transaction(tenant_id=a.tenant_id) as session:
        order = await session.scalar(select(Order).where(Order.tenant_id == a.tenant_id,
                                                         Order.external_number == "ALPHA-ORDER-1").with_for_update())
        request = GoodwillRequest(tenant_id=a.tenant_id, order_id=order.id, amount_minor=1000,
                                  reason="ALPHA-GOODWILL-REASON", requested_by="agent@alpha.test",
                                  requested_role="customer_service")
        session.add(request)
        await session.flush()
        await service_tasks.open_task(session, order, "goodwill_approval", "Alpha goodwill", actor="test",
                                      subject=str(request.id))

async def add_billing(client, a) -> None:
    """Tenant A's billing details, its trial closed, an invoice for the next period, and a credit note on it."""
    from datetime import timedelta

    from billing import invoicing
    from core import clock
    from core.db import get_database
    from tenants.service import Actor

    saved = await client.put("/api/v1/billing/details", headers=bearer(a.api_key), json={
        "legal_name": "ALPHA-BILLING-LEGAL-NAME", "country": "FR", "city": "Paris"})
    assert saved.status_code == 200, saved.text
    with clock.frozen_at(clock.now() + timedelta(days=1)):  # periods end at local midnights
        async with get_database().transaction(tenant_id=a.tenant_id) as session:
            assert await invoicing.close_period(session, a.tenant_id, now_if_early=True) is None  # the trial
    with clock.frozen_at(clock.now() + timedelta(days=3)):
        async with get_database().transaction(tenant_id=a.tenant_id) as session:
            invoice = await invoicing.close_period(session, a.tenant_id, now_if_early=True)
            assert invoice is not None and invoice.total_minor > 100
            await invoicing.issue_credit_note(session, a.tenant_id, invoice.id, 100, "ALPHA-CREDIT-REASON",
                                              actor=Actor("test"))


def routes(app) -> list[tuple[str, str, Any]]:
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith(SKIP_PREFIXES) or route.path in STREAMS:
            continue
        for method in sorted(route.route_handler_map):
            if method in ("HEAD", "OPTIONS"):
                continue
            handler = route.route_handler_map[method]
            found.append((route.path, method, handler[0] if isinstance(handler, tuple) else handler))
    found.sort(key=lambda item: item[0] == "/logout")  # signing B out goes last
    return found


def fillings(path: str, ids: list[str], tenant_hex: str) -> list[str]:
    params = PARAM.findall(path)
    if not params:
        return [path]
    paths = [path]
    for name, kind in params:
        if kind == "uuid":
            values = ids
        elif kind == "int":  # version numbers: A has 1 and 2, B none
            values = ["1", "2", "0"]
        else:
            values = [f"inv_{tenant_hex}_forged", f"oms_{tenant_hex}_forged", "forged"]
        paths = [p.replace(f"{{{name}:{kind}}}", value) for p in paths for value in values]
    return paths


@pytest.mark.timeout(900)  # every route, with every id of A's in each of its parameters
async def test_no_route_lets_another_tenant_see_or_change_anything(app, client, make_client, owner_engine) -> None:
    from core.deps import _background

    a, secrets = await build_tenant_a(client, make_client)
    b = await create_tenant(name=f"Bravo-{uuid.uuid4().hex[:8]}")
    intruder = await make_client()
    await login(intruder, b.email)

    if _background:
        await asyncio.gather(*list(_background), return_exceptions=True)
    tables = await tenant_tables(owner_engine)
    before = await snapshot(owner_engine, tables, a.tenant_id)
    a_ids = sorted({str(row["id"]) for rows in before.values() for row in rows if "id" in row}
                   | {str(a.tenant_id), str(a.user_id)})
    assert len(a_ids) >= 10
    leak_markers = [*secrets.values(), *a_ids]

    tried = 0
    failures: list[str] = []
    for pattern, method, _handler in routes(app):
        # Ids are global, so B naming one of A's must be refused. Version numbers are per company: B's
        # own version 1 is B's to see, and the leak and snapshot checks below cover A's.
        addresses_object = any(kind != "int" for _, kind in PARAM.findall(pattern))
        for path in fillings(pattern, a_ids, a.tenant_id.hex):
            if path.startswith("/api/"):
                headers = bearer(b.api_key)
                kwargs: dict[str, Any] = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
            else:
                headers = csrf_headers(intruder)
                kwargs = {"data": {}} if method in ("POST", "PUT", "PATCH") else {}
            response = await intruder.request(method, path, headers=headers, follow_redirects=False, **kwargs)
            tried += 1
            if addresses_object and response.status_code not in (403, 404, 410):
                failures.append(f"{method} {path} -> {response.status_code}")
            if response.status_code >= 500:
                failures.append(f"{method} {path} -> {response.status_code}")
            body = response.text
            leaked = [marker for marker in leak_markers if marker in body]
            if leaked:
                failures.append(f"{method} {path} leaked {leaked}")
    assert failures == [], "\n".join(failures)
    assert tried > 40

    after = await snapshot(owner_engine, tables, a.tenant_id)
    assert json.dumps(after, default=str, sort_keys=True) == json.dumps(before, default=str, sort_keys=True)


async def test_every_console_and_api_route_is_guarded(app) -> None:
    unguarded = []
    for pattern, method, handler in routes(app):
        if pattern.startswith(("/app", "/api/v1")) and not handler.resolve_guards():
            unguarded.append(f"{method} {pattern}")
    assert unguarded == []


async def test_roles_are_enforced_on_settings_and_admin_api(client, make_client) -> None:
    """A read-only member can open the console but not settings, and the answer is 403."""
    a = await create_tenant()
    await login(client, a.email)
    email = f"viewer-{uuid.uuid4().hex[:6]}@example.test"
    await post_form(client, "/app/settings/team/invitations", {"email": email, "role": "read_only"})
    await run_outbox_inline(a.tenant_id)
    [invite] = await mail_to(a.tenant_id, email)
    token = re.search(r"/invitations/(inv_[\w-]+)", invite.body_text).group(1)
    viewer = await make_client()
    await viewer.get("/login")
    assert (await post_form(viewer, f"/invitations/{token}", {"name": "Vera Viewer",
                                                              "password": "viewer password ok"})).status_code == 303
    assert (await viewer.get("/app")).status_code == 200
    for path in ("/app/settings/team", "/app/settings/api-keys", "/app/settings/audit-log",
                 "/app/settings/mail-log", "/app/settings/stuck-work"):
        response = await viewer.get(path)
        assert response.status_code == 403, path
        assert "role does not allow" in response.text
    created = await post_form(viewer, "/app/settings/api-keys", {"name": "sneaky"})
    assert created.status_code == 403
