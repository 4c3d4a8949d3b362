"""Roles bound to what they own: a store associate works at their locations only, an API key does
what its role says, an invitation link is read in the mail log by who sent it and by owners only,
a catalog preview stays in its company, two owners can't demote each other to none, sign-ups are
throttled, periodic work skips idle companies, and webhooks go to the public internet only, to
the address that was checked."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from test_orders import by_priority, network, order_body, publish_rules, routed_order

from factories import bearer, create_tenant, csrf_headers, login, mail_to, post_form, run_outbox_inline, unique
from inventory_factories import API


async def _join(client: Any, make_client: Any, tenant: Any, role: str, locations: list[str] | None = None) -> Any:
    """A new member with ``role``, invited by the owner (signed in in ``client``, or through the
    API for roles an admin key may give) and signed in in a client of theirs."""
    email = f"{unique(role)}@example.test"
    if role == "owner":
        await login(client, tenant.email)
        invited = await post_form(client, "/app/settings/team/invitations", {"email": email, "role": role})
        assert invited.status_code == 303, invited.text
    else:
        invited = await client.post(f"{API}/invitations", headers=bearer(tenant.api_key),
                                    json={"email": email, "role": role, "locations": locations or []})
        assert invited.status_code == 201, invited.text
    await run_outbox_inline(tenant.tenant_id)
    [message] = await mail_to(tenant.tenant_id, email)
    token = re.search(r"/invitations/(inv_[\w-]+)", message.body_text).group(1)
    member = await make_client()
    accepted = await post_form(member, f"/invitations/{token}", {"name": role.title(), "password": "quiet river stone"})
    assert accepted.status_code == 303, accepted.text
    member.email = email
    return member


async def test_a_store_associate_sees_and_does_the_work_of_their_locations_only(client, make_client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 5}, "sku2": {"wh2": 5}})
    await publish_rules(client, key, by_priority(fallback=("split", "hold")))
    mine = await routed_order(client, tenant, order_body((c["sku"], 1, 1000)))
    theirs = await routed_order(client, tenant, order_body((c["sku2"], 1, 1000)))
    [my_part], [their_part] = mine["fulfilments"], theirs["fulfilments"]
    assert (my_part["location"], their_part["location"]) == (c["wh"], c["wh2"])

    refused = await client.post(f"{API}/invitations", headers=bearer(key),
                                json={"email": f"{unique('nowhere')}@example.test", "role": "store_associate"})
    assert refused.status_code == 422 and "location" in refused.text
    unknown = await client.post(f"{API}/invitations", headers=bearer(key), json={
        "email": f"{unique('ghost')}@example.test", "role": "store_associate", "locations": ["NOPE"]})
    assert unknown.status_code == 422 and "NOPE" in unknown.text

    associate = await _join(client, make_client, tenant, "store_associate", [c["wh"]])
    queue = await associate.get("/app/fulfilments")
    assert queue.status_code == 200 and my_part["number"] in queue.text and their_part["number"] not in queue.text
    assert c["wh2"] not in queue.text  # not even offered in the location picker
    assert (await associate.get(f"/app/fulfilments?location={c['wh2']}")).status_code == 404
    assert (await associate.get(f"/app/fulfilments/live?location={c['wh2']}")).status_code == 404
    assert (await associate.get(f"/app/orders/{theirs['id']}")).status_code == 404
    listed = await associate.get("/app/orders")
    assert mine["number"] in listed.text and theirs["number"] not in listed.text
    other = await post_form(associate, f"/app/fulfilments/{their_part['id']}/accept")
    assert other.status_code == 404
    own = await post_form(associate, f"/app/fulfilments/{my_part['id']}/accept")
    assert own.status_code == 303
    after = (await client.get(f"{API}/orders/{theirs['id']}", headers=bearer(key))).json()
    assert after["fulfilments"][0]["status"] == "created"

    # An owner moves them to the other location: from now on, that one.
    await login(client, tenant.email)
    members = (await client.get(f"{API}/members", headers=bearer(key))).json()
    [member] = [m for m in members if m["email"] == associate.email]
    assert member["locations"] == [c["wh"]]
    moved = await post_form(client, f"/app/settings/team/members/{member['id']}/role",
                            {"role": "store_associate", "locations_present": "1", "locations": c["wh2"]})
    assert moved.status_code == 303
    await login(associate, associate.email, "quiet river stone")
    assert (await associate.get(f"/app/fulfilments?location={c['wh2']}")).status_code == 200
    assert (await associate.get(f"/app/fulfilments?location={c['wh']}")).status_code == 404


async def _key(client: Any, role: str, channel: str = "") -> str:
    created = await post_form(client, "/app/settings/api-keys", {"name": f"{role} key", "role": role,
                                                                  "channel": channel})
    assert created.status_code == 303, created.text
    page = await client.get("/app/settings/api-keys")
    return re.search(r'id="new-api-key">([^<]+)<', page.text).group(1)


async def test_api_keys_do_what_their_role_says(client) -> None:
    tenant = await create_tenant()
    c = await network(client, tenant.api_key)
    await publish_rules(client, tenant.api_key, by_priority())
    await login(client, tenant.email)
    no_channel = await post_form(client, "/app/settings/api-keys", {"name": "Shop", "role": "order_intake"})
    assert no_channel.status_code == 422 and "channel" in no_channel.text

    reader = bearer(await _key(client, "read_only"))
    assert (await client.get(f"{API}/orders", headers=reader)).status_code == 200
    assert (await client.get(f"{API}/locations", headers=reader)).status_code == 200
    assert (await client.post(f"{API}/orders", headers=reader, json=order_body((c["sku"], 1, 100)))).status_code == 403
    assert (await client.post(f"{API}/invitations", headers=reader,
                              json={"email": "x@example.test"})).status_code == 403

    shop = bearer(await _key(client, "order_intake", "web"))
    placed = await client.post(f"{API}/orders", headers=shop, json=order_body((c["sku"], 1, 100)))
    assert placed.status_code == 201, placed.text
    elsewhere = await client.post(f"{API}/orders", headers=shop, json=order_body((c["sku"], 1, 100), channel="phone"))
    assert elsewhere.status_code == 422 and "web orders only" in elsewhere.text
    phone = await client.post(f"{API}/orders", headers=bearer(tenant.api_key),
                              json=order_body((c["sku"], 1, 100), channel="phone"))
    assert [o["id"] for o in (await client.get(f"{API}/orders", headers=shop)).json()["orders"]] == \
        [placed.json()["id"]]
    assert (await client.get(f"{API}/orders/{phone.json()['id']}", headers=shop)).status_code == 404
    assert (await client.get(f"{API}/availability", headers=shop, params={"sku": c["sku"]})).status_code == 200
    cancel_path = f"/orders/{placed.json()['id']}/cancel"
    for method, path in (("GET", "/locations"), ("GET", "/inventory/feeds"), ("POST", cancel_path),
                         ("GET", "/rule-sets/routing"), ("GET", "/members")):
        assert (await client.request(method, f"{API}{path}", headers=shop, json={})).status_code == 403, path

    feeds = bearer(await _key(client, "feed_intake"))
    sent = await client.post(f"{API}/inventory/feeds", headers=feeds, json={
        "feed_id": "by-feed-key", "kind": "delta", "rows": [{"sku": c["sku"], "location": c["wh"], "quantity": 1}]})
    assert sent.status_code == 202, sent.text
    assert (await client.get(f"{API}/inventory/feeds/{sent.json()['id']}", headers=feeds)).status_code == 200
    assert (await client.get(f"{API}/orders", headers=feeds)).status_code == 403
    assert (await client.get(f"{API}/me", headers=feeds)).json()["role"] == "feed_intake"

    keys_page = await client.get("/app/settings/api-keys")
    assert "order intake" in keys_page.text and "(web)" in keys_page.text
    audit = await client.get("/app/settings/audit-log")
    assert "order_intake" in audit.text and "feed_intake" in audit.text


async def test_an_invitation_link_shows_in_the_mail_log_to_its_sender_and_owners_only(client, make_client) -> None:
    from core.models import MailMessage

    tenant = await create_tenant()
    await login(client, tenant.email)
    first_admin = await _join(client, make_client, tenant, "admin")
    second_admin = await _join(client, make_client, tenant, "admin")
    await login(first_admin, first_admin.email, "quiet river stone")
    await login(second_admin, second_admin.email, "quiet river stone")
    email = f"{unique('new')}@example.test"
    sent = await post_form(first_admin, "/app/settings/team/invitations", {"email": email, "role": "merchandiser"})
    assert sent.status_code == 303
    owner_invite = f"{unique('heir')}@example.test"
    assert (await post_form(client, "/app/settings/team/invitations",
                            {"email": owner_invite, "role": "owner"})).status_code == 303

    async def link_shown(viewer: Any, to: str) -> bool:
        from core.db import get_database

        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            message_id = await session.scalar(select(MailMessage.id).where(MailMessage.to_address == to))
        page = await viewer.get(f"/app/settings/mail-log/{message_id}")
        assert page.status_code == 200
        return "/invitations/inv_" in page.text

    assert await link_shown(first_admin, email)  # who sent it
    assert await link_shown(client, email)  # an owner
    assert not await link_shown(second_admin, email)  # another admin
    assert not await link_shown(first_admin, owner_invite)  # nobody below the role invited
    assert await link_shown(client, owner_invite)


async def test_a_catalog_preview_stays_in_the_company_it_was_made_in(client) -> None:
    from core.db import get_database
    from factories import PASSWORD

    first, second_company = await create_tenant(), await create_tenant()
    # The first company's owner is also a merchandiser of the second.
    invited = await client.post(f"{API}/invitations", headers=bearer(second_company.api_key),
                                json={"email": first.email, "role": "merchandiser"})
    assert invited.status_code == 201
    await run_outbox_inline(second_company.tenant_id)
    [message] = await mail_to(second_company.tenant_id, first.email)
    token = re.search(r"/invitations/(inv_[\w-]+)", message.body_text).group(1)
    assert (await post_form(client, f"/invitations/{token}", {"password": PASSWORD})).status_code == 303
    second = type("Second", (), {"id": second_company.tenant_id})
    await login(client, first.email)
    assert (await post_form(client, f"/app/companies/{first.tenant_id}/switch")).status_code == 303
    preview = await client.post("/app/catalog/import", headers=csrf_headers(client),
                                files={"file": ("c.csv", b"sku,name,price_minor\nPREVIEWED-1,Shoe,100\n", "text/csv")})
    assert preview.status_code == 200 and "PREVIEWED-1" in preview.text
    assert (await post_form(client, f"/app/companies/{second.id}/switch")).status_code == 303
    applied = await post_form(client, "/app/catalog/import/apply")
    assert applied.status_code == 409
    async with get_database().transaction(tenant_id=second.id) as session:
        assert await session.scalar(text("SELECT count(*) FROM products")) == 0
    # Back in the first company, within the preview's time, it is still there to apply.
    assert (await post_form(client, f"/app/companies/{first.tenant_id}/switch")).status_code == 303
    assert (await post_form(client, "/app/catalog/import/apply")).status_code == 303


async def test_two_owners_demoting_each_other_at_once_leave_one(client, make_client) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    other = await _join(client, make_client, tenant, "owner")
    await login(other, other.email, "quiet river stone")
    members = {m["email"]: m["id"] for m in (await client.get(f"{API}/members", headers=bearer(tenant.api_key))).json()}
    results = await asyncio.gather(
        post_form(client, f"/app/settings/team/members/{members[other.email]}/role", {"role": "admin"}),
        post_form(other, f"/app/settings/team/members/{members[tenant.email]}/role", {"role": "admin"}))
    assert sorted(r.status_code for r in results) == [303, 422], [r.status_code for r in results]
    roles = [m["role"] for m in (await client.get(f"{API}/members", headers=bearer(tenant.api_key))).json()]
    assert roles.count("owner") == 1


async def test_sign_ups_are_throttled_per_address_and_network(app) -> None:
    from test_signup_and_sessions import signup_form

    def from_network(host: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(host, 40000))
        return httpx.AsyncClient(transport=transport, base_url="https://testserver.local")

    email = f"{unique('again')}@example.test"
    statuses = []
    for _ in range(7):  # the same address, from different places, and a typo each time
        async with from_network(f"198.51.100.{len(statuses) + 1}") as browser:
            await browser.get("/signup")
            statuses.append((await post_form(browser, "/signup", signup_form(email=email, password="x"))).status_code)
    assert statuses[:5] == [422] * 5 and statuses[5:] == [429, 429]

    statuses = []
    for n in range(22):  # different people, one network
        async with from_network(f"203.0.113.{n % 250 + 1}") as browser:
            await browser.get("/signup")
            statuses.append((await post_form(browser, "/signup", signup_form(email=f"{unique('n')}@example.test")))
                            .status_code)
    assert statuses.count(303) == 20 and statuses[-2:] == [429, 429]
    async with from_network("::ffff:203.0.113.99") as browser:  # the same network, written in IPv6
        await browser.get("/signup")
        again = await post_form(browser, "/signup", signup_form(email=f"{unique('n')}@example.test"))
        assert again.status_code == 429

    from core.throttle import network_of

    assert network_of("2001:db8:1234:5678::1") == "2001:db8:1234::/48"
    assert network_of(None) is None and network_of("") is None and network_of("::1") is None


async def test_periodic_work_finds_the_companies_with_work_due_and_purges_across_them(client) -> None:
    from core import clock, sweeper, tasks
    from core.db import get_database
    from core.ids import uuid7
    from core.models import IdempotencyRecord, OutboxMessage
    from orders.models import Fulfilment

    due, idle = await create_tenant(), await create_tenant()
    c = await network(client, due.api_key)
    await publish_rules(client, due.api_key, by_priority())
    order = await routed_order(client, due, order_body((c["sku"], 1, 1000), pickup=c["store"]) | {"delivery": {
        "mode": "pickup", "pickup_location": c["store"]}})
    async with get_database().transaction(tenant_id=due.tenant_id) as session:
        await session.execute(text("UPDATE fulfilments SET status = 'ready_for_pickup', pickup_expires_at = :t "
                                   "WHERE order_id = :o"), {"t": clock.now() - timedelta(hours=1), "o": order["id"]})
    found = await sweeper.companies_where(get_database(), Fulfilment.__table__, Fulfilment.status == "ready_for_pickup",
                                          Fulfilment.pickup_expires_at < clock.now())
    assert due.tenant_id in found and idle.tenant_id not in found

    old, recent = clock.now() - timedelta(days=8), clock.now() - timedelta(days=1)
    async with get_database().transaction(tenant_id=idle.tenant_id) as session:
        for sent, created in ((old, old), (recent, recent), (None, old)):
            session.add(OutboxMessage(tenant_id=idle.tenant_id, id=uuid7(), actor_name="x", queue_name="x",
                                      kwargs={}, created_at=created, sent_at=sent))
        session.add(IdempotencyRecord(tenant_id=idle.tenant_id, id=uuid7(), key="old", method="POST", path="/",
                                      request_hash="h", status_code=201, response_body=b"{}", media_type="x",
                                      created_at=clock.now() - timedelta(hours=25)))
    await tasks.purge_expired()
    async with get_database().transaction(tenant_id=idle.tenant_id) as session:
        left = sorted(str(s) for s in await session.scalars(select(OutboxMessage.sent_at)))
        assert len(left) == 2 and "None" in left  # a week-old unsent row waits for the relay
        assert await session.scalar(text("SELECT count(*) FROM idempotency_records")) == 0


async def test_webhooks_go_to_the_public_internet_only_and_to_the_address_checked(monkeypatch) -> None:
    from test_webhooks import Receiver

    from core import webhooks
    from core.settings import get_settings

    strict = type(get_settings())(**{**get_settings().__dict__, "webhooks_allow_private": False})
    monkeypatch.setattr(webhooks, "get_settings", lambda: strict)
    for url in ("http://100.64.0.7/hooks", "http://169.254.169.254/latest", "http://localhost/hooks",
                "http://[::ffff:10.0.0.1]/hooks", "http://10.1.2.3/hooks", "ftp://example.com/x",
                # IPv4 carried in IPv6: NAT64 (127.0.0.1), 6to4 (10.0.0.1), Teredo, IPv4-compatible.
                "http://[64:ff9b::7f00:1]/hooks", "http://[64:ff9b:1::a00:1]/h", "http://[2002:a00:1::]/hooks",
                "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/h", "http://[::a00:1]/hooks", "http://[fec0::1]/h"):
        assert await webhooks.check_url(url) is not None, url
    assert await webhooks.check_url("https://93.184.216.34/hooks") is None
    assert await webhooks.check_url("https://[2606:4700:4700::1111]/hooks") is None

    monkeypatch.undo()
    receiver = Receiver()
    try:
        port = receiver.server.server_address[1]
        target, host, _ = webhooks._pinned(f"http://localhost:{port}/hooks",
                                                    (await webhooks.resolve(f"http://localhost:{port}/hooks"))[1][0])
        assert target.startswith(("http://127.0.0.1:", "http://[::1]:")) and host == {"Host": f"localhost:{port}"}
        public = ipaddress.ip_address("93.184.216.34")
        assert webhooks._pinned("https://shop.example/h", public)[2] == {"sni_hostname": "shop.example"}
        # An international name goes as its ASCII form, an IPv6 literal in brackets, and
        # credentials in the URL as an authorization header, never in the Host.
        target, headers, tls = webhooks._pinned("https://user:p%40ss@bücher.example:8443/h", public)
        assert target == "https://93.184.216.34:8443/h" and tls == {"sni_hostname": "xn--bcher-kva.example"}
        assert headers == {"Host": "xn--bcher-kva.example:8443", "Authorization": "Basic dXNlcjpwQHNz"}
        v6 = ipaddress.ip_address("2606:4700:4700::1111")
        target, headers, tls = webhooks._pinned("https://[2606:4700:4700::1111]/h", v6)
        assert target == "https://[2606:4700:4700::1111]/h" and headers == {"Host": "[2606:4700:4700::1111]"}
        assert tls == {}
    finally:
        receiver.server.shutdown()


async def test_an_order_for_several_recipients_is_refused(client) -> None:
    tenant = await create_tenant()
    c = await network(client, tenant.api_key)
    body = order_body((c["sku"], 1, 100), email="ann@example.test, bob@example.test")
    refused = await client.post(f"{API}/orders", headers=bearer(tenant.api_key), json=body)
    assert refused.status_code == 422 and "customer.email" in refused.text


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
_ = uuid


async def test_a_pickup_store_receives_and_hands_over_the_transfers_sent_to_it(client, make_client) -> None:
    from test_orders import act_ok

    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 5}})
    await publish_rules(client, key, by_priority("Send it to the store", types=("store", "warehouse"),
                                                 fallback=("ship_to_store", "hold")))
    order = await routed_order(client, tenant, order_body((c["sku"], 1, 2500), pickup=c["store"]))
    [transfer] = order["fulfilments"]
    assert (transfer["kind"], transfer["ship_to_store"]) == ("transfer", c["store"])
    store = await _join(client, make_client, tenant, "store_associate", [c["store"]])
    elsewhere = await _join(client, make_client, tenant, "store_associate", [c["wh2"]])

    waiting = await store.get(f"/app/fulfilments?location={c['store']}")
    assert transfer["number"] not in waiting.text  # still the warehouse's to pick and pack
    for action in ("accept", "ship", "reject"):  # and only the warehouse sends it
        assert (await post_form(store, f"/app/fulfilments/{transfer['id']}/{action}",
                                {"reason": "Item missing"})).status_code == 404
    await act_ok(client, key, transfer["id"], "accept", "pick", "pack", "ship")
    arriving = await store.get(f"/app/fulfilments?location={c['store']}")
    assert transfer["number"] in arriving.text and "Arrived: ready for pickup" in arriving.text
    assert f"coming from {c['wh']}" in arriving.text
    assert (await post_form(elsewhere, f"/app/fulfilments/{transfer['id']}/ready")).status_code == 404
    assert (await store.get(f"/app/orders/{order['id']}")).status_code == 200
    ready = await post_form(store, f"/app/fulfilments/{transfer['id']}/ready", {"location": c["store"]})
    assert ready.status_code == 303 and f"location={c['store']}" in ready.headers["location"]
    assert "Handed over" in (await store.get(f"/app/fulfilments?location={c['store']}")).text
    collected = await post_form(store, f"/app/fulfilments/{transfer['id']}/collect", {"location": c["store"]})
    assert collected.status_code == 303
    done = (await client.get(f"{API}/orders/{order['id']}", headers=bearer(key))).json()
    assert done["status"] == "collected"
    assert (await elsewhere.get(f"/app/orders/{order['id']}")).status_code == 404


async def test_a_store_associate_sees_the_tasks_and_live_changes_of_their_orders_only(client, make_client) -> None:
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 5}})
    await publish_rules(client, key, by_priority(fallback=("hold",)))
    here = await routed_order(client, tenant, order_body((c["sku2"], 1, 1000), pickup=c["store"]))
    there = await routed_order(client, tenant, order_body((c["sku2"], 1, 1000)))
    assert (here["status"], there["status"]) == ("on_hold", "on_hold")
    tasks = (await client.get(f"{API}/service-tasks", headers=bearer(key))).json()["tasks"]
    by_order = {t["order_number"]: t for t in tasks}
    assert {here["number"], there["number"]} <= set(by_order)

    store = await _join(client, make_client, tenant, "store_associate", [c["store"]])
    listed = await store.get("/app/service-tasks")
    assert here["number"] in listed.text and there["number"] not in listed.text
    assert (await store.get("/app/service-tasks?kind=order_on_hold")).status_code == 200

    for path in ("/app/rules/simulate", "/app/rules/replay"):  # they read every recent order
        assert (await post_form(store, path, {"days": "7"})).status_code == 403, path


async def test_a_key_bound_to_a_channel_never_gets_another_channel_s_order(client) -> None:
    tenant = await create_tenant()
    c = await network(client, tenant.api_key)
    await publish_rules(client, tenant.api_key, by_priority())
    phone = await client.post(f"{API}/orders", headers=bearer(tenant.api_key),
                              json=order_body((c["sku"], 1, 100), channel="phone", external_number="P-77"))
    assert phone.status_code == 201
    await login(client, tenant.email)
    shop = bearer(await _key(client, "order_intake", "web"))
    resent = await client.post(f"{API}/orders", headers=shop,
                               json=order_body((c["sku"], 1, 100), channel="phone", external_number="P-77"))
    assert resent.status_code == 422 and "web orders only" in resent.text
    assert phone.json()["id"] not in resent.text
