"""Billing's core against the real database: the account and trial a sign-up opens, the
estimate as orders are routed, closing a period into an immutable invoice (once, whoever
closes it), the usage re-count agreeing with the usage rows after random work, numbering
without gap or duplicate under concurrency, credit notes, plan changes with proration, billing
details refused with every problem named (a VAT number VIES does not know too), a period that ends
at local midnight across a daylight-saving change, every period boundary at a local midnight so a
location's day is billed once, invoices listed a page at a time, and no line added to an issued
invoice."""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from test_orders import act_ok, by_priority, cancel, capture, network, order_body, publish_rules, route_again

from billing import accounts, invoicing, plans, vat
from billing.models import BillingAccount, BillingPeriod, Invoice, Plan
from billing.periods import month_length, share
from core import clock, metering
from core.auth import Principal
from core.db import get_database
from core.problems import ProblemError
from factories import TenantSetup, create_tenant, run_outbox_inline, unique
from orders.usage import recount
from tenants.service import Actor

PARIS_OCTOBER_END = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)  # 1 November 00:00 in Paris (CET)
OCTOBER_5_TRIAL_END = datetime(2026, 10, 19, 22, 0, tzinfo=UTC)  # 20 October 00:00 in Paris (CEST)


def utc(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_stripe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Invoices local only: collection through Stripe is tested with the fake server elsewhere."""
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    monkeypatch.delenv("BILLING_VIES_CHECK", raising=False)


@asynccontextmanager
async def scoped(tenant_id: uuid.UUID) -> AsyncIterator[AsyncSession]:
    async with get_database().transaction(tenant_id=tenant_id) as session:
        yield session


def owner(tenant: TenantSetup, role: str = "owner") -> Principal:
    return Principal(tenant_id=tenant.tenant_id, role=role, label=tenant.email, tenant_name=tenant.name,
                     timezone="Europe/Paris", currency="EUR", user_id=tenant.user_id)


async def signed_up(at: datetime, **options: Any) -> TenantSetup:
    with clock.frozen_at(at):
        return await create_tenant(**options)


async def close(tenant_id: uuid.UUID, at: datetime | None = None, **options: Any) -> Invoice | None:
    if at is None:
        async with scoped(tenant_id) as session:
            return await invoicing.close_period(session, tenant_id, **options)
    with clock.frozen_at(at):
        async with scoped(tenant_id) as session:
            return await invoicing.close_period(session, tenant_id, **options)


async def periods_of(tenant_id: uuid.UUID) -> list[BillingPeriod]:
    async with scoped(tenant_id) as session:
        return list(await session.scalars(select(BillingPeriod).where(BillingPeriod.tenant_id == tenant_id)
                                          .order_by(BillingPeriod.starts_at)))


async def account(tenant_id: uuid.UUID) -> BillingAccount:
    async with scoped(tenant_id) as session:
        return await accounts.account_of(session, tenant_id)


async def small_plan(base_fee_minor: int = 3000) -> Plan:
    """A plan with tiny tiers, retired at once: never on offer to anyone, so other tests' pricing
    pages don't see it; a company put on it moves to the default plan at its next period."""
    since = utc("2026-01-01T00:00:00")
    plan = Plan(code=unique("small")[:40], version=1, name="Small", description="For tests", currency="EUR",
                base_fee_minor=base_fee_minor, trial_days=14, effective_from=since, retired_at=since, position=99,
                dimensions={"orders": {"included": 2, "tiers": [{"up_to": 4, "unit_minor": 20},
                                                                 {"up_to": None, "unit_minor": 12}]},
                            "locations": {"included": 1, "tiers": [{"up_to": None, "unit_minor": 1500}]}})
    async with get_database().transaction() as session:
        session.add(plan)
    return plan


async def put_on(tenant_id: uuid.UUID, plan: Plan) -> None:
    """The company's open period billed on ``plan`` from its start (as the operator might)."""
    async with scoped(tenant_id) as session:
        period = await invoicing.current_period(session, tenant_id)
        period.plans = [plans.segment(plan, period.starts_at)]
        (await accounts.account_of(session, tenant_id)).plan_code = plan.code


async def after_trial(at: datetime, **options: Any) -> TenantSetup:
    """A company signed up at ``at`` whose trial (14 days, to the next local midnight) is over: its
    first paid period is open."""
    tenant = await signed_up(at, **options)
    assert await close(tenant.tenant_id, at + timedelta(days=15)) is None
    return tenant


def refused(error: pytest.ExceptionInfo[ProblemError]) -> dict[str, str]:
    assert error.value.status == 422, error.value
    return {e.field: e.message for e in error.value.errors}


# --- sign-up, estimate, close ----------------------------------------------------------------------


async def test_a_sign_up_opens_an_account_on_the_default_plan_and_its_trial() -> None:
    signup_at = utc("2026-10-05T08:00:00")  # 10:00 in Paris: the trial ends at midnight, 14 days later
    tenant = await signed_up(signup_at)
    found = await account(tenant.tenant_id)
    assert (found.plan_code, found.trial_ends_at, found.country) == ("starter", OCTOBER_5_TRIAL_END, "FR")
    assert found.legal_name == tenant.name
    [trial] = await periods_of(tenant.tenant_id)
    assert (trial.status, trial.trial, trial.starts_at, trial.ends_at) == (
        "open", True, signup_at, OCTOBER_5_TRIAL_END)
    assert [(p["code"], p["version"]) for p in trial.plans] == [("starter", 1)]
    async with scoped(tenant.tenant_id) as session:
        estimate = await invoicing.estimate(session, tenant.tenant_id)
        offered = [p.code for p in await plans.plans_on_offer(session)]
    assert estimate.trial and estimate.lines == [] and estimate.total_minor == 0
    assert estimate.next_tier == {"orders": (500, 20), "locations": (2, 1500)}
    assert offered[:3] == ["starter", "growth", "scale"]


async def test_a_whole_period_routed_orders_estimated_then_invoiced_once(client) -> None:
    signup_at = utc("2026-10-05T08:00:00")
    tenant = await after_trial(signup_at)
    [trial, period] = await periods_of(tenant.tenant_id)
    assert (trial.status, trial.invoice_id, trial.usage is not None) == ("closed", None, True)
    assert (period.trial, period.starts_at, period.ends_at) == (False, OCTOBER_5_TRIAL_END, PARIS_OCTOBER_END)
    small = await small_plan()
    await put_on(tenant.tenant_id, small)

    working = utc("2026-10-20T09:00:00")
    with clock.frozen_at(working):
        key = tenant.api_key
        c = await network(client, key, stock={"sku": {"wh": 3, "wh2": 10}})
        await publish_rules(client, key, by_priority(types=("warehouse",)))
        for _ in range(6):
            await capture(client, key, order_body((c["sku"], 1, 2500)))
        await run_outbox_inline(tenant.tenant_id)
        async with scoped(tenant.tenant_id) as session:
            estimate = await invoicing.estimate(session, tenant.tenant_id)
    assert (estimate.usage.orders, estimate.usage.locations) == (6, 2)
    base = share(3000, PARIS_OCTOBER_END - period.starts_at, month_length(period.starts_at, "Europe/Paris"))
    expected = [("Small plan, 20 Oct 2026 to 31 Oct 2026 (prorated)", 1, base, base),
                ("Orders routed, included in the plan (up to 2)", 2, 0, 0),
                ("Orders routed, 3 to 4", 2, 20, 40),
                ("Orders routed, 5 and above", 2, 12, 24),
                ("Active locations, included in the plan (up to 1)", 1, 0, 0),
                ("Active locations, 2 and above", 1, 1500, 1500)]
    assert [(line.description, line.quantity, line.unit_minor, line.amount_minor)
            for line in estimate.lines] == expected
    subtotal = base + 40 + 24 + 1500
    assert (estimate.subtotal_minor, estimate.vat_rate_bp, estimate.vat_minor, estimate.total_minor) == (
        subtotal, 2000, vat.vat_of(subtotal, 2000), subtotal + vat.vat_of(subtotal, 2000))
    assert estimate.next_tier == {"orders": None, "locations": None}

    assert await close(tenant.tenant_id, PARIS_OCTOBER_END - timedelta(seconds=1)) is None  # not due yet
    invoice = await close(tenant.tenant_id, utc("2026-11-01T00:30:00"))
    assert invoice is not None
    assert re.fullmatch(r"INV-2026-\d{6}", invoice.number), invoice.number
    assert (invoice.kind, invoice.series, invoice.year, invoice.number.endswith(f"{invoice.sequence:06d}")) == (
        "invoice", "INV", 2026, True)
    assert (invoice.subtotal_minor, invoice.vat_rate_bp, invoice.vat_minor, invoice.total_minor) == (
        estimate.subtotal_minor, 2000, estimate.vat_minor, estimate.total_minor)
    assert (invoice.vat_treatment, invoice.currency, invoice.plan) == ("domestic", "EUR", "Small")
    assert (invoice.status, invoice.local_only, invoice.next_attempt_at) == ("open", True, None)
    assert (invoice.period_start, invoice.period_end) == (period.starts_at, PARIS_OCTOBER_END)
    assert invoice.issued_at == utc("2026-11-01T00:30:00")
    assert invoice.issuer["vat_number"] == "FR19812345676" and invoice.customer["name"] == tenant.name
    assert invoice.customer["email"] == tenant.email

    async with scoped(tenant.tenant_id) as session:
        _, lines = await invoicing.invoice_with_lines(session, tenant.tenant_id, invoice.id)
        listed = (await invoicing.invoices_of(session, tenant.tenant_id)).invoices
        issued = (await session.execute(text(
            "SELECT target FROM audit_events WHERE tenant_id = :t AND action = 'billing.invoice_issued'"),
            {"t": tenant.tenant_id})).scalars().all()
    assert [(line.position, line.description, line.quantity, line.unit_price_minor, line.amount_minor)
            for line in lines] == [(i, *line) for i, line in enumerate(expected, start=1)]
    assert [d.id for d in listed] == [invoice.id] and issued == [invoice.number]

    # Closing again (the scheduler's message delivered twice, the operator's command) changes nothing.
    assert (await close(tenant.tenant_id, utc("2026-11-01T01:00:00"), period_id=period.id)).id == invoice.id
    assert await close(tenant.tenant_id, utc("2026-11-01T01:00:00")) is None  # the next period is not due
    [_, closed, following] = await periods_of(tenant.tenant_id)
    assert (closed.status, closed.invoice_id) == ("closed", invoice.id)
    assert closed.usage == {"metered": {"orders": 6, "locations": 2, "location_days": 2},
                            "recounted": {"orders": 6, "locations": 2, "location_days": 2}, "agree": True}
    # The next period: the whole of November in Paris, back on the default plan (the small one is retired).
    assert (following.status, following.trial, following.starts_at, following.ends_at) == (
        "open", False, PARIS_OCTOBER_END, utc("2026-11-30T23:00:00"))
    assert [p["code"] for p in following.plans] == ["starter"]
    assert (await account(tenant.tenant_id)).plan_code == "starter"


async def test_an_issued_invoice_can_be_neither_edited_nor_deleted() -> None:
    tenant, invoice = await tenant_with_invoice()
    for statement in ("UPDATE invoices SET total_minor = total_minor + 100, subtotal_minor = subtotal_minor + 100 "
                      "WHERE tenant_id = :t AND id = :i",
                      "UPDATE invoices SET customer = '{}'::jsonb WHERE tenant_id = :t AND id = :i",
                      "DELETE FROM invoices WHERE tenant_id = :t AND id = :i",
                      "UPDATE invoice_lines SET amount_minor = 0 WHERE tenant_id = :t AND invoice_id = :i",
                      "DELETE FROM invoice_lines WHERE tenant_id = :t AND invoice_id = :i"):
        with pytest.raises(DBAPIError):
            async with scoped(tenant.tenant_id) as session:
                await session.execute(text(statement), {"t": tenant.tenant_id, "i": invoice.id})
    # No line is added to it afterwards either: a line is written only in the transaction that issues.
    with pytest.raises(DBAPIError) as added:
        async with scoped(tenant.tenant_id) as session:
            await session.execute(text(
                "INSERT INTO invoice_lines (tenant_id, id, invoice_id, position, description, dimension, quantity, "
                "unit_price_minor, amount_minor) VALUES (:t, gen_random_uuid(), :i, 99, 'Extra', 'base', 1, 100, 100)"),
                {"t": tenant.tenant_id, "i": invoice.id})
    assert "never added to an issued invoice" in str(added.value)
    async with scoped(tenant.tenant_id) as session:  # its collection moves
        await session.execute(text("UPDATE invoices SET attempts = attempts + 1 WHERE tenant_id = :t AND id = :i"),
                              {"t": tenant.tenant_id, "i": invoice.id})
        stored, lines = await invoicing.invoice_with_lines(session, tenant.tenant_id, invoice.id)
    assert (stored.total_minor, stored.attempts, len(lines)) == (invoice.total_minor, 1, 3)


@pytest.mark.parametrize(("zone", "country", "ends"), [("Europe/Paris", "FR", "2026-10-31T23:00:00"),
                                                        ("America/New_York", "US", "2026-11-01T04:00:00")])
async def test_an_october_period_closes_at_local_midnight_across_the_clock_change(zone: str, country: str,
                                                                                   ends: str) -> None:
    tenant = await after_trial(utc("2026-10-02T10:00:00"), timezone=zone, country=country, currency="EUR")
    end = utc(ends)
    assert await close(tenant.tenant_id, end - timedelta(seconds=1)) is None
    invoice = await close(tenant.tenant_id, end)
    assert invoice is not None and (invoice.period_end, invoice.issued_at) == (end, end)
    [_, _, following] = await periods_of(tenant.tenant_id)
    assert following.starts_at == end
    if country == "US":  # a company outside the EU: no VAT, and the invoice says why
        assert (invoice.vat_rate_bp, invoice.vat_minor, invoice.vat_treatment) == (0, 0, "outside_eu")
        assert invoice.vat_mentions == [vat.OUTSIDE_EU]
        assert following.ends_at == utc("2026-12-01T05:00:00")


# --- usage agrees with its re-count ----------------------------------------------------------------


async def test_usage_rows_agree_with_the_recount_after_random_work(client) -> None:
    rng = random.Random(18)
    tenant = await create_tenant()
    key = tenant.api_key
    c = await network(client, key, stock={"sku": {"wh": 4, "wh2": 40}, "sku2": {"wh": 40}})
    await publish_rules(client, key, by_priority(types=("warehouse",)))
    routed: list[dict[str, Any]] = []
    for index in range(10):
        lines = [(c["sku"], rng.randint(1, 2), 2500)] + ([(c["sku2"], 1, 4000)] if rng.random() < 0.4 else [])
        order = await capture(client, key, order_body(*lines))
        if index % 4 == 3:  # cancelled before any routing: never counted
            assert (await cancel(client, key, order["id"], reason="Changed my mind")).status_code == 200
        await run_outbox_inline(tenant.tenant_id)
        if index % 4 != 3:
            routed.append(order)
    for order in rng.sample(routed, 3):  # the routing message delivered again
        await route_again(tenant.tenant_id, order["id"])
    rejected = await client.get(f"/api/v1/orders/{routed[0]['id']}", headers={"Authorization": f"Bearer {key}"})
    first = rejected.json()["fulfilments"][0]
    await act_ok(client, key, first["id"], "accept")
    await act_ok(client, key, first["id"], "reject", reason="Damaged on the shelf")
    await run_outbox_inline(tenant.tenant_id)  # routed elsewhere: the order still counts once
    assert (await cancel(client, key, routed[1]["id"], reason="Too late")).status_code == 200

    # The trial closed early tomorrow: it ends at the start of that day, after all of today's work.
    assert await close(tenant.tenant_id, clock.now() + timedelta(days=1), now_if_early=True) is None
    [trial, _] = await periods_of(tenant.tenant_id)
    assert trial.usage is not None and trial.usage["agree"] is True, trial.usage
    assert trial.usage["metered"]["orders"] == len(routed)
    assert trial.usage["metered"]["locations"] >= 1


async def test_periods_meet_at_local_midnights_so_a_location_day_is_billed_once(client) -> None:
    tenant = await signed_up(utc("2026-10-05T08:00:00"))
    midnight = OCTOBER_5_TRIAL_END
    day = utc("2026-10-21T22:00:00")  # 22 October 00:00 in Paris
    key = tenant.api_key
    with clock.frozen_at(midnight - timedelta(hours=2)):
        c = await network(client, key, stock={"sku": {"wh": 50}})
        await publish_rules(client, key, by_priority(types=("warehouse",)))

    async def ship_at(at: datetime) -> None:
        with clock.frozen_at(at):
            await capture(client, key, order_body((c["sku"], 1, 2500)))
            await run_outbox_inline(tenant.tenant_id)

    await ship_at(midnight - timedelta(minutes=30))  # the trial's last day
    await ship_at(midnight + timedelta(hours=1))  # the paid period's first day, from the same warehouse
    assert await close(tenant.tenant_id, midnight + timedelta(hours=2)) is None  # the trial, due
    # A period that began today can't close early: it stays open.
    assert await close(tenant.tenant_id, midnight + timedelta(hours=3), now_if_early=True) is None
    assert [p.status for p in await periods_of(tenant.tenant_id)] == ["closed", "open"]
    # Closed early at 15:00 on 22 October, the period ends at that day's start: the day's work,
    # before and after the close, is the next period's, once.
    await ship_at(day + timedelta(hours=9))
    invoice = await close(tenant.tenant_id, day + timedelta(hours=15), now_if_early=True)
    assert invoice is not None and invoice.period_end == day
    await ship_at(day + timedelta(hours=16))
    assert await close(tenant.tenant_id, day + timedelta(days=2, hours=1), now_if_early=True) is not None

    [trial, paid, following, _] = await periods_of(tenant.tenant_id)
    assert (trial.ends_at, paid.starts_at, paid.ends_at, following.ends_at) == (
        midnight, midnight, day, day + timedelta(days=2))
    for period, orders in ((trial, 1), (paid, 1), (following, 2)):
        usage = {"orders": orders, "locations": 1, "location_days": 1}
        assert period.usage == {"metered": usage, "recounted": usage, "agree": True}, period.usage
    # The re-count puts a day in the window of its first fulfilment, as the usage rows do, whatever
    # the window: from noon, that day's warehouse is not counted, its 16:00 order is.
    async with scoped(tenant.tenant_id) as session:
        for start, end in ((day + timedelta(hours=12), day + timedelta(days=1)), (day, day + timedelta(hours=12)),
                           (midnight - timedelta(hours=12), midnight + timedelta(hours=12))):
            counted = await recount(session, tenant.tenant_id, start, end)
            assert counted == await metering.usage_between(session, tenant.tenant_id, start, end), (start, end)
        assert await recount(session, tenant.tenant_id, day + timedelta(hours=12), day + timedelta(days=1)) == (
            metering.Usage(orders=1, locations=0, location_days=0))


# --- numbering ----------------------------------------------------------------------------------


async def tenant_with_invoice() -> tuple[TenantSetup, Invoice]:
    """A company whose first paid period (19 to 31 October 2026, after its trial) is invoiced."""
    tenant = await after_trial(utc("2026-10-05T08:00:00"))
    invoice = await close(tenant.tenant_id, utc("2026-11-01T00:30:00"))
    assert invoice is not None
    return tenant, invoice


async def test_concurrent_closes_number_invoices_without_gap_or_duplicate() -> None:
    signup_at = clock.now() - timedelta(days=60)
    with clock.frozen_at(signup_at):
        tenants = await asyncio.gather(*(create_tenant() for _ in range(12)))
    with clock.frozen_at(signup_at + timedelta(days=15)):  # one clock for all: the trials end
        await asyncio.gather(*(close(t.tenant_id) for t in tenants))

    invoices = await asyncio.gather(*(close(t.tenant_id) for t in tenants))  # separate transactions, at once
    assert all(invoice is not None for invoice in invoices)
    issued = sorted((i for i in invoices if i is not None), key=lambda i: i.sequence)
    first = issued[0].sequence
    assert [i.sequence for i in issued] == list(range(first, first + 12))
    assert len({i.number for i in issued}) == 12 and len({i.year for i in issued}) == 1
    assert [i.number for i in issued] == [f"INV-{i.year}-{i.sequence:06d}" for i in issued]
    assert [i.issued_at for i in issued] == sorted(i.issued_at for i in issued)  # numbers follow issue times


# --- credit notes --------------------------------------------------------------------------------


async def credit(tenant: TenantSetup, invoice_id: uuid.UUID, amount: int, reason: str) -> Invoice:
    async with scoped(tenant.tenant_id) as session:
        return await invoicing.issue_credit_note(session, tenant.tenant_id, invoice_id, amount, reason,
                                                 actor=Actor(tenant.email, tenant.user_id))


async def credit_notes(tenant: TenantSetup) -> int:
    async with scoped(tenant.tenant_id) as session:
        return int(await session.scalar(select(func.count()).select_from(Invoice).where(
            Invoice.tenant_id == tenant.tenant_id, Invoice.kind == "credit_note")) or 0)


async def test_credit_notes_are_numbered_in_their_series_within_what_is_left_to_credit() -> None:
    tenant, invoice = await tenant_with_invoice()
    total = invoice.total_minor
    for amount, reason, fields in ((0, "Goodwill", {"amount_minor"}), (-5, "Goodwill", {"amount_minor"}),
                                   (total + 1, "Goodwill", {"amount_minor"}), (100, "  ", {"reason"}),
                                   (0, "", {"amount_minor", "reason"}), (100, "x" * 251, {"reason"})):
        with pytest.raises(ProblemError) as error:
            await credit(tenant, invoice.id, amount, reason)
        assert set(refused(error)) == fields
    assert await credit_notes(tenant) == 0
    with pytest.raises(ProblemError) as missing:
        await credit(tenant, uuid.uuid4(), 100, "Goodwill")
    assert missing.value.status == 404

    note = await credit(tenant, invoice.id, 1000, "Goodwill for the outage")
    assert re.fullmatch(r"CN-\d{4}-\d{6}", note.number), note.number
    # "applied": issued while its invoice is unpaid, it lowers what the invoice collects.
    assert (note.kind, note.series, note.status, note.credited_invoice_id) == ("credit_note", "CN", "applied",
                                                                               invoice.id)
    assert (note.total_minor, note.subtotal_minor, note.vat_minor, note.vat_rate_bp) == (1000, 833, 167, 2000)
    async with scoped(tenant.tenant_id) as session:
        _, [line] = await invoicing.invoice_with_lines(session, tenant.tenant_id, note.id)
        credited, _ = await invoicing.invoice_with_lines(session, tenant.tenant_id, invoice.id)
        listed = (await invoicing.invoices_of(session, tenant.tenant_id)).invoices
        first_page = await invoicing.invoices_of(session, tenant.tenant_id, limit=1)
        second_page = await invoicing.invoices_of(session, tenant.tenant_id, limit=1, before=first_page.next_cursor)
    assert (line.description, line.amount_minor) == (f"Credit on {invoice.number}: Goodwill for the outage", 833)
    assert (credited.credited_minor, credited.status) == (1000, "open")
    assert [d.id for d in listed] == [note.id, invoice.id]  # newest first
    assert ([d.id for d in first_page.invoices], first_page.next_cursor) == ([note.id], note.id)
    assert ([d.id for d in second_page.invoices], second_page.next_cursor) == ([invoice.id], None)
    with pytest.raises(ProblemError) as unknown:
        async with scoped(tenant.tenant_id) as session:
            await invoicing.invoices_of(session, tenant.tenant_id, before=uuid.uuid4())
    assert set(refused(unknown)) == {"cursor"}

    rest = await credit(tenant, invoice.id, total - 1000, "Cancelled the subscription")
    assert rest.sequence == note.sequence + 1 or rest.year != note.year
    async with scoped(tenant.tenant_id) as session:
        credited, _ = await invoicing.invoice_with_lines(session, tenant.tenant_id, invoice.id)
    assert (credited.credited_minor, credited.status) == (total, "credited")
    with pytest.raises(ProblemError) as error:
        await credit(tenant, invoice.id, 1, "Once more")
    assert "credited in full" in refused(error)["amount_minor"]


# --- plan changes --------------------------------------------------------------------------------


async def change(tenant: TenantSetup, code: str, when: str, at: datetime, role: str = "owner") -> BillingAccount:
    with clock.frozen_at(at):
        async with scoped(tenant.tenant_id) as session:
            return await accounts.change_plan(session, owner(tenant, role), code, when)


async def test_plan_changes_from_the_next_period_or_now_with_proration() -> None:
    tenant = await after_trial(utc("2026-09-03T10:00:00"))
    end = utc("2026-09-30T22:00:00")  # 1 October in Paris (CEST)
    retired = await small_plan()
    at = utc("2026-09-20T10:00:00")
    for code, when, field in (("nope", "now", "plan"), (retired.code, "now", "plan"), ("starter", "now", "plan"),
                              ("growth", "tomorrow", "when")):
        with pytest.raises(ProblemError) as error:
            await change(tenant, code, when, at)
        assert set(refused(error)) == {field}
    with pytest.raises(ProblemError) as error:
        await change(tenant, retired.code, "now", at)
    assert "no longer offered" in refused(error)["plan"]
    with pytest.raises(ProblemError) as error:
        await change(tenant, "nope", "now", at)
    assert "Unknown plan 'nope'" in refused(error)["plan"] and "starter, growth, scale" in refused(error)["plan"]
    with pytest.raises(ProblemError) as forbidden:
        await change(tenant, "growth", "now", at, role="read_only")
    assert forbidden.value.status == 403
    assert ((await account(tenant.tenant_id)).plan_code, (await account(tenant.tenant_id)).next_plan_code) == (
        "starter", None)

    planned = await change(tenant, "growth", "next_period", at)
    assert (planned.plan_code, planned.next_plan_code) == ("starter", "growth")
    assert [p["code"] for p in (await periods_of(tenant.tenant_id))[1].plans] == ["starter"]

    switched_at = utc("2026-09-25T10:00:00")
    switched = await change(tenant, "scale", "now", switched_at)
    assert (switched.plan_code, switched.next_plan_code) == ("scale", None)
    period = (await periods_of(tenant.tenant_id))[1]
    assert [(p["code"], p["from"]) for p in period.plans] == [
        ("starter", period.starts_at.isoformat()), ("scale", switched_at.isoformat())]

    invoice = await close(tenant.tenant_id, end)
    assert invoice is not None and invoice.plan == "Starter, then Scale"  # words the PDF's font prints
    async with scoped(tenant.tenant_id) as session:
        _, lines = await invoicing.invoice_with_lines(session, tenant.tenant_id, invoice.id)
    september = timedelta(days=30)
    assert [(line.dimension, line.description, line.amount_minor) for line in lines if line.dimension == "base"] == [
        ("base", "Starter plan, 18 Sep 2026 to 25 Sep 2026 (prorated)",
         share(3900, switched_at - period.starts_at, september)),
        ("base", "Scale plan, 25 Sep 2026 to 30 Sep 2026 (prorated)", share(49900, end - switched_at, september))]
    following = (await periods_of(tenant.tenant_id))[2]
    assert [p["code"] for p in following.plans] == ["scale"]
    assert (following.starts_at, following.ends_at) == (end, utc("2026-10-31T23:00:00"))


# --- billing details -----------------------------------------------------------------------------


async def update(tenant: TenantSetup, **fields: str) -> BillingAccount:
    async with scoped(tenant.tenant_id) as session:
        return await accounts.update_details(session, owner(tenant), accounts.BillingDetails(**fields))


async def test_billing_details_are_refused_with_every_problem_named_and_nothing_changed() -> None:
    tenant = await create_tenant()
    with pytest.raises(ProblemError) as error:
        await update(tenant, legal_name=" ", country="ZZ", vat_number="DE136695977", billing_email="not-an-email",
                     postcode="7" * 30)
    problems = refused(error)
    assert set(problems) == {"legal_name", "country", "vat_number", "billing_email", "postcode"}
    assert "We don't bill companies in ZZ" in problems["country"]
    assert "check digits" in problems["vat_number"]
    with pytest.raises(ProblemError) as error:
        await update(tenant, legal_name="Acme", country="France")
    assert "Unknown country" in refused(error)["country"]
    with pytest.raises(ProblemError) as error:
        await update(tenant, legal_name="Acme", country="BE", vat_number="DE136695976")
    assert "German VAT number" in refused(error)["vat_number"]
    unchanged = await account(tenant.tenant_id)
    assert (unchanged.legal_name, unchanged.country, unchanged.vat_number) == (tenant.name, "FR", None)

    saved = await update(tenant, legal_name="Acme GmbH", address_line1="Unter den Linden 1", postcode="10117",
                         city="Berlin", country="de", vat_number="DE 136 695 976", billing_email="Bills@Acme.test")
    assert (saved.country, saved.vat_number, saved.vat_check, saved.billing_email) == (
        "DE", "DE136695976", "format", "bills@acme.test")
    assert saved.vat_checked_at is not None
    assert accounts.vat_check_message("DE", "DE136695976") == (True, "Valid German VAT number: reverse charge applies")
    assert accounts.vat_check_message("DE", "DE136695977")[0] is False
    async with scoped(tenant.tenant_id) as session:
        estimate = await invoicing.estimate(session, tenant.tenant_id)
        actions = (await session.execute(text(
            "SELECT action FROM audit_events WHERE tenant_id = :t AND action LIKE 'billing.%'"),
            {"t": tenant.tenant_id})).scalars().all()
    assert (estimate.vat_rate_bp, estimate.vat_treatment, estimate.vat_mentions) == (
        0, "reverse_charge", ["Reverse charge", "Autoliquidation"])
    assert actions == ["billing.details_updated"]

    consumer = await update(tenant, legal_name="Acme GmbH", country="DE")
    assert (consumer.vat_number, consumer.vat_check) == (None, None)
    async with scoped(tenant.tenant_id) as session:
        assert (await invoicing.estimate(session, tenant.tenant_id)).vat_treatment == "eu_consumer"


async def test_vat_number_recorded_as_not_checked_when_vies_is_out_of_reach(monkeypatch) -> None:
    monkeypatch.setenv("BILLING_VIES_CHECK", "1")

    def unreachable(*args: object, **kwargs: object) -> object:
        raise OSError("no network here")

    monkeypatch.setattr(vat.eu_vat, "check_vies_approx", unreachable)
    tenant = await create_tenant()
    saved = await update(tenant, legal_name="Acme GmbH", country="DE", vat_number="DE136695976")
    assert (saved.vat_number, saved.vat_check, saved.vat_consultation) == ("DE136695976", "not_checked", None)


async def test_a_vat_number_vies_does_not_know_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("BILLING_VIES_CHECK", "1")
    monkeypatch.setattr(vat.eu_vat, "check_vies_approx",
                        lambda *args, **kwargs: {"valid": False, "requestIdentifier": "WAPIAAAAX"})
    tenant = await create_tenant()
    with pytest.raises(ProblemError) as error:
        await update(tenant, legal_name="Acme GmbH", country="DE", vat_number="DE136695976")
    assert refused(error)["vat_number"].startswith("VIES, the EU's register, does not know this VAT number")
    unchanged = await account(tenant.tenant_id)
    assert (unchanged.legal_name, unchanged.vat_number) == (tenant.name, None)


async def test_a_price_change_applies_from_each_companys_next_period() -> None:
    """A new version of a plan takes effect mid-period: the period keeps the version it began with,
    the next one is billed at the new price."""
    tenant = await after_trial(utc("2026-09-03T10:00:00"))
    code = unique("priced")[:40]
    since, retired = utc("2026-01-01T00:00:00"), utc("2026-12-01T00:00:00")  # off the pricing page today
    spec = {"orders": {"included": 100, "tiers": [{"up_to": None, "unit_minor": 10}]}}
    first = Plan(code=code, version=1, name="Priced", currency="EUR", base_fee_minor=3000, trial_days=14,
                 dimensions=spec, effective_from=since, retired_at=retired, position=99)
    async with get_database().transaction() as session:
        session.add(first)
    await put_on(tenant.tenant_id, first)
    async with get_database().transaction() as session:
        session.add(Plan(code=code, version=2, name="Priced", currency="EUR", base_fee_minor=5000, trial_days=14,
                         dimensions=spec, effective_from=utc("2026-09-25T00:00:00"), retired_at=retired,
                         position=99))

    september_end, october_end = utc("2026-09-30T22:00:00"), utc("2026-10-31T23:00:00")
    period = (await periods_of(tenant.tenant_id))[1]
    september = await close(tenant.tenant_id, september_end)
    assert september is not None
    async with scoped(tenant.tenant_id) as session:
        _, lines = await invoicing.invoice_with_lines(session, tenant.tenant_id, september.id)
    assert [line.amount_minor for line in lines if line.dimension == "base"] == [
        share(3000, september_end - period.starts_at, timedelta(days=30))]
    october_period = (await periods_of(tenant.tenant_id))[2]
    assert [(p["code"], p["version"]) for p in october_period.plans] == [(code, 2)]

    october = await close(tenant.tenant_id, october_end)
    assert october is not None
    async with scoped(tenant.tenant_id) as session:
        _, lines = await invoicing.invoice_with_lines(session, tenant.tenant_id, october.id)
    assert [line.amount_minor for line in lines if line.dimension == "base"] == [5000]
