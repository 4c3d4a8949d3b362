"""Steps that every browser journey takes."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from processes import cli_tenant

ROUTED_TIMEOUT_S = 20


@dataclass
class Company:
    """A company made for one journey: the suffix that keeps its names unique, its owner's email."""

    suffix: str
    email: str
    api_key: str

    def api(self, base: str) -> httpx.Client:
        """A client of the company's REST API, authorised with its API key."""
        return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=30)


def new_company(name: str, user: str, password: str, *, owner: str, timezone: str = "Europe/Paris") -> Company:
    """``<name> <suffix>`` with its owner ``<user>-<suffix>@example.test``, made with the CLI."""
    suffix = uuid.uuid4().hex[:8]
    email = f"{user}-{suffix}@example.test"
    created = cli_tenant(f"{name} {suffix}", email, password, owner=owner, timezone=timezone)
    return Company(suffix=suffix, email=email, api_key=created["api_key"])


def sign_in(page: Any, base: str, email: str, password: str) -> None:
    """Log in through the login form and land on the console home."""
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/app")


def signed_in_page(new_context: Any, journey: Any, label: str, base: str, email: str, password: str,
                   **context_options: Any) -> Any:
    """A page of a new browser context, watched by the journey, signed in as ``email``."""
    page = journey.watch(new_context(base_url=base, **context_options).new_page(), label)
    sign_in(page, base, email, password)
    return page


def routing_decided(api: httpx.Client, order_id: str) -> dict[str, Any]:
    """The order once the worker has routed it (its status is no longer "received")."""
    deadline = time.monotonic() + ROUTED_TIMEOUT_S
    while time.monotonic() < deadline:
        order: dict[str, Any] = api.get(f"/api/v1/orders/{order_id}").json()
        if order["status"] != "received":
            return order
        time.sleep(0.2)
    raise AssertionError(f"order {order_id} was not routed by the worker within {ROUTED_TIMEOUT_S} s")


def one_warehouse_of_mugs(api: httpx.Client, mugs: int) -> None:
    """One warehouse holding ``mugs`` mugs (sku MUG, 12.00), and routing that sends from it or holds."""
    assert api.post("/api/v1/locations", json={
        "code": "WH-ONE", "name": "Only warehouse", "kind": "warehouse", "country": "FR", "timezone": "Europe/Paris",
        "latitude": 47.0, "longitude": 2.4, "ships_to_customers": True}).status_code == 201
    assert api.post("/api/v1/products", json={"sku": "MUG", "name": "Mug", "price_minor": 1200}).status_code == 201
    assert api.post("/api/v1/inventory/adjustments",
                    json={"sku": "MUG", "location": "WH-ONE", "quantity": mugs}).status_code == 201
    document = {"rules": [{"id": "all", "name": "Warehouse", "enabled": True, "when": None,
                           "then": {"location_types": ["warehouse"], "filters": [], "sorts": [],
                                    "split": {"max_shipments": 1, "min_order_value": 0, "never_split_line": False},
                                    "fallback": ["hold"]}}]}
    assert api.put("/api/v1/rule-sets/routing/draft", json={"document": document}).status_code == 200
    assert api.post("/api/v1/rule-sets/routing/versions", json={}).status_code == 201


def phone_order_of_mugs(api: httpx.Client, number: str, quantity: int, email: str, name: str) -> dict[str, Any]:
    """A phone order of ``quantity`` mugs shipped to Lyon, once routing has decided about it."""
    created = api.post("/api/v1/orders", json={
        "channel": "phone", "external_number": number, "currency": "EUR",
        "lines": [{"sku": "MUG", "quantity": quantity, "unit_price_minor": 1200}],
        "customer": {"email": email, "name": name},
        "delivery": {"mode": "ship", "address": {"country": "FR", "city": "Lyon", "latitude": 45.76,
                                                  "longitude": 4.83}},
        "total_minor": quantity * 1200})
    assert created.status_code == 201, created.text
    return routing_decided(api, created.json()["id"])
