"""``POST /webhooks/stripe``: signed events drive invoices, credit notes and the card on file; a bad
signature changes nothing, a replay changes nothing, an unknown type is acknowledged."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe
from sqlalchemy import func, select

from billing_factories import invoice_row, standing
from factories import create_tenant

SECRET = "whsec_test"
KEY = "sk_test_x"  # the platform key the fixture sets
URL = "/webhooks/stripe"


def signed(event: dict[str, Any], secret: str = SECRET) -> tuple[str, dict[str, str]]:
    """The body and headers Stripe sends: ``t=<time>,v1=HMAC-SHA256(secret, "<time>.<body>")``."""
    payload = json.dumps(event)
    stamp = int(time.time())
    signature = hmac.new(secret.encode(), f"{stamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return payload, {"stripe-signature": f"t={stamp},v1={signature}", "content-type": "application/json"}


def event(kind: str, subject: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {"id": event_id or f"evt_{uuid.uuid4().hex}", "object": "event", "type": kind, "api_version": "2024-06-20",
            "created": int(time.time()), "data": {"object": subject}}


NUMBERS: dict[uuid.UUID, str] = {}  # each invoice's number, for the PaymentIntents that name it


def customer_of(tenant_id: uuid.UUID) -> str:
    return f"cus_{tenant_id.hex[:14]}"


async def make_invoice(tenant_id: uuid.UUID, *, total: int = 4680, kind: str = "invoice", status: str = "open",
                       **columns: Any) -> uuid.UUID:
    """An issued invoice (or credit note) as the close of a period writes it, its company a Stripe
    customer."""
    from billing import accounts
    from billing.models import Invoice
    from core.db import get_database
    from core.ids import uuid7

    subtotal = total * 10000 // 12000
    async with get_database().transaction(tenant_id=tenant_id) as session:
        account = await accounts.account_of(session, tenant_id, lock=True)
        account.stripe_customer_id = account.stripe_customer_id or customer_of(tenant_id)
        invoice = Invoice(
            tenant_id=tenant_id, id=uuid7(), kind=kind, number=f"TEST-{uuid.uuid4().hex[:12]}",
            series="TEST", year=2026, sequence=1, issued_at=datetime.now(UTC),
            issuer={"name": "OMS Platform SAS", "country": "FR"}, customer={"legal_name": "Test", "country": "FR"},
            plan="Starter", currency="EUR", subtotal_minor=subtotal, vat_rate_bp=2000,
            vat_minor=total - subtotal, total_minor=total, vat_treatment="domestic", vat_mentions=[], status=status,
            **columns)
        session.add(invoice)
    NUMBERS[invoice.id] = invoice.number
    return invoice.id


async def stored_event(event_id: str) -> Any:
    from billing.models import StripeEvent
    from core.db import get_database

    async with get_database().transaction() as session:
        return await session.get(StripeEvent, event_id)


async def audits(tenant_id: uuid.UUID, action: str) -> int:
    from core.db import get_database
    from tenants.models import AuditEvent

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return int(await session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.action == action)) or 0)


def intent(tenant_id: uuid.UUID, invoice_id: uuid.UUID, amount: int = 4680, attempt: int = 0,
           **fields: Any) -> dict[str, Any]:
    """A PaymentIntent as the platform creates it for the invoice (its customer, its number)."""
    return {"id": f"pi_{uuid.uuid4().hex[:14]}", "object": "payment_intent", "amount": amount,
            "amount_received": amount, "currency": "eur", "status": "succeeded", "customer": customer_of(tenant_id),
            "metadata": {"tenant_id": str(tenant_id), "invoice_id": str(invoice_id),
                         "number": NUMBERS.get(invoice_id, "TEST"), "attempt": str(attempt)}, **fields}


async def test_not_configured_and_bad_signatures_change_nothing(client, platform_stripe: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = await create_tenant()
    invoice_id = await make_invoice(tenant.tenant_id)
    paid = event("payment_intent.succeeded", intent(tenant.tenant_id, invoice_id))
    payload, headers = signed(paid)

    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET")
    unconfigured = await client.post(URL, content=payload, headers=headers)
    assert unconfigured.status_code == 400 and "webhooks are not configured" in unconfigured.text
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)

    forged_payload, forged_headers = signed(paid, secret="whsec_someone_else")
    forged = await client.post(URL, content=forged_payload, headers=forged_headers)
    assert forged.status_code == 400 and "signature" in forged.text
    missing = await client.post(URL, content=payload, headers={"content-type": "application/json"})
    assert missing.status_code == 400
    tampered = await client.post(URL, content=payload.replace("4680", "1"), headers=headers)
    assert tampered.status_code == 400
    not_json = await client.post(URL, content="not json", headers=signed({"x": 1})[1])
    assert not_json.status_code == 400

    assert await stored_event(paid["id"]) is None
    row = await invoice_row(tenant.tenant_id, invoice_id)
    assert (row.status, row.paid_at, row.payment_intent_id) == ("open", None, None)


async def test_payment_succeeded_marks_paid_once_and_replays_change_nothing(client, platform_stripe: str) -> None:
    tenant = await create_tenant()
    invoice_id = await make_invoice(tenant.tenant_id)
    paid = event("payment_intent.succeeded", intent(tenant.tenant_id, invoice_id))
    payload, headers = signed(paid)

    first = await client.post(URL, content=payload, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["received"] is True and "paid" in first.json()["outcome"]
    row = await invoice_row(tenant.tenant_id, invoice_id)
    assert (row.status, row.payment_intent_id) == ("paid", paid["data"]["object"]["id"])
    stored = await stored_event(paid["id"])
    assert (stored.type, stored.company_id, stored.outcome) == ("payment_intent.succeeded", tenant.tenant_id,
                                                               f"invoice {row.number} paid")

    replay = await client.post(URL, content=payload, headers=headers)
    assert replay.status_code == 200 and replay.json() == {"received": True, "duplicate": True}
    again = await invoice_row(tenant.tenant_id, invoice_id)
    assert (again.paid_at, again.updated_at) == (row.paid_at, row.updated_at)
    assert await audits(tenant.tenant_id, "billing.invoice_paid") == 1

    # Another event for the same payment (Stripe may send one twice under new ids): nothing more.
    payload, headers = signed(event("payment_intent.succeeded", paid["data"]["object"]))
    other = await client.post(URL, content=payload, headers=headers)
    assert other.status_code == 200 and "already paid" in other.json()["outcome"]
    assert await audits(tenant.tenant_id, "billing.invoice_paid") == 1


async def test_a_payment_that_does_not_match_or_names_another_company_pays_nothing(client,
                                                                                 platform_stripe: str) -> None:
    tenant, other = await create_tenant(), await create_tenant()
    invoice_id = await make_invoice(tenant.tenant_id)
    others_invoice = await make_invoice(other.tenant_id)
    for subject in (intent(tenant.tenant_id, invoice_id, amount=100),
                    intent(tenant.tenant_id, others_invoice)):
        payload, headers = signed(event("payment_intent.succeeded", subject))
        response = await client.post(URL, content=payload, headers=headers)
        assert response.status_code == 200
    assert (await invoice_row(tenant.tenant_id, invoice_id)).status == "open"
    assert (await invoice_row(other.tenant_id, others_invoice)).status == "open"


async def test_payment_failed_is_recorded_once_per_attempt(client, platform_stripe: str) -> None:
    tenant = await create_tenant()
    invoice_id = await make_invoice(tenant.tenant_id)
    failed = intent(tenant.tenant_id, invoice_id, status="requires_payment_method",
                    last_payment_error={"message": "Your card was declined."})
    payload, headers = signed(event("payment_intent.payment_failed", failed))
    assert (await client.post(URL, content=payload, headers=headers)).status_code == 200
    row = await invoice_row(tenant.tenant_id, invoice_id)
    assert (row.attempts, row.last_error) == (1, "Your card was declined.")
    assert row.first_failed_at is not None and row.next_attempt_at is not None
    assert await standing(tenant.tenant_id) == "payment_failed"

    replay = await client.post(URL, content=payload, headers=headers)
    assert replay.json()["duplicate"] is True
    payload, headers = signed(event("payment_intent.payment_failed", failed))  # same attempt, new event
    same_attempt = await client.post(URL, content=payload, headers=headers)
    assert "already recorded" in same_attempt.json()["outcome"]
    assert (await invoice_row(tenant.tenant_id, invoice_id)).attempts == 1
    assert await audits(tenant.tenant_id, "billing.payment_failed") == 1


async def test_unknown_types_are_acknowledged_and_kept(client, platform_stripe: str) -> None:
    unknown = event("customer.subscription.trial_will_end", {"id": "sub_1", "object": "subscription"})
    payload, headers = signed(unknown)
    response = await client.post(URL, content=payload, headers=headers)
    assert response.status_code == 200 and response.json() == {"received": True, "outcome": "ignored"}
    assert (await stored_event(unknown["id"])).outcome == "ignored"


async def test_refund_events_mark_the_credit_note_refunded(client, platform_stripe: str) -> None:
    tenant = await create_tenant()
    invoice_id = await make_invoice(tenant.tenant_id, status="paid", payment_intent_id="pi_paid")
    note_id = await make_invoice(tenant.tenant_id, kind="credit_note", status="issued", total=1200,
                                 credited_invoice_id=invoice_id)
    refund = {"id": "re_" + uuid.uuid4().hex[:14], "object": "refund", "amount": 1200, "status": "succeeded",
              "payment_intent": "pi_paid",
              "metadata": {"tenant_id": str(tenant.tenant_id), "credit_note_id": str(note_id)}}
    charge = {"id": "ch_1", "object": "charge", "payment_intent": "pi_paid", "amount_refunded": 1200,
              "metadata": {}, "refunds": {"object": "list", "data": [refund]}}
    payload, headers = signed(event("charge.refunded", charge))
    response = await client.post(URL, content=payload, headers=headers)
    assert response.status_code == 200 and "refunded" in response.json()["outcome"]
    note = await invoice_row(tenant.tenant_id, note_id)
    assert (note.status, note.stripe_refund_id) == ("refunded", refund["id"])
    payload, headers = signed(event("refund.updated", refund))
    assert "already refunded" in (await client.post(URL, content=payload, headers=headers)).json()["outcome"]


async def test_setup_intent_succeeded_stores_the_card_when_none_is(client, platform_stripe: str) -> None:
    from billing.models import BillingAccount
    from core.db import get_database

    tenant = await create_tenant()
    stripe.api_base = platform_stripe
    customer = stripe.Customer.create(api_key=KEY, metadata={"tenant_id": str(tenant.tenant_id)})
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        from billing import accounts

        account = await accounts.account_of(session, tenant.tenant_id, lock=True)
        account.stripe_customer_id = customer.id
    method = stripe.PaymentMethod.create(api_key=KEY, type="card", card={
        "number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"})
    setup = stripe.SetupIntent.create(api_key=KEY, customer=customer.id, usage="off_session",
                                      metadata={"tenant_id": str(tenant.tenant_id)})
    setup = stripe.SetupIntent.confirm(setup.id, api_key=KEY, payment_method=method.id)
    payload, headers = signed(event("setup_intent.succeeded", setup.to_dict()))
    response = await client.post(URL, content=payload, headers=headers)
    assert response.json()["outcome"] == "card stored"
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        stored = await session.scalar(select(BillingAccount).where(BillingAccount.tenant_id == tenant.tenant_id))
        assert (stored.payment_method_id, stored.card_last4, stored.card_expires) == (method.id, "4242", "12/2035")
    assert await audits(tenant.tenant_id, "billing.card_saved") == 1


async def post_event(client: Any, kind: str, subject: dict[str, Any]) -> str:
    payload, headers = signed(event(kind, subject))
    response = await client.post(URL, content=payload, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["outcome"])


async def test_a_payment_intent_that_is_not_the_invoices_changes_nothing(client, platform_stripe: str) -> None:
    tenant = await create_tenant()
    invoice_id = await make_invoice(tenant.tenant_id)
    forged = [intent(tenant.tenant_id, invoice_id, customer="cus_someone_else"),
              intent(tenant.tenant_id, invoice_id, customer=None),
              {**intent(tenant.tenant_id, invoice_id), "metadata": {"tenant_id": str(tenant.tenant_id),
                                                                   "invoice_id": str(invoice_id), "number": "INV-X"}},
              intent(tenant.tenant_id, invoice_id, amount=4681)]
    for subject in forged:
        assert await post_event(client, "payment_intent.succeeded", subject) == "ignored: not this invoice"
        failed = {**subject, "status": "requires_payment_method", "last_payment_error": {"message": "declined"}}
        assert await post_event(client, "payment_intent.payment_failed", failed) == "ignored: not this invoice"
    row = await invoice_row(tenant.tenant_id, invoice_id)
    assert (row.status, row.payment_intent_id, row.attempts, row.first_failed_at) == ("open", None, 0, None)
    assert await standing(tenant.tenant_id) == "good"


async def credit(tenant_id: uuid.UUID, invoice_id: uuid.UUID, amount: int) -> uuid.UUID:
    from billing import invoicing
    from core.db import get_database
    from tenants.service import Actor

    async with get_database().transaction(tenant_id=tenant_id) as session:
        note = await invoicing.issue_credit_note(session, tenant_id, invoice_id, amount, "goodwill",
                                                 actor=Actor("operator"))
    return note.id


async def test_a_payment_under_way_when_credit_notes_were_applied_refunds_exactly_the_excess(
        client, platform_stripe: str) -> None:
    tenant = await create_tenant()
    invoice_id = await make_invoice(tenant.tenant_id)
    older, newer = await credit(tenant.tenant_id, invoice_id, 1000), await credit(tenant.tenant_id, invoice_id, 800)
    assert [(await invoice_row(tenant.tenant_id, n)).status for n in (older, newer)] == ["applied", "applied"]
    # The PaymentIntent asked 4000 (more than the 2880 now due): 1120 too much, from the newest note back.
    paid = intent(tenant.tenant_id, invoice_id, amount=4000)
    assert "paid" in await post_event(client, "payment_intent.succeeded", paid)
    row = await invoice_row(tenant.tenant_id, invoice_id)
    assert (row.status, row.payment_intent_id, row.credited_minor) == ("paid", paid["id"], 1800)
    newest, oldest = await invoice_row(tenant.tenant_id, newer), await invoice_row(tenant.tenant_id, older)
    assert (newest.status, newest.total_minor - newest.credited_minor) == ("issued", 800)
    assert (oldest.status, oldest.total_minor - oldest.credited_minor) == ("issued", 320)


async def test_a_payment_of_an_invoice_credited_meanwhile_is_recorded_and_refunded(client,
                                                                                  platform_stripe: str) -> None:
    from core.db import get_database
    from core.models import OutboxMessage

    tenant = await create_tenant()
    invoice_id = await make_invoice(tenant.tenant_id)
    note_id = await credit(tenant.tenant_id, invoice_id, 4680)
    assert (await invoice_row(tenant.tenant_id, invoice_id)).status == "credited"
    paid = intent(tenant.tenant_id, invoice_id)
    assert "paid" in await post_event(client, "payment_intent.succeeded", paid)
    row = await invoice_row(tenant.tenant_id, invoice_id)
    assert (row.status, row.payment_intent_id, row.paid_at is not None) == ("paid", paid["id"], True)
    note = await invoice_row(tenant.tenant_id, note_id)
    assert (note.status, note.credited_minor) == ("issued", 0)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        sent = list(await session.scalars(select(OutboxMessage.kwargs).where(
            OutboxMessage.tenant_id == tenant.tenant_id, OutboxMessage.actor_name == "billing.refund_credit_note")))
    assert [message["credit_note_id"] for message in sent] == [str(note_id)]


async def test_a_failed_payment_clears_the_payment_under_way(client, platform_stripe: str) -> None:
    tenant = await create_tenant()
    under_way = "pi_" + uuid.uuid4().hex[:14]
    invoice_id = await make_invoice(tenant.tenant_id, payment_intent_id=under_way)
    other = intent(tenant.tenant_id, invoice_id, status="requires_payment_method")
    assert "already recorded" in await post_event(client, "payment_intent.payment_failed", other)
    failed = {**other, "id": under_way, "last_payment_error": {"message": "Insufficient funds."}}
    assert "failure recorded" in await post_event(client, "payment_intent.payment_failed", failed)
    row = await invoice_row(tenant.tenant_id, invoice_id)
    assert (row.attempts, row.last_error, row.payment_intent_id) == (1, "Insufficient funds.", None)


async def test_storing_a_card_from_a_notification_calls_stripe_with_the_account_unlocked(
        client, platform_stripe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from billing import accounts, collection
    from billing.models import BillingAccount
    from core.db import get_database

    tenant = await create_tenant()
    stripe.api_base = platform_stripe
    customer = stripe.Customer.create(api_key=KEY, metadata={"tenant_id": str(tenant.tenant_id)})
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        (await accounts.account_of(session, tenant.tenant_id, lock=True)).stripe_customer_id = customer.id
    method = stripe.PaymentMethod.create(api_key=KEY, type="card", card={
        "number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"})
    setup = stripe.SetupIntent.create(api_key=KEY, customer=customer.id, usage="off_session",
                                      metadata={"tenant_id": str(tenant.tenant_id)})
    setup = stripe.SetupIntent.confirm(setup.id, api_key=KEY, payment_method=method.id)

    real, calls = collection.stripe_call, []

    async def unlocked(function: Any, *args: Any, **kwargs: Any) -> Any:
        async with get_database().transaction(tenant_id=tenant.tenant_id) as other:  # NOWAIT: fails if locked
            await other.execute(select(BillingAccount.id).where(BillingAccount.tenant_id == tenant.tenant_id)
                                .with_for_update(nowait=True))
        calls.append(function.__qualname__)
        return await real(function, *args, **kwargs)

    monkeypatch.setattr(collection, "stripe_call", unlocked)
    assert await post_event(client, "setup_intent.succeeded", setup.to_dict()) == "card stored"
    assert calls == ["PaymentMethod.retrieve"]
