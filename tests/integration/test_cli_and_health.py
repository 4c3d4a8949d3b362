"""The operator's command line and the health endpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import func, select

from billing.models import BillingPeriod
from core.db import get_database
from factories import bearer

ROOT = Path(__file__).resolve().parents[2]


def oms(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "oms.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), cwd=ROOT, timeout=120, check=False)


async def test_tenants_create_prints_the_tenant_and_a_working_key(client) -> None:
    email = f"ops-{uuid.uuid4().hex[:8]}@example.test"
    result = oms("tenants", "create", "--name", "Scripted Retail", "--email", email,
                 "--password", "operator chosen phrase", "--timezone", "America/New_York")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout.strip().splitlines()[-1])
    assert uuid.UUID(created["tenant_id"])
    me = await client.get("/api/v1/me", headers=bearer(created["api_key"]))
    assert me.status_code == 200
    assert me.json()["tenant"] == {"id": created["tenant_id"], "name": "Scripted Retail", "country": "US",
                                   "currency": "USD", "timezone": "America/New_York"}
    # Billed like a company signed up in the browser: on its trial from the start, which the
    # scheduler will close (before anyone opens its billing page).
    async with get_database().transaction(tenant_id=uuid.UUID(created["tenant_id"])) as session:
        assert await session.scalar(select(func.count()).select_from(BillingPeriod)
                                    .where(BillingPeriod.trial, BillingPeriod.status == "open")) == 1

    again = oms("tenants", "create", "--name", "Other", "--email", email, "--password", "operator chosen phrase")
    assert again.returncode != 0
    assert "already exists" in again.stderr


async def test_health_and_readiness(client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "broker": "ok"}


async def test_request_id_is_echoed_or_made(client) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "trace-123"})
    assert given.headers["x-request-id"] == "trace-123"
    made = await client.get("/pricing")
    assert len(made.headers["x-request-id"]) == 32
    assert "Pricing" in made.text


async def test_public_pages_render(client) -> None:
    for path, text in (("/", "Sign up"), ("/pricing", "per order"), ("/login", "Log in"),
                       ("/signup", "Create your company"), ("/forgot-password", "Reset your password")):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert text in response.text, path
    missing = await client.get("/no-such-page")
    assert missing.status_code == 404 and "Not found" in missing.text
