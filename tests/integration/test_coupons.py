"""Coupons: a batch of 20,000 unique codes made in seconds and exported whole as CSV, a chosen code
refused when the company already has it (in any case), codes and batches turned off, a code for
an unknown promotion refused, two companies each with their own "SUMMER", and another company's
batch out of reach through the API and the console."""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from typing import Any

from httpx import AsyncClient

from factories import bearer, create_tenant, login, post_form

API = "/api/v1"
SUMMER = {"id": "p-summer", "name": "Summer 15 %", "enabled": True, "coupon": True,
          "effect": {"kind": "percent_off", "target": "order", "percent": 15}}
CODE = re.compile(r"[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{8}")


async def with_promotion(tenant: Any, promotion: dict[str, Any] = SUMMER) -> None:
    """The promotion in the company's promotions draft (codes may belong to a draft's promotion)."""
    from core.auth import Principal
    from core.db import get_database
    from rules import service

    principal = Principal(tenant_id=tenant.tenant_id, role="owner", label=tenant.email, tenant_name=tenant.name,
                          timezone="Europe/Paris", currency="EUR")
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        await service.save_draft(session, principal, {"promotions": [promotion], "within_class": "priority"},
                                 kind=service.PROMOTIONS)


async def codes_in_db(tenant_id: uuid.UUID, batch_id: str) -> list[str]:
    from sqlalchemy import select

    from core.db import get_database
    from marketing.models import Coupon

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return list(await session.scalars(select(Coupon.code).where(
            Coupon.tenant_id == tenant_id, Coupon.batch_id == uuid.UUID(batch_id))))


def problem_fields(response: Any) -> dict[str, str]:
    return {e["field"]: e["message"] for e in response.json().get("errors", [])}


async def test_a_batch_of_20000_unique_codes_is_made_in_seconds_and_exported_whole(client: AsyncClient) -> None:
    tenant = await create_tenant()
    await with_promotion(tenant)
    started = time.perf_counter()
    made = await client.post(f"{API}/coupon-batches", headers=bearer(tenant.api_key), timeout=120, json={
        "promotion_id": "p-summer", "count": 20_000, "prefix": "sun-", "max_uses": 1, "name": "Summer mailing"})
    seconds = time.perf_counter() - started
    print(f"\nbench coupon_batch_20000_s: {seconds:.2f}")
    assert made.status_code == 201, made.text
    batch = made.json()
    assert (batch["size"], batch["codes"], batch["prefix"], batch["max_uses"]) == (20_000, 20_000, "SUN-", 1)
    assert seconds < 20  # a few seconds on a quiet machine; generous for a shared one

    stored = await codes_in_db(tenant.tenant_id, batch["id"])
    assert len(stored) == len(set(stored)) == 20_000
    assert all(code.startswith("SUN-") and CODE.fullmatch(code[4:]) for code in stored)

    export = await client.get(f"{API}/coupon-batches/{batch['id']}/codes.csv", headers=bearer(tenant.api_key))
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(export.text)))
    assert rows[0] == ["code", "promotion", "max_uses", "uses", "expires_at"]
    assert len(rows) == 20_001
    assert {row[0] for row in rows[1:]} == set(stored)
    assert all(row[1:] == ["p-summer", "1", "0", ""] for row in rows[1:])

    # The same through the console: the batch page pages the codes, and links the export.
    await login(client, tenant.email)
    page = await client.get(f"/app/marketing/coupons/batches/{batch['id']}")
    assert page.status_code == 200
    shown = re.findall(r'data-code="([^"]+)"', page.text)
    assert len(shown) == 100 and shown == sorted(stored)[:100]
    assert f"/app/marketing/coupons/batches/{batch['id']}/codes.csv" in page.text
    following = await client.get(f"/app/marketing/coupons/batches/{batch['id']}?after={shown[-1]}")
    assert re.findall(r'data-code="([^"]+)"', following.text) == sorted(stored)[100:200]
    console_export = await client.get(f"/app/marketing/coupons/batches/{batch['id']}/codes.csv")
    assert console_export.status_code == 200 and len(console_export.text.splitlines()) == 20_001


async def test_a_chosen_code_is_stored_in_capitals_and_refused_twice_in_any_case(client: AsyncClient) -> None:
    tenant = await create_tenant()
    await with_promotion(tenant)
    key = bearer(tenant.api_key)
    made = await client.post(f"{API}/coupons", headers=key, json={"promotion_id": "p-summer", "code": " Summer ",
                                                                   "max_uses": 500})
    assert made.status_code == 201, made.text
    assert (made.json()["code"], made.json()["status"], made.json()["max_uses"]) == ("SUMMER", "active", 500)

    again = await client.post(f"{API}/coupons", headers=key, json={"promotion_id": "p-summer", "code": "summer"})
    assert again.status_code == 422
    assert problem_fields(again) == {"code": "The code SUMMER already exists: choose another one."}

    bad = await client.post(f"{API}/coupons", headers=key, json={"promotion_id": "p-summer", "code": "two words",
                                                                 "max_uses": 0, "expires_at": "2001-01-01T00:00:00"})
    assert bad.status_code == 422
    assert set(problem_fields(bad)) == {"max_uses"}  # the type's own bound first
    bad = await client.post(f"{API}/coupons", headers=key, json={"promotion_id": "p-summer", "code": "two words",
                                                                 "expires_at": "2001-01-01T00:00:00"})
    assert problem_fields(bad) == {"code": "Use letters, digits, dashes or underscores, starting with a letter or "
                                           "a digit.",
                                   "expires_at": "The expiry is in the past: choose a later date, or none."}

    made_up = await client.post(f"{API}/coupons", headers=key, json={"promotion_id": "p-summer"})
    assert made_up.status_code == 201 and CODE.fullmatch(made_up.json()["code"])

    found = await client.get(f"{API}/coupons/summer", headers=key)
    assert found.status_code == 200
    assert found.json()["code"] == "SUMMER" and found.json()["redemptions"] == []
    assert (await client.get(f"{API}/coupons/WINTER", headers=key)).status_code == 404


async def test_codes_and_batches_are_turned_off(client: AsyncClient) -> None:
    tenant = await create_tenant()
    await with_promotion(tenant)
    key = bearer(tenant.api_key)
    await client.post(f"{API}/coupons", headers=key, json={"promotion_id": "p-summer", "code": "SUMMER"})
    off = await client.post(f"{API}/coupons/summer/disable", headers=key)
    assert off.status_code == 200 and off.json()["status"] == "disabled"
    assert (await client.get(f"{API}/coupons/SUMMER", headers=key)).json()["status"] == "disabled"

    batch = (await client.post(f"{API}/coupon-batches", headers=key,
                               json={"promotion_id": "p-summer", "count": 50})).json()
    assert batch["max_uses"] is None and batch["disabled"] == 0
    done = await client.post(f"{API}/coupon-batches/{batch['id']}/disable", headers=key)
    assert done.status_code == 200
    assert (done.json()["disabled"], done.json()["disabled_now"]) == (50, 50)
    again = await client.post(f"{API}/coupon-batches/{batch['id']}/disable", headers=key)
    assert again.json()["disabled_now"] == 0
    codes = (await client.get(f"{API}/coupon-batches/{batch['id']}/codes?limit=50", headers=key)).json()["codes"]
    assert {c["status"] for c in codes} == {"disabled"}

    # In the console: a code page's button turns it off, and says so.
    await login(client, tenant.email)
    made = await post_form(client, "/app/marketing/coupons/codes", {"promotion_id": "p-summer", "code": "autumn",
                                                                    "max_uses": "3", "valid_until": "2099-12-31"})
    assert made.status_code == 303, made.text
    page_url = made.headers["location"].split("?")[0]
    page = await client.get(page_url)
    assert "AUTUMN" in page.text and "active" in page.text and "No order has used this code yet." in page.text
    turned = await post_form(client, f"{page_url}/disable")
    assert turned.status_code == 303
    assert "disabled" in (await client.get(page_url)).text


async def test_a_code_for_an_unknown_promotion_is_refused(client: AsyncClient) -> None:
    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    none_yet = await client.post(f"{API}/coupon-batches", headers=key, json={"promotion_id": "p-summer", "count": 5})
    assert none_yet.status_code == 422
    assert problem_fields(none_yet) == {
        "promotion_id": "There is no promotion yet: create the promotion first, then its codes."}

    await with_promotion(tenant)
    unknown = await client.post(f"{API}/coupon-batches", headers=key, json={"promotion_id": "p-winter", "count": 5,
                                                                            "prefix": "no good"})
    assert unknown.status_code == 422
    assert problem_fields(unknown) == {
        "promotion_id": "No promotion has the id “p-winter”: choose one of the promotions of the draft or of a "
                        "published version.",
        "prefix": "Use letters, digits, dashes or underscores, starting with a letter or a digit."}
    single = await client.post(f"{API}/coupons", headers=key, json={"promotion_id": "p-winter", "code": "WINTER"})
    assert single.status_code == 422 and set(problem_fields(single)) == {"promotion_id"}
    assert (await client.get(f"{API}/coupon-batches", headers=key)).json() == []
    assert (await client.get(f"{API}/coupons/WINTER", headers=key)).status_code == 404

    # The console's form says the same beside the field, and keeps what was typed.
    await login(client, tenant.email)
    refused = await post_form(client, "/app/marketing/coupons/batches", {"promotion_id": "p-winter", "count": "0",
                                                                         "prefix": "SPRING", "max_uses": "1"})
    assert refused.status_code == 422
    assert "No promotion has the id “p-winter”" in refused.text
    assert "How many codes: a whole number from 1 to 100,000." in refused.text
    last_day = await post_form(client, "/app/marketing/coupons/batches", {
        "promotion_id": "p-summer", "count": "2", "valid_until": "9999-12-31"})  # no day after it
    assert last_day.status_code == 422 and "Give the last day the code is valid" in last_day.text
    assert 'value="SPRING"' in refused.text
    made = await post_form(client, "/app/marketing/coupons/batches", {"promotion_id": "p-summer", "count": "10",
                                                                      "prefix": "", "max_uses": "1"})
    assert made.status_code == 303
    batch_page = await client.get(made.headers["location"])
    assert len(re.findall(r'data-code="', batch_page.text)) == 10
    assert "Batch created" in batch_page.text and "single-use" in batch_page.text


async def test_two_companies_each_own_summer_and_cannot_reach_the_others_codes(client: AsyncClient,
                                                                               make_client: Any) -> None:
    a, b = await create_tenant(), await create_tenant()
    for tenant in (a, b):
        await with_promotion(tenant)
        made = await client.post(f"{API}/coupons", headers=bearer(tenant.api_key),
                                 json={"promotion_id": "p-summer", "code": "SUMMER"})
        assert made.status_code == 201, made.text
    a_summer = (await client.get(f"{API}/coupons/SUMMER", headers=bearer(a.api_key))).json()
    b_summer = (await client.get(f"{API}/coupons/SUMMER", headers=bearer(b.api_key))).json()
    assert a_summer["id"] != b_summer["id"]

    batch = (await client.post(f"{API}/coupon-batches", headers=bearer(a.api_key),
                               json={"promotion_id": "p-summer", "count": 20, "name": "Alpha secret batch"})).json()
    b_key = bearer(b.api_key)
    for path in (f"/coupon-batches/{batch['id']}", f"/coupon-batches/{batch['id']}/codes",
                 f"/coupon-batches/{batch['id']}/codes.csv"):
        assert (await client.get(f"{API}{path}", headers=b_key)).status_code == 404
    assert (await client.post(f"{API}/coupon-batches/{batch['id']}/disable", headers=b_key)).status_code == 404
    assert (await client.get(f"{API}/coupon-batches", headers=b_key)).json() == []
    a_code = (await codes_in_db(a.tenant_id, batch["id"]))[0]
    assert (await client.get(f"{API}/coupons/{a_code}", headers=b_key)).status_code == 404
    assert (await client.post(f"{API}/coupons/{a_code}/disable", headers=b_key)).status_code == 404

    intruder = await make_client()
    await login(intruder, b.email)
    batch_page = f"/app/marketing/coupons/batches/{batch['id']}"
    for path in (batch_page, f"{batch_page}/codes.csv", f"/app/marketing/coupons/codes/{a_summer['id']}"):
        response = await intruder.get(path)
        assert response.status_code == 404, path
        assert "Alpha secret batch" not in response.text and a_code not in response.text
    listing = await intruder.get("/app/marketing/coupons")
    assert listing.status_code == 200 and "Alpha secret batch" not in listing.text
    assert (await post_form(intruder, f"/app/marketing/coupons/batches/{batch['id']}/disable")).status_code == 404
    assert (await client.get(f"{API}/coupon-batches/{batch['id']}", headers=bearer(a.api_key))).json()["disabled"] == 0


async def test_a_codes_redemptions_are_listed(client: AsyncClient) -> None:
    from core.db import get_database
    from marketing.models import Redemption

    tenant = await create_tenant()
    await with_promotion(tenant)
    key = bearer(tenant.api_key)
    coupon = (await client.post(f"{API}/coupons", headers=key, json={"promotion_id": "p-summer",
                                                                     "code": "USED"})).json()
    order_id = uuid.uuid4()
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        session.add(Redemption(tenant_id=tenant.tenant_id, order_id=order_id, order_number="WEB-1001",
                               customer_id=None, promotion_id="p-summer", promotion_name="Summer 15 %",
                               promotion_class="order", coupon_id=uuid.UUID(coupon["id"]), coupon_code="USED",
                               amount_minor=1500, currency="EUR", lines=[{"line_no": 1, "amount_minor": 1500}]))
    found = (await client.get(f"{API}/coupons/used", headers=key)).json()
    assert [(r["order_number"], r["amount_minor"]) for r in found["redemptions"]] == [("WEB-1001", 1500)]
    await login(client, tenant.email)
    page = await client.get(f"/app/marketing/coupons/codes/{coupon['id']}")
    assert "WEB-1001" in page.text and f"/app/orders/{order_id}" in page.text
