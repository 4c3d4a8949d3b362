"""Orders in the console: the orders list, the order page, the manual order form, a location's
fulfilment queue (refreshed live over server-sent events), customer-service tasks, and
Settings → Orders and → Payments."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import msgspec
from litestar import Controller, Request, get, post
from litestar.response import Redirect, ServerSentEvent, Template
from litestar.response.sse import ServerSentEventMessage
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal, admins_only, signed_in
from core.db import get_database
from core.deps import DEPS
from core.forms import parse_float, parse_int
from core.limits import MONEY_MAX
from core.pages import NOTICES, client_ip, form_errors, page, redirect, safe_next
from core.problems import ProblemError, invalid, not_found
from inventory import locations as inventory_locations
from orders import allocation, cancellation, capture, fulfilment, lifecycle, payments, queries, service_tasks
from orders.guards import HANDLERS, TAKERS, handle_fulfilments, take_orders
from orders.schemas import OrderIn
from rules.fields import CHANNELS
from tenants import service as tenants

LIVE_SECONDS = 300

NOTICES.update({
    "order_created": "Order received: it is being routed.",
    "order_cancelled": "Cancelled: reservations released and the refund recorded.",
    "order_released": "Released: the order is being routed again.",
    "fulfilment_updated": "Fulfilment updated.",
})


NOTICES.update({
    "task_resolved": "Task resolved: the note is on the order's timeline.",
})


NOTICES.update({"order_settings_saved": "Order settings saved."})


NOTICES.update({"stripe_saved": "Stripe account saved: Stripe orders are captured at shipment."})



def _live(principal: Principal, order_id: uuid.UUID | None) -> ServerSentEvent:
    """A ``changed`` event whenever the order (or any order) gets a timeline entry."""
    async def changes() -> AsyncIterator[ServerSentEventMessage]:
        last = None
        for _ in range(LIVE_SECONDS):
            async with get_database().transaction(tenant_id=principal.tenant_id) as session:
                mark = await queries.change_mark(session, principal, order_id)
            if last is not None and mark != last:
                yield ServerSentEventMessage(event="changed", data=str(mark[1]))
            last = mark
            await asyncio.sleep(1)
    return ServerSentEvent(changes())


class OrdersPagesController(Controller):
    path = "/app"
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @get("/orders")
    async def orders_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                          status: str = "", channel: str = "", location: str = "", delivery_mode: str = "",
                          day_from: str = "", day_to: str = "", q: str = "", payment_status: str = "",
                          after: str | None = None) -> Template:
        filters = queries.filters_of(status, channel, location, delivery_mode, day_from, day_to, q, payment_status)
        orders, cursor = await queries.list_orders(db, principal, filters, after=after)
        template = "orders/_rows.html" if request.headers.get("HX-Request") == "true" and \
            request.headers.get("HX-Target") == "order-rows" else "orders/list.html"
        return page(request, template, orders=orders, cursor=cursor, filters=filters, states=lifecycle.ORDER_STATES,
                    channels=CHANNELS, locations=await inventory_locations.active(db, principal.tenant_id),
                    can_take=principal.role in TAKERS, query=dict(request.query_params))

    @get("/orders/live")
    async def orders_live(self, principal: Principal) -> ServerSentEvent:
        return _live(principal, None)

    @get("/orders/new", guards=[take_orders])
    async def new_order(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        return page(request, "orders/new.html", channels=CHANNELS, values={"channel": "phone", "mode": "ship"},
                    stores=[loc for loc in await inventory_locations.active(db, principal.tenant_id)
                            if loc.click_and_collect])

    @post("/orders/new", guards=[take_orders])
    async def create_order(self, request: Request[Any, Any, Any], db: AsyncSession,
                           principal: Principal) -> Template | Redirect:
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            data = _order_from_form(values, principal)
            order, _, _ = await capture.capture(db, principal, data)
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            return page(request, "orders/new.html", status_code=422, channels=CHANNELS, values=values,
                        errors=form_errors(problem), problem=problem,
                        stores=[loc for loc in await inventory_locations.active(db, principal.tenant_id)
                                if loc.click_and_collect])
        return redirect(f"/app/orders/{order.id}", done="order_created")

    @get("/orders/{order_id:uuid}")
    async def order_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                         order_id: uuid.UUID) -> Template:
        detail = await queries.order_detail(db, principal, order_id)
        template = "orders/_order.html" if request.headers.get("HX-Request") == "true" else "orders/order.html"
        tasks, _ = await service_tasks.listing(db, principal, status="open", order_id=order_id)
        return page(request, template, detail=detail, order=detail.order, can_take=principal.role in TAKERS,
                    can_handle=principal.role in HANDLERS, tasks=[row.task for row in tasks],
                    task_kinds=service_tasks.KINDS)

    @get("/orders/{order_id:uuid}/live")
    async def order_live(self, db: AsyncSession, principal: Principal, order_id: uuid.UUID) -> ServerSentEvent:
        await queries.get_order(db, principal, order_id)  # 404 for another company's order
        return _live(principal, order_id)

    @post("/orders/{order_id:uuid}/cancel", guards=[take_orders])
    async def cancel_order(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           order_id: uuid.UUID) -> Redirect:
        form = await request.form()
        lines = []
        for key, value in form.items():
            if key.startswith("cancel_line_") and isinstance(value, str) and value.strip() not in ("", "0"):
                units, line_no = parse_int(value, lo=0), parse_int(key.removeprefix("cancel_line_"), lo=1)
                if units is None or line_no is None:
                    raise invalid({key: f"{value[:20]!r} is not a number of units."})
                lines.append((line_no, units))
        reason = str(form.get("reason") or "")
        whole = form.get("whole") == "1"
        await cancellation.cancel(db, principal, order_id, lines=None if whole else lines, reason=reason)
        return redirect(f"/app/orders/{order_id}", done="order_cancelled")

    @post("/orders/{order_id:uuid}/release", guards=[take_orders])
    async def release_order(self, db: AsyncSession, principal: Principal, order_id: uuid.UUID) -> Redirect:
        await allocation.release(db, principal, order_id)
        return redirect(f"/app/orders/{order_id}", done="order_released")

    @get("/fulfilments")
    async def fulfilment_queue(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                               location: str = "") -> Template:
        # A store associate sees their own locations' queues only (another's answers 404).
        locations = [loc for loc in await inventory_locations.active(db, principal.tenant_id)
                     if principal.works_at(loc.code)]
        code = location or (locations[0].code if locations else "")
        rows = await queries.queue(db, principal, code) if code else []
        template = "orders/_queue.html" if request.headers.get("HX-Request") == "true" else "orders/queue.html"
        return page(request, template, rows=rows, location=code, locations=locations,
                    can_handle=principal.role in HANDLERS)

    @get("/fulfilments/live")
    async def queue_live(self, principal: Principal, location: str = "") -> ServerSentEvent:
        if (location and not principal.works_at(location)) or (not location and principal.locations is not None):
            raise not_found("Location")
        return _live(principal, None)

    @post("/fulfilments/{fulfilment_id:uuid}/{action:str}", guards=[handle_fulfilments])
    async def act(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                  fulfilment_id: uuid.UUID, action: str) -> Redirect:
        form = await request.form()
        order, done = await fulfilment.act(db, principal, fulfilment_id, action,
                                           reason=str(form.get("reason") or ""),
                                           tracking_number=str(form.get("tracking_number") or "") or None)
        back, here = str(form.get("back") or ""), str(form.get("location") or "")
        here = here if here in (done.location_code, done.ship_to_store) else done.location_code
        target = f"/app/orders/{order.id}" if back == "order" else f"/app/fulfilments?location={quote(here)}"
        return redirect(target, done="fulfilment_updated")


class ServiceTasksPagesController(Controller):
    path = "/app/service-tasks"
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @get("/")
    async def tasks_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                         status: str = "open", kind: str = "", after: str | None = None) -> Template:
        rows, cursor = await service_tasks.listing(db, principal, status=status, kind=kind,
                                                   after=service_tasks.cursor_of(after))
        return page(request, "orders/tasks.html", rows=rows, status=status, kind=kind, kinds=service_tasks.KINDS,
                    next_cursor=cursor, can_resolve=principal.role in TAKERS)

    @post("/{task_id:uuid}/resolve", guards=[take_orders])
    async def resolve(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      task_id: uuid.UUID) -> Template | Redirect:
        form = await request.form()
        back = safe_next(str(form.get("next") or ""), "/app/service-tasks")
        try:
            await service_tasks.resolve(db, principal, task_id, str(form.get("note") or ""))
        except ProblemError as problem:
            if problem.status not in (409, 422):
                raise
            await db.rollback()
            rows, cursor = await service_tasks.listing(db, principal)
            return page(request, "orders/tasks.html", status_code=problem.status, rows=rows, status="open", kind="",
                        kinds=service_tasks.KINDS, next_cursor=cursor, can_resolve=True, problem=problem,
                        errors=form_errors(problem), failed_task=task_id)
        return redirect(back, done="task_resolved")


class OrderSettingsPagesController(Controller):
    path = "/app/settings/orders"
    include_in_schema = False
    guards = [admins_only]
    dependencies = DEPS

    @get("/")
    async def settings_page(self, request: Request[Any, Any, Any], db: AsyncSession,
                            principal: Principal) -> Template:
        tenant = await tenants.get_tenant(db, principal)
        return page(request, "settings/orders.html", values={"pickup_window_days": tenant.pickup_window_days})

    @post("/")
    async def save(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                   ) -> Template | Redirect:
        form = await request.form()
        raw = str(form.get("pickup_window_days") or "").strip()
        try:
            days = parse_int(raw, lo=0)
            days = -1 if days is None else days
            await tenants.set_pickup_window(db, principal, days, ip=client_ip(request))
        except ProblemError as problem:
            await db.rollback()
            return page(request, "settings/orders.html", status_code=422, errors=form_errors(problem),
                        values={"pickup_window_days": raw})
        return redirect("/app/settings/orders", done="order_settings_saved")


class PaymentsPagesController(Controller):
    path = "/app/settings/payments"
    include_in_schema = False
    guards = [admins_only]
    dependencies = DEPS

    @get("/")
    async def payments_page(self, request: Request[Any, Any, Any], db: AsyncSession,
                            principal: Principal) -> Template:
        account = await payments.stripe_account(db, principal)
        return page(request, "settings/payments.html", key=payments.masked(account.secret_key) if account else None)

    @post("/")
    async def save(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                   ) -> Template | Redirect:
        form = await request.form()
        try:
            await payments.save_stripe(db, principal, str(form.get("secret_key") or ""))
        except ProblemError as problem:
            await db.rollback()
            account = await payments.stripe_account(db, principal)
            return page(request, "settings/payments.html", status_code=422, errors=form_errors(problem),
                        key=payments.masked(account.secret_key) if account else None)
        return redirect("/app/settings/payments", done="stripe_saved")


def _order_from_form(values: dict[str, str], principal: Principal) -> OrderIn:
    """The manual order form as the API's order; the totals are computed, not typed."""
    from core import money

    errors: dict[str, str] = {}
    lines: list[dict[str, Any]] = []
    for k in range(10):
        sku = values.get(f"line.{k}.sku", "").strip()
        if not sku:
            continue
        typed, price = values.get(f"line.{k}.quantity", "1").strip(), values.get(f"line.{k}.price", "").strip()
        minor = money.to_minor(price, principal.currency) if price else None
        quantity = parse_int(typed)
        if quantity is None:
            errors[f"line.{k}.quantity"] = f"Line {k + 1}: {typed[:20]!r} is not a whole number."
            continue
        if minor is None:
            errors[f"line.{k}.price"] = f"Line {k + 1}: give the unit price, such as 19.99."
            continue
        lines.append({"sku": sku, "quantity": quantity, "unit_price_minor": minor})
    shipping = money.to_minor(values.get("shipping_fee", "0") or "0", principal.currency)
    if shipping is None:
        errors["shipping_fee"] = "The shipping fee is an amount, such as 4.90."
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    total = sum(int(line["unit_price_minor"]) * int(line["quantity"]) for line in lines) + (shipping or 0)
    if abs(total) > MONEY_MAX:
        raise invalid({"line.0.quantity": "The order's total is more than can be recorded."})
    mode = values.get("mode", "ship")
    raw: dict[str, Any] = {
        "channel": values.get("channel", "phone"), "currency": principal.currency, "lines": lines,
        "customer": {"email": values.get("email", "").strip() or "-", "name": values.get("name", "").strip(),
                     "phone": values.get("phone", "").strip()},
        "delivery": {"mode": mode},
        "shipping_fee_minor": shipping or 0, "total_minor": total,
        "payment": {"provider": "external", "method": values.get("payment_method", "card") or "card",
                    "authorized_minor": total} if values.get("paid") == "on" else None,
    }
    if mode == "ship":
        address: dict[str, Any] = {"country": values.get("country", "").strip().upper()[:2] or "--"}
        for name in ("name", "line1", "city", "postcode"):
            address[name] = values.get(name, "").strip()
        for name, bound in (("latitude", 90.0), ("longitude", 180.0)):
            text = values.get(name, "").strip()
            if text:
                number = parse_float(text, lo=-bound, hi=bound)
                if number is None:
                    errors[name] = f"{text[:20]!r} is not a number (a {name} is between -{bound:g} and {bound:g})."
                else:
                    address[name] = number
        raw["delivery"]["address"] = address
    else:
        raw["delivery"]["pickup_location"] = values.get("pickup_location", "").strip() or None
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    try:
        return msgspec.convert(raw, OrderIn)
    except msgspec.ValidationError as exc:
        raise invalid({"__all__": str(exc)}, detail=str(exc)) from None


route_handlers = [OrdersPagesController, ServiceTasksPagesController, OrderSettingsPagesController,
                  PaymentsPagesController]
