"""Campaigns: a segment's reachable members mailed once at the scheduled time (company's zone),
paced, idempotent and driven from the database (a lost message only delays); the unsubscribe link's
page (GET changes nothing, POST does, honoured at once); attribution through the coupon and
within N days, each order once; the customer page's marketing panel; tenant isolation."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from httpx import AsyncClient
from test_orders import capture, network, order_body

from factories import bearer, create_tenant, csrf_headers, links_in, login, post_form, unique

CAMPAIGNS = "/api/v1/campaigns"
SEGMENTS = "/api/v1/segments"
BUYERS = {"condition": {"field": "customer.orders_count", "op": "gte", "value": 1}}


# --- helpers ------------------------------------------------------------------------------------


async def customer(client: AsyncClient, tenant: Any, c: dict[str, str], name: str, *, consent: bool = True,
                   orders: int = 1) -> dict[str, Any]:
    """A customer with ``orders`` orders (0: a record only, outside the buyers' segment)."""
    from core.db import get_database
    from customers import service

    email = f"{unique(name.lower())}@example.test"
    for _ in range(orders):
        await capture(client, tenant.api_key, order_body((c["sku"], 1, 2500), email=email, customer={
            "email": email, "name": name, "email_consent": consent}))
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        found = await service.find_or_create_many(session, tenant.tenant_id, [
            service.Person(email, name, email_consent=None if orders else consent)])
    return {"email": email, "name": name, "id": found[email].id}


async def segment(client: AsyncClient, key: str, condition: dict[str, Any] | None = None) -> str:
    response = await client.post(SEGMENTS, headers=bearer(key), json={
        "name": unique("Buyers"), "condition": condition or BUYERS["condition"]})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def next_monday_nine(timezone: str = "Europe/Paris") -> datetime:
    """Next Monday 9:00 in the zone, as an aware local time."""
    today = datetime.now(ZoneInfo(timezone)).date()
    monday = today + timedelta(days=(7 - today.weekday()) or 7)
    return datetime.combine(monday, time(9, 0), tzinfo=ZoneInfo(timezone))


async def campaign(client: AsyncClient, key: str, segment_id: str, *, schedule: bool = True,
                   expect: int = 201, **fields: Any) -> dict[str, Any]:
    body = {"name": unique("Spring"), "segment_id": segment_id, "subject": "{name}, spring is here",
            "body": "Dear {name},\n\nOur spring collection is in store.", **fields}
    body.setdefault("scheduled_at", next_monday_nine().replace(tzinfo=None).isoformat())
    response = await client.post(CAMPAIGNS, headers=bearer(key), json=body)
    assert response.status_code == expect, response.text
    created = response.json()
    if schedule and expect == 201:
        scheduled = await client.post(f"{CAMPAIGNS}/{created['id']}/schedule", headers=bearer(key))
        assert scheduled.status_code == 200, scheduled.text
        created = scheduled.json()
    return created


async def sweep() -> list[uuid.UUID]:
    """The scheduler's sweep, with each company's message run here as a worker would."""
    from core.broker import COROUTINES
    from marketing import campaign_sending

    companies = await campaign_sending.companies_with_campaigns_due()
    for tenant_id in companies:
        await COROUTINES["marketing.send_due_campaigns"](tenant_id=str(tenant_id))
    return companies


async def campaign_mails(tenant_id: uuid.UUID, campaign_id: str) -> list[Any]:
    from sqlalchemy import select

    from core.db import get_database
    from core.models import MailMessage

    async with get_database().transaction(tenant_id=tenant_id) as session:
        rows = await session.scalars(select(MailMessage).where(MailMessage.tenant_id == tenant_id,
                                                               MailMessage.kind == "campaign"))
        return [m for m in rows if (m.meta or {}).get("campaign_id") == campaign_id]


async def get_campaign(client: AsyncClient, key: str, campaign_id: str) -> dict[str, Any]:
    response = await client.get(f"{CAMPAIGNS}/{campaign_id}", headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


async def recipients(client: AsyncClient, key: str, campaign_id: str) -> dict[str, tuple[str, str | None]]:
    response = await client.get(f"{CAMPAIGNS}/{campaign_id}/recipients", headers=bearer(key), params={"limit": 1000})
    assert response.status_code == 200, response.text
    return {r["email"]: (r["status"], r["reason"]) for r in response.json()}


async def consent_of(tenant_id: uuid.UUID, customer_id: uuid.UUID) -> Any:
    from core.db import get_database
    from customers import service

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return await service.get_customer(session, tenant_id, customer_id)


def at(scheduled_local: str, plus: timedelta = timedelta(minutes=1)) -> datetime:
    return datetime.fromisoformat(scheduled_local).replace(tzinfo=ZoneInfo("Europe/Paris")) + plus


async def people(client: AsyncClient, tenant: Any) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Three reachable buyers, one who never consented, one unsubscribed, one consenting non-buyer."""
    from core.db import get_database
    from customers import service

    c = await network(client, tenant.api_key, stock={"sku": {"wh": 100}})
    found = {"ann": await customer(client, tenant, c, "Ann"), "bob": await customer(client, tenant, c, "Bob"),
             "cid": await customer(client, tenant, c, "Cid"),
             "dan": await customer(client, tenant, c, "Dan", consent=False),
             "eve": await customer(client, tenant, c, "Eve"),
             "fay": await customer(client, tenant, c, "Fay", orders=0)}
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await service.unsubscribe(session, tenant.tenant_id, found["eve"]["id"])
    return c, found


# --- sending ------------------------------------------------------------------------------------


async def test_campaign_goes_to_the_reachable_members_once_at_its_time(client) -> None:
    """Scheduled for next Monday 9:00 in the company's zone: nothing before; at the time the sweep
    lists the reachable members once and mails each of them once; running again sends nothing."""
    from core import clock

    tenant = await create_tenant()
    key = tenant.api_key
    _, who = await people(client, tenant)
    created = await campaign(client, key, await segment(client, key), coupon_code=None)
    assert created["status"] == "scheduled"
    assert created["scheduled_at_local"] == next_monday_nine().strftime("%Y-%m-%d %H:%M")
    scheduled_at = datetime.fromisoformat(created["scheduled_at"])
    assert scheduled_at == next_monday_nine()

    with clock.frozen_at(scheduled_at - timedelta(minutes=1)):
        assert tenant.tenant_id not in await sweep()
    assert await campaign_mails(tenant.tenant_id, created["id"]) == []

    with clock.frozen_at(scheduled_at + timedelta(minutes=1)):
        assert tenant.tenant_id in await sweep()
        mails = await campaign_mails(tenant.tenant_id, created["id"])
        assert sorted(m.to_address for m in mails) == sorted(who[n]["email"] for n in ("ann", "bob", "cid"))
        for _ in range(2):  # idempotent: again, and a redelivered message, mail nobody twice
            await sweep()
            from core.broker import COROUTINES

            await COROUTINES["marketing.send_campaign"](tenant_id=str(tenant.tenant_id), campaign_id=created["id"])
    mails = await campaign_mails(tenant.tenant_id, created["id"])
    assert len(mails) == 3
    ann = next(m for m in mails if m.to_address == who["ann"]["email"])
    assert ann.subject == "Ann, spring is here"
    assert "Dear Ann," in ann.body_text and "Unsubscribe: http" in ann.body_text
    assert ann.body_html and "Dear Ann," in ann.body_html and "/unsubscribe/" in ann.body_html
    assert (ann.meta or {}).get("from_name") == tenant.name
    done = await get_campaign(client, key, created["id"])
    assert (done["status"], done["recipients"], done["sent"], done["skipped"], done["pending"]) == \
        ("sent", 3, 3, 0, 0)
    assert done["finished_at"] is not None
    assert set(await recipients(client, key, created["id"])) == {who[n]["email"] for n in ("ann", "bob", "cid")}
    with clock.frozen_at(scheduled_at + timedelta(minutes=5)):
        assert tenant.tenant_id not in await sweep()  # sent: nothing due any more


async def test_lost_message_only_delays_and_pace_holds_per_minute(client) -> None:
    """A worker that listed the recipients and died (its message lost) leaves a campaign the sweep
    finds from the database; each run sends at most the pace a minute."""
    from core import clock
    from marketing import campaign_sending

    tenant = await create_tenant()
    key = tenant.api_key
    _, who = await people(client, tenant)
    created = await campaign(client, key, await segment(client, key), pace_per_minute=2)
    start = datetime.fromisoformat(created["scheduled_at"]) + timedelta(seconds=10)

    with clock.frozen_at(start):
        assert await campaign_sending.start_if_due(tenant.tenant_id, uuid.UUID(created["id"]))  # then "lost"
        listed = await get_campaign(client, key, created["id"])
        assert (listed["status"], listed["recipients"], listed["sent"]) == ("sending", 3, 0)
        await sweep()
        assert len(await campaign_mails(tenant.tenant_id, created["id"])) == 2
        await sweep()  # the same minute: the pace allows no more
        assert len(await campaign_mails(tenant.tenant_id, created["id"])) == 2
    with clock.frozen_at(start + timedelta(seconds=61)):
        await sweep()
        mails = await campaign_mails(tenant.tenant_id, created["id"])
        assert sorted(m.to_address for m in mails) == sorted(who[n]["email"] for n in ("ann", "bob", "cid"))
        await sweep()
    assert (await get_campaign(client, key, created["id"]))["status"] == "sent"


async def test_unsubscribe_link_page_stops_a_pending_recipient(client, make_client) -> None:
    """The link's GET only asks (a mail scanner changes nothing); its POST unsubscribes at once:
    a recipient still pending is then skipped, with the reason."""
    from core import clock

    tenant = await create_tenant()
    key = tenant.api_key
    _, who = await people(client, tenant)
    seg = await segment(client, key)
    first = await campaign(client, key, seg)
    start = datetime.fromisoformat(first["scheduled_at"]) + timedelta(seconds=10)
    with clock.frozen_at(start):
        await sweep()
    links = {m.to_address: next(u for u in links_in(m.body_text) if "/unsubscribe/" in u)
             for m in await campaign_mails(tenant.tenant_id, first["id"])}

    second = await campaign(client, key, seg, pace_per_minute=1,
                            scheduled_at=(next_monday_nine() + timedelta(days=7)).replace(tzinfo=None).isoformat())
    later = datetime.fromisoformat(second["scheduled_at"]) + timedelta(seconds=10)
    with clock.frozen_at(later):
        await sweep()
    first_sent = [m.to_address for m in await campaign_mails(tenant.tenant_id, second["id"])]
    assert len(first_sent) == 1
    pending = next(who[n] for n in ("ann", "bob", "cid") if who[n]["email"] not in first_sent)

    browser = await make_client()
    path = links[pending["email"]].split("testserver.local", 1)[1]
    shown = await browser.get(path)
    assert shown.status_code == 200 and 'id="confirm-unsubscribe"' in shown.text
    assert pending["email"] not in shown.text  # masked: the link may have been forwarded
    assert (await consent_of(tenant.tenant_id, pending["id"])).unsubscribed_at is None  # GET changed nothing
    done = await post_form(browser, path)
    assert done.status_code == 200 and 'id="unsubscribed"' in done.text
    record = await consent_of(tenant.tenant_id, pending["id"])
    assert record.unsubscribed_at is not None and record.email_consent is False

    for minute in (1, 2, 3):
        with clock.frozen_at(later + timedelta(seconds=61 * minute)):
            await sweep()
    state = await recipients(client, key, second["id"])
    assert state[pending["email"]] == ("skipped", "unsubscribed")
    assert pending["email"] not in [m.to_address for m in await campaign_mails(tenant.tenant_id, second["id"])]
    final = await get_campaign(client, key, second["id"])
    assert (final["status"], final["sent"], final["skipped"]) == ("sent", 2, 1)

    for forged in ("A" * 64, "A" * 40 + "*" * 24, "A" * 63 + "="):  # unsigned, or not the alphabet's
        bad = await browser.get("/unsubscribe/" + forged)
        assert bad.status_code == 404, forged

    # A mail client's one-click unsubscribe (RFC 8058): a bare POST to the link, no page, no form token.
    clicked = next(who[n] for n in ("ann", "bob", "cid") if who[n]["email"] == first_sent[0])
    mail_client = await make_client()
    one_click = await mail_client.post(links[clicked["email"]].split("testserver.local", 1)[1],
                                       data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200, one_click.text
    assert (await consent_of(tenant.tenant_id, clicked["id"])).unsubscribed_at is not None


# --- attribution --------------------------------------------------------------------------------


async def redeem(tenant_id: uuid.UUID, order: dict[str, Any], customer_id: uuid.UUID, coupon: Any,
                 when: datetime) -> None:
    """The redemption capture records for an order that used the coupon (as marketing.pricing does)."""
    from core.db import get_database
    from core.ids import uuid7
    from marketing.models import Redemption

    async with get_database().transaction(tenant_id=tenant_id) as session:
        session.add(Redemption(tenant_id=tenant_id, id=uuid7(), order_id=uuid.UUID(order["id"]),
                               order_number=order["number"], customer_id=customer_id, promotion_id="p-spring",
                               promotion_name="Spring 15 %", promotion_class="order", coupon_id=coupon.id,
                               coupon_code=coupon.code, amount_minor=375, currency="EUR", lines=[],
                               created_at=when))


async def make_coupon(tenant_id: uuid.UUID, code: str) -> Any:
    from core.db import get_database
    from core.ids import uuid7
    from marketing.models import Coupon

    async with get_database().transaction(tenant_id=tenant_id) as session:
        coupon = Coupon(tenant_id=tenant_id, id=uuid7(), code=code, promotion_id="p-spring", uses=0)
        session.add(coupon)
    return coupon


async def test_attribution_counts_coupon_orders_and_recipients_orders_within_n_days_once(client) -> None:
    from core import clock

    tenant = await create_tenant()
    key = tenant.api_key
    c, who = await people(client, tenant)
    code = unique("SPRING").upper()[:20]
    coupon = await make_coupon(tenant.tenant_id, code)
    refused = await campaign(client, key, await segment(client, key), coupon_code="NOPE-" + code, expect=422)
    assert "coupon_code" in {e["field"] for e in refused["errors"]}
    created = await campaign(client, key, await segment(client, key), coupon_code=code.lower(), attribution_days=3)
    assert created["coupon_code"] == code
    sent_at = datetime.fromisoformat(created["scheduled_at"]) + timedelta(seconds=10)
    with clock.frozen_at(sent_at):
        await sweep()
    mails = await campaign_mails(tenant.tenant_id, created["id"])
    assert len(mails) == 3 and all(f"Your code: {code}" in m.body_text for m in mails)

    def order(name: str, units: int = 1) -> dict[str, Any]:
        person = who[name]
        return order_body((c["sku"], units, 2500), email=person["email"],
                          customer={"email": person["email"], "name": person["name"]})

    with clock.frozen_at(sent_at + timedelta(days=1)):
        by_ann = await capture(client, key, order("ann"))  # a recipient within 3 days: counts
        by_bob = await capture(client, key, order("bob", 2))  # within 3 days and with the code: counts once
        await redeem(tenant.tenant_id, by_bob, who["bob"]["id"], coupon, clock.now())
        by_fay = await capture(client, key, order("fay", 3))  # not a recipient, with the code: counts
        await redeem(tenant.tenant_id, by_fay, who["fay"]["id"], coupon, clock.now())
    with clock.frozen_at(sent_at + timedelta(days=5)):
        await capture(client, key, order("cid"))  # a recipient, but after the 3 days: doesn't count
    measured = (await get_campaign(client, key, created["id"]))["attribution"]
    assert measured["orders"] == 3
    assert (measured["by_coupon"], measured["by_recipient"]) == (2, 2)
    assert measured["revenue_minor"] == {"EUR": by_ann["total_minor"] + by_bob["total_minor"] + by_fay["total_minor"]}

    await login(client, tenant.email)
    page = await client.get(f"/app/marketing/campaigns/{created['id']}")
    assert page.status_code == 200
    assert 'id="figure-orders"' in page.text and ">3<" in page.text


# --- the console and the customer page ---------------------------------------------------------


async def test_console_form_schedules_in_the_company_zone_and_reports_every_problem(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await people(client, tenant)
    seg = await segment(client, key)
    await login(client, tenant.email)
    form = await client.get("/app/marketing/campaigns/new")
    assert form.status_code == 200 and seg in form.text
    count = await client.get("/app/marketing/campaigns/segment-count", params={"segment_id": seg},
                             headers={"HX-Request": "true"})
    assert count.status_code == 200 and "<strong>3</strong> with email consent, of 5 customers" in count.text

    bad = await post_form(client, "/app/marketing/campaigns/new", {
        "name": " ", "segment_id": "", "subject": "Hi", "body": "Text", "pace_per_minute": "0",
        "attribution_days": "400", "date": "2020-01-01", "time": "09:00"})
    assert bad.status_code == 422
    for field in ("name", "segment_id", "pace_per_minute", "attribution_days", "scheduled_at"):
        assert f'id="{field}-error"' in bad.text, field

    monday = next_monday_nine()
    saved = await post_form(client, "/app/marketing/campaigns/new", {
        "name": "Spring", "segment_id": seg, "subject": "Spring", "body": "Hello {name}", "coupon_code": "",
        "pace_per_minute": "600", "attribution_days": "7", "date": monday.date().isoformat(), "time": "09:00"})
    assert saved.status_code == 303, saved.text
    campaign_path = saved.headers["location"].split("?")[0]
    campaign_id = campaign_path.rsplit("/", 1)[1]
    shown = await client.get(campaign_path)
    assert shown.status_code == 200 and "Draft" in shown.text and monday.strftime("%Y-%m-%d 09:00") in shown.text
    renamed = await client.put(f"{CAMPAIGNS}/{campaign_id}", headers=bearer(key), json={
        "name": "Spring again", "segment_id": seg, "subject": "Spring", "body": "Hello {name}",
        "scheduled_at": monday.replace(tzinfo=None).isoformat()})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Spring again", renamed.text
    scheduled = await post_form(client, f"{campaign_path}/schedule")
    assert scheduled.status_code == 303
    stored = await get_campaign(client, key, campaign_id)
    assert stored["status"] == "scheduled" and datetime.fromisoformat(stored["scheduled_at"]) == monday
    again = await post_form(client, f"{campaign_path}/edit", {"name": "x"})
    assert again.status_code == 409  # only a draft is edited
    cancelled = await post_form(client, f"{campaign_path}/cancel")
    assert cancelled.status_code == 303
    assert (await get_campaign(client, key, campaign_id))["status"] == "cancelled"
    listing = await client.get("/app/marketing/campaigns")
    assert listing.status_code == 200 and f'data-campaign="{campaign_id}"' in listing.text
    timeless = await campaign(client, key, seg, schedule=False, scheduled_at=None)
    refused = await post_form(client, f"/app/marketing/campaigns/{timeless['id']}/schedule")
    assert refused.status_code == 422 and 'id="campaign-errors"' in refused.text
    assert "Choose the date and time to send it." in refused.text


async def test_customer_panel_shows_consent_coupons_segments_and_changes_consent(client) -> None:
    from sqlalchemy import select

    from core import clock
    from core.db import get_database
    from tenants.models import AuditEvent

    tenant = await create_tenant()
    key = tenant.api_key
    c, who = await people(client, tenant)
    seg = await segment(client, key)
    seg_name = (await client.get(f"{SEGMENTS}/{seg}", headers=bearer(key))).json()["name"]
    coupon = await make_coupon(tenant.tenant_id, unique("WELCOME").upper()[:20])
    order = await capture(client, key, order_body((c["sku"], 1, 2500), email=who["ann"]["email"]))
    await redeem(tenant.tenant_id, order, who["ann"]["id"], coupon, clock.now())

    await login(client, tenant.email)
    ann = who["ann"]["id"]
    page = await client.get(f"/app/customers/{ann}")
    assert page.status_code == 200 and f'hx-get="/app/customers/{ann}/marketing"' in page.text
    panel = await client.get(f"/app/customers/{ann}/marketing", headers={"HX-Request": "true"})
    assert panel.status_code == 200 and "<html" not in panel.text
    assert f'data-code="{coupon.code}"' in panel.text and order["number"] in panel.text
    assert seg_name in panel.text
    assert 'name="email_consent" value="yes" checked' in panel.text
    assert 'name="sms_consent" value="no" checked' in panel.text
    full = await client.get(f"/app/customers/{ann}/marketing")  # the noscript link: a page of its own
    assert full.status_code == 200 and "<html" in full.text

    changed = await client.post(f"/app/customers/{ann}/marketing/consent", data={"email_consent": "no",
                                "sms_consent": "yes"}, headers={**csrf_headers(client), "HX-Request": "true"})
    assert changed.status_code == 200 and "Consent saved." in changed.text
    record = await consent_of(tenant.tenant_id, ann)
    assert (record.email_consent, record.sms_consent) == (False, True)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        audited = await session.scalar(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant.tenant_id, AuditEvent.action == "customer.consent_changed"))
    assert audited is not None and audited.target == str(ann)
    missing = await post_form(client, f"/app/customers/{ann}/marketing/consent", {"email_consent": "maybe"})
    assert missing.status_code == 422 and 'id="sms_consent-error"' in missing.text
    plain = await post_form(client, f"/app/customers/{ann}/marketing/consent",
                            {"email_consent": "yes", "sms_consent": "yes"})
    assert plain.status_code == 303 and plain.headers["location"].endswith("?done=consent_saved#marketing")


# --- isolation ----------------------------------------------------------------------------------


async def test_another_company_sees_no_campaign_and_its_tokens_cannot_touch_it(client, make_client) -> None:
    from marketing import unsubscribe

    a, b = await create_tenant(), await create_tenant()
    _, who_a = await people(client, a)
    _, who_b = await people(client, b)
    created = await campaign(client, a.api_key, await segment(client, a.api_key))
    for path in (f"{CAMPAIGNS}/{created['id']}", f"{CAMPAIGNS}/{created['id']}/recipients"):
        assert (await client.get(path, headers=bearer(b.api_key))).status_code == 404
    for action in ("schedule", "cancel"):
        response = await client.post(f"{CAMPAIGNS}/{created['id']}/{action}", headers=bearer(b.api_key))
        assert response.status_code == 404
    put = await client.put(f"{CAMPAIGNS}/{created['id']}", headers=bearer(b.api_key), json={})
    assert put.status_code == 404
    assert created["id"] not in {c["id"] for c in (await client.get(CAMPAIGNS, headers=bearer(b.api_key))).json()}
    # A's segment named in B's campaign is refused as unknown.
    foreign = await client.post(CAMPAIGNS, headers=bearer(b.api_key), json={
        "name": "x", "segment_id": created["segment_id"], "subject": "s", "body": "b"})
    assert foreign.status_code == 422 and "segment_id" in foreign.text

    browser = await make_client()
    await login(browser, b.email)
    assert (await browser.get(f"/app/marketing/campaigns/{created['id']}")).status_code == 404
    assert (await browser.get(f"/app/customers/{who_a['ann']['id']}/marketing")).status_code == 404

    # A's token names A: with B's company put in, or B's customer, the signature fails.
    token = unsubscribe.token_for(a.tenant_id, who_a["ann"]["id"])
    raw = unsubscribe.verify(token)
    assert raw == (a.tenant_id, who_a["ann"]["id"])
    import base64

    decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for forged_ids in (b.tenant_id.bytes + who_a["ann"]["id"].bytes, b.tenant_id.bytes + who_b["ann"]["id"].bytes,
                       a.tenant_id.bytes + who_b["ann"]["id"].bytes):
        forged = base64.urlsafe_b64encode(forged_ids + decoded[32:]).decode().rstrip("=")
        assert unsubscribe.verify(forged) is None
        visitor = await make_client()
        assert (await visitor.get(f"/unsubscribe/{forged}")).status_code == 404
        await visitor.get("/login")
        assert (await post_form(visitor, f"/unsubscribe/{forged}")).status_code == 404
    assert (await consent_of(b.tenant_id, who_b["ann"]["id"])).unsubscribed_at is None
    assert (await consent_of(a.tenant_id, who_a["ann"]["id"])).unsubscribed_at is None


async def test_api_refuses_bad_input_with_every_problem_named(client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    await people(client, tenant)
    seg = await segment(client, key)
    bad = await client.post(CAMPAIGNS, headers=bearer(key), json={
        "name": "", "segment_id": str(uuid.uuid4()), "subject": "s" * 301, "body": "b", "pace_per_minute": 10**12,
        "attribution_days": -1, "coupon_code": "NO-SUCH-CODE", "scheduled_at": "2020-01-01T09:00:00"})
    assert bad.status_code == 422, bad.text
    assert {e["field"] for e in bad.json()["errors"]} >= {"name", "subject", "pace_per_minute", "attribution_days"}
    for when in ("0001-01-01T00:30:00", "9999-12-31T23:30:00", "9999-12-31T23:30:00+00:00"):
        far = await client.post(CAMPAIGNS, headers=bearer(key), json={
            "name": "x", "segment_id": seg, "subject": "s", "body": "b", "scheduled_at": when})
        assert far.status_code == 422 and "scheduled_at" in far.text, (when, far.text)
    draft = await campaign(client, key, seg, schedule=False, scheduled_at=None)
    unscheduled = await client.post(f"{CAMPAIGNS}/{draft['id']}/schedule", headers=bearer(key))
    assert unscheduled.status_code == 422 and "Choose the date and time" in unscheduled.text
    for body in (b"[]", b"not json", b'{"scheduled_at": "soon"}'):
        refused = await client.post(f"{CAMPAIGNS}/{draft['id']}/schedule", headers=bearer(key), content=body)
        assert refused.status_code == 422, (body, refused.text)
    assert (await client.put(f"{CAMPAIGNS}/{draft['id']}", headers=bearer(key), content=b"[]")).status_code == 422
    listed = await client.get(CAMPAIGNS, headers=bearer(key), params={"status": "nonsense"})
    assert listed.status_code == 422
    done = await client.post(f"{CAMPAIGNS}/{draft['id']}/cancel", headers=bearer(key))
    assert done.status_code == 200 and done.json()["status"] == "cancelled"
    again = await client.post(f"{CAMPAIGNS}/{draft['id']}/cancel", headers=bearer(key))
    assert again.status_code == 409
