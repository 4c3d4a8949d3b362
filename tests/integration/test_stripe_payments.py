"""Orders paid with the company's own Stripe account, against a local fake Stripe (never the
network): captured at the first shipment, refunded on cancellation, and a capture Stripe
refuses is flagged on the order for customer service."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import stripe

from factories import bearer, create_tenant, run_outbox_inline
from inventory_factories import API, one_warehouse_shop

KEY = "sk_test_oms_fake_stripe"


@pytest.fixture
def stripe_base(fake_stripe: str, monkeypatch: pytest.MonkeyPatch) -> str:
    from core.settings import get_settings
    from orders import payments

    local = type(get_settings())(**{**get_settings().__dict__, "stripe_api_base": fake_stripe})
    monkeypatch.setattr(payments, "get_settings", lambda: local)
    return fake_stripe


def authorised_intent(base: str, amount: int) -> str:
    """What the shop's checkout does: a card payment authorised, to be captured later."""
    stripe.api_base = base
    method = stripe.PaymentMethod.create(type="card", api_key=KEY, card={
        "number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"})
    intent = stripe.PaymentIntent.create(amount=amount, currency="eur", payment_method=method.id,
                                         capture_method="manual", confirm=True, api_key=KEY)
    assert intent.status == "requires_capture"
    return str(intent.id)


def _order(number: str, reference: str, quantity: int = 2) -> dict[str, Any]:
    total = 1999 * quantity
    return {"channel": "web", "external_number": number, "currency": "EUR",
            "lines": [{"sku": "PAY-1", "quantity": quantity, "unit_price_minor": 1999}],
            "customer": {"email": "payer@example.test"},
            "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.85, "longitude": 2.35}},
            "total_minor": total, "payment": {"provider": "stripe", "reference": reference,
                                              "authorized_minor": total}}


async def _run(tenant_id) -> None:
    for _ in range(4):
        if not await run_outbox_inline(tenant_id):
            return


async def _ship(client, key: dict[str, str], order_id: str) -> dict[str, Any]:
    order = (await client.get(f"{API}/orders/{order_id}", headers=key)).json()
    [fulfilment] = order["fulfilments"]
    for action in ("accept", "pick", "pack", "ship"):
        moved = await client.post(f"{API}/fulfilments/{fulfilment['id']}/{action}", headers=key, json={})
        assert moved.status_code == 200, moved.text
    return order


async def test_stripe_orders_need_the_company_account(client, stripe_base: str) -> None:
    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-PAY", sku="PAY-1", quantity=10)
    refused = await client.post(f"{API}/orders", headers=key, json=_order("S-0", "pi_x"))
    assert refused.status_code == 422 and "Settings → Payments" in refused.text
    bad_key = await client.put(f"{API}/payment-accounts/stripe", headers=key, json={"secret_key": "pk_live_nope"})
    assert bad_key.status_code == 422
    saved = await client.put(f"{API}/payment-accounts/stripe", headers=key, json={"secret_key": KEY})
    assert saved.status_code == 200 and saved.json()["secret_key"].endswith(KEY[-4:])
    assert KEY not in saved.text  # shown masked


async def test_captured_at_shipment_and_refunded_on_cancellation(client, stripe_base: str) -> None:
    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-PAY", sku="PAY-1", quantity=10)
    await client.put(f"{API}/payment-accounts/stripe", headers=key, json={"secret_key": KEY})

    intent = authorised_intent(stripe_base, 3998)
    created = await client.post(f"{API}/orders", headers=key, json=_order("S-1", intent))
    assert created.status_code == 201, created.text
    await _run(tenant.tenant_id)
    await _ship(client, key, created.json()["id"])
    pending = (await client.get(f"{API}/orders/{created.json()['id']}", headers=key)).json()
    assert pending["payment_status"] == "capture_pending"
    await _run(tenant.tenant_id)
    captured = (await client.get(f"{API}/orders/{created.json()['id']}", headers=key)).json()
    assert (captured["payment_status"], captured["captured_minor"]) == ("captured", 3998)
    assert stripe.PaymentIntent.retrieve(intent, api_key=KEY).status == "succeeded"
    assert any(e["kind"] == "payment.captured" and intent in e["reason"] for e in captured["events"])

    # A second order: cancelled after a capture is impossible (it shipped), so cancel one unit
    # before shipping: the capture leaves it out.
    intent2 = authorised_intent(stripe_base, 3998)
    second = await client.post(f"{API}/orders", headers=key, json=_order("S-2", intent2))
    await _run(tenant.tenant_id)
    cancelled = await client.post(f"{API}/orders/{second.json()['id']}/cancel", headers=key,
                                  json={"lines": [{"line_no": 1, "quantity": 1}], "reason": "changed mind"})
    assert cancelled.status_code == 200, cancelled.text
    await _ship(client, key, second.json()["id"])
    await _run(tenant.tenant_id)
    after = (await client.get(f"{API}/orders/{second.json()['id']}", headers=key)).json()
    assert (after["payment_status"], after["captured_minor"]) == ("captured", 1999)
    assert stripe.PaymentIntent.retrieve(intent2, api_key=KEY).status == "succeeded"


async def test_refund_goes_to_stripe(client, stripe_base: str) -> None:
    from core.broker import COROUTINES

    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-PAY", sku="PAY-1", quantity=10)
    await client.put(f"{API}/payment-accounts/stripe", headers=key, json={"secret_key": KEY})
    intent = authorised_intent(stripe_base, 5997)
    created = await client.post(f"{API}/orders", headers=key, json=_order("S-3", intent, quantity=3))
    await _run(tenant.tenant_id)
    order = await _ship(client, key, created.json()["id"])
    await _run(tenant.tenant_id)
    # Refund directly through the payments interface, as a return will.
    from core.db import get_database
    from orders import payments
    from orders.models import Order

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        stored = await session.get(Order, (tenant.tenant_id, uuid.UUID(order["id"])))
        assert await payments.refund(session, stored, 1999, actor="test", reason="returned one") == 1999
    ran = await run_outbox_inline(tenant.tenant_id)
    assert [name for name, _ in ran] == ["payments.refund_stripe"]
    refunds = stripe.Refund.list(payment_intent=intent, api_key=KEY)
    assert [r.amount for r in refunds.data] == [1999]
    # A redelivery of the same refund message must not refund twice.
    await COROUTINES["payments.refund_stripe"](**ran[0][1])
    after = (await client.get(f"{API}/orders/{order['id']}", headers=key)).json()
    assert (after["payment_status"], after["refunded_minor"]) == ("partially_refunded", 1999)
    assert [e["kind"] for e in after["events"]].count("payment.refund_sent") == 1
    assert len(stripe.Refund.list(payment_intent=intent, api_key=KEY).data) == 1


async def test_a_capture_stripe_refuses_is_flagged_for_customer_service(client, stripe_base: str) -> None:
    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-PAY", sku="PAY-1", quantity=10)
    await client.put(f"{API}/payment-accounts/stripe", headers=key, json={"secret_key": KEY})
    created = await client.post(f"{API}/orders", headers=key, json=_order("S-4", "pi_unknown_to_stripe"))
    assert created.status_code == 201
    await _run(tenant.tenant_id)
    await _ship(client, key, created.json()["id"])
    await _run(tenant.tenant_id)
    order = (await client.get(f"{API}/orders/{created.json()['id']}", headers=key)).json()
    assert order["payment_status"] == "capture_failed"
    assert order["status"] == "shipped"
    [failure] = [e for e in order["events"] if e["kind"] == "payment.capture_failed"]
    assert "customer service" in failure["reason"]
    flagged = (await client.get(f"{API}/orders", headers=key, params={"payment_status": "capture_failed"})).json()
    flagged = flagged["orders"]
    assert [o["number"] for o in flagged] == [order["number"]]


async def test_a_failed_capture_opens_a_task_and_holds_the_rest_of_the_order(client, stripe_base: str) -> None:
    """Two warehouses each hold one unit, so a two-unit order ships in two parts. Stripe refuses
    the capture at the first shipment: a customer-service task opens, the second part may not
    leave, and resolving the task (the customer paid another way) lets it go."""
    from inventory_factories import adjust, location_body, make_locations

    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-A", sku="PAY-1", quantity=1)
    await make_locations(client, tenant.api_key, location_body("WH-B", latitude=45.7, longitude=4.8,
                                                               ships_to_customers=True))
    assert (await adjust(client, tenant.api_key, "PAY-1", "WH-B", 1)).status_code == 201
    await client.put(f"{API}/payment-accounts/stripe", headers=key, json={"secret_key": KEY})
    created = await client.post(f"{API}/orders", headers=key, json=_order("S-5", "pi_unknown_to_stripe"))
    assert created.status_code == 201, created.text
    await _run(tenant.tenant_id)
    order = (await client.get(f"{API}/orders/{created.json()['id']}", headers=key)).json()
    first, second = order["fulfilments"]
    for action in ("accept", "pick", "pack", "ship"):
        assert (await client.post(f"{API}/fulfilments/{first['id']}/{action}", headers=key, json={})).status_code == 200
    await _run(tenant.tenant_id)

    tasks = (await client.get(f"{API}/service-tasks", headers=key)).json()["tasks"]
    assert [(t["kind"], t["order_number"], t["status"]) for t in tasks] == [
        ("payment_capture_failed", order["number"], "open")]
    assert "failed" in tasks[0]["detail"]
    for action in ("accept", "pick", "pack"):
        assert (await client.post(f"{API}/fulfilments/{second['id']}/{action}", headers=key,
                                  json={})).status_code == 200
    held = await client.post(f"{API}/fulfilments/{second['id']}/ship", headers=key, json={})
    assert held.status_code == 409 and "captured" in held.json()["detail"]

    empty = await client.post(f"{API}/service-tasks/{tasks[0]['id']}/resolve", headers=key, json={"note": " "})
    assert empty.status_code == 422
    resolved = await client.post(f"{API}/service-tasks/{tasks[0]['id']}/resolve", headers=key,
                                 json={"note": "Customer paid by bank transfer"})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved" and resolved.json()["resolution"] == "Customer paid by bank transfer"
    again = await client.post(f"{API}/service-tasks/{tasks[0]['id']}/resolve", headers=key, json={"note": "twice"})
    assert again.status_code == 409
    shipped = await client.post(f"{API}/fulfilments/{second['id']}/ship", headers=key, json={})
    assert shipped.status_code == 200, shipped.text
    after = (await client.get(f"{API}/orders/{order['id']}", headers=key)).json()
    assert after["status"] == "shipped"
    assert [e["kind"] for e in after["events"] if e["kind"].startswith("task.")] == ["task.opened", "task.resolved"]
    assert (await client.get(f"{API}/service-tasks", headers=key)).json()["tasks"] == []
    done = (await client.get(f"{API}/service-tasks", headers=key, params={"status": "resolved"})).json()["tasks"]
    assert [t["id"] for t in done] == [tasks[0]["id"]]


async def test_a_returned_unit_is_refunded_through_stripe_and_the_return_closes_once_paid(
        client, stripe_base: str) -> None:
    from test_returns import accept_returns

    from core.broker import COROUTINES

    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-RET", sku="PAY-1", quantity=10)
    await accept_returns(client, tenant.api_key, "WH-RET")
    await client.put(f"{API}/payment-accounts/stripe", headers=key, json={"secret_key": KEY})
    intent = authorised_intent(stripe_base, 3998)
    created = await client.post(f"{API}/orders", headers=key, json=_order("S-R1", intent))
    await _run(tenant.tenant_id)
    order = await _ship(client, key, created.json()["id"])
    await _run(tenant.tenant_id)
    opened = await client.post(f"{API}/returns", headers=key, json={
        "order_id": order["id"], "lines": [{"line_no": 1, "quantity": 1, "reason_code": "defective"}]})
    assert opened.status_code == 201, opened.text
    return_id = opened.json()["id"]
    for step, body in (("receive", {"location": "WH-RET"}),
                       ("inspect", {"lines": [{"line_no": 1, "condition": "damaged"}]})):
        moved = await client.post(f"{API}/returns/{return_id}/{step}", headers=key, json=body)
        assert moved.status_code == 200, moved.text
    assert (moved.json()["status"], moved.json()["refunded_minor"]) == ("refunded", 1999)  # Stripe has not paid yet

    ran = await run_outbox_inline(tenant.tenant_id)
    assert "payments.refund_stripe" in [name for name, _ in ran]
    assert [r.amount for r in stripe.Refund.list(payment_intent=intent, api_key=KEY).data] == [1999]
    await COROUTINES["support.close_paid_returns"](tenant_id=str(tenant.tenant_id))
    closed = (await client.get(f"{API}/returns/{return_id}", headers=key)).json()
    assert closed["status"] == "closed"
    [refund] = (await client.get(f"{API}/orders/{order['id']}/refunds", headers=key)).json()
    assert (refund["source"], refund["status"], refund["amount_minor"]) == ("return", "sent", 1999)
