"""Orders in the JSON API: capture (group-committed, under Idempotency-Keys), listing, an order's
detail, cancellation and release, fulfilment actions, the company's order settings and its
Stripe account. Customer-service tasks are support's (``support.tasks_http``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Controller, Request, Response, get, post, put
from litestar.params import Parameter
from litestar.serialization import encode_json
from sqlalchemy.ext.asyncio import AsyncSession

from core import idempotency
from core.auth import FOR_ORDER_KEYS, Principal, admins_only, signed_in
from core.db import get_database
from core.deps import DEPS, relay_if_pending
from core.group_commit import NEXT_BATCH, GroupCommit, NextBatch
from core.idempotency import WithStatus
from core.pages import client_ip
from core.params import PageSize
from core.problems import ProblemError
from orders import (
    allocation,
    cancellation,
    capture,
    carriers,
    documents,
    fulfilment,
    payments,
    queries,
)
from orders.guards import handle_fulfilments, take_orders
from orders.models import Fulfilment, FulfilmentLine, Order, OrderEvent, OrderLine
from orders.schemas import (
    CancelIn,
    CarrierOut,
    FulfilmentActionIn,
    FulfilmentLineOut,
    FulfilmentOut,
    OrderEventOut,
    OrderIn,
    OrderLineOut,
    OrderOut,
    OrderPage,
    OrderSettings,
    OrderSummaryOut,
    PickListLineOut,
    PickListOut,
    StripeAccountIn,
    TrackingEventIn,
    TrackingEventOut,
)
from tenants import service as tenants


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
        language=order.language,
    )


def line_out(line: OrderLine) -> OrderLineOut:
    return OrderLineOut(id=line.id, line_no=line.line_no, sku=line.sku, name=line.name, quantity=line.quantity,
                        unit_price_minor=line.unit_price_minor, discount_minor=line.discount_minor,
                        order_discount_minor=line.order_discount_minor,
                        allocated=line.qty_allocated, shipped=line.qty_shipped, cancelled=line.qty_cancelled,
                        returned=line.qty_returned)


def fulfilment_out(f: Fulfilment, lines: list[FulfilmentLine]) -> FulfilmentOut:
    return FulfilmentOut(id=f.id, number=f.number, location=f.location_code, kind=f.kind,
                         ship_to_store=f.ship_to_store, status=f.status, reason=f.reason,
                         lines=[FulfilmentLineOut(sku=line.sku, quantity=line.quantity) for line in lines
                                if line.quantity > 0],
                         created_at=f.created_at, updated_at=f.updated_at, carrier=f.carrier,
                         carrier_name=carriers.name_of(f.carrier) or None, tracking_number=f.tracking_number,
                         tracking_url=f.tracking_url, shipped_at=f.shipped_at, delivered_at=f.delivered_at)


def event_out(e: OrderEvent) -> OrderEventOut:
    return OrderEventOut(id=e.id, kind=e.kind, from_status=e.from_status, to_status=e.to_status, actor=e.actor,
                         reason=e.reason, data=e.data, created_at=e.created_at)


def summary_out(order: Order) -> OrderSummaryOut:
    return OrderSummaryOut(id=order.id, number=order.number, channel=order.channel,
                           external_number=order.external_number, status=order.status,
                           total_minor=order.total_minor, currency=order.currency,
                           delivery_mode=order.delivery_mode, customer_email=order.customer_email,
                           placed_at=order.placed_at)


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
          guards=[take_orders], status_code=201, opt=FOR_ORDER_KEYS)
    async def create_order(self, request: Request[Any, Any, Any], principal: Principal,
                           data: OrderIn) -> Response[Any]:
        # Grouped with the caller's concurrent captures, keyed or not: see _capture_batch.
        keyed = idempotency.keyed(request, await request.body())
        answer = await _captures.submit(principal, _Capture(data, keyed))
        return Response(answer.body, status_code=answer.status_code, media_type="application/json",
                        headers={"Idempotent-Replayed": "true"} if answer.replayed else None)

    @get("/orders", summary="Orders, newest first (keyset pages: pass next_cursor as after)", opt=FOR_ORDER_KEYS)
    async def list_orders(self, db: AsyncSession, principal: Principal, status: str = "", channel: str = "",
                          location: str = "", delivery_mode: str = "", day_from: str = "", day_to: str = "",
                          q: str = "", payment_status: str = "", after: str | None = None,
                          limit: PageSize = 50) -> OrderPage:
        filters = queries.filters_of(status, channel, location, delivery_mode, day_from, day_to, q, payment_status)
        orders, cursor = await queries.list_orders(db, principal, filters, after=after, limit=max(1, min(limit, 200)))
        return OrderPage(orders=[summary_out(o) for o in orders], next_cursor=cursor)

    @get("/orders/{order_id:uuid}", summary="An order with its lines, fulfilments, timeline and routing trace",
         opt=FOR_ORDER_KEYS)
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

    # The refund ledger (GET and POST /orders/{order_id}/refunds, goodwill within each role's limits) is
    # customer service's: support/goodwill_http.py.

    @post("/orders/{order_id:uuid}/release", summary="Route an order on hold or backordered again",
          guards=[take_orders], status_code=200)
    async def release_order(self, db: AsyncSession, principal: Principal, order_id: uuid.UUID) -> OrderOut:
        await allocation.release(db, principal, order_id)
        await db.flush()
        return order_out(await queries.order_detail(db, principal, order_id))

    @get("/fulfilments", summary="A location's open fulfilments, oldest first")
    async def list_fulfilments(self, db: AsyncSession, principal: Principal, location: str,
                               all_states: bool = False) -> list[dict[str, Any]]:
        rows = await queries.queue(db, principal, location, open_only=not all_states)
        return [{"order": o.number, "order_id": o.id, **msgspec.structs.asdict(fulfilment_out(f, lines))}
                for f, o, lines in rows]

    @get("/fulfilments/pick-list", summary="A location's pick list: the units its accepted fulfilments need, by SKU")
    async def pick_list(self, db: AsyncSession, principal: Principal, location: str) -> PickListOut:
        picks = await documents.pick_list(db, principal, location)
        return PickListOut(location=picks.location.code, fulfilments=picks.fulfilments,
                           lines=[PickListLineOut(sku=line.sku, name=line.name, quantity=line.quantity, bin=line.bin,
                                                  fulfilments=line.fulfilments) for line in picks.lines])

    @get("/fulfilments/{fulfilment_id:uuid}/packing-slip", summary="A fulfilment's packing slip, as PDF",
         media_type="application/pdf")
    async def packing_slip(self, db: AsyncSession, principal: Principal, fulfilment_id: uuid.UUID) -> Response[bytes]:
        slip = await documents.packing_slip(db, principal, fulfilment_id)
        return await documents.pdf_response(documents.packing_slip_pdf, slip, principal.timezone,
                                            name=f"packing-slip-{slip.fulfilment.number}")

    @post("/fulfilments/{fulfilment_id:uuid}/{action:str}",
          summary="accept, pick, pack, ship, ready, collect, deliver or reject a fulfilment",
          description="Shipping takes the carrier (a code of GET /carriers, or 'other'), its tracking number "
                      "(required with a listed carrier, whose tracking link is then made from it) and, for "
                      "'other', an optional tracking_url; all three may be left out for a parcel without "
                      "tracking. Delivering takes an optional delivered_at; delivering what is delivered "
                      "changes nothing. Every problem is answered at once (422, by field).",
          guards=[handle_fulfilments], status_code=200)
    async def act(self, db: AsyncSession, principal: Principal, fulfilment_id: uuid.UUID, action: str,
                  data: FulfilmentActionIn | None = None) -> FulfilmentOut:
        data = data or FulfilmentActionIn()
        _, done = await fulfilment.act(db, principal, fulfilment_id, action, reason=data.reason,
                                       tracking_number=data.tracking_number, carrier=data.carrier,
                                       tracking_url=data.tracking_url, delivered_at=data.delivered_at)
        return fulfilment_out(done, await fulfilment.lines_of(db, done))

    @get("/carriers", summary="The carriers a parcel may ship with, a country's first")
    async def list_carriers(self, country: Annotated[str, Parameter(max_length=2)] = "") -> list[CarrierOut]:
        return [CarrierOut(code=c.code, name=c.name, countries=list(c.countries), tracking_url=c.tracking_url)
                for c in carriers.choices(country)]

    @post("/tracking-events", summary="A carrier's news of a parcel: delivered, in transit, or a problem",
          description="For a carrier's (or a shipping tool's) tracking webhook, with an admin key. The parcel is "
                      "found by carrier and tracking number: 'delivered' delivers its fulfilment (the order is "
                      "delivered once all its parcels are), 'in_transit' and 'exception' go on the order's "
                      "timeline, and an exception opens a customer-service task. The same news again changes "
                      "nothing (changed: false). An unknown tracking number is 404.",
          guards=[handle_fulfilments], status_code=200)
    async def tracking_event(self, db: AsyncSession, principal: Principal, data: TrackingEventIn) -> TrackingEventOut:
        outcome = await fulfilment.tracking_event(db, principal, carrier=data.carrier,
                                                  tracking_number=data.tracking_number, status=data.status,
                                                  occurred_at=data.occurred_at, detail=data.detail)
        return TrackingEventOut(changed=outcome.changed,
                                fulfilments=[fulfilment_out(f, await fulfilment.lines_of(db, f))
                                             for f in outcome.fulfilments])


class OrderSettingsApiController(Controller):
    path = "/api/v1/settings/orders"
    tags = ["Account"]
    guards = [admins_only]
    dependencies = DEPS

    @get("/", summary="The company's order settings (the pickup window)")
    async def get_settings(self, db: AsyncSession, principal: Principal) -> OrderSettings:
        return OrderSettings(pickup_window_days=(await tenants.get_tenant(db, principal)).pickup_window_days)

    @put("/", summary="Change the company's order settings")
    async def put_settings(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           data: OrderSettings) -> OrderSettings:
        tenant = await tenants.set_pickup_window(db, principal, data.pickup_window_days, ip=client_ip(request))
        return OrderSettings(pickup_window_days=tenant.pickup_window_days)


class PaymentsApiController(Controller):
    path = "/api/v1/payment-accounts"
    tags = ["Payments"]
    guards = [admins_only]
    dependencies = DEPS

    @get("/stripe", summary="The company's Stripe account (the key masked)")
    async def get_stripe(self, db: AsyncSession, principal: Principal) -> dict[str, Any]:
        account = await payments.stripe_account(db, principal)
        return {"configured": account is not None,
                "secret_key": payments.masked(account.secret_key) if account else None}

    @put("/stripe", summary="Set the company's Stripe secret key")
    async def put_stripe(self, db: AsyncSession, principal: Principal, data: StripeAccountIn) -> dict[str, Any]:
        account = await payments.save_stripe(db, principal, data.secret_key)
        return {"configured": True, "secret_key": payments.masked(account.secret_key)}


route_handlers = [OrdersApiController, OrderSettingsApiController, PaymentsApiController]
