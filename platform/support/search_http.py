"""Customer service's search: ``GET /api/v1/search?q=`` and, in the console, the results under
the top bar's search box (``GET /app/search?q=``, an htmx partial), or a page of them when
opened without htmx (the box's Enter with nothing chosen, a shared link).

Everyone signed in may search (a store associate finds their locations' orders and the
customers of those); narrow API keys (order or feed intake) may not."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal, signed_in
from core.deps import DEPS
from core.pages import page
from support import search

Query = Annotated[str, Parameter(max_length=search.MAX_QUERY, description="What to look for: an order number "
                                 "(ours or the channel's), an email, a phone number in any format, a postcode or a "
                                 "name, typos allowed")]


class CustomerFoundOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    email: str
    phone: str
    orders_count: int  # within the caller's reach


class OrderFoundOut(msgspec.Struct):
    id: uuid.UUID
    number: str
    external_number: str | None
    channel: str
    status: str
    total_minor: int
    currency: str
    placed_at: datetime
    customer_id: uuid.UUID | None
    customer_name: str | None
    customer_email: str | None


class SearchOut(msgspec.Struct):
    customers: list[CustomerFoundOut]
    orders: list[OrderFoundOut]


def search_out(results: search.Results) -> SearchOut:
    return SearchOut(
        customers=[CustomerFoundOut(id=c.id, name=c.name, email=c.email, phone=c.phone, orders_count=c.orders)
                   for c in results.customers],
        orders=[OrderFoundOut(id=o.id, number=o.number, external_number=o.external_number, channel=o.channel,
                              status=o.status, total_minor=o.total_minor, currency=o.currency, placed_at=o.placed_at,
                              customer_id=o.customer_id, customer_name=o.customer_name,
                              customer_email=o.customer_email) for o in results.orders])


class SearchApiController(Controller):
    path = "/api/v1/search"
    tags = ["Customer service"]
    guards = [signed_in]
    dependencies = DEPS

    @get("/", summary="Find customers and orders as customer service does, typos allowed",
         description="Customers (best match first) and orders (found by number first, then the newest), at most "
                     f"{search.SHOWN} of each. A blank query finds nothing. A store-associate key finds only the "
                     "orders at its locations and the customers of those.")
    async def find(self, db: AsyncSession, principal: Principal, q: Query = "") -> SearchOut:
        return search_out(await search.search(db, principal, q))


class SearchPagesController(Controller):
    path = "/app/search"
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @get("/")
    async def find(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                   q: Query = "") -> Template:
        results = await search.search(db, principal, q)
        partial = request.headers.get("HX-Request") == "true"
        return page(request, "support/_search_results.html" if partial else "support/search.html",
                    results=results, search_query=results.query)


route_handlers: list[Any] = [SearchApiController, SearchPagesController]
