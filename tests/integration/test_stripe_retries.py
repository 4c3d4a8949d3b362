"""Stripe retries that reach Stripe: Stripe answers an idempotency key with its first answer for
24 hours, refusals included, so a capture or refund retried after a definite refusal goes under a
new key, after a lost request under the same one, and after a success never again.

A small local fake of Stripe's two endpoints answers as scripted and records the keys it saw."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from factories import bearer, create_tenant, run_outbox_inline
from inventory_factories import API, one_warehouse_shop


class FakeStripe:
    """Answers each request with the next scripted reply: "ok", "error" (Stripe's 500, which
    it keeps for the key) or "drop" (the connection closes with no answer)."""

    def __init__(self) -> None:
        self.script: list[str] = []
        self.seen: list[tuple[str, str]] = []  # (path, idempotency key)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.seen.append((self.path, self.headers.get("Idempotency-Key", "")))
                reply = fake.script.pop(0) if fake.script else "ok"
                if reply == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if reply == "error":
                    self._answer(500, {"error": {"type": "api_error", "message": "An unknown error occurred"}})
                elif "/refunds" in self.path:
                    self._answer(200, {"id": "re_" + uuid.uuid4().hex[:10], "object": "refund", "status": "succeeded"})
                else:
                    self._answer(200, {"id": self.path.split("/")[3], "object": "payment_intent",
                                       "status": "succeeded"})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def keys(self, kind: str) -> list[str]:
        return [key for path, key in self.seen if kind in path]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    import stripe

    from core.settings import get_settings
    from orders import payments

    made = FakeStripe()
    local = type(get_settings())(**{**get_settings().__dict__, "stripe_api_base": made.url})
    monkeypatch.setattr(payments, "get_settings", lambda: local)
    monkeypatch.setattr(stripe, "max_network_retries", 0)  # the actor's own retries are what is tested
    yield made
    made.server.shutdown()


async def _shipped_stripe_order(client: Any, tenant: Any, number: str) -> str:
    key = bearer(tenant.api_key)
    body = {"channel": "web", "external_number": number, "currency": "EUR",
            "lines": [{"sku": "RT-1", "quantity": 1, "unit_price_minor": 5000}],
            "customer": {"email": "retry@example.test"},
            "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.85, "longitude": 2.35}},
            "total_minor": 5000, "payment": {"provider": "stripe", "reference": f"pi_{number}",
                                             "authorized_minor": 5000}}
    created = await client.post(f"{API}/orders", headers=key, json=body)
    assert created.status_code == 201, created.text
    await run_outbox_inline(tenant.tenant_id)
    order = (await client.get(f"{API}/orders/{created.json()['id']}", headers=key)).json()
    for action in ("accept", "pick", "pack", "ship"):
        assert (await client.post(f"{API}/fulfilments/{order['fulfilments'][0]['id']}/{action}", headers=key,
                                  json={})).status_code == 200
    return str(order["id"])


async def _attempt(name: str, kwargs: dict[str, Any]) -> bool:
    """One delivery of the message; False when it failed (Dramatiq would try again later)."""
    from core.broker import COROUTINES
    from orders.payments import PaymentFailed

    try:
        await COROUTINES[name](**kwargs)
    except PaymentFailed:
        return False
    return True


async def test_captures_and_refunds_retry_under_a_new_key_only_after_a_refusal(client, fake: FakeStripe) -> None:
    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-RT", sku="RT-1", quantity=10)
    assert (await client.put(f"{API}/payment-accounts/stripe", headers=key,
                             json={"secret_key": "sk_test_retries"})).status_code == 200

    order_id = await _shipped_stripe_order(client, tenant, "RT-1")
    capture = {"tenant_id": str(tenant.tenant_id), "order_id": order_id}
    fake.script = ["error", "drop", "ok"]
    assert not await _attempt("payments.capture_stripe", capture)  # Stripe's 500: kept for that key
    assert not await _attempt("payments.capture_stripe", capture)  # no answer: maybe it got there
    assert await _attempt("payments.capture_stripe", capture)
    assert await _attempt("payments.capture_stripe", capture)  # captured: Stripe is not asked again
    assert fake.keys("capture") == [f"capture-{order_id}", f"capture-{order_id}-1", f"capture-{order_id}-1"]
    order = (await client.get(f"{API}/orders/{order_id}", headers=key)).json()
    assert (order["payment_status"], order["captured_minor"]) == ("captured", 5000)

    from sqlalchemy import select

    from core.db import get_database
    from orders import payments
    from orders.models import Order, Refund

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        stored = await session.get(Order, (tenant.tenant_id, uuid.UUID(order_id)))
        assert await payments.refund(session, stored, 2000, actor="test", reason="one returned") == 2000
        assert await payments.refund(session, stored, 0, actor="test", reason="nothing") == 0
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        [refund] = list(await session.scalars(select(Refund).where(Refund.order_id == uuid.UUID(order_id))))
    message = {"tenant_id": str(tenant.tenant_id), "order_id": order_id, "amount_minor": 2000,
               "refund_id": str(refund.id)}
    fake.script = ["error", "ok"]
    assert not await _attempt("payments.refund_stripe", message)
    assert await _attempt("payments.refund_stripe", message)
    assert await _attempt("payments.refund_stripe", message)
    assert fake.keys("refunds") == [f"refund-{refund.id}", f"refund-{refund.id}-1"]
    order = (await client.get(f"{API}/orders/{order_id}", headers=key)).json()
    assert [e["kind"] for e in order["events"]].count("payment.refund_sent") == 1


async def test_nothing_is_sent_to_stripe_when_nothing_is_left_to_capture(client, fake: FakeStripe,
                                                                         owner_engine) -> None:
    from sqlalchemy import text

    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-RZ", sku="RT-1", quantity=10)
    await client.put(f"{API}/payment-accounts/stripe", headers=key, json={"secret_key": "sk_test_retries"})
    order_id = await _shipped_stripe_order(client, tenant, "RZ-1")
    async with owner_engine.begin() as conn:  # whatever was authorised went elsewhere meanwhile
        await conn.execute(text("UPDATE orders SET authorized_minor = 0 WHERE id = :o"), {"o": order_id})
    assert await _attempt("payments.capture_stripe", {"tenant_id": str(tenant.tenant_id), "order_id": order_id})
    assert fake.seen == []
    order = (await client.get(f"{API}/orders/{order_id}", headers=key)).json()
    assert order["payment_status"] == "none" and order["captured_minor"] == 0
    assert "payment.nothing_to_capture" in [e["kind"] for e in order["events"]]
