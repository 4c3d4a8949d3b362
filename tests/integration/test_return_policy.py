"""Settings → Returns and /api/v1/settings/returns: the company's return policy and goodwill
limits, saved whole, refused with every problem at once, for owners and admins only, audited."""

from __future__ import annotations

from typing import Any

from test_orders import key_with_role

from factories import bearer, create_tenant, login, post_form

URL = "/api/v1/settings/returns"


def messages(response: Any) -> dict[str, str]:
    return {e["field"]: e["message"] for e in response.json().get("errors", [])}


def policy(**changes: Any) -> dict[str, Any]:
    return {"window_days": 14, "non_returnable_categories": ["Underwear", "Gift cards"], "restocking_fee_bp": 250,
            "refund_return_shipping": True, "override_roles": ["owner", "customer_service"], "refund_on": "received",
            "reason_codes": ["too_small", "damaged"],
            "goodwill_limits": {"customer_service": {"per_refund": 2000, "per_month": None},
                                "admin": {"per_refund": 100000, "per_month": 500000}},
            **changes}


async def test_a_company_starts_with_the_defaults_and_saves_its_own(client) -> None:
    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    defaults = (await client.get(URL, headers=key)).json()
    assert (defaults["window_days"], defaults["restocking_fee_bp"], defaults["refund_on"]) == (30, 0, "inspected")
    assert "too_small" in defaults["reason_codes"] and defaults["override_roles"] == ["owner", "admin"]
    assert defaults["goodwill_limits"]["customer_service"] == {"per_refund": 5000, "per_month": 50000}
    assert defaults["goodwill_limits"]["owner"] == {"per_refund": None, "per_month": None}

    # Categories no product has yet are kept: a catalog imported later may bring them.
    saved = await client.put(URL, headers=key, json=policy())
    assert saved.status_code == 200, saved.text
    now = (await client.get(URL, headers=key)).json()
    assert now == saved.json()
    assert (now["window_days"], now["restocking_fee_bp"], now["refund_return_shipping"]) == (14, 250, True)
    assert now["non_returnable_categories"] == ["Underwear", "Gift cards"]
    assert now["override_roles"] == ["owner", "customer_service"] and now["reason_codes"] == ["too_small", "damaged"]
    assert now["goodwill_limits"]["customer_service"] == {"per_refund": 2000, "per_month": None}
    assert now["goodwill_limits"]["owner"] == {"per_refund": None, "per_month": None}  # left out: the default

    [event] = [e for e in (await client.get("/api/v1/audit-events", headers=key)).json()
               if e["action"] == "settings.returns_changed"]
    assert "30 days to return" in event["details"]["before"] and "14 days to return" in event["details"]["after"]
    assert "restocking fee 2.5 %" in event["details"]["after"]
    # Saving the same again changes nothing, and says nothing.
    assert (await client.put(URL, headers=key, json=policy())).status_code == 200
    assert [e["action"] for e in (await client.get("/api/v1/audit-events", headers=key)).json()].count(
        "settings.returns_changed") == 1


async def test_a_bad_policy_is_refused_with_every_problem_at_once(client) -> None:
    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    before = (await client.get(URL, headers=key)).json()
    bad = policy(window_days=-3, restocking_fee_bp=10001, override_roles=["owner", "wizard"], refund_on="later",
                 reason_codes=["too_small", "Too Big", "too_small"],
                 goodwill_limits={"customer_service": {"per_refund": -1, "per_month": None},
                                  "marketing": {"per_refund": 100, "per_month": 100}})
    refused = await client.put(URL, headers=key, json=bad)
    assert refused.status_code == 422
    found = messages(refused)
    assert found["window_days"] == "Give a whole number of days from 0 to 3,650."
    assert "hundredths of a percent" in found["restocking_fee_bp"]
    assert "Unknown role 'wizard'" in found["override_roles[1]"]
    assert found["refund_on"] == "Choose received or inspected."
    assert "lowercase" in found["reason_codes[1]"] and "listed twice" in found["reason_codes[2]"]
    assert "zero or more" in found["goodwill_limits.customer_service.per_refund"]
    assert "may not give goodwill" in found["goodwill_limits.marketing"]
    assert (await client.get(URL, headers=key)).json() == before

    no_reason = await client.put(URL, headers=key, json=policy(reason_codes=[]))
    assert messages(no_reason) == {"reason_codes": "Give at least one return reason."}
    assert (await client.put(URL, headers=key, content=b"[1]")).status_code == 422


async def test_only_owners_and_admins_see_and_change_it(client) -> None:
    tenant = await create_tenant()
    for role in ("customer_service", "read_only", "store_associate"):
        other = bearer(await key_with_role(tenant, role))
        assert (await client.get(URL, headers=other)).status_code == 403
        assert (await client.put(URL, headers=other, json=policy())).status_code == 403
    assert (await client.get(URL, headers=bearer(tenant.api_key))).json()["window_days"] == 30


async def test_the_settings_page_saves_and_refuses_in_plain_words(client) -> None:
    tenant = await create_tenant()
    made = await client.post("/api/v1/products", headers=bearer(tenant.api_key), json={
        "sku": "SOCK-1", "name": "Socks", "price_minor": 900, "category": "Underwear"})
    assert made.status_code == 201, made.text
    await login(client, tenant.email)
    page = await client.get("/app/settings/returns")
    assert page.status_code == 200
    assert 'href="/app/settings/returns"' in page.text and 'value="Underwear"' in page.text
    assert 'name="limit_customer_service_per_refund"' in page.text and "50,00" in page.text  # in French

    form = {"window_days": "-3", "restocking_fee": "abc", "refund_on": "received", "reason_codes": "too_small\n",
            "override_roles": "owner", "limit_owner_per_refund": "", "limit_owner_per_month": "",
            "limit_admin_per_refund": "", "limit_admin_per_month": "", "limit_customer_service_per_refund": "douze",
            "limit_customer_service_per_month": "-5"}
    refused = await post_form(client, "/app/settings/returns", form)
    assert refused.status_code == 422
    text = refused.text
    assert "Give a whole number of days from 0 to 3,650." in text
    assert "Give a percent from 0 to 100 with at most two decimals" in text
    assert "is not an amount" in text and "zero or more" in text and "Correct the 4 fields marked below." in text
    assert (await client.get(URL, headers=bearer(tenant.api_key))).json()["window_days"] == 30

    good = {**form, "window_days": "21", "restocking_fee": "2,5", "limit_customer_service_per_refund": "20,00",
            "limit_customer_service_per_month": "", "non_returnable_categories": "Underwear",
            "reason_codes": "too_small\nArrived late\n", "refund_return_shipping": "1"}
    saved = await post_form(client, "/app/settings/returns", good)
    assert saved.status_code == 303 and "done=returns_saved" in saved.headers["location"]
    now = (await client.get(URL, headers=bearer(tenant.api_key))).json()
    assert (now["window_days"], now["restocking_fee_bp"], now["refund_on"]) == (21, 250, "received")
    assert now["non_returnable_categories"] == ["Underwear"] and now["reason_codes"] == ["too_small", "arrived_late"]
    assert now["goodwill_limits"]["customer_service"] == {"per_refund": 2000, "per_month": None}
    assert now["override_roles"] == ["owner"] and now["refund_return_shipping"] is True
    shown = (await client.get("/app/settings/returns")).text
    assert 'value="2,5"' in shown and "arrived_late" in shown
    assert "settings.returns_changed" in (await client.get("/app/settings/audit-log")).text
