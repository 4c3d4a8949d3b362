"""What the billing tests share: the owner's principal, a card saved on the fake Stripe, and the
rows and standing they check."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select


def owner(tenant: Any) -> Any:
    from core.auth import Principal

    return Principal(tenant_id=tenant.tenant_id, role="owner", label=tenant.email, tenant_name=tenant.name,
                     timezone="Europe/Paris", currency="EUR", user_id=tenant.user_id)


async def save_card(tenant: Any, number: str = "4242424242424242", **card: Any) -> Any:
    """A card through the test-card path (the fake Stripe must be the platform's: ``platform_stripe``)."""
    from billing import collection
    from core.db import get_database

    fields = {"exp_month": 12, "exp_year": 2035, "cvc": "123", **card}
    async with get_database().transaction(tenant_id=tenant.tenant_id) as session:
        return await collection.save_test_card(session, owner(tenant), number=number, **fields)


async def invoice_row(tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> Any:
    from billing.models import Invoice
    from core.db import get_database

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return await session.get(Invoice, (tenant_id, invoice_id))


async def account_row(tenant_id: uuid.UUID) -> Any:
    from billing.models import BillingAccount
    from core.db import get_database

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return await session.scalar(select(BillingAccount).where(BillingAccount.tenant_id == tenant_id))


async def standing(tenant_id: uuid.UUID) -> str:
    from core.db import get_database
    from tenants.service import billing_standing

    async with get_database().transaction(tenant_id=tenant_id) as session:
        return await billing_standing(session, tenant_id)
