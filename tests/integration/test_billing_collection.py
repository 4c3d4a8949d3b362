"""Collection of the platform's invoices through its Stripe account, against a local fake Stripe
(never the network): a whole period from usage to a paid invoice, the card on file (test-card
form and SetupIntent), a collection run twice charging once, refunds of credit notes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe
from sqlalchemy import func, select

from billing_factories import account_row, invoice_row, owner, save_card
from factories import bearer, create_tenant, login, post_form, run_outbox_inline
from inventory_factories import API, one_warehouse_shop

KEY = "sk_test_x"  # the platform key the fixture sets


async def make_invoice(tenant_id: uuid.UUID, *, total: int = 4680, kind: str = "invoice", status: str = "open",
                       schedule: bool = True, **columns: Any) -> uuid.UUID:
    """An issued invoice (or credit note), due for collection now, as closing a period leaves it."""
    from billing import collection
    from billing.models import Invoice
    from core import clock
    from core.db import get_database
    from core.ids import uuid7

    subtotal = total * 10000 // 12000
    now = clock.now()
    columns.setdefault("next_attempt_at", now if kind == "invoice" and status == "open" else None)
    async with get_database().transaction(tenant_id=tenant_id) as session:
        invoice = Invoice(
            tenant_id=tenant_id, id=uuid7(), kind=kind, number=f"TEST-{uuid.uuid4().hex[:12]}", series="TEST",
            year=now.year, sequence=1, issued_at=now, issuer={"name": "OMS Platform SAS", "country": "FR"},
            customer={"name": "Test", "country": "FR"}, plan="Starter", currency="EUR", subtotal_minor=subtotal,
            vat_rate_bp=2000, vat_minor=total - subtotal, total_minor=total, vat_treatment="domestic",
            vat_mentions=[], status=status, **columns)
        session.add(invoice)
        if schedule and columns["next_attempt_at"] is not None:
            await collection.schedule(session, invoice)
    return invoice.id


async def audits(tenant_id: uuid.UUID, action: str) -> int:
    from core.db import get_database
    from tenants.models import AuditEvent

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return int(await session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.action == action)) or 0)


async def run_all(tenant_id: uuid.UUID) -> list[str]:
    ran: list[str] = []
    for _ in range(5):
        batch = await run_outbox_inline(tenant_id)
        if not batch:
            break
        ran += [name for name, _ in batch]
    return ran


def _order(number: str) -> dict[str, Any]:
    return {"channel": "web", "external_number": number, "currency": "EUR",
            "lines": [{"sku": "BILL-1", "quantity": 1, "unit_price_minor": 1999}],
            "customer": {"email": "payer@example.test"},
            "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.85, "longitude": 2.35}},
            "total_minor": 1999}


async def test_a_whole_period_from_usage_to_a_paid_invoice(client, platform_stripe: str) -> None:
    from billing import invoicing, tasks
    from billing.models import BillingPeriod, Invoice, InvoiceLine
    from core import clock
    from core.broker import COROUTINES
    from core.db import get_database

    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    await one_warehouse_shop(client, tenant.api_key, location="WH-BILL", sku="BILL-1", quantity=50)
    await save_card(tenant)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        trial = await invoicing.current_period(session, tenant.tenant_id)
    assert trial.trial

    with clock.frozen_at(trial.ends_at + timedelta(minutes=2)):
        assert tenant.tenant_id in await tasks.periods_due()
        await COROUTINES["billing.close_period"](tenant_id=str(tenant.tenant_id))  # the trial: no invoice
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            period = await invoicing.current_period(session, tenant.tenant_id)
        assert not period.trial and period.starts_at == trial.ends_at
    with clock.frozen_at(period.starts_at + (period.ends_at - period.starts_at) / 2):
        for n in range(3):
            placed = await client.post(f"{API}/orders", headers=key, json=_order(f"B-{n}"))
            assert placed.status_code == 201, placed.text
        await run_all(tenant.tenant_id)

    with clock.frozen_at(period.ends_at + timedelta(minutes=2)):
        await COROUTINES["billing.close_period"](tenant_id=str(tenant.tenant_id))
        ran = await run_all(tenant.tenant_id)
        assert "billing.collect_invoice" in ran
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            closed = await session.get(BillingPeriod, (tenant.tenant_id, period.id))
            invoice = await session.get(Invoice, (tenant.tenant_id, closed.invoice_id))
            lines = list(await session.scalars(select(InvoiceLine).where(
                InvoiceLine.tenant_id == tenant.tenant_id, InvoiceLine.invoice_id == invoice.id)))
        assert closed.usage["metered"]["orders"] == 3 and closed.usage["agree"]
        assert invoice.number.startswith("INV-") and invoice.total_minor > 0
        assert any(line.dimension == "orders" and line.quantity == 3 for line in lines)
        assert (invoice.status, invoice.attempts) == ("paid", 0)
        assert invoice.paid_at == clock.now()
        charged = stripe.PaymentIntent.retrieve(invoice.payment_intent_id, api_key=KEY)
        assert (charged.status, charged.amount, charged.currency) == ("succeeded", invoice.total_minor, "eur")
        assert charged.metadata["invoice_id"] == str(invoice.id) and charged.metadata["number"] == invoice.number
        assert charged.customer == (await account_row(tenant.tenant_id)).stripe_customer_id

        # Delivered again (a worker died after Stripe answered, the sweep found it): charged once.
        await COROUTINES["billing.collect_invoice"](tenant_id=str(tenant.tenant_id), invoice_id=str(invoice.id))
        assert tenant.tenant_id not in await tasks.collections_due()
        assert await audits(tenant.tenant_id, "billing.invoice_paid") == 1
        assert (await invoice_row(tenant.tenant_id, invoice.id)).payment_intent_id == charged.id


async def test_the_test_card_form_names_every_problem(client, platform_stripe: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from core.problems import ProblemError

    tenant = await create_tenant()
    with pytest.raises(ProblemError) as bad:
        await save_card(tenant, "4242 4242 4242 4241", exp_month=13, exp_year=2001, cvc="1")
    assert bad.value.status == 422
    assert {e.field for e in bad.value.errors} == {"number", "exp_month", "exp_year", "cvc"}
    with pytest.raises(ProblemError) as letters:
        await save_card(tenant, "4242-abcd")
    assert [e.field for e in letters.value.errors] == ["number"]

    with pytest.raises(ProblemError) as refused:  # the fake server declines this card when it is attached
        await save_card(tenant, "4000000000000002")
    assert refused.value.status == 422 and refused.value.errors[0].field == "number"
    assert "refused" in refused.value.errors[0].message
    account = await account_row(tenant.tenant_id)
    assert account.payment_method_id is None and account.card_last4 is None  # refused: nothing written

    saved = await save_card(tenant, "4242 4242 4242 4242", exp_year=35)
    assert (saved.card_brand, saved.card_last4, saved.card_expires) == ("visa", "4242", "12/2035")
    customer = stripe.Customer.retrieve(saved.stripe_customer_id, api_key=KEY)
    assert customer.metadata["tenant_id"] == str(tenant.tenant_id)
    assert await audits(tenant.tenant_id, "billing.card_saved") == 1

    monkeypatch.delenv("STRIPE_API_BASE")  # with Stripe itself, cards go through Stripe's own form only
    with pytest.raises(ProblemError) as elsewhere:
        await save_card(tenant)
    assert elsewhere.value.status == 404


async def test_a_card_confirmed_in_the_browser_is_checked_then_stored(client, platform_stripe: str) -> None:
    from billing import collection
    from core.db import get_database
    from core.problems import ProblemError

    tenant, stranger = await create_tenant(), await create_tenant()
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        secret = await collection.setup_intent_secret(session, owner(tenant))
    setup_id = secret.split("_secret_")[0]
    stripe.api_base = platform_stripe
    method = stripe.PaymentMethod.create(api_key=KEY, type="card", card={
        "number": "4242424242424242", "exp_month": 11, "exp_year": 2034, "cvc": "123"})

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        with pytest.raises(ProblemError) as unconfirmed:
            await collection.finish_setup(session, owner(tenant), setup_id)
    assert unconfirmed.value.errors[0].field == "card"
    stripe.SetupIntent.confirm(setup_id, api_key=KEY, payment_method=method.id)
    async with get_database().transaction(tenant_id=stranger.tenant_id) as session:
        await collection.setup_intent_secret(session, owner(stranger))
        with pytest.raises(ProblemError) as not_theirs:
            await collection.finish_setup(session, owner(stranger), setup_id)
    assert "not this company's" in not_theirs.value.errors[0].message
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        account = await collection.finish_setup(session, owner(tenant), setup_id)
    assert (account.payment_method_id, account.card_expires) == (method.id, "11/2034")
    assert (await account_row(stranger.tenant_id)).payment_method_id is None


async def test_local_only_and_unconfigured_invoices_are_never_collected(client, platform_stripe: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from core.broker import COROUTINES

    tenant = await create_tenant()
    await save_card(tenant)
    local = await make_invoice(tenant.tenant_id, local_only=True, schedule=False)
    await COROUTINES["billing.collect_invoice"](tenant_id=str(tenant.tenant_id), invoice_id=str(local))
    assert (await invoice_row(tenant.tenant_id, local)).status == "open"

    due = await make_invoice(tenant.tenant_id)
    monkeypatch.delenv("STRIPE_SECRET_KEY")
    await run_all(tenant.tenant_id)
    row = await invoice_row(tenant.tenant_id, due)
    assert (row.status, row.attempts, row.payment_intent_id) == ("open", 0, None)


async def test_credit_notes_refund_the_payment_once(client, platform_stripe: str) -> None:
    from billing import invoicing
    from billing.models import Invoice
    from core.broker import COROUTINES
    from core.db import get_database
    from tenants.service import Actor

    tenant = await create_tenant()
    await save_card(tenant)
    invoice_id = await make_invoice(tenant.tenant_id, total=12000)
    await run_all(tenant.tenant_id)
    paid = await invoice_row(tenant.tenant_id, invoice_id)
    assert paid.status == "paid"

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        note = await invoicing.issue_credit_note(session, tenant.tenant_id, invoice_id, 3000, "goodwill",
                                                 actor=Actor("operator"))
    ran = await run_all(tenant.tenant_id)
    assert ran.count("billing.refund_credit_note") == 1
    refunded = await invoice_row(tenant.tenant_id, note.id)
    assert refunded.status == "refunded" and refunded.stripe_refund_id
    refunds = stripe.Refund.list(payment_intent=paid.payment_intent_id, api_key=KEY).data
    assert [(r.amount, r.metadata["credit_note_id"]) for r in refunds] == [(3000, str(note.id))]

    await COROUTINES["billing.refund_credit_note"](tenant_id=str(tenant.tenant_id), credit_note_id=str(note.id))
    assert len(stripe.Refund.list(payment_intent=paid.payment_intent_id, api_key=KEY).data) == 1
    assert await audits(tenant.tenant_id, "billing.credit_note_refunded") == 1
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        assert (await session.get(Invoice, (tenant.tenant_id, invoice_id))).credited_minor == 3000


async def test_retry_now_tries_failed_invoices_at_once(client, platform_stripe: str) -> None:
    from billing import collection
    from core import clock
    from core.db import get_database

    tenant = await create_tenant()
    start = datetime.now(UTC)
    with clock.frozen_at(start):
        invoice_id = await make_invoice(tenant.tenant_id)
        await run_all(tenant.tenant_id)  # no card: failed
        failed = await invoice_row(tenant.tenant_id, invoice_id)
        assert (failed.attempts, failed.last_error) == (1, "no card on file")
        assert failed.next_attempt_at == start + timedelta(days=3)
    with clock.frozen_at(start + timedelta(hours=2)):
        await save_card(tenant)  # retries at once
        assert "billing.collect_invoice" in await run_all(tenant.tenant_id)
        assert (await invoice_row(tenant.tenant_id, invoice_id)).status == "paid"
        async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
            assert await collection.retry_now(session, tenant.tenant_id) == 0


# --- payments and credit notes crossing, payments under way, refunds re-driven ----------------------


def crossing(monkeypatch: pytest.MonkeyPatch, between: Any) -> None:
    """Run ``between`` (a coroutine function) after the collection read what is due and before it
    calls Stripe, as a credit note issued at that moment would."""
    import asyncio

    from billing import collection

    loop = asyncio.get_running_loop()
    real = collection._charge

    def charge(attempt: Any) -> Any:
        asyncio.run_coroutine_threadsafe(between(), loop).result(30)
        return real(attempt)

    monkeypatch.setattr(collection, "_charge", charge)


def answered(monkeypatch: pytest.MonkeyPatch, status: str, make: Any = None) -> None:
    """Stripe answers the charge with ``status``, for a PaymentIntent made by ``make`` (by default
    the real charge, which the fake server lets succeed)."""
    from billing import collection

    real = collection._charge

    def charge(attempt: Any) -> Any:
        intent = (make or real)(attempt)
        return stripe.PaymentIntent.construct_from({**intent.to_dict(), "status": status}, KEY)

    monkeypatch.setattr(collection, "_charge", charge)


async def credit(tenant_id: uuid.UUID, invoice_id: uuid.UUID, amount: int) -> Any:
    from billing import invoicing
    from core.db import get_database
    from tenants.service import Actor

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return await invoicing.issue_credit_note(session, tenant_id, invoice_id, amount, "goodwill",
                                                 actor=Actor("operator"))


@pytest.mark.parametrize("credited", [3000, 12000])
async def test_a_credit_note_issued_while_the_card_is_charged_is_refunded(client, platform_stripe: str,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         credited: int) -> None:
    tenant = await create_tenant()
    await save_card(tenant)
    invoice_id = await make_invoice(tenant.tenant_id, total=12000)
    notes: list[Any] = []

    async def issue() -> None:
        notes.append(await credit(tenant.tenant_id, invoice_id, credited))

    crossing(monkeypatch, issue)
    ran = await run_all(tenant.tenant_id)
    assert ran.count("billing.refund_credit_note") == 1
    paid = await invoice_row(tenant.tenant_id, invoice_id)
    assert (paid.status, paid.credited_minor) == ("paid", credited)
    charged = stripe.PaymentIntent.retrieve(paid.payment_intent_id, api_key=KEY)
    assert (charged.status, charged.amount) == ("succeeded", 12000)  # what was due when it was read
    note = await invoice_row(tenant.tenant_id, notes[0].id)
    assert (note.status, note.credited_minor) == ("refunded", 0)
    refunds = stripe.Refund.list(payment_intent=paid.payment_intent_id, api_key=KEY).data
    assert [(r.amount, r.metadata["number"]) for r in refunds] == [(credited, note.number)]


async def test_credit_notes_on_unpaid_invoices_are_applied_and_lower_the_charge(client, platform_stripe: str) -> None:
    from billing import collection
    from core.db import get_database

    tenant = await create_tenant()
    await save_card(tenant)
    invoice_id = await make_invoice(tenant.tenant_id, total=12000, schedule=False)
    note = await credit(tenant.tenant_id, invoice_id, 2000)
    assert (note.status, note.credited_minor) == ("applied", 2000)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await collection.schedule(session, await collection.locked_invoice(session, tenant.tenant_id, invoice_id))
    ran = await run_all(tenant.tenant_id)
    assert "billing.refund_credit_note" not in ran
    paid = await invoice_row(tenant.tenant_id, invoice_id)
    assert paid.status == "paid"
    assert stripe.PaymentIntent.retrieve(paid.payment_intent_id, api_key=KEY).amount == 10000
    assert (await invoice_row(tenant.tenant_id, note.id)).status == "applied"


async def test_a_payment_still_processing_is_asked_about_not_charged_again(client, platform_stripe: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from billing import collection, tasks
    from core.broker import COROUTINES

    tenant = await create_tenant()
    await save_card(tenant)
    invoice_id = await make_invoice(tenant.tenant_id)
    answered(monkeypatch, "processing")
    await run_all(tenant.tenant_id)
    waiting = await invoice_row(tenant.tenant_id, invoice_id)
    assert (waiting.status, waiting.attempts, waiting.next_attempt_at) == ("open", 0, None)
    assert waiting.payment_intent_id is not None and waiting.first_failed_at is None

    def never(attempt: Any) -> Any:
        raise AssertionError("a second PaymentIntent was created")

    monkeypatch.setattr(collection, "_charge", never)
    assert tenant.tenant_id in await tasks.collections_due()
    await COROUTINES["billing.collect_due"](tenant_id=str(tenant.tenant_id))
    paid = await invoice_row(tenant.tenant_id, invoice_id)
    assert (paid.status, paid.payment_intent_id, paid.attempts) == ("paid", waiting.payment_intent_id, 0)
    assert tenant.tenant_id not in await tasks.collections_due()


async def test_a_payment_under_way_that_ends_canceled_is_a_failed_attempt(client, platform_stripe: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from billing import collection, tasks
    from core.broker import COROUTINES

    tenant = await create_tenant()
    await save_card(tenant)
    invoice_id = await make_invoice(tenant.tenant_id)

    def canceled(attempt: Any) -> Any:
        made = collection._stripe(stripe.PaymentIntent.create, amount=attempt.amount, currency="eur",
                                  customer=attempt.customer, payment_method=attempt.payment_method)
        return collection._stripe(stripe.PaymentIntent.cancel, made.id)

    answered(monkeypatch, "processing", canceled)
    await run_all(tenant.tenant_id)
    assert (await invoice_row(tenant.tenant_id, invoice_id)).payment_intent_id is not None
    await COROUTINES["billing.collect_due"](tenant_id=str(tenant.tenant_id))
    failed = await invoice_row(tenant.tenant_id, invoice_id)
    assert (failed.status, failed.attempts, failed.payment_intent_id) == ("open", 1, None)
    assert failed.last_error == "the payment was canceled" and failed.next_attempt_at is not None
    assert tenant.tenant_id not in await tasks.collections_due()  # the next retry is days away


async def test_a_payment_waiting_for_authentication_is_cancelled_and_failed(client, platform_stripe: str) -> None:
    from billing import accounts
    from core.broker import COROUTINES
    from core.db import get_database
    from tenants.service import billing_standing

    tenant = await create_tenant()
    stripe.api_base = platform_stripe
    customer = stripe.Customer.create(api_key=KEY, metadata={"tenant_id": str(tenant.tenant_id)})
    method = stripe.PaymentMethod.create(api_key=KEY, type="card", card={  # the fake asks 3-D Secure for it
        "number": "4000000000003220", "exp_month": 12, "exp_year": 2035, "cvc": "123"})
    stripe.PaymentMethod.attach(method.id, customer=customer.id, api_key=KEY)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        account = await accounts.account_of(session, tenant.tenant_id, lock=True)
        account.stripe_customer_id, account.payment_method_id = customer.id, method.id
    invoice_id = await make_invoice(tenant.tenant_id)
    await run_all(tenant.tenant_id)
    waiting = await invoice_row(tenant.tenant_id, invoice_id)
    assert (waiting.attempts, waiting.next_attempt_at) == (0, None)
    intent_id = waiting.payment_intent_id
    assert stripe.PaymentIntent.retrieve(intent_id, api_key=KEY).status == "requires_action"

    await COROUTINES["billing.collect_due"](tenant_id=str(tenant.tenant_id))
    failed = await invoice_row(tenant.tenant_id, invoice_id)
    assert (failed.attempts, failed.payment_intent_id) == (1, None)
    assert failed.last_error == "the bank asks the card holder to authenticate this payment"
    assert stripe.PaymentIntent.retrieve(intent_id, api_key=KEY).status == "canceled"
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        assert await billing_standing(session, tenant.tenant_id) == "payment_failed"


async def test_a_repeated_request_stripe_refuses_is_a_failed_attempt(client, platform_stripe: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from billing import collection

    tenant = await create_tenant()
    await save_card(tenant)
    invoice_id = await make_invoice(tenant.tenant_id)

    def refused(attempt: Any) -> Any:
        raise stripe.IdempotencyError("Keys for idempotent requests can only be used with the same parameters")

    monkeypatch.setattr(collection, "_charge", refused)
    await run_all(tenant.tenant_id)
    row = await invoice_row(tenant.tenant_id, invoice_id)
    assert (row.status, row.attempts, row.last_error) == ("open", 1, collection.REPEATED_REQUEST)
    assert row.next_attempt_at is not None


async def test_a_refund_whose_message_was_lost_is_sent_again_and_never_exceeds_the_payment(
        client, platform_stripe: str) -> None:
    from billing import tasks
    from core import clock
    from core.broker import COROUTINES

    tenant = await create_tenant()
    await save_card(tenant)
    invoice_id = await make_invoice(tenant.tenant_id, total=12000)
    await run_all(tenant.tenant_id)
    paid = await invoice_row(tenant.tenant_id, invoice_id)
    first = await credit(tenant.tenant_id, invoice_id, 10000)
    assert first.status == "issued"
    await run_all(tenant.tenant_id)
    assert (await invoice_row(tenant.tenant_id, first.id)).status == "refunded"
    # Issued with its message lost (no outbox row), and asking more than the 2000 left on the payment.
    start = datetime.now(UTC)
    with clock.frozen_at(start):
        lost = await make_invoice(tenant.tenant_id, total=5000, kind="credit_note", status="issued",
                                  credited_invoice_id=invoice_id, schedule=False)
    with clock.frozen_at(start + timedelta(minutes=4)):
        assert tenant.tenant_id not in await tasks.refunds_due()
    with clock.frozen_at(start + timedelta(minutes=6)):
        assert tenant.tenant_id in await tasks.refunds_due()
        await COROUTINES["billing.refund_due"](tenant_id=str(tenant.tenant_id))
        assert tenant.tenant_id not in await tasks.refunds_due()
    note = await invoice_row(tenant.tenant_id, lost)
    assert (note.status, note.total_minor - note.credited_minor) == ("refunded", 2000)
    refunds = stripe.Refund.list(payment_intent=paid.payment_intent_id, api_key=KEY).data
    assert sorted(r.amount for r in refunds) == [2000, 10000]


async def test_card_calls_to_stripe_leave_the_account_unlocked(client, platform_stripe: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from billing import collection
    from billing.models import BillingAccount
    from core.db import get_database

    tenant = await create_tenant()
    real, calls = collection.stripe_call, []

    async def unlocked(function: Any, *args: Any, **kwargs: Any) -> Any:
        async with get_database().transaction(tenant_id=tenant.tenant_id) as other:  # NOWAIT: fails if locked
            await other.execute(select(BillingAccount.id).where(BillingAccount.tenant_id == tenant.tenant_id)
                                .with_for_update(nowait=True))
        calls.append(function.__qualname__)
        return await real(function, *args, **kwargs)

    monkeypatch.setattr(collection, "stripe_call", unlocked)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        secret = await collection.setup_intent_secret(session, owner(tenant))
    stripe.api_base = platform_stripe
    method = stripe.PaymentMethod.create(api_key=KEY, type="card", card={
        "number": "4242424242424242", "exp_month": 11, "exp_year": 2034, "cvc": "123"})
    stripe.SetupIntent.confirm(secret.split("_secret_")[0], api_key=KEY, payment_method=method.id)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await collection.finish_setup(session, owner(tenant), secret.split("_secret_")[0])
    await save_card(tenant)
    assert {"SetupIntent.create", "SetupIntent.retrieve", "PaymentMethod.attach"} <= set(calls)
    assert calls.count("Customer.create") == 1  # the customer recorded by the first call is kept
    assert (await account_row(tenant.tenant_id)).card_last4 == "4242"


async def test_digits_from_other_scripts_are_refused_in_plain_words(client, make_client,
                                                                    platform_stripe: str) -> None:
    from core.problems import ProblemError

    tenant = await create_tenant()
    for number, cvc, field in (("4242 4242 4242 424²", "123", "number"), ("²" * 16, "123", "number"),
                               ("4242424242424242", "١٢٣", "cvc")):
        with pytest.raises(ProblemError) as bad:
            await save_card(tenant, number, cvc=cvc)
        assert bad.value.status == 422 and [e.field for e in bad.value.errors] == [field]
    console = await make_client()
    await login(console, tenant.email)
    page = await post_form(console, "/app/billing/card", {"number": "²" * 16, "exp_month": "12",
                                                          "exp_year": "2035", "cvc": "123"})
    assert page.status_code == 422 and "16 digits" in page.text
