"""What people see of billing: the public pricing page from the plan table, the console's Billing
page (owners and admins) with its live usage, billing details checked as typed, a plan change,
the printable invoice and its PDF (saying the same, French payment terms included), invoices a page
at a time, the billing API, and the operator's `oms billing` commands, each saying what it found."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import re
import uuid
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from factories import bearer, create_tenant, login, mail_to, post_form, run_outbox_inline, unique
from inventory_factories import API, one_warehouse_shop

DE_VAT = "DE136695976"


def pdf_text(content: bytes) -> bytes:
    """The PDF's bytes with its compressed streams inflated: text drawn with the built-in fonts is
    there as written (Windows-1252)."""
    assert content.startswith(b"%PDF-")
    out = [content]
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", content, re.DOTALL):
        with contextlib.suppress(zlib.error):
            out.append(zlib.decompress(stream))
    return b"\n".join(out)


def pdf_lines(content: bytes) -> str:
    """The PDF's text as drawn, one string (Windows-1252 decoded), its lines joined by spaces: a line
    that wraps reads as one."""
    drawn = re.findall(rb"\(((?:[^()\\]|\\.)*)\) Tj", pdf_text(content))
    text = " ".join(re.sub(rb"\\(.)", rb"\1", chunk).decode("cp1252") for chunk in drawn)
    return " ".join(text.split())


async def shop_with_orders(client: Any, tenant: Any, count: int) -> None:
    """A warehouse that routes every order, and ``count`` orders routed there."""
    sku = unique("BILL").upper()
    await one_warehouse_shop(client, tenant.api_key, location="WH-BILL", sku=sku, quantity=1000)
    for i in range(count):
        created = await client.post(f"{API}/orders", headers=bearer(tenant.api_key), json={
            "channel": "web", "external_number": f"B-{i}-{uuid.uuid4().hex[:6]}", "currency": "EUR",
            "lines": [{"sku": sku, "quantity": 1, "unit_price_minor": 1000}],
            "customer": {"email": "buyer@example.test"},
            "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.85, "longitude": 2.35}},
            "total_minor": 1000})
        assert created.status_code == 201, created.text
    await run_outbox_inline(tenant.tenant_id)


async def close(tenant_id: uuid.UUID) -> Any:
    """The company's open period closed now (the operator's "close now"): what it did."""
    from billing import operator
    from core.db import get_database

    return await operator.close_now(get_database(), tenant_id)


async def signed_up_before() -> Any:
    """A company that signed up two days ago: its trial can close early today (a period ends at a
    local midnight, and one that began today has none to end at)."""
    from core import clock

    with clock.frozen_at(clock.now() - timedelta(days=2)):
        return await create_tenant()


async def first_invoice(client: Any, tenant: Any, *, orders: int = 2) -> Any:
    """The trial closed at the start of today, ``orders`` orders routed in the paid period, then
    that period closed a day later: the company's first invoice."""
    from core import clock

    assert (await close(tenant.tenant_id)).outcome == "trial_closed"  # a trial has no invoice
    await shop_with_orders(client, tenant, orders)
    with clock.frozen_at(clock.now() + timedelta(days=1)):
        closing = await close(tenant.tenant_id)
    assert closing.outcome == "invoice_issued" and closing.invoice.number.startswith("INV-")
    return closing.invoice


async def member(client: Any, make_client: Any, tenant: Any, role: str) -> Any:
    email = f"{unique(role)}@example.test"
    invited = await client.post(f"{API}/invitations", headers=bearer(tenant.api_key),
                                json={"email": email, "role": role})
    assert invited.status_code == 201, invited.text
    await run_outbox_inline(tenant.tenant_id)
    [message] = await mail_to(tenant.tenant_id, email)
    token = re.search(r"/invitations/(inv_[\w-]+)", message.body_text).group(1)
    joined = await make_client()
    accepted = await post_form(joined, f"/invitations/{token}", {"name": role.title(),
                                                                 "password": "quiet river stone"})
    assert accepted.status_code == 303, accepted.text
    return joined


async def test_the_pricing_page_shows_the_plans_that_bill(client) -> None:
    page = await client.get("/pricing")
    assert page.status_code == 200
    text = page.text
    for words in ("Starter", "Growth", "Scale", "€39.00", "€149.00", "€499.00", "First 500 orders",
                  "501 to 5,000", "€0.20 per order", "Above 5,000", "€0.12 per order", "First 2 locations",
                  "€15.00 per location", "14-day free trial", "Prices exclude VAT"):
        assert words in text, words
    assert text.index("Starter") < text.index("Growth") < text.index("Scale")
    assert 'href="/pricing"' in (await client.get("/")).text
    assert 'href="/pricing"' in (await client.get("/signup")).text


async def test_the_billing_page_is_for_owners_and_admins(client, make_client) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    page = await client.get("/app/billing")
    assert page.status_code == 200, page.text
    assert 'href="/app/billing"' in page.text  # the console's navigation
    assert 'id="billing-plan-name">Starter<' in page.text
    assert "Trial: 14 days left" in page.text
    assert "Invoices are issued here and not collected: no Stripe account is configured" in page.text
    assert "No invoice yet" in page.text
    assert 'hx-get="/app/billing/usage"' in page.text and 'hx-trigger="sse:changed"' in page.text
    assert 'sse-connect="/app/billing/usage/live"' in page.text  # pushed when usage is recorded, never polled
    for path in ("/app/billing/card", "/app/billing/card/intent", "/app/billing/card/setup"):  # no Stripe here
        refused = await post_form(client, path, {"number": "4242424242424242", "exp_month": "12", "exp_year": "2030"})
        assert refused.status_code == 404 and "no card is taken" in refused.text, path

    viewer = await member(client, make_client, tenant, "read_only")
    assert 'href="/app/billing"' not in (await viewer.get("/app")).text
    refused = await viewer.get("/app/billing")
    assert refused.status_code == 403 and "role does not allow" in refused.text
    assert (await viewer.get("/app/billing/usage")).status_code == 403
    assert (await post_form(viewer, "/app/billing/plan", {"plan": "scale", "when": "now"})).status_code == 403


async def test_usage_so_far_counts_routed_orders_and_says_how_far_the_next_tier_is(client) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    await shop_with_orders(client, tenant, 3)
    usage = await client.get("/app/billing/usage", headers={"HX-Request": "true"})
    assert usage.status_code == 200
    assert 'id="billing-usage"' in usage.text and "<html" not in usage.text
    assert re.search(r'data-usage="1">3<', usage.text), usage.text
    assert re.search(r'data-usage="2">1<', usage.text), usage.text  # one active location
    # A French company reads its amounts the French way.
    assert "497 more orders until the next tier (then 0,20\xa0€ each)" in usage.text
    assert "1 more location until the next tier (then 15,00\xa0€ each)" in usage.text


async def test_billing_details_say_every_problem_and_the_vat_number_is_checked_as_typed(client) -> None:
    from billing import accounts
    from core.db import get_database

    tenant = await create_tenant()
    await login(client, tenant.email)
    await client.get("/app/billing")
    refused = await post_form(client, "/app/billing/details", {
        "legal_name": "", "country": "XX", "vat_number": "DE123", "billing_email": "not an address",
        "address_line1": "", "address_line2": "", "postcode": "", "city": ""})
    assert refused.status_code == 422, refused.text
    for field in ("legal_name", "country", "billing_email"):
        assert f'id="{field}-error"' in refused.text, field
    assert 'value="not an address"' in refused.text  # what was typed stays
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        account = await accounts.account_of(session, tenant.tenant_id)
        assert account.legal_name == tenant.name and account.billing_email == ""

    checked = await post_form(client, "/app/billing/vat-check", {"country": "DE", "vat_number": DE_VAT})
    assert checked.status_code == 200 and 'id="vat-check"' in checked.text
    assert "reverse charge" in checked.text.lower() and "field-error" not in checked.text
    wrong = await post_form(client, "/app/billing/vat-check", {"country": "DE", "vat_number": "DE136695977"})
    assert "field-error" in wrong.text

    saved = await post_form(client, "/app/billing/details", {
        "legal_name": "Beispiel GmbH", "country": "DE", "vat_number": DE_VAT, "billing_email": "ap@beispiel.test",
        "address_line1": "Hauptstraße 1", "address_line2": "", "postcode": "10115", "city": "Berlin"})
    assert saved.status_code == 303, saved.text
    page = await client.get(saved.headers["location"])
    assert "Billing details saved" in page.text and 'value="Beispiel GmbH"' in page.text
    assert "Reverse charge" in page.text  # the estimate's VAT mention


async def test_a_plan_change_next_period_or_now_and_an_unknown_plan_refused(client) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    await client.get("/app/billing")
    unknown = await post_form(client, "/app/billing/plan", {"plan": "platinum", "when": "now"})
    assert unknown.status_code == 422
    assert 'id="plan-error"' in unknown.text or "plan" in unknown.text.lower()
    later = await post_form(client, "/app/billing/plan", {"plan": "growth", "when": "next_period"})
    assert later.status_code == 303, later.text
    page = (await client.get(later.headers["location"])).text
    assert "applies from the next period" in page and "Growth from the next period" in page
    now = await post_form(client, "/app/billing/plan", {"plan": "scale", "when": "now"})
    assert now.status_code == 303, now.text
    assert 'id="billing-plan-name">Starter, then Scale<' in (await client.get("/app/billing")).text


async def test_an_invoice_prints_and_downloads_as_pdf_with_its_vat_and_a_credit_note_names_it(client,
                                                                                               monkeypatch) -> None:
    from billing import display, invoicing
    from core.db import get_database
    from tenants.service import Actor

    tenant = await signed_up_before()
    await login(client, tenant.email)
    await client.get("/app/billing")
    saved = await post_form(client, "/app/billing/details", {
        "legal_name": "Beispiel GmbH", "country": "DE", "vat_number": DE_VAT, "billing_email": "",
        "address_line1": "Hauptstraße 1", "address_line2": "", "postcode": "10115", "city": "Berlin"})
    assert saved.status_code == 303, saved.text
    invoice = await first_invoice(client, tenant)

    page = (await client.get("/app/billing")).text
    row = re.search(rf'<tr data-number="{invoice.number}">(.*?)</tr>', page, re.DOTALL).group(1)
    assert "local only" in row and f"/app/billing/invoices/{invoice.id}/pdf" in row

    printable = await client.get(f"/app/billing/invoices/{invoice.id}")
    assert printable.status_code == 200
    text = printable.text
    for words in (invoice.number, "FR19812345676", f"VAT number: {DE_VAT}", "Beispiel GmbH", "Reverse charge",
                  "Autoliquidation", "VAT 0 %", "Not collected: no Stripe account is configured for the platform.",
                  "Starter plan, ", "(prorated)", "Orders routed, included in the plan", "data-print"):
        assert words in text, words

    pdf = await client.get(f"/app/billing/invoices/{invoice.id}/pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'attachment; filename="{invoice.number}.pdf"'
    content = pdf_text(pdf.content)
    for words in (invoice.number, "FR19812345676", DE_VAT, "Reverse charge", "Autoliquidation", "Not collected"):
        assert words.encode("cp1252") in content, words
    # What French law asks of the invoice, said the same on the page and in the PDF.
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        doc = await display.load_document(session, tenant.tenant_id, invoice.id, timezone="Europe/Paris",
                                          locale="fr_FR")
    assert doc.terms[:2] == ["Payment terms: due on receipt.", f"Due date: {doc.issued_on}."]
    assert doc.terms[2] == "Late payment: penalties at three times the legal interest rate."
    assert "40,00\xa0€ (Code de commerce, article L441-10)" in doc.terms[3]  # a business customer
    assert "SAS au capital de 10 000 € · RCS Paris 812 345 676" in doc.issuer_lines
    drawn = pdf_lines(pdf.content)
    for words in [*doc.terms, *doc.issuer_lines]:
        assert " ".join(words.split()) in drawn, words
    for words in [*doc.terms, *doc.issuer_lines]:
        assert words in text, words

    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        note = await invoicing.issue_credit_note(session, tenant.tenant_id, invoice.id, invoice.total_minor,
                                                 "Service outage", actor=Actor("test"))
    credit = (await client.get(f"/app/billing/invoices/{note.id}")).text
    assert f"Credits invoice {invoice.number}." in credit and "Reason: Service outage" in credit
    assert "Credit note" in credit
    listed = (await client.get("/app/billing")).text
    row = re.search(rf'<tr data-number="{invoice.number}">(.*?)</tr>', listed, re.DOTALL).group(1)
    assert "credited" in row and note.number in listed
    assert 'id="invoice-terms"' not in credit  # a credit note has no payment terms

    # A page at a time: the newest first, then the older ones by the "Older invoices" link.
    from billing import pages

    monkeypatch.setattr(pages, "INVOICES_PER_PAGE", 1)
    newest = (await client.get("/app/billing")).text
    link = re.search(r'href="(/app/billing\?before=[^"#]+)#invoices-title" id="older-invoices"', newest).group(1)
    older = (await client.get(link)).text
    # The invoice was issued a day on (the clock moved), its credit note today.
    assert f'data-number="{invoice.number}"' in newest and f'data-number="{note.number}"' not in newest
    assert f'data-number="{note.number}"' in older and f'data-number="{invoice.number}"' not in older
    assert 'id="older-invoices"' not in older and "Newest invoices" in older


async def test_the_billing_api_reads_for_read_only_keys_and_writes_for_admins(client) -> None:
    from core import clock
    from core.auth import Principal
    from core.db import get_database
    from tenants.service import create_api_key

    tenant = await signed_up_before()
    key = bearer(tenant.api_key)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        owner = Principal(tenant_id=tenant.tenant_id, role="owner", label=tenant.email, tenant_name=tenant.name,
                          timezone="Europe/Paris", currency="EUR", user_id=tenant.user_id)
        _, reader_key = await create_api_key(session, owner, name="reader", role="read_only")
    reader = bearer(reader_key)

    overview = await client.get(f"{API}/billing", headers=reader)
    assert overview.status_code == 200, overview.text
    body = overview.json()
    assert body["plan"]["code"] == "starter" and body["standing"] == "good" and body["collected"] is False
    assert body["period"]["trial"] is True and body["usage"]["orders"] == 0 and body["card"] is None
    assert body["estimate"]["currency"] == "EUR" and body["details"]["country"] == "FR"

    assert (await client.put(f"{API}/billing/details", headers=reader,
                             json={"legal_name": "X", "country": "FR"})).status_code == 403
    bad = await client.put(f"{API}/billing/details", headers=key,
                           json={"legal_name": "", "country": "ZZ", "vat_number": "DE123"})
    assert bad.status_code == 422, bad.text
    assert {"legal_name", "country"} <= {error["field"] for error in bad.json()["errors"]}
    good = await client.put(f"{API}/billing/details", headers=key,
                            json={"legal_name": "Atelier SARL", "country": "FR", "city": "Paris"})
    assert good.status_code == 200 and good.json()["legal_name"] == "Atelier SARL"

    unknown = await client.post(f"{API}/billing/plan", headers=key, json={"plan": "platinum"})
    assert unknown.status_code == 422 and unknown.json()["errors"]
    changed = await client.post(f"{API}/billing/plan", headers=key, json={"plan": "growth", "when": "next_period"})
    assert changed.status_code == 200 and changed.json()["next_plan_code"] == "growth"

    invoice = await first_invoice(client, tenant, orders=1)
    listed = (await client.get(f"{API}/billing/invoices", headers=reader)).json()
    assert ([doc["number"] for doc in listed["invoices"]], listed["next_cursor"]) == ([invoice.number], None)
    with clock.frozen_at(clock.now() + timedelta(days=2)):
        assert (await close(tenant.tenant_id)).outcome == "invoice_issued"
    first = (await client.get(f"{API}/billing/invoices?limit=1", headers=reader)).json()
    assert len(first["invoices"]) == 1 and first["invoices"][0]["number"] != invoice.number
    second = (await client.get(f"{API}/billing/invoices?limit=1&cursor={first['next_cursor']}", headers=reader)).json()
    assert ([doc["number"] for doc in second["invoices"]], second["next_cursor"]) == ([invoice.number], None)
    for query in ("limit=0", "limit=201", f"cursor={uuid.uuid4()}", "cursor=nope"):
        assert (await client.get(f"{API}/billing/invoices?{query}", headers=reader)).status_code in (400, 422), query
    one = (await client.get(f"{API}/billing/invoices/{invoice.id}", headers=reader)).json()
    assert one["vat_rate_bp"] == 2000 and one["lines"][0]["dimension"] == "base" and one["local_only"] is True
    pdf = await client.get(f"{API}/billing/invoices/{invoice.id}/pdf", headers=reader)
    assert pdf.status_code == 200 and invoice.number.encode() in pdf_text(pdf.content)
    assert (await client.get(f"{API}/billing/invoices/{uuid.uuid4()}", headers=reader)).status_code == 404


async def oms_billing(*args: str) -> Result:
    """`oms billing ...` in a thread of this process (its own event loop and database pool), so the
    test's clock applies to it too."""
    from oms.cli import main

    return await asyncio.to_thread(CliRunner().invoke, main, ["billing", *args])


async def test_the_operator_closes_lists_exports_and_credits_across_companies(client, tmp_path: Path) -> None:
    from sqlalchemy import select

    from billing import operator
    from billing.models import BillingPeriod
    from core import clock
    from core.db import get_database

    tenant = await signed_up_before()
    closed = await oms_billing("close", "--tenant", str(tenant.tenant_id))
    assert closed.exit_code == 0, closed.output
    assert closed.output.strip() == "trial closed, no invoice"
    again = await oms_billing("close", "--tenant", str(tenant.tenant_id))  # the paid period began today
    assert again.exit_code == 0 and again.output.startswith("nothing to close yet: the period started today")
    await shop_with_orders(client, tenant, 1)
    later = clock.now() + timedelta(days=2)  # the invoice and its credit note in one month of the issuer's
    with clock.frozen_at(later):
        issued = await oms_billing("close", "--tenant", str(tenant.tenant_id))
    assert issued.exit_code == 0, issued.output
    number = issued.output.strip()
    assert re.fullmatch(r"INV-\d{4}-\d{6}", number), number

    # The scheduler closed the period the operator meant, a moment before: said so, with its invoice.
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        trial, paid = list(await session.scalars(select(BillingPeriod).where(
            BillingPeriod.tenant_id == tenant.tenant_id, BillingPeriod.status == "closed")
            .order_by(BillingPeriod.starts_at)))
    for period, words in ((paid, f"closed already: {number}"), (trial, "closed already: a trial, no invoice")):
        async def closed_meanwhile(session: Any, tenant_id: uuid.UUID, period: Any = period) -> Any:
            return period

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(operator.accounts, "open_period", closed_meanwhile)
            told = await oms_billing("close", "--tenant", str(tenant.tenant_id))
        assert (told.exit_code, told.output.strip()) == (0, words)

    listed = await oms_billing("invoices", "--tenant", str(tenant.tenant_id))
    assert listed.exit_code == 0, listed.output
    header, row = listed.output.splitlines()[:2]
    assert header.split() == ["NUMBER", "COMPANY", "ISSUED", "TOTAL", "STATUS"]
    assert row.startswith(number) and tenant.name in row and row.endswith("local only")
    assert number not in (await oms_billing("invoices", "--status", "paid", "--tenant", str(tenant.tenant_id))).output

    with clock.frozen_at(later):
        credited = await oms_billing("credit", "--invoice", number, "--amount", "100", "--reason", "Goodwill")
    assert credited.exit_code == 0, credited.output
    assert re.match(rf"CN-\d{{4}}-\d{{6}} for {re.escape(tenant.name)}", credited.output.strip())
    too_much = await oms_billing("credit", "--invoice", number, "--amount", "99999999", "--reason", "Again")
    assert too_much.exit_code != 0 and "left to credit" in too_much.output
    unknown = await oms_billing("credit", "--invoice", "INV-1999-000001", "--amount", "1", "--reason", "x")
    assert unknown.exit_code != 0 and "No invoice is numbered INV-1999-000001" in unknown.output

    [(_, invoice), _] = await operator.invoices_across(get_database(), [operator.Company(tenant.tenant_id,
                                                                                          tenant.name)])
    period = invoice.issued_at.astimezone(ZoneInfo("Europe/Paris")).strftime("%Y-%m")  # the issuer's month
    out = tmp_path / "invoices.csv"
    exported = await oms_billing("export", "--period", period, "--output", str(out))
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(out.open()))
    ours = [row for row in rows if row["company"] == tenant.name]
    assert [row["kind"] for row in ours] == ["invoice", "credit_note"]
    assert ours[0]["number"] == number and ours[0]["vat_rate"] == "20%" and ours[0]["currency"] == "EUR"
    assert ours[1]["total"] == "1.00" and ours[1]["status"] == "deducted from the invoice"  # it was unpaid
    assert list(rows[0]) == ["number", "kind", "company", "issued_at", "period", "subtotal", "vat_rate", "vat",
                             "total", "currency", "vat_treatment", "customer_vat_number", "status"]

    bad_month = await oms_billing("export", "--period", "2026-13")
    assert bad_month.exit_code != 0 and "YYYY-MM" in bad_month.output
    bad_tenant = await oms_billing("close", "--tenant", "not-a-uuid")
    assert bad_tenant.exit_code != 0 and "not a company id" in bad_tenant.output


def test_every_closing_outcome_says_what_happened() -> None:
    from billing.operator import OUTCOMES, Closing

    said = {outcome: Closing(outcome).words() for outcome in OUTCOMES}
    assert said["no_open_period"].startswith("no open period")
    assert said["closed_already"] == "closed already: a trial, no invoice"
    assert said["nothing_yet"].startswith("nothing to close yet: the period started today")
    assert said["trial_closed"] == "trial closed, no invoice"
    assert len(set(said.values())) == len(OUTCOMES)


async def test_a_vat_number_vies_could_not_check_is_saved_and_the_page_says_so(client, monkeypatch) -> None:
    from billing import vat

    def unreachable(*args: object, **kwargs: object) -> object:
        raise OSError("no network here")

    monkeypatch.setenv("BILLING_VIES_CHECK", "1")
    monkeypatch.setattr(vat.eu_vat, "check_vies_approx", unreachable)
    tenant = await create_tenant()
    await login(client, tenant.email)
    await client.get("/app/billing")
    saved = await post_form(client, "/app/billing/details", {
        "legal_name": "Beispiel GmbH", "country": "DE", "vat_number": DE_VAT, "billing_email": "",
        "address_line1": "", "address_line2": "", "postcode": "", "city": ""})
    assert saved.status_code == 303, saved.text
    page = (await client.get(saved.headers["location"])).text
    assert "could not be reached: the VAT number is checked by its format only" in page.replace("&#39;", "'")

    monkeypatch.setattr(vat.eu_vat, "check_vies_approx", lambda *args, **kwargs: {"valid": False})
    unknown = await post_form(client, "/app/billing/details", {
        "legal_name": "Beispiel GmbH", "country": "DE", "vat_number": DE_VAT, "billing_email": "",
        "address_line1": "", "address_line2": "", "postcode": "", "city": ""})
    assert unknown.status_code == 422
    assert "does not know this VAT number" in unknown.text and 'id="vat_number-error"' in unknown.text
