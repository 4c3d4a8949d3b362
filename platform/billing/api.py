"""``/api/v1/billing``: the company's plan, standing, period, usage and estimate, its billing
details and plan change, and its invoices and credit notes (JSON and PDF). Admin keys read and
write; read-only keys read."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post, put
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from billing import accounts, config, display, invoicing, plans
from billing.pdf import pdf_response
from billing.schemas import (
    AccountOut,
    BillingDetailsIn,
    BillingOut,
    CardOut,
    InvoiceListOut,
    InvoiceOut,
    PlanChangeIn,
    account_out,
    estimate_out,
    invoice_out,
    plan_out,
)
from core import clock
from core.auth import ADMINS, Principal, admins_only, requires
from core.deps import DEPS
from core.pages import client_ip

read_billing = requires(*ADMINS, "read_only")


async def overview(db: AsyncSession, principal: Principal) -> BillingOut:
    account = await accounts.account_of(db, principal.tenant_id)
    estimate = estimate_out(await invoicing.estimate(db, principal.tenant_id))
    plan = await plans.plan_version(db, account.plan_code, clock.now())
    card = CardOut(account.card_brand, account.card_last4, account.card_expires) if account.card_last4 else None
    return BillingOut(plan=plan_out(plan) if plan else None, next_plan_code=account.next_plan_code,
                      standing=principal.standing, collected=config.stripe_secret_key() is not None,
                      period=estimate.period, usage=estimate.usage, estimate=estimate, card=card,
                      details=account_out(account))


class BillingApiController(Controller):
    path = "/api/v1/billing"
    tags = ["Billing"]
    dependencies = DEPS

    @get("/", guards=[read_billing], summary="The plan, standing, current period, usage so far, estimated invoice, "
         "card on file and billing details")
    async def billing(self, db: AsyncSession, principal: Principal) -> BillingOut:
        return await overview(db, principal)

    @put("/details", guards=[admins_only], summary="Replace the billing details",
         description="legal_name and country (ISO 3166 alpha-2) are required. vat_number, with its country "
                     "prefix, is checked by format and checksum and must be of the billing country; empty: the "
                     "company is billed as a consumer. Refused with every problem at once (422).")
    async def put_details(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                          data: BillingDetailsIn) -> AccountOut:
        details = accounts.BillingDetails(
            legal_name=data.legal_name, address_line1=data.address_line1, address_line2=data.address_line2,
            postcode=data.postcode, city=data.city, country=data.country, billing_email=data.billing_email,
            vat_number=data.vat_number)
        return account_out(await accounts.update_details(db, principal, details, ip=client_ip(request)))

    @post("/plan", guards=[admins_only], status_code=200, summary="Change plan",
          description='{"plan": code, "when": "next_period" | "now"}: from the next period, or now with the base '
                      "fees of both plans prorated over this period.")
    async def change_plan(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                          data: PlanChangeIn) -> BillingOut:
        await accounts.change_plan(db, principal, data.plan, data.when, ip=client_ip(request))
        return await overview(db, principal)

    @get("/invoices", guards=[read_billing], summary="Invoices and credit notes, newest first (pages: pass "
         "next_cursor as cursor)")
    async def invoices(self, db: AsyncSession, principal: Principal, cursor: uuid.UUID | None = None,
                       limit: Annotated[int, Parameter(ge=1, le=invoicing.MAX_PAGE_SIZE)] = invoicing.PAGE_SIZE
                       ) -> InvoiceListOut:
        found = await invoicing.invoices_of(db, principal.tenant_id, limit=limit, before=cursor)
        return InvoiceListOut([invoice_out(doc) for doc in found.invoices],
                              str(found.next_cursor) if found.next_cursor else None)

    @get("/invoices/{invoice_id:uuid}", guards=[read_billing], summary="An invoice or credit note with its lines")
    async def invoice(self, db: AsyncSession, principal: Principal, invoice_id: uuid.UUID) -> InvoiceOut:
        return invoice_out(*await invoicing.invoice_with_lines(db, principal.tenant_id, invoice_id))

    @get("/invoices/{invoice_id:uuid}/pdf", guards=[read_billing], summary="An invoice or credit note as PDF",
         media_type="application/pdf")
    async def invoice_pdf(self, db: AsyncSession, principal: Principal, invoice_id: uuid.UUID) -> Response[bytes]:
        return await pdf_response(await display.load_document(db, principal.tenant_id, invoice_id,
                                                              timezone=principal.timezone, locale=principal.locale))


route_handlers: list[Any] = [BillingApiController]
