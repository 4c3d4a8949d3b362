"""A new company's first minutes, in the real Chromium against the real web server and worker:
sign up, the checklist, an API key used from outside, log out and in, invite a teammate, find the
invitation in the outgoing-mail log once the worker delivered it, accept it in another browser, and
see the used link refused."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"
TEAMMATE_PASSWORD = "another long enough passphrase"
TIMEZONE = "Europe/Paris"
MAIL_TIMEOUT = 15.0
CHECKLIST_STEPS = [
    "Add a location",
    "Add products",
    "Load stock",
    "Publish a routing rule",
    "Create an API key",
    "Send a first order through the API",
    "Invite a teammate",
]

expect.set_options(timeout=10_000)


def test_signup_to_teammate_journey(live_server: Any, new_context: Any, journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for()
    suffix = uuid.uuid4().hex[:8]
    company = f"Maison Dupont {suffix}"
    owner_email = f"camille-{suffix}@example.test"
    teammate_email = f"teammate-{suffix}@example.test"

    owner = new_context(timezone_id=TIMEZONE, base_url=base)
    page = journey.watch(owner.new_page(), "owner")

    # 1. Landing → sign-up form, with the time zone pre-filled from the browser.
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Every order")
    journey.shot(page, "landing")
    page.locator("header").get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(f"{base}/signup")
    expect(page.get_by_role("heading", name="Create your company's account")).to_be_visible()

    browser_zone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    assert browser_zone == TIMEZONE
    timezone_select = page.get_by_label("Time zone")
    zones = timezone_select.locator("option").evaluate_all("options => options.map(o => o.value)")
    assert browser_zone in zones
    expect(timezone_select).to_have_value(browser_zone)

    page.get_by_label("Company name").fill(company)
    page.get_by_label("Your name").fill("Camille Dupont")
    page.get_by_label("Work email").fill(owner_email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Country").select_option("FR")
    page.get_by_label("Currency").select_option("EUR")
    journey.shot(page, "signup-filled")
    page.get_by_role("button", name="Create account").click()

    # 2. The console home with its getting-started checklist.
    expect(page).to_have_url(f"{base}/app")
    expect(page.locator(".tenant-name")).to_have_text(company)
    expect(page.get_by_role("heading", name="Welcome, Camille")).to_be_visible()
    checklist = page.locator("article.checklist")
    expect(checklist.get_by_role("heading", name="Getting started")).to_be_visible()
    expect(checklist.locator("ol.steps > li strong")).to_have_text(CHECKLIST_STEPS)
    expect(checklist).to_contain_text("0 of 7 done")
    journey.shot(page, "console-home")

    # 3. An API key, shown once, that works against the API.
    checklist.get_by_role("link", name="Create an API key").click()
    expect(page).to_have_url(f"{base}/app/settings/api-keys")
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()
    page.get_by_label("Key name").fill("Web shop")
    page.get_by_role("button", name="Create key").click()
    new_key = page.locator("#new-api-key")
    expect(new_key).to_have_text(re.compile(r"^oms_\S+$"))
    api_key = new_key.inner_text().strip()
    expect(page.locator("table")).to_contain_text("Web shop")
    journey.shot(page, "api-key-created")

    # Open the page again with a GET. (A literal page.reload() here re-sends the form POST, since the
    # key is shown in the POST's own response, and so would create a second key.)
    page.goto("/app/settings/api-keys")
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()
    expect(page.locator("#new-api-key")).to_have_count(0)
    expect(page.get_by_text(api_key)).to_have_count(0)
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr").first).to_contain_text("Web shop")
    assert api_key not in page.content()
    journey.shot(page, "api-keys-after-reload")

    response = httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["tenant"]["name"] == company
    assert httpx.get(f"{base}/api/v1/me", timeout=10).status_code == 401

    # 4. Log out through the user menu, and back in.
    menu = page.locator("header details.dropdown")
    menu.locator("summary").click()
    expect(menu.get_by_role("button", name="Log out")).to_be_visible()
    journey.shot(page, "user-menu-open")
    menu.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(re.escape(f"{base}/login")))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    journey.shot(page, "logged-out")
    page.goto("/app")
    expect(page).not_to_have_url(f"{base}/app")  # signed out for real: the console is closed
    page.goto("/login")
    page.get_by_label("Email").fill(owner_email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/app")
    expect(page.locator(".tenant-name")).to_have_text(company)

    # 5. Invite a teammate, then find the invitation in the outgoing mail once the worker sent it.
    page.locator("header").get_by_role("link", name="Settings").click()
    expect(page).to_have_url(f"{base}/app/settings/team")
    page.get_by_role("navigation", name="Settings").get_by_role("link", name="Team").click()
    expect(page.get_by_role("heading", name="Team", level=1)).to_be_visible()
    invite_form = page.locator('form[action="/app/settings/team/invitations"]')
    invite_form.get_by_label("Email").fill(teammate_email)
    invite_form.get_by_label("Role").select_option(label="Merchandiser")
    page.get_by_role("button", name="Send invitation").click()
    expect(page).to_have_url(re.compile(re.escape(f"{base}/app/settings/team")))
    expect(page.get_by_role("status")).to_contain_text("Invitation sent")
    expect(page.get_by_role("heading", name="Pending invitations")).to_be_visible()
    pending = page.locator("table").last.locator("tbody tr", has_text=teammate_email)
    expect(pending).to_have_count(1)
    expect(pending.locator("td").nth(1)).to_have_text("merchandiser")
    journey.shot(page, "invitation-sent")

    page.get_by_role("navigation", name="Settings").get_by_role("link", name="Outgoing mail").click()
    expect(page.get_by_role("heading", name="Outgoing mail", level=1)).to_be_visible()
    mail_row = page.locator("tbody tr", has_text=teammate_email)
    status = mail_row.locator(".badge")
    deadline = time.monotonic() + MAIL_TIMEOUT
    while True:  # the worker subprocess delivers it; poll by reloading the page
        expect(mail_row).to_have_count(1)
        if status.inner_text().strip() == "sent":
            break
        if time.monotonic() > deadline:
            pytest.fail(f"the invitation mail is still '{status.inner_text().strip()}' after "
                        f"{MAIL_TIMEOUT:.0f}s\n{live_server.log_tail()}")
        time.sleep(0.5)
        page.reload()
    expect(status).to_have_text("sent")
    journey.shot(page, "mail-log-sent")

    mail_row.get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"{re.escape(base)}/app/settings/mail-log/[0-9a-f-]+$"))
    expect(page.locator("article header")).to_contain_text(f"To {teammate_email}")
    expect(page.locator("article header")).to_contain_text("sent via log")
    link = page.locator("pre.mail-body a[href*='/invitations/']")
    expect(link).to_have_count(1)
    invitation_url = link.get_attribute("href") or ""
    assert re.fullmatch(rf"{re.escape(base)}/invitations/inv_\S+", invitation_url), invitation_url
    assert invitation_url in page.locator("pre.mail-body").inner_text()
    journey.shot(page, "invitation-mail")

    # 6. The teammate accepts in another browser; the owner sees them in the team.
    teammate = journey.watch(new_context(timezone_id=TIMEZONE).new_page(), "teammate")
    teammate.goto(invitation_url)
    expect(teammate.get_by_role("heading", name=f"Join {company}")).to_be_visible()
    expect(teammate.locator("article")).to_contain_text(
        f"You were invited as merchandiser with {teammate_email}")
    teammate.get_by_label("Your name").fill("Sam Martin")
    teammate.get_by_label("Choose a password").fill(TEAMMATE_PASSWORD)
    journey.shot(teammate, "accept-invitation")
    teammate.get_by_role("button", name="Accept invitation").click()
    expect(teammate).to_have_url(f"{base}/app")
    expect(teammate.locator(".tenant-name")).to_have_text(company)
    expect(teammate.get_by_role("heading", name="Welcome, Sam")).to_be_visible()
    expect(teammate.locator("header").get_by_role("link", name="Settings")).to_have_count(0)  # not an admin
    journey.shot(teammate, "teammate-console")

    page.goto("/app/settings/team")
    member = page.locator(f'tr[data-member="{teammate_email}"]')
    expect(member).to_have_count(1)
    expect(member.locator("td").first).to_have_text("Sam Martin")
    role_select = member.get_by_label(f"Role of {teammate_email}")
    expect(role_select).to_have_value("merchandiser")
    expect(role_select.locator("option:checked")).to_have_text("Merchandiser")
    expect(page.get_by_role("heading", name="Pending invitations")).to_have_count(0)
    journey.shot(page, "team-with-teammate")

    stranger = journey.watch(new_context().new_page(), "stranger")
    reused = stranger.goto(invitation_url)
    assert reused is not None and reused.status == 410, reused and reused.status
    expect(stranger.locator("main")).to_contain_text("already")
    expect(stranger.get_by_role("heading", level=1)).to_have_text("Invitation already used")
    journey.shot(stranger, "invitation-reused")

    assert journey.page_errors == [], journey.page_errors
