"""Webhooks: a company's order events reach its endpoint, signed with the endpoint's secret, once
per transaction that commits; failures are recorded attempt by attempt and retried."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from factories import bearer, create_tenant, login, run_outbox_inline
from inventory_factories import API, one_warehouse_shop

ORDER_EVENTS = ("order.created", "fulfilment.created", "order.routed")


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records what it is sent and answers ``status``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[str]:
        return [json.loads(r["body"])["type"] for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.server.shutdown()


def _order(number: str) -> dict[str, Any]:
    return {"channel": "web", "external_number": number, "currency": "EUR",
            "lines": [{"sku": "HOOK-1", "quantity": 1, "unit_price_minor": 1999}],
            "customer": {"email": "hook@example.test", "name": "Hook"},
            "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.85, "longitude": 2.35}},
            "total_minor": 1999}


async def _run_all(tenant_id: uuid.UUID) -> None:
    for _ in range(4):  # routing queues webhooks, which may queue nothing more
        if not await run_outbox_inline(tenant_id):
            return


async def test_order_events_reach_the_endpoint_signed(client, receiver: Receiver) -> None:
    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-HOOK", sku="HOOK-1", quantity=5)
    created = await client.post(f"{API}/webhook-endpoints", headers=key,
                                json={"url": receiver.url, "description": "ERP"})
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_")

    order = await client.post(f"{API}/orders", headers=key, json=_order("HOOK-100"))
    assert order.status_code == 201, order.text
    await _run_all(tenant.tenant_id)

    assert receiver.events() == list(ORDER_EVENTS)
    for request in receiver.requests:
        body = request["body"]
        stamp, signature = (part.split("=", 1)[1] for part in request["headers"]["OMS-Signature"].split(","))
        expected = hmac.new(endpoint["secret"].encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(signature, expected)
        payload = json.loads(body)
        assert payload["data"]["number"] == order.json()["number"]
        assert request["headers"]["OMS-Event"] == payload["type"]

    deliveries = (await client.get(f"{API}/webhook-endpoints/{endpoint['id']}/deliveries", headers=key)).json()
    assert sorted(d["event_type"] for d in deliveries) == sorted(ORDER_EVENTS)
    assert {d["status"] for d in deliveries} == {"delivered"}
    assert {d["attempts"] for d in deliveries} == {1}

    # Running the same messages again (a redelivery) sends nothing twice.
    from core.broker import COROUTINES

    for d in deliveries:
        await COROUTINES["webhooks.deliver"](tenant_id=str(tenant.tenant_id), delivery_id=str(d["id"]))
    assert len(receiver.requests) == len(ORDER_EVENTS)


async def test_only_subscribed_events_are_sent_and_refused_orders_send_nothing(client, receiver: Receiver) -> None:
    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-HOOK", sku="HOOK-1", quantity=5)
    assert (await client.post(f"{API}/webhook-endpoints", headers=key,
                              json={"url": receiver.url, "events": ["order.routed"]})).status_code == 201
    bad = _order("HOOK-BAD") | {"total_minor": 1}
    assert (await client.post(f"{API}/orders", headers=key, json=bad)).status_code == 422
    assert (await client.post(f"{API}/orders", headers=key, json=_order("HOOK-101"))).status_code == 201
    await _run_all(tenant.tenant_id)
    assert receiver.events() == ["order.routed"]


async def test_a_failing_endpoint_records_each_attempt_and_is_retried(client, receiver: Receiver) -> None:
    from core.broker import COROUTINES
    from core.webhooks import Undeliverable

    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-HOOK", sku="HOOK-1", quantity=5)
    endpoint = (await client.post(f"{API}/webhook-endpoints", headers=key,
                                  json={"url": receiver.url, "events": ["order.created"]})).json()
    receiver.status = 503
    assert (await client.post(f"{API}/orders", headers=key, json=_order("HOOK-102"))).status_code == 201
    with pytest.raises(Undeliverable):  # Dramatiq retries it with backoff
        await _run_all(tenant.tenant_id)
    [delivery] = (await client.get(f"{API}/webhook-endpoints/{endpoint['id']}/deliveries", headers=key)).json()
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("pending", 1, 503)

    receiver.status = 200
    await COROUTINES["webhooks.deliver"](tenant_id=str(tenant.tenant_id), delivery_id=str(delivery["id"]))
    [delivery] = (await client.get(f"{API}/webhook-endpoints/{endpoint['id']}/deliveries", headers=key)).json()
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("delivered", 2, 200)
    assert receiver.events() == ["order.created", "order.created"]

    await login(client, tenant.email)
    settings_page = await client.get("/app/settings/webhooks")
    assert settings_page.status_code == 200
    assert receiver.url in settings_page.text and "delivered" in settings_page.text


async def test_endpoint_urls_are_checked(client, monkeypatch) -> None:
    from core import webhooks
    from core.settings import get_settings

    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    refused = await client.post(f"{API}/webhook-endpoints", headers=key, json={"url": "ftp://example.test/x"})
    assert refused.status_code == 422
    unknown = await client.post(f"{API}/webhook-endpoints", headers=key,
                                json={"url": "http://127.0.0.1:9/x", "events": ["order.teleported"]})
    assert unknown.status_code == 422 and "order.teleported" in unknown.text

    strict = type(get_settings())(**{**get_settings().__dict__, "webhooks_allow_private": False})
    monkeypatch.setattr(webhooks, "get_settings", lambda: strict)
    private = await client.post(f"{API}/webhook-endpoints", headers=key, json={"url": "http://127.0.0.1:8080/x"})
    assert private.status_code == 422 and "private address" in private.text
    assert (await client.get(f"{API}/webhook-endpoints", headers=key)).json() == []
