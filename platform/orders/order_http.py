"""Orders and fulfilments: the JSON API and the console (orders list, order page, manual
order form, a location's fulfilment queue), with live refresh over server-sent events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import msgspec
import structlog
from litestar import Controller, Request, Response, get, post
from litestar.response import Redirect, ServerSentEvent, Template
from litestar.response.sse import ServerSentEventMessage
from litestar.serialization import encode_json
from sqlalchemy.ext.asyncio import AsyncSession

from core import idempotency
from core.auth import Principal, requires, signed_in
from core.db import get_database
from core.deps import DEPS, relay_if_pending
from core.group_commit import NEXT_BATCH, GroupCommit, NextBatch
from core.idempotency import WithStatus
from core.outbox import enqueue
from core.pages import NOTICES, form_errors, page, redirect
from core.problems import ProblemError, invalid
from orders import cancellation, capture, fulfilment, lifecycle, queries, service_tasks, sourcing
from orders.models import Fulfilment, FulfilmentLine, Order, OrderEvent, OrderLine
from orders.schemas import (
    CancelIn,
    FulfilmentActionIn,
    FulfilmentLineOut,
    FulfilmentOut,
    OrderEventOut,
    OrderIn,
    OrderLineOut,
    OrderOut,
    OrderPage,
    OrderSummaryOut,
)
from rules.fields import CHANNELS

TAKERS = ("owner", "admin", "customer_service")
HANDLERS = ("owner", "admin", "customer_service", "store_associate")
take_orders = requires(*TAKERS)
handle_fulfilments = requires(*HANDLERS)
LIVE_SECONDS = 300

NOTICES.update({
    "order_created": "Order received: it is being routed.",
    "order_cancelled": "Cancelled: reservations released and the refund recorded.",
    "order_released": "Released: the order is being routed again.",
    "fulfilment_updated": "Fulfilment updated.",
})


def order_out(detail: queries.OrderDetail, *, with_events: bool = True) -> OrderOut:
    order = detail.order
    return OrderOut(
        id=order.id, number=order.number, channel=order.channel, external_number=order.external_number,
        status=order.status, hold_reason=order.hold_reason, currency=order.currency,
        subtotal_minor=order.subtotal_minor, discount_minor=order.discount_minor,
        shipping_fee_minor=order.shipping_fee_minor, total_minor=order.total_minor,
        delivery_mode=order.delivery_mode, pickup_location=order.pickup_location_code,
        customer_email=order.customer_email, customer_name=order.customer_name,
        payment_status=order.payment_status, authorized_minor=order.authorized_minor,
        captured_minor=order.captured_minor, refunded_minor=order.refunded_minor,
        routing_version=order.routing_version, placed_at=order.placed_at,
        lines=[line_out(line) for line in detail.lines],
        fulfilments=[fulfilment_out(f, lines) for f, lines in detail.fulfilments],
        events=[event_out(e) for e in detail.events] if with_events else None, routing=order.routing,
    )


def line_out(line: OrderLine) -> OrderLineOut:
    return OrderLineOut(line_no=line.line_no, sku=line.sku, name=line.name, quantity=line.quantity,
                        unit_price_minor=line.unit_price_minor, discount_minor=line.discount_minor,
                        allocated=line.qty_allocated, shipped=line.qty_shipped, cancelled=line.qty_cancelled,
                        returned=line.qty_returned)


def fulfilment_out(f: Fulfilment, lines: list[FulfilmentLine]) -> FulfilmentOut:
    return FulfilmentOut(id=f.id, number=f.number, location=f.location_code, kind=f.kind,
                         ship_to_store=f.ship_to_store, status=f.status, reason=f.reason,
                         lines=[FulfilmentLineOut(sku=line.sku, quantity=line.quantity) for line in lines
                                if line.quantity > 0],
                         created_at=f.created_at, updated_at=f.updated_at)


def event_out(e: OrderEvent) -> OrderEventOut:
    return OrderEventOut(id=e.id, kind=e.kind, from_status=e.from_status, to_status=e.to_status, actor=e.actor,
                         reason=e.reason, data=e.data, created_at=e.created_at)


def summary_out(order: Order) -> OrderSummaryOut:
    return OrderSummaryOut(id=order.id, number=order.number, channel=order.channel,
                           external_number=order.external_number, status=order.status,
                           total_minor=order.total_minor, currency=order.currency,
                           delivery_mode=order.delivery_mode, customer_email=order.customer_email,
                           placed_at=order.placed_at)


def _filters(status: str, channel: str, location: str, delivery_mode: str, day_from: str, day_to: str,
             q: str, payment_status: str = "") -> queries.OrderFilters:
    errors: dict[str, str] = {}
    days: list[date | None] = []
    for name, value in (("from", day_from), ("to", day_to)):
        try:
            days.append(date.fromisoformat(value) if value else None)
        except ValueError:
            errors[name] = f"{value!r} is not a date (YYYY-MM-DD)."
            days.append(None)
    if status and status not in lifecycle.ORDER_STATES:
        errors["status"] = f"Unknown status {status!r}."
    if errors:
        raise invalid(errors)
    return queries.OrderFilters(status=status, channel=channel, location=location, delivery_mode=delivery_mode,
                                day_from=days[0], day_to=days[1], q=q, payment_status=payment_status)


async def _release(db: AsyncSession, principal: Principal, order_id: uuid.UUID) -> Order:
    """Send an order on hold (or backordered) through routing again."""
    from orders.tasks import route_order

    order = await queries.get_order(db, principal, order_id)
    await db.refresh(order, with_for_update=True)
    if order.status not in ("on_hold", "backordered"):
        raise ProblemError(409, "Not on hold", f"Order {order.number} is {order.status.replace('_', ' ')}.")
    lifecycle.move_order(db, order, "received", actor=principal.label, reason="released for routing")
    await service_tasks.close_if_open(db, order, "order_on_hold", f"released for routing by {principal.label}",
                                      actor=principal.label)
    enqueue(db, route_order, tenant_id=order.tenant_id, order_id=str(order.id))
    return order


async def _answers(db: AsyncSession, principal: Principal,
                   outcomes: list[capture.Captured | ProblemError]) -> list[WithStatus | ProblemError]:
    """The API's answer to each capture: 201 and the new order, 200 and the stored one for a resend."""
    await db.flush()
    answers: list[WithStatus | ProblemError] = []
    for outcome in outcomes:
        if isinstance(outcome, ProblemError):
            answers.append(outcome)
            continue
        order, created, lines = outcome
        # A new order has no fulfilment yet: what capture stored is the whole answer.
        detail = queries.OrderDetail(order, lines, [], []) if created else \
            await queries.order_detail(db, principal, order.id)
        answers.append(WithStatus(order_out(detail, with_events=False), 201 if created else 200))
    return answers


@dataclass(frozen=True)
class _Capture:
    data: OrderIn
    keyed: idempotency.Keyed | None


async def _capture_batch(principal: Principal,
                         items: list[_Capture]) -> list[idempotency.Answer | Exception | NextBatch]:
    """Concurrent API captures by one caller, in one transaction (see core.group_commit). The
    Idempotency-Keys among them are claimed together; a request whose key was used before gets
    that answer again, and a second request with a key already in the batch waits for the next."""
    structlog.contextvars.bind_contextvars(tenant_id=str(principal.tenant_id), captures=len(items))
    outcomes: list[idempotency.Answer | Exception | NextBatch | None] = [None] * len(items)
    keyed: dict[str, tuple[int, idempotency.Keyed]] = {}
    for i, item in enumerate(items):
        if item.keyed is not None:
            if item.keyed.key in keyed:
                outcomes[i] = NEXT_BATCH
            else:
                keyed[item.keyed.key] = (i, item.keyed)
    async with get_database().transaction(tenant_id=principal.tenant_id, user_id=principal.user_id) as db:
        claims = await idempotency.claim_many(db, principal.tenant_id, [claim for _, claim in keyed.values()])
        for key, (i, _) in keyed.items():
            outcomes[i] = claims[key]
        todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
        captured = await capture.capture_many(db, principal, [items[i].data for i in todo])
        answered: dict[str, idempotency.Answer] = {}
        refused: list[str] = []
        for i, answer in zip(todo, await _answers(db, principal, captured), strict=True):
            claim = items[i].keyed
            if isinstance(answer, ProblemError):
                outcomes[i] = answer
                if claim is not None:
                    refused.append(claim.key)
                continue
            outcomes[i] = stored = idempotency.Answer(answer.status_code, encode_json(answer.body))
            if claim is not None:
                answered[claim.key] = stored
        await idempotency.settle_many(db, principal.tenant_id, answered, refused)
        done = [outcome for outcome in outcomes if outcome is not None]
        assert len(done) == len(items), "every capture gets an answer"  # else nothing is committed
    relay_if_pending(db)
    return done


_captures: GroupCommit[Principal, _Capture, idempotency.Answer] = GroupCommit(_capture_batch, max_batch=64)


class OrdersApiController(Controller):
    path = "/api/v1"
    tags = ["Orders"]
    guards = [signed_in]
    dependencies = DEPS

    @post("/orders", summary="Capture an order (a resend of the channel's order number returns it)",
          guards=[take_orders], status_code=201)
    async def create_order(self, request: Request[Any, Any, Any], principal: Principal,
                           data: OrderIn) -> Response[Any]:
        # Grouped with the caller's concurrent captures, keyed or not: see _capture_batch.
        keyed = idempotency.keyed(request, await request.body())
        answer = await _captures.submit(principal, _Capture(data, keyed))
        return Response(answer.body, status_code=answer.status_code, media_type="application/json",
                        headers={"Idempotent-Replayed": "true"} if answer.replayed else None)

    @get("/orders", summary="Orders, newest first (keyset pages: pass next_cursor as after)")
    async def list_orders(self, db: AsyncSession, principal: Principal, status: str = "", channel: str = "",
                          location: str = "", delivery_mode: str = "", day_from: str = "", day_to: str = "",
                          q: str = "", payment_status: str = "", after: str | None = None,
                          limit: int = 50) -> OrderPage:
        filters = _filters(status, channel, location, delivery_mode, day_from, day_to, q, payment_status)
        orders, cursor = await queries.list_orders(db, principal, filters, after=after, limit=max(1, min(limit, 200)))
        return OrderPage(orders=[summary_out(o) for o in orders], next_cursor=cursor)

    @get("/orders/{order_id:uuid}", summary="An order with its lines, fulfilments, timeline and routing trace")
    async def get_order(self, db: AsyncSession, principal: Principal, order_id: uuid.UUID) -> OrderOut:
        return order_out(await queries.order_detail(db, principal, order_id))

    @post("/orders/{order_id:uuid}/cancel", summary="Cancel the order, or some units of its lines",
          guards=[take_orders], status_code=200)
    async def cancel_order(self, db: AsyncSession, principal: Principal, order_id: uuid.UUID,
                           data: CancelIn) -> OrderOut:
        lines = [(line.line_no, line.quantity) for line in data.lines] if data.lines is not None else None
        await cancellation.cancel(db, principal, order_id, lines=lines, reason=data.reason)
        await db.flush()
        return order_out(await queries.order_detail(db, principal, order_id))

    @post("/orders/{order_id:uuid}/release", summary="Route an order on hold or backordered again",
          guards=[take_orders], status_code=200)
    async def release_order(self, db: AsyncSession, principal: Principal, order_id: uuid.UUID) -> OrderOut:
        await _release(db, principal, order_id)
        await db.flush()
        return order_out(await queries.order_detail(db, principal, order_id))

    @get("/fulfilments", summary="A location's open fulfilments, oldest first")
    async def list_fulfilments(self, db: AsyncSession, principal: Principal, location: str,
                               all_states: bool = False) -> list[dict[str, Any]]:
        rows = await queries.queue(db, principal, location, open_only=not all_states)
        return [{"order": o.number, "order_id": o.id, **msgspec.structs.asdict(fulfilment_out(f, lines))}
                for f, o, lines in rows]

    @post("/fulfilments/{fulfilment_id:uuid}/{action:str}",
          summary="accept, pick, pack, ship, ready, collect, deliver or reject a fulfilment",
          guards=[handle_fulfilments], status_code=200)
    async def act(self, db: AsyncSession, principal: Principal, fulfilment_id: uuid.UUID, action: str,
                  data: FulfilmentActionIn | None = None) -> FulfilmentOut:
        data = data or FulfilmentActionIn()
        _, done = await fulfilment.act(db, principal, fulfilment_id, action, reason=data.reason,
                                       tracking_number=data.tracking_number)
        return fulfilment_out(done, await fulfilment.lines_of(db, done))


# --- console ------------------------------------------------------------------------------------------

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
        filters = _filters(status, channel, location, delivery_mode, day_from, day_to, q, payment_status)
        orders, cursor = await queries.list_orders(db, principal, filters, after=after)
        template = "orders/_rows.html" if request.headers.get("HX-Request") == "true" and \
            request.headers.get("HX-Target") == "order-rows" else "orders/list.html"
        return page(request, template, orders=orders, cursor=cursor, filters=filters, states=lifecycle.ORDER_STATES,
                    channels=CHANNELS, locations=await sourcing.active_locations(db, principal.tenant_id),
                    can_take=principal.role in TAKERS, query=dict(request.query_params))

    @get("/orders/live")
    async def orders_live(self, principal: Principal) -> ServerSentEvent:
        return _live(principal, None)

    @get("/orders/new", guards=[take_orders])
    async def new_order(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        return page(request, "orders/new.html", channels=CHANNELS, values={"channel": "phone", "mode": "ship"},
                    stores=[loc for loc in await sourcing.active_locations(db, principal.tenant_id)
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
                        stores=[loc for loc in await sourcing.active_locations(db, principal.tenant_id)
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
                if not value.strip().isdigit():
                    raise invalid({key: f"{value!r} is not a number of units."})
                lines.append((int(key.removeprefix("cancel_line_")), int(value)))
        reason = str(form.get("reason") or "")
        whole = form.get("whole") == "1"
        await cancellation.cancel(db, principal, order_id, lines=None if whole else lines, reason=reason)
        return redirect(f"/app/orders/{order_id}", done="order_cancelled")

    @post("/orders/{order_id:uuid}/release", guards=[take_orders])
    async def release_order(self, db: AsyncSession, principal: Principal, order_id: uuid.UUID) -> Redirect:
        await _release(db, principal, order_id)
        return redirect(f"/app/orders/{order_id}", done="order_released")

    @get("/fulfilments")
    async def fulfilment_queue(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                               location: str = "") -> Template:
        locations = await sourcing.active_locations(db, principal.tenant_id)
        code = location or (locations[0].code if locations else "")
        rows = await queries.queue(db, principal, code) if code else []
        template = "orders/_queue.html" if request.headers.get("HX-Request") == "true" else "orders/queue.html"
        return page(request, template, rows=rows, location=code, locations=locations,
                    can_handle=principal.role in HANDLERS)

    @get("/fulfilments/live")
    async def queue_live(self, principal: Principal) -> ServerSentEvent:
        return _live(principal, None)

    @post("/fulfilments/{fulfilment_id:uuid}/{action:str}", guards=[handle_fulfilments])
    async def act(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                  fulfilment_id: uuid.UUID, action: str) -> Redirect:
        form = await request.form()
        order, done = await fulfilment.act(db, principal, fulfilment_id, action,
                                           reason=str(form.get("reason") or ""),
                                           tracking_number=str(form.get("tracking_number") or "") or None)
        back = str(form.get("back") or "")
        target = f"/app/orders/{order.id}" if back == "order" else f"/app/fulfilments?location={done.location_code}"
        return redirect(target, done="fulfilment_updated")


def _order_from_form(values: dict[str, str], principal: Principal) -> OrderIn:
    """The manual order form as the API's order; the totals are computed, not typed."""
    from core import money

    errors: dict[str, str] = {}
    lines: list[dict[str, Any]] = []
    for k in range(10):
        sku = values.get(f"line.{k}.sku", "").strip()
        if not sku:
            continue
        quantity, price = values.get(f"line.{k}.quantity", "1").strip(), values.get(f"line.{k}.price", "").strip()
        minor = money.to_minor(price, principal.currency) if price else None
        if not quantity.lstrip("-").isdigit():
            errors[f"line.{k}.quantity"] = f"Line {k + 1}: {quantity!r} is not a whole number."
            continue
        if minor is None:
            errors[f"line.{k}.price"] = f"Line {k + 1}: give the unit price, such as 19.99."
            continue
        lines.append({"sku": sku, "quantity": int(quantity), "unit_price_minor": minor})
    shipping = money.to_minor(values.get("shipping_fee", "0") or "0", principal.currency)
    if shipping is None:
        errors["shipping_fee"] = "The shipping fee is an amount, such as 4.90."
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    total = sum(int(line["unit_price_minor"]) * int(line["quantity"]) for line in lines) + (shipping or 0)
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
        for name in ("latitude", "longitude"):
            text = values.get(name, "").strip()
            if text:
                try:
                    address[name] = float(text)
                except ValueError:
                    errors[name] = f"{text!r} is not a number."
        raw["delivery"]["address"] = address
    else:
        raw["delivery"]["pickup_location"] = values.get("pickup_location", "").strip() or None
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    try:
        return msgspec.convert(raw, OrderIn)
    except msgspec.ValidationError as exc:
        raise invalid({"__all__": str(exc)}, detail=str(exc)) from None


route_handlers = [OrdersApiController, OrdersPagesController]
