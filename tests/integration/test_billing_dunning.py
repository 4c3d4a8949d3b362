"""An unpaid account, step by step from the database's state: a failing card (the fake Stripe's
4000000000000341 attaches, then fails when charged) puts the company in payment_failed, retries
after 3, 5 and 7 days, then past due, then restricted while orders keep flowing; a new card pays
and lifts everything at once. Later, new orders are refused. A lost message skips no step."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.routes import HTTPRoute
from sqlalchemy import select

from billing_factories import invoice_row, save_card, standing
from factories import bearer, create_tenant, login, mail_to, post_form, run_outbox_inline
from inventory_factories import API, one_warehouse_shop

KEY = "sk_test_x"  # the platform key the fixture sets
FAILING = "4000000000000341"


async def make_invoice(tenant_id: uuid.UUID, total: int = 4680) -> uuid.UUID:
    """An issued invoice due for collection now, its collection announced, as closing a period does."""
    from billing import collection
    from billing.models import Invoice
    from core import clock
    from core.db import get_database

    now = clock.now()
    async with get_database().transaction(tenant_id=tenant_id) as session:
        invoice = Invoice(
            tenant_id=tenant_id, kind="invoice", number=f"TEST-{uuid.uuid4().hex[:12]}", series="TEST",
            year=now.year, sequence=1, issued_at=now, issuer={"name": "OMS Platform SAS"}, customer={"name": "T"},
            plan="Starter", currency="EUR", subtotal_minor=3900, vat_rate_bp=2000, vat_minor=total - 3900,
            total_minor=total, vat_treatment="domestic", vat_mentions=[], status="open", next_attempt_at=now)
        session.add(invoice)
        await session.flush()
        await collection.schedule(session, invoice)
    return invoice.id


async def billing_audit(tenant_id: uuid.UUID) -> list[str]:
    """The dunning steps on the audit log, oldest first."""
    from core.db import get_database
    from tenants.models import AuditEvent

    steps = ("billing.payment_failed", "billing.past_due", "billing.restricted", "billing.intake_refused",
             "billing.reinstated")
    async with get_database().transaction(tenant_id=tenant_id) as session:
        return list(await session.scalars(select(AuditEvent.action).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.action.in_(steps)).order_by(AuditEvent.id)))


async def run_all(tenant_id: uuid.UUID) -> list[str]:
    ran: list[str] = []
    for _ in range(5):
        batch = await run_outbox_inline(tenant_id)
        if not batch:
            break
        ran += [name for name, _ in batch]
    return ran


async def sweep(job: str, tenant_id: uuid.UUID) -> None:
    """What the scheduler's sweep sends for this company (if it finds it), run here."""
    from billing import tasks
    from core.broker import COROUTINES

    found, actor = {"collect": (tasks.collections_due, "billing.collect_due"),
                    "dunning": (tasks.dunning_due, "billing.dunning")}[job]
    assert tenant_id in await found()
    await COROUTINES[actor](tenant_id=str(tenant_id))
    await run_all(tenant_id)


def _order(number: str) -> dict[str, Any]:
    return {"channel": "web", "external_number": number, "currency": "EUR",
            "lines": [{"sku": "DUN-1", "quantity": 1, "unit_price_minor": 1999}],
            "customer": {"email": "shopper@example.test"},
            "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.85, "longitude": 2.35}},
            "total_minor": 1999}


async def test_failing_card_past_due_restricted_while_orders_flow_then_paid(client, make_client,
                                                                            platform_stripe: str) -> None:
    from core import clock

    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-DUN", sku="DUN-1", quantity=50)
    await save_card(tenant, FAILING)  # the fake Stripe attaches it, and declines it when charged
    start = datetime.now(UTC)

    with clock.frozen_at(start):
        invoice_id = await make_invoice(tenant.tenant_id)
        await run_all(tenant.tenant_id)
        failed = await invoice_row(tenant.tenant_id, invoice_id)
        assert (failed.status, failed.attempts, failed.first_failed_at) == ("open", 1, start)
        assert "declined" in failed.last_error and failed.next_attempt_at == start + timedelta(days=3)
        assert await standing(tenant.tenant_id) == "payment_failed"
        [mail] = await mail_to(tenant.tenant_id, tenant.email)
        assert "failed" in mail.subject and failed.number in mail.body_text and "<p>" in mail.body_html

    for day, attempts, next_at in ((3, 2, start + timedelta(days=5)), (5, 3, start + timedelta(days=7)),
                                   (7, 4, None)):
        with clock.frozen_at(start + timedelta(days=day, minutes=1)):
            await sweep("collect", tenant.tenant_id)
            retried = await invoice_row(tenant.tenant_id, invoice_id)
            assert (retried.attempts, retried.next_attempt_at) == (attempts, next_at)
            assert await standing(tenant.tenant_id) == ("past_due" if day == 7 else "payment_failed")

    with clock.frozen_at(start + timedelta(days=14, minutes=1)):
        await sweep("dunning", tenant.tenant_id)
        assert await standing(tenant.tenant_id) == "restricted"
        refused = await client.put(f"{API}/settings/orders", headers=key, json={"pickup_window_days": 9})
        assert refused.status_code == 402, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "restricted" in refused.json()["detail"]
        assert (await client.post(f"{API}/locations", headers=key, json={})).status_code == 402
        assert (await client.get(f"{API}/settings/orders", headers=key)).status_code == 200
        console = await make_client()
        await login(console, tenant.email)
        page = await post_form(console, "/app/settings/orders", {"pickup_window_days": "9"})
        assert page.status_code == 402 and "read-only" in page.text
        # The shoppers' orders keep flowing: taken, routed.
        placed = await client.post(f"{API}/orders", headers=key, json=_order("D-1"))
        assert placed.status_code == 201, placed.text
        await run_all(tenant.tenant_id)
        order = (await client.get(f"{API}/orders/{placed.json()['id']}", headers=key)).json()
        assert [f["location"] for f in order["fulfilments"]] == ["WH-DUN"]

        await save_card(tenant, "4242424242424242")  # a new card: the invoice is tried at once
        await run_all(tenant.tenant_id)
        paid = await invoice_row(tenant.tenant_id, invoice_id)
        assert (paid.status, paid.attempts) == ("paid", 4)
        assert await standing(tenant.tenant_id) == "good"
        allowed = await client.put(f"{API}/settings/orders", headers=key, json={"pickup_window_days": 9})
        assert allowed.status_code == 200, allowed.text
        assert (await post_form(console, "/app/settings/orders", {"pickup_window_days": "8"})).status_code != 402

    assert await billing_audit(tenant.tenant_id) == ["billing.payment_failed", "billing.past_due",
                                                     "billing.restricted", "billing.reinstated"]
    subjects = [m.subject for m in reversed(await mail_to(tenant.tenant_id, tenant.email))]
    assert len(subjects) == 4 and "good standing" in subjects[-1]


async def test_long_unpaid_refuses_new_orders_and_steps_apply_once_in_order(client, make_client,
                                                                            platform_stripe: str) -> None:
    from billing import dunning
    from core import clock
    from core.db import get_database

    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    start = datetime.now(UTC)
    with clock.frozen_at(start):
        invoice_id = await make_invoice(tenant.tenant_id)
        await run_all(tenant.tenant_id)  # no card on file
        assert (await invoice_row(tenant.tenant_id, invoice_id)).last_error == "no card on file"

    with clock.frozen_at(start + timedelta(days=44, minutes=1)):  # 14 days, then 30 more
        await sweep("dunning", tenant.tenant_id)
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            assert await dunning.advance(session, tenant.tenant_id) == "intake_refused"  # again: no new step
        assert await billing_audit(tenant.tenant_id) == ["billing.payment_failed", "billing.past_due",
                                                         "billing.restricted", "billing.intake_refused"]
        assert len(await mail_to(tenant.tenant_id, tenant.email)) == 4
        refused = await client.post(f"{API}/orders", headers=key, json=_order("R-1"))
        assert refused.status_code == 402 and "New orders are refused" in refused.json()["detail"]
        assert (await client.get(f"{API}/orders", headers=key)).status_code == 200
        console = await make_client()
        await login(console, tenant.email)
        manual = await post_form(console, "/app/orders/new", {"action": "place"})
        assert manual.status_code == 402 and "New orders are refused" in manual.text
        assert (await console.get("/app/orders")).status_code == 200


async def test_a_lost_message_skips_no_step(client, platform_stripe: str) -> None:
    from core import clock

    tenant = await create_tenant()
    start = datetime.now(UTC)
    with clock.frozen_at(start):
        await make_invoice(tenant.tenant_id)
        await run_all(tenant.tenant_id)
    assert await standing(tenant.tenant_id) == "payment_failed"
    # No retry ever ran (their messages lost): the dunning sweep alone moves the account on time.
    with clock.frozen_at(start + timedelta(days=7) - timedelta(minutes=1)):
        await sweep("dunning", tenant.tenant_id)
        assert await standing(tenant.tenant_id) == "payment_failed"
    with clock.frozen_at(start + timedelta(days=8)):
        await sweep("dunning", tenant.tenant_id)
        assert await standing(tenant.tenant_id) == "past_due"


def test_steps_wait_for_a_retry_that_is_due() -> None:
    from billing import dunning

    first = datetime(2026, 3, 1, tzinfo=UTC)
    day = timedelta(days=1)
    assert dunning.next_retry(first, first) == first + 3 * day
    assert dunning.next_retry(first, first + 6 * day) == first + 7 * day
    assert dunning.next_retry(first, first + 7 * day) is None
    # The last retry is due at day 7: past due waits for it (an hour's grace), unless it failed.
    assert dunning.due_standing(first, first + 7 * day, first + 7 * day + timedelta(minutes=5)) == "payment_failed"
    assert dunning.due_standing(first, None, first + 7 * day + timedelta(minutes=5)) == "past_due"
    assert dunning.due_standing(first, first + 7 * day, first + 7 * day + timedelta(hours=2)) == "past_due"
    assert dunning.due_standing(first, None, first + 14 * day) == "restricted"
    assert dunning.due_standing(first, None, first + 44 * day) == "intake_refused"
    assert dunning.standing_text("good") is None and "read-only" in (dunning.standing_text("restricted") or "")


# Every route that writes, decided: the order flow (and billing, signing in) never stops; the
# company's set-up is read-only when restricted. A route matching neither list fails the test.
NEVER = re.compile(
    r"^/api/v1/(orders|fulfilments|returns|service-tasks|goodwill-requests|tracking-events|customers|billing"
    r"|payment-accounts)(/|$)"
    r"|^/app/(orders|fulfilments|returns|service-tasks|goodwill-requests|customers|billing|companies"
    r"|settings/stuck-work|settings/payments)(/|$)"
    r"|^/(webhooks/stripe|login|logout|signup|forgot-password|reset-password|invitations|unsubscribe)(/|$)"
    r"|/(simulate|replay|validate|revoke|remove)$|^/api/v1/invitations/[^/]+$|^/app/settings/api-keys$"
    r"|^/api/v1/pricing$|^/app/marketing/segments/count$|^/app/marketing/.+/(disable|cancel)$"
    r"|^/api/v1/(coupons|coupon-batches|campaigns)/[^/]+/(disable|cancel)$"
)
SETUP = re.compile(
    r"^/api/v1/(settings|rule-sets|products|locations|inventory|invitations|webhook-endpoints|members|api-keys"
    r"|segments|coupons|coupon-batches|campaigns)(/|$)|^/app/(settings|rules|catalog|locations|inventory|marketing)(/|$)"
)
INTAKE = {("POST", "/api/v1/orders"), ("POST", "/app/orders/new")}


def _concrete(path: str) -> str:
    values = {"uuid": str(uuid.uuid4()), "int": "1", "str": "some-value", "path": "some/file"}
    return re.sub(r"\{\w+:(\w+)\}", lambda m: values.get(m[1], "x"), path)


async def test_every_write_route_is_decided(app) -> None:
    from billing.restrictions import refusal

    undecided: list[str] = []
    writes = 0
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            path = _concrete(route.path)
            if method == "GET":
                assert all(refusal(method, path, s) is None for s in ("restricted", "intake_refused")), path
                continue
            writes += 1
            intake = (method, route.path.rstrip("/") or "/") in INTAKE
            if NEVER.search(path):
                assert refusal(method, path, "restricted") is None, (method, route.path)
                assert (refusal(method, path, "intake_refused") is None) != intake, (method, route.path)
            elif SETUP.search(path):
                for standing in ("restricted", "intake_refused"):
                    assert refusal(method, path, standing), (method, route.path, standing)
            else:
                undecided.append(f"{method} {route.path}")
            for standing in ("good", "payment_failed", "past_due"):
                assert refusal(method, path, standing) is None
    assert writes > 50
    assert not undecided, f"decide whether an unpaid account may use these: {undecided}"


async def test_companies_created_together_do_not_share_the_dunning_lock(client) -> None:
    from sqlalchemy import text

    from billing import dunning
    from core.db import get_database

    first = await create_tenant()
    # A company created in the same minute: a uuid7 begins with its time, so the same first bytes.
    neighbour = uuid.UUID(bytes=first.tenant_id.bytes[:4] + uuid.uuid4().bytes[4:])
    try_lock = text("SELECT pg_try_advisory_xact_lock(hashtext('billing.dunning'), hashtext(:tenant))")
    async with get_database().transaction(tenant_id=first.tenant_id) as holding:
        await dunning._lock(holding, first.tenant_id)
        async with get_database().transaction() as other:
            assert await other.scalar(try_lock, {"tenant": str(neighbour)}) is True
        async with get_database().transaction() as other:
            assert await other.scalar(try_lock, {"tenant": str(first.tenant_id)}) is False


async def test_the_mails_ask_for_what_is_still_due(client, platform_stripe: str) -> None:
    from billing import invoicing
    from core import clock
    from core.db import get_database
    from tenants.service import Actor

    tenant = await create_tenant()
    with clock.frozen_at(datetime.now(UTC)):
        invoice_id = await make_invoice(tenant.tenant_id, total=4680)
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            await invoicing.issue_credit_note(session, tenant.tenant_id, invoice_id, 1000, "goodwill",
                                              actor=Actor("operator"))
        await run_all(tenant.tenant_id)  # no card on file
    assert await standing(tenant.tenant_id) == "payment_failed"
    [mail] = await mail_to(tenant.tenant_id, tenant.email)
    assert "€36.80 due" in mail.body_text and "46.80" not in mail.body_text
