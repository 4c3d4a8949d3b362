"""The JSON API: keys, problem details, idempotent creates, OpenAPI."""

from __future__ import annotations

import asyncio

from factories import bearer, create_tenant, login, post_form


async def test_key_created_in_settings_is_shown_once_and_works(client) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    page = await client.get("/app/settings/api-keys")
    response = await post_form(client, "/app/settings/api-keys", {"name": "Web shop"})
    assert response.status_code == 303
    shown = await client.get(response.headers["location"])
    assert shown.headers["cache-control"] == "no-store"
    key = shown.text.split('id="new-api-key">')[1].split("<")[0]
    assert key.startswith(f"oms_{tenant.tenant_id.hex}_")
    again = await client.get("/app/settings/api-keys")
    assert key not in again.text and "Web shop" in again.text
    assert page.status_code == 200

    me = await client.get("/api/v1/me", headers=bearer(key))
    assert me.status_code == 200
    assert me.json()["tenant"]["name"] == tenant.name
    assert me.json()["tenant"]["country"] == "FR"

    log = await client.get("/app/settings/audit-log")
    assert "api_key.created" in log.text


async def test_revoked_key_is_refused_with_a_clear_problem(client) -> None:
    tenant = await create_tenant()
    await login(client, tenant.email)
    assert (await client.get("/api/v1/me", headers=bearer(tenant.api_key))).status_code == 200
    keys = await client.get("/app/settings/api-keys")
    key_id = keys.text.split('/app/settings/api-keys/')[1].split("/revoke")[0]
    revoked = await post_form(client, f"/app/settings/api-keys/{key_id}/revoke")
    assert revoked.status_code == 303
    response = await client.get("/api/v1/me", headers=bearer(tenant.api_key))
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "revoked" in response.json()["detail"]
    assert "api_key.revoked" in (await client.get("/app/settings/audit-log")).text


async def test_malformed_and_missing_keys_are_401(client) -> None:
    for headers in ({}, bearer("nonsense"), bearer("oms_" + "0" * 32 + "_secret")):
        response = await client.get("/api/v1/me", headers=headers)
        assert response.status_code == 401
        assert response.json()["status"] == 401


async def test_field_errors_are_problem_json_and_change_nothing(client) -> None:
    tenant = await create_tenant()
    response = await client.post("/api/v1/invitations", json={"email": "not-an-email", "role": "wizard"},
                                 headers=bearer(tenant.api_key))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert "valid email" in fields["email"]
    assert "Choose one of" in fields["role"]
    wrong_type = await client.post("/api/v1/invitations", json={"email": 5}, headers=bearer(tenant.api_key))
    assert wrong_type.status_code == 422
    assert wrong_type.json()["errors"][0]["field"] == "email"
    listed = await client.get("/api/v1/invitations", headers=bearer(tenant.api_key))
    assert listed.json() == []


async def test_idempotency_key_replays_and_refuses_a_different_body(client) -> None:
    tenant = await create_tenant()
    headers = {**bearer(tenant.api_key), "Idempotency-Key": "invite-sam-1"}
    body = {"email": "sam@example.test", "role": "merchandiser"}
    first = await client.post("/api/v1/invitations", json=body, headers=headers)
    assert first.status_code == 201
    second = await client.post("/api/v1/invitations", json=body, headers=headers)
    assert second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    other = await client.post("/api/v1/invitations", json={**body, "role": "marketing"}, headers=headers)
    assert other.status_code == 422
    assert "different request" in other.json()["detail"]
    listed = (await client.get("/api/v1/invitations", headers=bearer(tenant.api_key))).json()
    assert [i["id"] for i in listed] == [first.json()["id"]]
    assert listed[0]["role"] == "merchandiser"


async def test_concurrent_requests_with_one_key_create_once(client) -> None:
    tenant = await create_tenant()
    headers = {**bearer(tenant.api_key), "Idempotency-Key": "race-1"}
    body = {"email": "race@example.test", "role": "read_only"}
    responses = await asyncio.gather(*[client.post("/api/v1/invitations", json=body, headers=headers)
                                       for _ in range(4)])
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    listed = (await client.get("/api/v1/invitations", headers=bearer(tenant.api_key))).json()
    assert len(listed) == 1


async def test_keys_of_one_tenant_do_not_share_idempotency_keys(client) -> None:
    a, b = await create_tenant(), await create_tenant()
    body = {"email": "same@example.test", "role": "read_only"}
    ra = await client.post("/api/v1/invitations", json=body, headers={**bearer(a.api_key), "Idempotency-Key": "k"})
    rb = await client.post("/api/v1/invitations", json=body, headers={**bearer(b.api_key), "Idempotency-Key": "k"})
    assert ra.status_code == rb.status_code == 201
    assert ra.json()["id"] != rb.json()["id"]


async def test_openapi_schema_describes_the_api(client) -> None:
    schema = (await client.get("/api/docs/openapi.json")).json()
    assert "/api/v1/invitations" in schema["paths"]
    assert not any(path.startswith("/app") for path in schema["paths"])
    docs = await client.get("/api/docs")
    assert docs.status_code == 200


async def test_secrets_in_links_stay_out_of_the_request_log(client, capsys) -> None:
    await client.get("/invitations/inv_" + "a" * 32 + "_very-secret-token")
    await client.get("/reset-password/another-secret-token")
    out = capsys.readouterr().out
    assert "very-secret-token" not in out and "another-secret-token" not in out
    assert "/invitations/[redacted]" in out


async def test_connections_the_database_closed_are_replaced_unnoticed(client, owner_engine) -> None:
    """A database restart (here: every app connection terminated) costs no failed request: the
    pool drops the connections the server closed and opens new ones."""
    from sqlalchemy import text

    tenant = await create_tenant()
    key = bearer(tenant.api_key)
    responses = await asyncio.gather(*[client.get("/api/v1/orders", headers=key) for _ in range(4)])
    assert [r.status_code for r in responses] == [200] * 4  # several connections in the pool
    async with owner_engine.connect() as conn:
        ended = (await conn.execute(text(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE usename = 'oms_app' AND datname = current_database() AND pid <> pg_backend_pid()) t"))).scalar()
    assert ended and ended >= 1
    await asyncio.sleep(0.2)  # the server's goodbye reaches the pooled connections
    responses = await asyncio.gather(*[client.get("/api/v1/orders", headers=key) for _ in range(4)])
    assert [r.status_code for r in responses] == [200] * 4
