"""A company billed by the platform, in real Chromium against the web server, a worker and the
scheduler, all talking to a fake Stripe: the owner signs up and is on the trial; the operator
ends the trial; the owner saves a card, watches the usage grow as orders arrive; the month ends
(the servers' clock moved), the scheduler closes the period, and the invoice appears with its
number and VAT, paid. Then a card that fails: the next invoice's payment fails, the account goes
past due, then restricted (a settings change is refused while an order from the API is still taken
and routed), and a good card pays the invoice and lifts it all at once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, expect

from browser_pages import one_warehouse_of_mugs, phone_order_of_mugs
from conftest import LiveServer, serving
from processes import ROOT, fake_stripe_server, start_oms, stop_process

pytestmark = pytest.mark.browser

PASSWORD = "ledger in the morning"
TIMEZONE = "Europe/Paris"
STRIPE = {"STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_test"}
# The scheduler looks for periods to close and payments to collect every minute.
SWEEP_WAIT_S = 150

expect.set_options(timeout=10_000)


@pytest.fixture(scope="module")
def stripe_url() -> Iterator[str]:
    with fake_stripe_server() as url:
        yield url


@pytest.fixture(scope="module")
def live_server(artifacts_dir: Path, stripe_url: str) -> Iterator[LiveServer]:
    """The web server and a worker talking to the fake Stripe, and the scheduler with the same clock."""
    with serving(artifacts_dir, STRIPE_API_BASE=stripe_url, **STRIPE) as server:
        env = dict(os.environ, PUBLIC_URL=server.base_url, OMS_CLOCK_SHIFT_FILE=str(server.clock_shift_file),
                   STRIPE_API_BASE=stripe_url, **STRIPE)
        scheduler, log_file = start_oms(["scheduler"], env, artifacts_dir / "scheduler.log")
        try:
            yield server
        finally:
            stop_process(scheduler)
            log_file.close()


def oms_billing(server: LiveServer, *args: str) -> str:
    """`oms billing ...` as the operator runs it, on the servers' clock."""
    env = dict(os.environ, OMS_CLOCK_SHIFT_FILE=str(server.clock_shift_file))
    result = subprocess.run([sys.executable, "-m", "oms.cli", "billing", *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def shift_to(server: LiveServer, at: datetime) -> float:
    """Move the servers' clock so that it reads ``at`` now; the shift in seconds."""
    seconds = (at - datetime.now(UTC)).total_seconds()
    server.shift_clock(seconds)
    return seconds


def month_after(at: datetime) -> datetime:
    """The next first of the month at midnight in the company's time zone, after ``at``."""
    local = at.astimezone(ZoneInfo(TIMEZONE))
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=ZoneInfo(TIMEZONE)).astimezone(UTC)


def reload_until(page: Page, server: LiveServer, check: Any, what: str) -> None:
    """Open the Billing page again until ``check(page)`` holds (the scheduler and the worker act
    on their own time)."""
    deadline = time.monotonic() + SWEEP_WAIT_S
    while time.monotonic() < deadline:
        page.goto("/app/billing")
        if check(page):
            return
        time.sleep(2)
    pytest.fail(f"{what} did not happen within {SWEEP_WAIT_S} s\n{server.log_tail()}")


def save_test_card(page: Page, number: str) -> None:
    form = page.locator("#test-card-form")
    form.locator("summary").click()
    form.get_by_label("Card number").fill(number)
    form.get_by_label("Month (MM)").fill("12")
    form.get_by_label("Year (YYYY)").fill("2035")
    form.get_by_label("CVC").fill("123")
    form.get_by_role("button", name="Save the card").click()
    expect(page.get_by_role("status").filter(has_text="Card saved")).to_be_visible()


def banner(page: Page) -> str:
    found = page.locator("#billing-banner")
    return found.inner_text() if found.count() else ""


def invoice_row(page: Page, number_prefix: str = "INV-") -> Any:
    return page.locator(f'#billing-invoices tbody tr[data-number^="{number_prefix}"]')


def test_an_owner_is_billed_pays_falls_behind_is_restricted_and_is_reinstated_by_a_new_card(
        live_server: LiveServer, new_context: Any, journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("billing-")
    suffix = uuid.uuid4().hex[:8]
    company, email = f"Faïencerie {suffix}", f"ines-{suffix}@example.test"
    page = journey.watch(new_context(timezone_id=TIMEZONE, base_url=base).new_page(), "owner")

    # 1. Pricing, then sign-up: the company is on its trial.
    page.goto("/")
    page.locator("header").get_by_role("link", name="Pricing").click()
    expect(page.locator("#plan-starter")).to_contain_text("First 500 orders")
    journey.shot(page, "pricing")
    page.goto("/signup")
    page.get_by_label("Company name").fill(company)
    page.get_by_label("Your name").fill("Inès Potier")
    page.get_by_label("Work email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Country").select_option("FR")
    page.get_by_label("Currency").select_option("EUR")
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(f"{base}/app")
    page.locator("header").get_by_role("link", name="Billing").click()
    expect(page.locator("#billing-plan-name")).to_have_text("Starter")
    expect(page.locator("#billing-trial")).to_have_text("Trial: 14 days left")
    expect(page.locator("#billing-card-on-file")).to_contain_text("No card on file")
    journey.shot(page, "trial")

    page.goto("/app/settings/api-keys")
    page.get_by_label("Key name").fill("Shop")
    page.get_by_role("button", name="Create key").click()
    api_key = page.locator("#new-api-key").inner_text().strip()
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
    tenant_id = api.get("/api/v1/me").json()["tenant"]["id"]
    one_warehouse_of_mugs(api, 500)

    # 2. The next day, the operator ends the trial (periods start at the company's midnight): a paid
    #    period runs from that midnight to the end of the month.
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    shift_to(live_server, tomorrow)
    assert oms_billing(live_server, "close", "--tenant", tenant_id) == "trial closed, no invoice"
    page.goto("/app/billing")
    expect(page.locator("#billing-trial")).to_have_count(0)
    expect(page.locator("#billing-estimate")).to_contain_text("Starter plan")

    # 3. A good card, through the test-card form.
    save_test_card(page, "4242424242424242")
    expect(page.locator("#billing-card-on-file")).to_contain_text("ending in 4242")
    journey.shot(page, "card-saved")

    # 4. Orders arrive through the API: the usage grows on the open page, without a reload.
    usage = page.locator('#billing-usage [data-usage="1"]')
    expect(usage).to_have_text("0")
    page.evaluate("window.__same_page = true")
    for n in range(3):
        phone_order_of_mugs(api, f"PH-{suffix}-{n}", 1, f"buyer-{n}-{suffix}@example.test", "A Buyer")
    expect(usage).to_have_text("3", timeout=15_000)
    assert page.evaluate("window.__same_page === true")
    expect(page.locator("#billing-usage")).to_contain_text("497 more orders until the next tier")
    journey.shot(page, "usage-grew")

    # 5. The month ends: the scheduler closes the period; the invoice is issued and paid by card.
    first_end = month_after(tomorrow)
    shift_to(live_server, first_end + timedelta(hours=1))
    reload_until(page, live_server, lambda p: invoice_row(p).count() == 1
                 and "paid" in invoice_row(p).inner_text(), "the first invoice, paid")
    row = invoice_row(page)
    number = row.get_attribute("data-number") or ""
    assert re.fullmatch(r"INV-\d{4}-\d{6}", number), number
    journey.shot(page, "invoice-paid")
    row.get_by_role("link", name=number).click()
    expect(page.locator("#invoice-number")).to_have_text(number)
    expect(page.locator("#invoice-status")).to_have_text("paid")
    expect(page.locator("#invoice-issuer")).to_contain_text("VAT number: FR19812345676")
    expect(page.locator("#invoice-lines")).to_contain_text("VAT 20 %")
    expect(page.locator("#invoice-lines")).to_contain_text("Orders routed, included in the plan")
    journey.shot(page, "invoice-printable")
    with page.expect_download() as download:
        page.locator('a[href$="/pdf"]').click()
    assert download.value.suggested_filename == f"{number}.pdf"

    # 6. A card that attaches and then fails; the next month's invoice is refused.
    page.goto("/app/billing")
    save_test_card(page, "4000000000000341")
    expect(page.locator("#billing-card-on-file")).to_contain_text("ending in 0341")
    second_end = month_after(first_end + timedelta(days=1))
    shift_to(live_server, second_end + timedelta(hours=1))
    reload_until(page, live_server, lambda p: "A payment failed" in banner(p), "the payment-failed banner")
    expect(invoice_row(page).first).to_contain_text("payment failed")
    journey.shot(page, "payment-failed")

    # 7. Eight days on, the last retry fails too: past due.
    shift_to(live_server, second_end + timedelta(days=8, hours=1))
    reload_until(page, live_server, lambda p: "past due" in banner(p), "the past-due banner")
    journey.shot(page, "past-due")

    # 8. Fifteen days on: restricted. The dunning sweep runs every ten minutes; the test sends the
    # message it would send for this company.
    shift_to(live_server, second_end + timedelta(days=15, hours=1))
    from billing.tasks import dunning_actor

    dunning_actor.send(tenant_id=tenant_id)
    reload_until(page, live_server, lambda p: "restricted" in banner(p), "the restricted banner")
    journey.shot(page, "restricted")
    page.goto("/app/settings/returns")
    page.get_by_label("Return window, in days").fill("45")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("main")).to_contain_text("Your account is restricted because an invoice is unpaid")
    journey.shot(page, "settings-refused")
    order = phone_order_of_mugs(api, f"PH-{suffix}-late", 2, f"late-{suffix}@example.test", "Late Buyer")
    assert order["status"] == "routed", order
    refused = api.post("/api/v1/locations", json={"code": "WH-TWO", "name": "Second", "kind": "warehouse",
                                                   "country": "FR", "timezone": TIMEZONE})
    assert refused.status_code == 402, refused.text

    # 9. A good card: the open invoice is paid at once and every restriction lifts.
    page.goto("/app/billing")
    save_test_card(page, "4242424242424242")
    reload_until(page, live_server, lambda p: banner(p) == "", "the reinstatement")
    expect(invoice_row(page).first).to_contain_text("paid")
    journey.shot(page, "reinstated")
    page.goto("/app/settings/returns")
    page.get_by_label("Return window, in days").fill("45")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Return policy saved")
    journey.shot(page, "settings-saved")

    api.close()
    assert journey.page_errors == [], journey.page_errors
