"""Stripe retries that reach Stripe: Stripe answers an idempotency key with its first answer for
24 hours, refusals included, so a capture or refund retried after a definite refusal goes under a
new key, after a lost request under the same one, and after a success never again.

A small local fake of Stripe's two endpoints answers as scripted and records the keys it saw."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from factories import bearer, create_tenant, run_outbox_inline
from inventory_factories import API, one_warehouse_shop


class FakeStripe:
    """Stripe's capture, refund, retrieve and list, with its idempotency: a key's first answer is
    kept and given again. Each POST takes the next scripted reply: "ok"; "error" (Stripe's 500);
    "refuse" (a 400 refusal); "drop" (the connection closes before Stripe acts); "done-drop" and
    "done-error" (Stripe acts, then the connection closes or it answers 500); "slow" (Stripe acts
    when ``go`` is set, having set ``arrived``)."""

    def __init__(self) -> None:
        self.script: list[str] = []
        self.seen: list[tuple[str, str]] = []  # (path, idempotency key) of each POST
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}  # idempotency key -> first answer
        self.captured: dict[str, int] = {}  # PaymentIntent -> amount captured
        self.refunds: list[dict[str, Any]] = []
        self.arrived, self.go = threading.Event(), threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path.startswith("/v1/payment_intents/"):
                    intent = url.path.split("/")[3]
                    captured = fake.captured.get(intent)
                    self._answer(200, {"id": intent, "object": "payment_intent",
                                       "status": "succeeded" if captured is not None else "requires_capture",
                                       "amount_received": captured or 0})
                else:
                    intent = parse_qs(url.query).get("payment_intent", [""])[0]
                    self._answer(200, {"object": "list", "has_more": False, "url": "/v1/refunds",
                                       "data": [r for r in fake.refunds if r["payment_intent"] == intent]})

            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
                key = self.headers.get("Idempotency-Key", "")
                fake.seen.append((self.path, key))
                if key in fake.answers:
                    self._answer(*fake.answers[key])
                    return
                reply = fake.script.pop(0) if fake.script else "ok"
                if reply == "drop":
                    self._drop()
                    return
                if reply == "error":
                    fake.answers[key] = (500, {"error": {"type": "api_error", "message": "An unknown error occurred"}})
                elif reply == "refuse":
                    fake.answers[key] = (400, {"error": {"type": "invalid_request_error",
                                                         "message": "This charge can't be refunded."}})
                else:
                    if reply == "slow":
                        fake.arrived.set()
                        fake.go.wait(30)
                    answer = self._act(form)
                    fake.answers[key] = answer if reply in ("ok", "slow", "done-drop") else (
                        500, {"error": {"type": "api_error", "message": "An unknown error occurred"}})
                    if reply == "done-drop":
                        self._drop()
                        return
                self._answer(*fake.answers[key])

            def _act(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
                if "/refunds" in self.path:
                    refund = {"id": "re_" + uuid.uuid4().hex[:10], "object": "refund", "status": "succeeded",
                              "amount": int(form["amount"][0]), "payment_intent": form["payment_intent"][0],
                              "metadata": {"oms_refund_id": form.get("metadata[oms_refund_id]", [""])[0]}}
                    fake.refunds.append(refund)
                    return 200, refund
                intent = self.path.split("/")[3]
                if intent in fake.captured:
                    return 400, {"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                                           "message": "This PaymentIntent has already been captured."}}
                fake.captured[intent] = int(form["amount_to_capture"][0])
                return 200, {"id": intent, "object": "payment_intent", "status": "succeeded",
                             "amount_received": fake.captured[intent]}

            def _drop(self) -> None:
                self.close_connection = True
                self.connection.shutdown(2)

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


async def _stripe_shop(client: Any, code: str) -> Any:
    tenant = await create_tenant()
    await one_warehouse_shop(client, tenant.api_key, location=code, sku="RT-1", quantity=10)
    assert (await client.put(f"{API}/payment-accounts/stripe", headers=bearer(tenant.api_key),
                             json={"secret_key": "sk_test_retries"})).status_code == 200
    return tenant


async def _refund_rows(tenant: Any, order_id: str) -> list[Any]:
    from sqlalchemy import select

    from core.db import get_database
    from orders.models import Refund

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        return list(await session.scalars(select(Refund).where(Refund.order_id == uuid.UUID(order_id))
                                          .order_by(Refund.id)))


async def _refund(tenant: Any, order_id: str, amount: int) -> dict[str, Any]:
    """Record a refund of ``amount`` on the order; the message that sends it to Stripe."""
    from core.db import get_database
    from orders import payments
    from orders.models import Order

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        stored = await session.get(Order, (tenant.tenant_id, uuid.UUID(order_id)))
        assert await payments.refund(session, stored, amount, actor="test", reason="returned") == amount
    row = (await _refund_rows(tenant, order_id))[-1]
    return {"tenant_id": str(tenant.tenant_id), "order_id": order_id, "amount_minor": amount, "refund_id": str(row.id)}


async def test_an_attempt_stripe_took_before_failing_is_found_not_repeated(client, fake: FakeStripe) -> None:
    """Stripe can act and still answer 500, or act and lose the connection: the retry finds the
    capture or refund already there and records it, and the customer is charged and refunded
    exactly once."""
    tenant = await _stripe_shop(client, "WH-RD")
    key = bearer(tenant.api_key)
    order_id = await _shipped_stripe_order(client, tenant, "RD-1")
    capture = {"tenant_id": str(tenant.tenant_id), "order_id": order_id}
    fake.script = ["done-error"]
    assert not await _attempt("payments.capture_stripe", capture)
    assert await _attempt("payments.capture_stripe", capture)
    assert fake.keys("capture") == [f"capture-{order_id}"]  # found at Stripe, not captured again
    order = (await client.get(f"{API}/orders/{order_id}", headers=key)).json()
    assert (order["payment_status"], order["captured_minor"]) == ("captured", 5000)
    assert fake.captured == {"pi_RD-1": 5000}

    first = await _refund(tenant, order_id, 1000)
    fake.script = ["done-error"]
    assert not await _attempt("payments.refund_stripe", first)
    assert await _attempt("payments.refund_stripe", first)
    second = await _refund(tenant, order_id, 1500)
    fake.script = ["done-drop"]
    assert not await _attempt("payments.refund_stripe", second)
    assert await _attempt("payments.refund_stripe", second)
    assert sorted(r["amount"] for r in fake.refunds) == [1000, 1500]
    assert [r.status for r in await _refund_rows(tenant, order_id)] == ["sent", "sent"]
    order = (await client.get(f"{API}/orders/{order_id}", headers=key)).json()
    assert [e["kind"] for e in order["events"]].count("payment.refund_sent") == 2
    tasks = (await client.get(f"{API}/service-tasks", headers=key, params={"status": "resolved"})).json()["tasks"]
    assert {t["kind"] for t in tasks} == {"payment_capture_failed", "refund_failed"}  # closed by the retries


async def test_a_refund_stripe_refuses_for_good_is_handed_to_customer_service(client, fake: FakeStripe) -> None:
    tenant = await _stripe_shop(client, "WH-RF")
    key = bearer(tenant.api_key)
    order_id = await _shipped_stripe_order(client, tenant, "RF-1")
    assert await _attempt("payments.capture_stripe", {"tenant_id": str(tenant.tenant_id), "order_id": order_id})
    message = await _refund(tenant, order_id, 2000)
    fake.script = ["refuse"]
    assert await _attempt("payments.refund_stripe", message)  # not retried: asking again changes nothing
    [row] = await _refund_rows(tenant, order_id)
    assert row.status == "failed"
    [task] = (await client.get(f"{API}/service-tasks", headers=key)).json()["tasks"]
    assert task["kind"] == "refund_failed" and "refund the customer another way" in task["detail"]
    resolved = await client.post(f"{API}/service-tasks/{task['id']}/resolve", headers=key,
                                 json={"note": "Refunded by bank transfer"})
    assert resolved.status_code == 200, resolved.text
    [row] = await _refund_rows(tenant, order_id)
    assert row.status == "abandoned"
    posts = len(fake.seen)
    assert await _attempt("payments.refund_stripe", message)  # a late delivery leaves it alone
    assert len(fake.seen) == posts and fake.refunds == []
    order = (await client.get(f"{API}/orders/{order_id}", headers=key)).json()
    abandoned = [e for e in order["events"] if e["kind"] == "payment.refund_abandoned"]
    assert len(abandoned) == 1 and "Refunded by bank transfer" in abandoned[0]["reason"]


async def test_units_cancelled_while_the_capture_is_on_its_way_are_refunded(client, fake: FakeStripe) -> None:
    """The first shipment asks Stripe for the whole order; a line cancelled before Stripe answers
    is refunded once the capture is recorded, so the customer pays only for what they get."""
    from inventory_factories import adjust, location_body, make_locations, make_products

    tenant = await _stripe_shop(client, "WH-CC")
    key = bearer(tenant.api_key)
    await make_locations(client, tenant.api_key, location_body("WH-CC2", latitude=45.7, longitude=4.8))
    await make_products(client, tenant.api_key, "RT-2")  # only in the second warehouse: two parcels
    assert (await adjust(client, tenant.api_key, "RT-2", "WH-CC2", 5)).status_code == 201
    body = {"channel": "web", "external_number": "CC-1", "currency": "EUR",
            "lines": [{"sku": "RT-1", "quantity": 1, "unit_price_minor": 5000},
                      {"sku": "RT-2", "quantity": 1, "unit_price_minor": 3000}],
            "customer": {"email": "cc@example.test"},
            "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.85, "longitude": 2.35}},
            "total_minor": 8000, "payment": {"provider": "stripe", "reference": "pi_CC-1", "authorized_minor": 8000}}
    created = await client.post(f"{API}/orders", headers=key, json=body)
    assert created.status_code == 201, created.text
    await run_outbox_inline(tenant.tenant_id)
    order = (await client.get(f"{API}/orders/{created.json()['id']}", headers=key)).json()
    fulfilment = next(f for f in order["fulfilments"] if f["location"] == "WH-CC")
    for action in ("accept", "pick", "pack", "ship"):
        assert (await client.post(f"{API}/fulfilments/{fulfilment['id']}/{action}", headers=key,
                                  json={})).status_code == 200
    order = (await client.get(f"{API}/orders/{order['id']}", headers=key)).json()
    assert order["payment_status"] == "capture_pending"
    fake.script = ["slow"]
    capturing = asyncio.create_task(_attempt("payments.capture_stripe",
                                             {"tenant_id": str(tenant.tenant_id), "order_id": order["id"]}))
    assert await asyncio.to_thread(fake.arrived.wait, 30)  # Stripe has the request for 8000
    cancelled = await client.post(f"{API}/orders/{order['id']}/cancel", headers=key,
                                  json={"lines": [{"line_no": 2, "quantity": 1}], "reason": "out of stock"})
    assert cancelled.status_code == 200, cancelled.text
    fake.go.set()
    assert await capturing
    order = (await client.get(f"{API}/orders/{order['id']}", headers=key)).json()
    assert (order["captured_minor"], order["refunded_minor"]) == (8000, 3000)
    [row] = await _refund_rows(tenant, order["id"])
    assert (row.amount_minor, row.status) == (3000, "pending")
