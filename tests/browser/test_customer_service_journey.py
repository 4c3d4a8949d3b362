"""Customer service's journey in real Chromium, against a fake Stripe: an agent finds a customer
by a misspelt name, opens their shipped order and a return for one unit; a store associate
receives it at their store and inspects it as resellable, the store's stock goes up by one, the
refund is paid through Stripe, and the customer's page shows the return and the refund. A goodwill
refund above the agent's limit waits for a manager, who approves it."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from playwright.sync_api import Page, expect
from test_tablet_journey import invitation_link

from browser_pages import sign_in
from conftest import LiveServer, serving
from processes import cli_tenant, fake_stripe_server

PASSWORD = "quiet river stone"
KEY = "sk_test_oms_customer_service_journey"
TIMEZONE = "Europe/Paris"
WAIT_S = 30


@pytest.fixture(scope="module")
def stripe_url() -> Iterator[str]:
    with fake_stripe_server() as url:
        yield url


@pytest.fixture(scope="module")
def live_server(artifacts_dir: Path, stripe_url: str) -> Iterator[LiveServer]:
    """The web server and a worker that talk to the fake Stripe."""
    with serving(artifacts_dir, STRIPE_API_BASE=stripe_url) as server:
        yield server


def eventually(check: Any, what: str, server: LiveServer) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    pytest.fail(f"{what} did not happen within {WAIT_S} s\n{server.log_tail()}")


def set_up(api: httpx.Client, stripe_url: str, email: str) -> tuple[dict[str, Any], str]:
    """A warehouse and a Paris store (both take returns), shoes at 45.00, routing to the
    warehouse, the company's Stripe account, a customer-service goodwill limit of 20.00, and
    John Smith's order of two pairs paid by card, shipped."""
    for body in ({"code": "WH-LYON", "name": "Lyon warehouse", "kind": "warehouse", "latitude": 45.76,
                  "longitude": 4.83, "ships_to_customers": True, "accepts_returns": True},
                 {"code": "ST-RIVOLI", "name": "Paris Rivoli", "kind": "store", "latitude": 48.86,
                  "longitude": 2.34, "click_and_collect": True, "accepts_returns": True}):
        created = api.post("/api/v1/locations", json={"country": "FR", "timezone": TIMEZONE, **body})
        assert created.status_code == 201, created.text
    assert api.post("/api/v1/products", json={"sku": "SHOE-42", "name": "Leather shoe 42", "price_minor": 4500,
                                              "category": "shoes"}).status_code == 201
    assert api.post("/api/v1/inventory/adjustments",
                    json={"sku": "SHOE-42", "location": "WH-LYON", "quantity": 10}).status_code == 201
    document = {"rules": [{"id": "all", "name": "Warehouse", "enabled": True, "when": None,
                           "then": {"location_types": ["warehouse"], "filters": [], "sorts": [],
                                    "split": {"max_shipments": 1, "min_order_value": 0, "never_split_line": False},
                                    "fallback": ["hold"]}}]}
    assert api.put("/api/v1/rule-sets/routing/draft", json={"document": document}).status_code == 200
    assert api.post("/api/v1/rule-sets/routing/versions", json={}).status_code == 201
    assert api.put("/api/v1/payment-accounts/stripe", json={"secret_key": KEY}).status_code == 200
    policy = api.get("/api/v1/settings/returns").json()
    policy["goodwill_limits"]["customer_service"] = {"per_refund": 2000, "per_month": 50000}
    saved = api.put("/api/v1/settings/returns", json=policy)
    assert saved.status_code == 200, saved.text

    stripe.api_base = stripe_url
    method = stripe.PaymentMethod.create(type="card", api_key=KEY, card={
        "number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"})
    intent = stripe.PaymentIntent.create(amount=9000, currency="eur", payment_method=method.id,
                                         capture_method="manual", confirm=True, api_key=KEY)
    created = api.post("/api/v1/orders", json={
        "channel": "web", "external_number": f"W-{uuid.uuid4().hex[:6]}", "currency": "EUR",
        "lines": [{"sku": "SHOE-42", "quantity": 2, "unit_price_minor": 4500}],
        "customer": {"email": email, "name": "John Smith", "phone": "+33 6 12 34 56 78"},
        "delivery": {"mode": "ship", "address": {"country": "FR", "name": "John Smith", "line1": "3 rue Cler",
                                                  "city": "Paris", "postcode": "75007", "latitude": 48.856,
                                                  "longitude": 2.306}},
        "total_minor": 9000, "payment": {"provider": "stripe", "reference": intent.id, "authorized_minor": 9000}})
    assert created.status_code == 201, created.text
    return created.json(), str(intent.id)


def ship(api: httpx.Client, server: LiveServer, order_id: str) -> dict[str, Any]:
    routed = eventually(lambda: (o := api.get(f"/api/v1/orders/{order_id}").json())["fulfilments"] and o,
                        "routing", server)
    [parcel] = routed["fulfilments"]
    for action, body in (("accept", {}), ("pick", {}), ("pack", {}),
                         ("ship", {"carrier": "colissimo", "tracking_number": "6A00000000001"})):
        moved = api.post(f"/api/v1/fulfilments/{parcel['id']}/{action}", json=body)
        assert moved.status_code == 200, moved.text
    return eventually(lambda: (o := api.get(f"/api/v1/orders/{order_id}").json())["captured_minor"] == 9000 and o,
                      "the capture through Stripe", server)


def join(owner: Page, new_context: Any, journey: Any, server: LiveServer, email: str, name: str, label: str) -> Page:
    link = invitation_link(owner, email, server)
    page = journey.watch(new_context(timezone_id=TIMEZONE, base_url=server.base_url).new_page(), label)
    page.goto(link)
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_role("button", name="Accept invitation").click()
    expect(page).to_have_url(re.compile(rf"{re.escape(server.base_url)}/app"))
    return page


def on_hand(api: httpx.Client, location: str) -> int:
    [entry] = api.get("/api/v1/inventory", params={"sku": "SHOE-42"}).json()
    return next((level["on_hand"] for level in entry["levels"] if level["location"] == location), 0)


def test_an_agent_returns_a_shipped_order_a_store_restocks_it_stripe_refunds_and_goodwill_waits_for_a_manager(
        live_server: LiveServer, stripe_url: str, new_context: Any, journey_for: Any) -> None:
    base = live_server.base_url
    journey = journey_for("cs-")
    suffix = uuid.uuid4().hex[:8]
    owner_email = f"olga-{suffix}@example.test"
    emails = {role: f"{role.replace('_', '-')}-{suffix}@example.test"
              for role in ("customer_service", "store_associate", "admin")}
    created = cli_tenant(f"Chaussures {suffix}", owner_email, PASSWORD, owner="Olga Owner", timezone=TIMEZONE)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {created['api_key']}"}, timeout=30) as api:
        order, intent = set_up(api, stripe_url, f"john.smith-{suffix}@example.test")
        order = ship(api, live_server, order["id"])
        for role, email in emails.items():
            invited = api.post("/api/v1/invitations", json={
                "email": email, "role": role, "locations": ["ST-RIVOLI"] if role == "store_associate" else []})
            assert invited.status_code == 201, invited.text
        store_before = on_hand(api, "ST-RIVOLI")

        owner = journey.watch(new_context(timezone_id=TIMEZONE, base_url=base).new_page(), "owner")
        sign_in(owner, base, owner_email, PASSWORD)
        agent = join(owner, new_context, journey, live_server, emails["customer_service"], "Ana Agent", "agent")
        associate = join(owner, new_context, journey, live_server, emails["store_associate"], "Sam Store",
                         "associate")
        manager = join(owner, new_context, journey, live_server, emails["admin"], "Max Manager", "manager")

        # 1. The agent presses "/" anywhere, types the name as the customer spelt it on the phone.
        agent.goto("/app/orders")
        agent.locator("body").press("/")
        search = agent.locator("#top-search-input")
        expect(search).to_be_focused()
        search.press_sequentially("Jhon Smtih", delay=40)
        option = agent.locator("#top-search-listbox [role=option]", has_text="John Smith").first
        expect(option).to_be_visible()
        journey.shot(agent, "search-misspelt")
        search.press("ArrowDown")
        search.press("Enter")
        expect(agent).to_have_url(re.compile(r"/app/customers/[0-9a-f-]{36}$"))
        customer_url = agent.url
        journey.shot(agent, "customer-before")

        # 2. Their shipped order, and a return of one pair, its effect shown before it is made.
        agent.get_by_role("link", name=order["number"]).first.click()
        expect(agent).to_have_url(re.compile(rf"/app/orders/{order['id']}"))
        returns = agent.locator("#order-returns")
        returns.get_by_text("Open a return").click()
        returns.get_by_label("Units of line 1 coming back").fill("1")
        returns.get_by_label("Reason for line 1").select_option("too_small")
        returns.get_by_label("In store").check()
        returns.get_by_label("Expected at").select_option("ST-RIVOLI")
        returns.get_by_role("button", name="Review").click()
        confirm = returns.get_by_role("button", name="Confirm the return")
        expect(confirm).to_be_visible()
        expect(returns).to_contain_text("45,00")
        journey.shot(agent, "return-review")
        confirm.click()
        expect(agent).to_have_url(re.compile(r"/app/returns/[0-9a-f-]{36}"))
        expect(agent.locator("h1")).to_contain_text("Requested")
        return_url = agent.url.split("?")[0]
        return_number = agent.locator("h1").inner_text().split()[1]

        # 3. The store associate receives it at their store and finds it resellable.
        associate.goto("/app/returns")
        associate.get_by_role("link", name=return_number).click()
        expect(associate.get_by_label("Received at")).to_have_value("ST-RIVOLI")
        associate.get_by_role("button", name="Receive the return").click()
        expect(associate.locator("h1")).to_contain_text("Received")
        associate.get_by_label("Resellable").check()
        journey.shot(associate, "inspect")
        associate.get_by_role("button", name="Save the inspection").click()
        expect(associate.locator("h1")).to_contain_text(re.compile("Refunded|Closed"))
        assert on_hand(api, "ST-RIVOLI") == store_before + 1

        # 4. The refund is paid through Stripe; the return closes once it is.
        eventually(lambda: [r for r in api.get(f"/api/v1/orders/{order['id']}/refunds").json()
                            if r["source"] == "return" and r["status"] == "sent"], "the Stripe refund", live_server)
        assert [r.amount for r in stripe.Refund.list(payment_intent=intent, api_key=KEY).data] == [4500]
        associate.goto(return_url)
        if associate.get_by_role("button", name="Check the refund").count():
            associate.get_by_role("button", name="Check the refund").click()
        expect(associate.locator("h1")).to_contain_text("Closed")
        journey.shot(associate, "return-closed")

        # 5. The customer's page shows the return and the refund.
        agent.goto(customer_url)
        expect(agent.locator("body")).to_contain_text(return_number)
        expect(agent.locator("body")).to_contain_text("45,00")
        journey.shot(agent, "customer-after")

        # 6. Goodwill above the agent's limit (20.00) waits for a manager.
        agent.goto(f"/app/orders/{order['id']}")
        goodwill_form = agent.locator("#refund-goodwill")
        goodwill_form.get_by_text("Refund (goodwill)").click()
        goodwill_form.get_by_label("Amount").fill("30")
        goodwill_form.get_by_label("Reason").fill("Delivery three days late")
        goodwill_form.get_by_role("button", name="Review the refund").click()
        ask = agent.get_by_role("button", name="Ask for approval")
        expect(ask).to_be_visible()
        ask.click()
        expect(agent.locator("body")).to_contain_text(re.compile("approval", re.I))
        journey.shot(agent, "goodwill-waits")
        assert not [r for r in api.get(f"/api/v1/orders/{order['id']}/refunds").json() if r["source"] == "goodwill"]

        manager.goto(f"/app/orders/{order['id']}")
        manager.once("dialog", lambda dialog: dialog.accept())  # "Refund 30,00 € to the customer as goodwill?"
        manager.get_by_role("button", name="Approve and refund").click()
        expect(manager.locator("#refund-ledger")).to_contain_text("30,00")
        journey.shot(manager, "goodwill-approved")
        [goodwill] = [r for r in api.get(f"/api/v1/orders/{order['id']}/refunds").json() if r["source"] == "goodwill"]
        assert goodwill["amount_minor"] == 3000 and emails["customer_service"] in goodwill["reason"]

    assert not journey.page_errors, journey.page_errors
    assert not journey.failures, "\n\n".join(journey.failures)
