"""The API fuzzed from its own OpenAPI description, against the real web process, as two companies
with data of their own: whatever a generated request holds (NUL characters, huge numbers, deep
nesting, strings where numbers go), the answer is never a server error; no operation answers
without a key; and company B, naming company A's objects, neither reads nor changes them.

Schemathesis generates the requests, valid and invalid ones (``FUZZ_EXAMPLES`` per operation, default
40)."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from factories import bearer, create_tenant
from inventory_factories import API, one_warehouse_shop, send_feed
from processes import start_oms, stop_process, wait_healthy

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
UUID_PARAM = re.compile(r"\{(\w+)\}")


@dataclass
class Company:
    tenant_id: uuid.UUID
    key: str
    ids: list[str] = field(default_factory=list)  # every id of its rows, for B to try
    secrets: list[str] = field(default_factory=list)  # strings only A may see


async def _company_with_data(client: Any, owner_engine: Any, name: str) -> Company:
    tenant = await create_tenant(name=f"{name}-{uuid.uuid4().hex[:6]}")
    key = tenant.api_key
    await one_warehouse_shop(client, key, location=f"WH-{name}", sku=f"SKU-{name}", quantity=50)
    order = await client.post(f"{API}/orders", headers=bearer(key), json={
        "channel": "web", "external_number": f"{name}-1", "currency": "EUR",
        "lines": [{"sku": f"SKU-{name}", "quantity": 1, "unit_price_minor": 1200}],
        "customer": {"email": f"secret-{name.lower()}@example.test", "name": f"Secret {name}"},
        "delivery": {"mode": "ship", "address": {"country": "FR", "latitude": 48.8, "longitude": 2.3}},
        "total_minor": 1200})
    assert order.status_code == 201, order.text
    feed = await send_feed(client, key, f"feed-{name}", "delta", [(f"SKU-{name}", f"WH-{name}", 1)])
    assert feed.status_code == 202, feed.text
    hook = await client.post(f"{API}/webhook-endpoints", headers=bearer(key),
                             json={"url": "http://127.0.0.1:9/hooks", "events": []})
    assert hook.status_code == 201, hook.text
    company = Company(tenant.tenant_id, key, secrets=[f"secret-{name.lower()}@example.test", hook.json()["secret"]])
    async with owner_engine.connect() as conn:
        tables = (await conn.execute(text(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND column_name = 'tenant_id' AND table_name IN (SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name = 'id')"))).scalars().all()
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, false)"), {"t": str(tenant.tenant_id)})
        for table in tables:
            company.ids += [str(i) for i in (await conn.execute(text(
                f'SELECT id FROM "{table}" WHERE tenant_id = :t LIMIT 20'), {"t": tenant.tenant_id})).scalars()]
    company.ids.append(str(tenant.tenant_id))
    return company


def _fuzz(base: str, a: Company, b: Company) -> list[str]:
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{base}/api/docs/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        _fuzz_operation(result.ok(), base, a, b, failures)
    return failures


def _fuzz_operation(operation: Any, base: str, a: Company, b: Company, failures: list[str]) -> None:
    from schemathesis import GenerationMode

    params = UUID_PARAM.findall(operation.path)
    # Without a key, nothing is answered but 401.
    anonymous = operation.Case(path_parameters={p: "1" if p == "number" else str(uuid.uuid4())
                                                for p in params}) if params else operation.Case()
    response = anonymous.call(base_url=base)
    if response.status_code != 401:
        failures.append(f"{operation.method.upper()} {operation.path} without a key -> {response.status_code}")
    # Requests that fit the description, and requests that don't (a string for a number...).
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=cases, own=st.booleans(), pick=st.integers(min_value=0))
    def run(case: Any, own: bool, pick: int) -> None:
        # Half the time, path ids are the company's own, so that handlers go past "not found".
        if own and params and a.ids:
            case.path_parameters = {**(case.path_parameters or {}),
                                    **{p: a.ids[(pick + i) % len(a.ids)] for i, p in enumerate(params)
                                       if "id" in p}}
        response = case.call(base_url=base, headers=bearer(a.key))
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                            f"{case.as_curl_command()[:300]}")
        # The same request from company B on A's objects: refused, nothing of A's shown.
        if own and params:
            other = case.call(base_url=base, headers=bearer(b.key))
            if other.status_code >= 500 or (other.status_code < 400 and any("id" in p for p in params)):
                failures.append(f"B: {case.method} {case.formatted_path} -> {other.status_code}")
            leaked = [s for s in a.secrets if s in other.text]
            if leaked:
                failures.append(f"B: {case.method} {case.formatted_path} leaked {leaked}")

    run()


async def test_the_api_fuzzed_as_two_companies(client, owner_engine, tmp_path: Path) -> None:
    from core.embedded import free_port

    a = await _company_with_data(client, owner_engine, "ALPHA")
    b = await _company_with_data(client, owner_engine, "BRAVO")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web, log = start_oms(["web", "--port", str(port)], dict(os.environ, LOG_LEVEL="WARNING"), tmp_path / "web.log")
    try:
        wait_healthy(f"{base}/healthz", web, tmp_path / "web.log")
        failures = await asyncio.to_thread(_fuzz, base, a, b)
    finally:
        stop_process(web)
        log.close()
    assert failures == [], "\n".join(dict.fromkeys(failures))


pytestmark = pytest.mark.timeout(900)
