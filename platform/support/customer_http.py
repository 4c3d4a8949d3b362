"""The customer's page in the console, its notes, and ``GET /api/v1/customers/{id}``.

Everyone signed in may read a customer (as they may read orders; a store associate within their
locations, see ``support.customer_view``); narrow API keys (order or feed intake) may not. Notes
are written by ``customer_view.NOTE_ROLES``."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal, requires, signed_in
from core.deps import DEPS
from core.pages import NOTICES, client_ip, form_data, form_errors, page
from core.problems import ProblemError
from support import customer_view
from support.customer_schemas import (
    CurrencyFiguresOut,
    CustomerNoteOut,
    CustomerOrderOut,
    CustomerOrdersOut,
    CustomerOut,
    CustomerRecordOut,
    CustomerRefundOut,
    CustomerReturnOut,
    CustomerTaskOut,
    ExchangeOut,
    FiguresOut,
    StoreUseOut,
    TimelineEntryOut,
)

NOTICES.update({"customer_note_added": "Note added: it is on the customer's history."})

write_notes = requires(*customer_view.NOTE_ROLES)


def customer_out(v: customer_view.CustomerView, principal: Principal) -> CustomerOut:
    def local(at: Any) -> Any:
        return customer_view.to_local(at, principal) if at is not None else None

    r, f = v.record, v.figures
    return CustomerOut(
        record=CustomerRecordOut(id=r.id, email=r.email, name=r.name, phone=r.phone, tags=r.tags,
                                 since=local(r.created_at)),
        figures=FiguresOut(
            currency=f.main.currency, orders_count=f.main.orders, cancelled_count=f.main.cancelled,
            lifetime_value_minor=f.main.lifetime_value_minor, refunded_minor=f.main.refunded_minor,
            average_basket_minor=f.main.average_basket_minor, first_order_at=local(f.first_order_at),
            last_order_at=local(f.last_order_at),
            stores=[StoreUseOut(code=s.code, name=s.name, orders=s.orders) for s in f.stores],
            other_currencies=[CurrencyFiguresOut(currency=c.currency, orders_count=c.orders,
                                                 cancelled_count=c.cancelled,
                                                 lifetime_value_minor=c.lifetime_value_minor,
                                                 refunded_minor=c.refunded_minor,
                                                 average_basket_minor=c.average_basket_minor) for c in f.others],
            limited_to_locations=sorted(v.locations) if v.locations is not None else None),
        orders=CustomerOrdersOut(total=f.orders_total, items=[CustomerOrderOut(
            id=o.id, number=o.number, channel=o.channel, external_number=o.external_number, status=o.status,
            placed_at=local(o.placed_at), currency=o.currency, total_minor=o.total_minor,
            captured_minor=o.captured_minor, refunded_minor=o.refunded_minor, delivery_mode=o.delivery_mode,
            pickup_location=o.pickup_location_code, exchange_for=o.exchange_for) for o in v.orders]),
        returns=[CustomerReturnOut(id=x.id, number=x.number, status=x.status, method=x.method, order_id=x.order_id,
                                   order_number=x.order_number, lines_count=x.lines, units=x.units,
                                   refunded_minor=x.refunded_minor, currency=x.currency,
                                   created_at=local(x.created_at), received_at=local(x.received_at),
                                   refunded_at=local(x.refunded_at)) for x in v.returns],
        refunds=[CustomerRefundOut(id=x.id, order_id=x.order_id, order_number=x.order_number, source=x.source,
                                   amount_minor=x.amount_minor, currency=x.currency, status=x.status, reason=x.reason,
                                   created_by=x.created_by, created_at=local(x.created_at)) for x in v.refunds],
        exchanges=[ExchangeOut(original_order_id=x.original_id, original_order_number=x.original_number,
                               replacement_order_id=x.replacement_id, replacement_order_number=x.replacement_number,
                               replacement_status=x.replacement_status, placed_at=local(x.placed_at),
                               currency=x.currency, total_minor=x.total_minor) for x in v.exchanges],
        notes=[CustomerNoteOut(id=n.id, about=n.about, body=n.body, author=n.author, created_at=local(n.created_at),
                               order_id=n.order_id, order_number=n.order_number) for n in v.notes],
        open_tasks=[CustomerTaskOut(id=t.id, order_id=t.order_id, order_number=t.order_number, kind=t.kind,
                                    title=t.title, detail=t.detail, occurrences=t.occurrences,
                                    assigned_to=t.assigned_to, opened_at=local(t.opened_at)) for t in v.open_tasks],
        timeline=[TimelineEntryOut(at=local(e.at), kind=e.kind, title=e.title, text=e.text, actor=e.actor,
                                   order_id=e.order_id, order_number=e.order_number) for e in v.timeline],
    )


class CustomersApiController(Controller):
    path = "/api/v1/customers"
    tags = ["Customer service"]
    guards = [signed_in]
    dependencies = DEPS

    @get("/{customer_id:uuid}", summary="A customer with their history across channels",
         description="The record, figures (lifetime value net of refunds, average basket, first and last order, "
                     "the stores they use) in the company's currency (other currencies apart), the newest 50 "
                     "orders with the total count, returns, refunds, exchanges, notes, open tasks and the newest "
                     "100 entries of their timeline. A store-associate key sees only the orders at its locations.")
    async def get_customer(self, db: AsyncSession, principal: Principal, customer_id: uuid.UUID) -> CustomerOut:
        return customer_out(await customer_view.view(db, principal, customer_id), principal)


class CustomerPagesController(Controller):
    path = "/app/customers"
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @get("/{customer_id:uuid}")
    async def customer_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                            customer_id: uuid.UUID) -> Template:
        return await _page(request, db, principal, customer_id)

    @post("/{customer_id:uuid}/notes", guards=[write_notes])
    async def add_note(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       customer_id: uuid.UUID) -> Template | Redirect:
        await customer_view.visible_customer(db, principal, customer_id)  # another company's: 404 first
        values = await form_data(request)
        try:
            await customer_view.add_note(db, principal, customer_id, values.get("body", ""), ip=client_ip(request))
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            return await _page(request, db, principal, customer_id, status_code=422,
                               errors=form_errors(problem), values=values)
        # The notice at the top, the page scrolled to the notes (a fragment goes after the query).
        return Redirect(f"/app/customers/{customer_id}?done=customer_note_added#notes", status_code=303)


async def _page(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, customer_id: uuid.UUID,
                *, status_code: int = 200, errors: dict[str, str] | None = None,
                values: dict[str, str] | None = None) -> Template:
    v = await customer_view.view(db, principal, customer_id)
    return page(request, "support/customer.html", status_code=status_code, view=v, record=v.record,
                figures=v.figures, can_note=principal.role in customer_view.NOTE_ROLES, errors=errors or {},
                values=values or {}, note_max=customer_view.NOTE_MAX)


route_handlers: list[Any] = [CustomersApiController, CustomerPagesController]
