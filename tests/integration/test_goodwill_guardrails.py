"""Goodwill refunds within each role's limits: at once within them, waiting for someone whose
limit covers them above (nothing refunded meanwhile), approved once or declined, audited."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from httpx import AsyncClient
from test_orders import ORDERS, get_order, key_with_role, member
from test_refund_ledger import ledger, messages, refund, setup, shipped_order

from factories import bearer, create_tenant, login, post_form

API = "/api/v1"


async def key_named(tenant: Any, role: str, name: str) -> str:
    """An API key with ``role`` and its own name (its label: whose goodwill it is)."""
    from core.auth import Principal
    from core.db import get_database
    from tenants.service import create_api_key

    principal = Principal(tenant_id=tenant.tenant_id, role="owner", label=tenant.email, tenant_name=tenant.name,
                          timezone="Europe/Paris", currency="EUR", user_id=tenant.user_id)
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        api_key, token = await create_api_key(session, principal, name=name)
        api_key.role = role
    return token


async def tasks(client: AsyncClient, key: str, order_id: str, status: str = "open") -> list[dict[str, Any]]:
    response = await client.get(f"{API}/service-tasks", params={"status": status, "kind": "goodwill_approval",
                                                                "order_id": order_id}, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()["tasks"]


async def events(client: AsyncClient, key: str, order_id: str, prefix: str = "goodwill.") -> list[dict[str, Any]]:
    return [e for e in (await get_order(client, key, order_id))["events"] if e["kind"].startswith(prefix)]


async def audit_actions(client: AsyncClient, key: str) -> list[str]:
    response = await client.get(f"{API}/audit-events", headers=bearer(key))
    assert response.status_code == 200, response.text
    return [event["action"] for event in response.json()]


async def set_limits(client: AsyncClient, key: str, **limits: tuple[int | None, int | None]) -> None:
    current = (await client.get(f"{API}/settings/returns", headers=bearer(key))).json()
    current["goodwill_limits"] |= {role: {"per_refund": per_refund, "per_month": per_month}
                                   for role, (per_refund, per_month) in limits.items()}
    saved = await client.put(f"{API}/settings/returns", json=current, headers=bearer(key))
    assert saved.status_code == 200, saved.text


def approve(client: AsyncClient, key: str, request_id: str) -> Any:
    return client.post(f"{API}/goodwill-requests/{request_id}/approve", headers=bearer(key))


def decline(client: AsyncClient, key: str, request_id: str, note: str) -> Any:
    return client.post(f"{API}/goodwill-requests/{request_id}/decline", json={"note": note}, headers=bearer(key))


async def waiting_order(client: AsyncClient) -> tuple[Any, dict[str, Any], str, dict[str, Any]]:
    """A shipped order of 100,00 € captured and a customer-service agent's request of 60,00 €,
    above their default limit of 50,00 € a refund."""
    tenant, c = await setup(client)
    order = await shipped_order(client, tenant, (c["sku"], 2, 5000))
    agent = await key_with_role(tenant, "customer_service")
    asked = await refund(client, agent, order["id"], amount_minor=6000, reason="Broken on arrival")
    assert asked.status_code == 202, asked.text
    return tenant, order, agent, asked.json()


async def test_customer_service_within_its_limit_refunds_at_once(client) -> None:
    tenant, c = await setup(client)
    order = await shipped_order(client, tenant, (c["sku"], 2, 5000))
    agent = await key_with_role(tenant, "customer_service")

    made = await refund(client, agent, order["id"], amount_minor=5000, reason="Late parcel")  # its limit exactly
    assert made.status_code == 201, made.text
    assert (made.json()["source"], made.json()["amount_minor"]) == ("goodwill", 5000)
    assert (await get_order(client, tenant.api_key, order["id"]))["refunded_minor"] == 5000
    assert await tasks(client, tenant.api_key, order["id"]) == []
    assert "goodwill.refunded" in await audit_actions(client, tenant.api_key)


async def test_above_the_per_refund_limit_nothing_is_refunded_and_a_request_waits(client) -> None:
    tenant, c = await setup(client)
    order = await shipped_order(client, tenant, (c["sku"], 2, 5000))
    agent = await key_with_role(tenant, "customer_service")
    key = {"Idempotency-Key": f"goodwill-{uuid.uuid4()}"}

    asked = await refund(client, agent, order["id"], key, amount_minor=6000, reason="Broken on arrival")
    assert asked.status_code == 202, asked.text
    body = asked.json()
    assert (body["status"], body["amount_minor"], body["currency"]) == ("waiting_approval", 6000, "EUR")
    assert "above the customer service limit" in body["detail"] and "Nothing was refunded" in body["detail"]
    again = await refund(client, agent, order["id"], key, amount_minor=6000, reason="Broken on arrival")
    assert (again.status_code, again.json()["request_id"]) == (202, body["request_id"])
    assert again.headers.get("Idempotent-Replayed") == "true"

    assert await ledger(client, tenant.api_key, order["id"]) == []
    assert (await get_order(client, tenant.api_key, order["id"]))["refunded_minor"] == 0
    [task] = await tasks(client, tenant.api_key, order["id"])
    assert task["subject"] == body["request_id"] and "Broken on arrival" in task["detail"]
    [requested] = await events(client, tenant.api_key, order["id"])
    assert requested["kind"] == "goodwill.requested" and "waits for approval" in requested["reason"]
    listed = (await client.get(f"{ORDERS}/{order['id']}/goodwill-requests", headers=bearer(agent))).json()
    assert [(r["id"], r["status"], r["requested_role"]) for r in listed] == [
        (body["request_id"], "waiting", "customer_service")]
    assert "goodwill.requested" in await audit_actions(client, tenant.api_key)

    # A request the ledger could not give is refused as a refund would be: nothing waits.
    too_much = await refund(client, agent, order["id"], amount_minor=20000, reason="Everything")
    assert too_much.status_code == 422 and "can still be refunded" in messages(too_much)["amount_minor"]
    assert len(await tasks(client, tenant.api_key, order["id"])) == 1


async def test_the_monthly_limit_counts_what_the_agent_gave_this_month(client) -> None:
    tenant, c = await setup(client)
    await set_limits(client, tenant.api_key, customer_service=(5000, 8000))
    order = await shipped_order(client, tenant, (c["sku"], 4, 5000))
    agent, colleague = (await key_with_role(tenant, "customer_service"),
                        await key_named(tenant, "customer_service", "colleague key"))

    assert (await refund(client, agent, order["id"], amount_minor=5000, reason="First")).status_code == 201
    over = await refund(client, agent, order["id"], amount_minor=4000, reason="Second")
    assert over.status_code == 202, over.text
    assert "given this month" in over.json()["detail"] and "a month" in over.json()["detail"]
    assert (await refund(client, agent, order["id"], amount_minor=3000, reason="Third")).status_code == 201
    # The limit is each agent's own: a colleague's month is untouched.
    assert (await refund(client, colleague, order["id"], amount_minor=5000, reason="Theirs")).status_code == 201
    assert (await get_order(client, tenant.api_key, order["id"]))["refunded_minor"] == 13000


async def test_a_manager_approves_and_the_refund_is_made_with_both_names(client) -> None:
    tenant, order, agent, asked = await waiting_order(client)
    request_id = asked["request_id"]

    own = await approve(client, agent, request_id)
    assert own.status_code == 403 and "someone else" in own.json()["detail"]
    assert (await approve(client, await key_with_role(tenant, "read_only"), request_id)).status_code == 403
    colleague = await key_named(tenant, "customer_service", "colleague key")  # 50,00 € a refund: not enough
    assert (await approve(client, colleague, request_id)).status_code == 403

    done = await approve(client, tenant.api_key, request_id)
    assert done.status_code == 200, done.text
    approver = done.json()["decided_by"]
    assert done.json()["status"] == "approved" and "Created with oms tenants create" in approver
    [made] = await ledger(client, tenant.api_key, order["id"])
    assert (made["id"], made["source"], made["amount_minor"]) == (done.json()["refund_id"], "goodwill", 6000)
    assert made["created_by"] == approver  # in the approver's name, with both names in its reason
    assert made["reason"] == f"Broken on arrival (requested by {asked['requested_by']}, approved by {approver})"
    assert "customer_service key" in asked["requested_by"]
    assert (await get_order(client, tenant.api_key, order["id"]))["refunded_minor"] == 6000

    assert await tasks(client, tenant.api_key, order["id"]) == []
    [closed] = await tasks(client, tenant.api_key, order["id"], status="resolved")
    assert closed["resolution"].startswith("approved by")
    assert [e["kind"] for e in await events(client, tenant.api_key, order["id"])] == [
        "goodwill.requested", "goodwill.approved"]
    assert "goodwill.approved" in await audit_actions(client, tenant.api_key)
    twice = await approve(client, tenant.api_key, request_id)
    assert twice.status_code == 409 and "already approved" in twice.json()["detail"]
    assert len(await ledger(client, tenant.api_key, order["id"])) == 1


async def test_a_declined_request_refunds_nothing_and_closes_its_task(client) -> None:
    tenant, order, agent, asked = await waiting_order(client)
    request_id = asked["request_id"]

    no_note = await decline(client, tenant.api_key, request_id, "  ")
    assert no_note.status_code == 422 and "Say why" in messages(no_note)["note"]
    colleague = await key_named(tenant, "customer_service", "colleague key")
    assert (await decline(client, colleague, request_id, "No")).status_code == 403

    done = await decline(client, tenant.api_key, request_id, "Customer already got a voucher")
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["decision_note"]) == ("declined", "Customer already got a voucher")
    assert await ledger(client, tenant.api_key, order["id"]) == []
    assert await tasks(client, tenant.api_key, order["id"]) == []
    declined = (await events(client, tenant.api_key, order["id"]))[-1]
    assert declined["kind"] == "goodwill.declined" and "already got a voucher" in declined["reason"]
    assert (await approve(client, tenant.api_key, request_id)).status_code == 409
    # Its asker may withdraw a request (though never approve it).
    mistake = (await refund(client, agent, order["id"], amount_minor=7000, reason="Wrong order")).json()
    withdrawn = await decline(client, agent, mistake["request_id"], "Asked on the wrong order")
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "declined"
    assert await ledger(client, tenant.api_key, order["id"]) == []


async def test_two_managers_approving_at_once_make_one_refund(client, make_client) -> None:
    tenant, order, _, asked = await waiting_order(client)
    managers = [await key_named(tenant, "admin", "manager one"), await key_named(tenant, "admin", "manager two")]
    clients = [await make_client() for _ in managers]

    answers = await asyncio.gather(*(approve(other, key, asked["request_id"])
                                     for other, key in zip(clients, managers, strict=True)))
    assert sorted(a.status_code for a in answers) == [200, 409]
    assert [r["amount_minor"] for r in await ledger(client, tenant.api_key, order["id"])] == [6000]
    assert (await get_order(client, tenant.api_key, order["id"]))["refunded_minor"] == 6000


async def test_approving_more_than_the_order_has_left_is_refused_and_the_request_waits(client) -> None:
    tenant, order, _, asked = await waiting_order(client)
    assert (await refund(client, tenant.api_key, order["id"], amount_minor=5000, reason="Other")).status_code == 201

    refused = await approve(client, tenant.api_key, asked["request_id"])
    assert refused.status_code == 422, refused.text
    assert "still waits" in refused.json()["detail"] and "Only" in refused.json()["detail"]
    request = (await client.get(f"{API}/goodwill-requests/{asked['request_id']}", headers=bearer(tenant.api_key)))
    assert request.json()["status"] == "waiting"
    assert len(await tasks(client, tenant.api_key, order["id"])) == 1
    assert (await get_order(client, tenant.api_key, order["id"]))["refunded_minor"] == 5000


async def test_another_companys_request_is_not_found(client) -> None:
    _, order, _, asked = await waiting_order(client)
    stranger = (await create_tenant()).api_key
    request_id = asked["request_id"]
    assert (await approve(client, stranger, request_id)).status_code == 404
    assert (await decline(client, stranger, request_id, "no")).status_code == 404
    assert (await client.get(f"{API}/goodwill-requests/{request_id}", headers=bearer(stranger))).status_code == 404
    assert (await client.get(f"{ORDERS}/{order['id']}/goodwill-requests",
                             headers=bearer(stranger))).status_code == 404


async def test_the_console_asks_for_approval_and_a_manager_approves_on_the_order_page(client, make_client) -> None:
    tenant, c = await setup(client)
    order = await shipped_order(client, tenant, (c["sku"], 2, 5000))  # 100,00 € captured
    agent_email = await member(tenant.tenant_id, "customer_service")
    await login(client, agent_email)
    url = f"/app/orders/{order['id']}/refund"

    review = await post_form(client, url, {"refund_amount": "60,00", "refund_reason": "Broken on arrival"})
    assert review.status_code == 200
    assert "Above your goodwill limit" in review.text and "Ask for approval" in review.text
    token = re.search(r'name="refund_token" value="([0-9a-f]+)"', review.text).group(1)
    confirmed = {"refund_amount": "60,00", "refund_reason": "Broken on arrival", "confirm": "1",
                 "refund_token": token}
    asked = await post_form(client, url, confirmed)
    assert asked.status_code == 303 and "done=goodwill_waiting" in asked.headers["location"]
    assert (await post_form(client, url, confirmed)).status_code == 303  # sent twice: asked once
    [request] = (await client.get(f"{ORDERS}/{order['id']}/goodwill-requests",
                                  headers=bearer(tenant.api_key))).json()
    assert await ledger(client, tenant.api_key, order["id"]) == []

    page = (await client.get(f"/app/orders/{order['id']}?done=goodwill_waiting")).text
    assert "nothing is refunded yet" in page and 'id="goodwill-requests"' in page
    assert f"/app/goodwill-requests/{request['id']}/approve" not in page  # not by its asker
    assert "You asked for it" in page and "Approve or decline the request below" in page
    [task] = await tasks(client, tenant.api_key, order["id"])
    by_hand = await client.post(f"{API}/service-tasks/{task['id']}/resolve", json={"note": "done"},
                                headers=bearer(tenant.api_key))
    assert by_hand.status_code == 409 and "Approve or decline" in by_hand.json()["detail"]

    manager = await make_client()
    await login(manager, tenant.email)
    page = (await manager.get(f"/app/orders/{order['id']}")).text
    assert f"/app/goodwill-requests/{request['id']}/approve" in page
    done = await post_form(manager, f"/app/goodwill-requests/{request['id']}/approve")
    assert done.status_code == 303 and "done=goodwill_approved" in done.headers["location"]
    [made] = await ledger(client, tenant.api_key, order["id"])
    assert (made["amount_minor"], made["created_by"]) == (6000, tenant.email)
    again = await post_form(manager, f"/app/goodwill-requests/{request['id']}/approve")
    assert again.status_code == 409 and "already approved" in again.text
    assert len(await ledger(client, tenant.api_key, order["id"])) == 1
