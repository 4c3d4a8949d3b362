"""Orders in the console: the orders list, the order page, the manual order form, a location's
fulfilment queue (refreshed live over server-sent events), and Settings → Orders and →
Payments. The customer-service task queue is support's (``support.tasks_http``)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.response import Redirect, ServerSentEvent, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core import live
from core.auth import Principal, admins_only, signed_in
from core.deps import DEPS
from core.forms import parse_int
from core.pages import NOTICES, client_ip, form_data, form_errors, page, redirect
from core.problems import ProblemError, invalid, not_found
from inventory import catalog
from inventory import locations as inventory_locations
from orders import (
    allocation,
    amendments,
    cancellation,
    carriers,
    documents,
    fulfilment,
    lifecycle,
    manual,
    payments,
    queries,
    refunds,
    service_tasks,
    wording,
)
from orders.guards import HANDLERS, TAKERS, handle_fulfilments, take_orders
from orders.notification_pages import NotificationSettingsPagesController
from rules.fields import CHANNELS
from tenants import service as tenants

PRODUCTS_SHOWN = 20  # matches of the manual order's product search

NOTICES.update({
    "order_created": "Order received: it is being routed.",
    # What a cancellation did, never more: a refund is mentioned only when one was recorded.
    "order_cancelled_refunded": "Order cancelled: its stock is released and the refund is recorded.",
    "order_cancelled_nothing_to_refund": "Order cancelled: its stock is released. Nothing to refund: no payment "
                                         "was captured.",
    "units_cancelled_refunded": "Units cancelled: their stock is released and their refund is recorded.",
    "units_cancelled_nothing_to_refund": "Units cancelled: their stock is released. Nothing to refund: no payment "
                                         "was captured for them.",
    "order_released": "Released: the order is being routed again.",
    "refund_made": "Refund recorded: it is on the order's refund ledger.",
    "fulfilment_updated": "Fulfilment updated.",
})


NOTICES.update({"order_settings_saved": "Order settings saved."})


NOTICES.update({"stripe_saved": "Stripe account saved: Stripe orders are captured at shipment."})



def _live(principal: Principal, *, order_id: uuid.UUID | None = None,
          locations: frozenset[str] | None = None) -> ServerSentEvent:
    """A ``changed`` event whenever the order (or any order the page shows) gets a timeline entry."""
    return live.stream(principal, live.Interest(tenant_id=principal.tenant_id, kinds=frozenset({"orders"}),
                                                order_id=order_id, locations=locations))


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
        return _live(principal, locations=principal.locations)

    @get("/orders/new", guards=[take_orders])
    async def new_order(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal) -> Template:
        country = principal.locale.partition("_")[2]
        draft = await manual.read(db, principal, {"channel": "phone", "mode": "ship", "country": country})
        return await _builder(request, db, principal, draft)

    @get("/orders/new/products", guards=[take_orders])
    async def find_products(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                            q: str = "") -> Template:
        """The manual order's product search (htmx, as the person types)."""
        q = q.strip()[:100]
        return page(request, "orders/_new_products.html", q=q, limit=PRODUCTS_SHOWN,
                    products=await catalog.find_for_sale(db, principal.tenant_id, q, limit=PRODUCTS_SHOWN))

    @post("/orders/new/lines", guards=[take_orders])
    async def builder_lines(self, request: Request[Any, Any, Any], db: AsyncSession,
                            principal: Principal) -> Template:
        """The manual order's lines and total after a product is added or removed, a quantity or a
        price changed (htmx): the server counts, the page shows."""
        values = await form_data(request)
        draft = await manual.read(db, principal, values, add=values.get("add"),
                                  remove=parse_int(values.get("remove"), lo=0))
        total_only = request.headers.get("HX-Target") == "order-total"
        return page(request, "orders/_new_total.html" if total_only else "orders/_new_lines.html", draft=draft,
                    values=draft.form_values(), errors=draft.errors, total_only=total_only)

    @post("/orders/new", guards=[take_orders])
    async def create_order(self, request: Request[Any, Any, Any], db: AsyncSession,
                           principal: Principal) -> Template | Redirect:
        """Every step of the manual order without JavaScript (search, add, remove, update the
        total), then its review and its placing, once."""
        values = await form_data(request)
        action = values.get("action", "review")
        draft = await manual.read(db, principal, values, add=values.get("add"),
                                  remove=parse_int(values.get("remove"), lo=0))
        if values.get("add") or values.get("remove") or action not in ("review", "place"):
            return await _builder(request, db, principal, draft, show_errors=action != "edit")
        data = await manual.check(db, principal, draft)
        if data is None:
            return await _builder(request, db, principal, draft, status_code=422)
        if action == "review":
            return _review(request, principal, draft, manual.new_token())
        token = values.get("order_token", "")
        if not re.fullmatch(r"[0-9a-f]{32}", token):
            return _review(request, principal, draft, manual.new_token())
        try:
            order_id = await manual.place(db, principal, token, data)
        except ProblemError as problem:
            if problem.status not in (409, 422):
                raise
            await db.rollback()
            # Something changed since the review (a product withdrawn, a store paused...).
            for name, message in form_errors(problem).items():
                draft.errors.setdefault(manual.form_field(name), message)
            return await _builder(request, db, principal, draft, status_code=problem.status)
        return redirect(f"/app/orders/{order_id}", done="order_created")

    @get("/orders/{order_id:uuid}")
    async def order_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                         order_id: uuid.UUID) -> Template:
        return await _order_page(request, db, principal, order_id)

    @get("/orders/{order_id:uuid}/live")
    async def order_live(self, db: AsyncSession, principal: Principal, order_id: uuid.UUID) -> ServerSentEvent:
        await queries.get_order(db, principal, order_id)  # 404 for another company's order
        return _live(principal, order_id=order_id)

    @post("/orders/{order_id:uuid}/cancel", guards=[take_orders])
    async def cancel_order(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           order_id: uuid.UUID) -> Template | Redirect:
        values = await form_data(request)
        whole = values.get("whole") == "1"
        lines, errors = [], {}
        for key, value in values.items():
            if key.startswith("cancel_line_") and value.strip() not in ("", "0"):
                units, line_no = parse_int(value, lo=0), parse_int(key.removeprefix("cancel_line_"), lo=1)
                if units is None or line_no is None:
                    errors[key] = f"{value[:20]!r} is not a number of units: type a whole number, such as 2."
                else:
                    lines.append((line_no, units))
        try:
            if errors and not whole:
                raise invalid(errors)
            done = await cancellation.cancel(db, principal, order_id, lines=None if whole else lines,
                                             reason=values.get("reason", ""))
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            # The line fields of the API's answer ("lines[0].quantity") are the form's fields here.
            shown = {_cancel_field(field, lines): message for field, message in form_errors(problem).items()}
            return await _order_page(request, db, principal, order_id, status_code=422, errors=shown,
                                     values=values)
        return redirect(f"/app/orders/{order_id}", done=_cancel_notice(done))

    @post("/orders/{order_id:uuid}/release", guards=[take_orders])
    async def release_order(self, db: AsyncSession, principal: Principal, order_id: uuid.UUID) -> Redirect:
        await allocation.release(db, principal, order_id)
        return redirect(f"/app/orders/{order_id}", done="order_released")

    @get("/fulfilments")
    async def fulfilment_queue(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                               location: str = "") -> Template:
        # A store associate sees their own locations' queues only (another's answers 404).
        template = "orders/_queue.html" if request.headers.get("HX-Request") == "true" else "orders/queue.html"
        return page(request, template, **await _queue(db, principal, location))

    @get("/fulfilments/live")
    async def queue_live(self, principal: Principal, location: str = "") -> ServerSentEvent:
        if (location and not principal.works_at(location)) or (not location and principal.locations is not None):
            raise not_found("Location")
        return _live(principal, locations=frozenset({location}) if location else principal.locations)

    @post("/fulfilments/{fulfilment_id:uuid}/{action:str}", guards=[handle_fulfilments])
    async def act(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                  fulfilment_id: uuid.UUID, action: str) -> Template | Redirect:
        """One step of a fulfilment. From the queue with htmx, the answer is that fulfilment's card
        alone (its problems inside it); without, a redirect back, or the queue with the ship form's
        problems next to its fields."""
        values = await form_data(request)
        back, here = values.get("back", ""), values.get("location", "")
        swap = request.headers.get("HX-Request") == "true" and back != "order"
        carrier = values.get("carrier") or None
        try:
            order, done = await fulfilment.act(
                db, principal, fulfilment_id, action, reason=values.get("reason", ""),
                tracking_number=values.get("tracking_number") or None, carrier=carrier,
                # The link is typed for another carrier only: what stayed in the field after choosing a
                # listed one is not what the person meant.
                tracking_url=(values.get("tracking_url") or None) if carrier == carriers.OTHER else None,
                carrier_required=True)
        except ProblemError as problem:
            if problem.status not in (409, 422) or back == "order" or (problem.status == 409 and not swap):
                raise
            await db.rollback()
            context = await _queue(db, principal, here, failed=fulfilment_id, errors=form_errors(problem),
                                   values=values, problem=problem)
            row = next((r for r in context["rows"] if r[0].id == fulfilment_id), None)
            if swap:  # htmx swaps 2xx answers only: the card with its problems (or them, the card gone)
                return page(request, "orders/_queue_card.html", row=row, gone=problem.detail, **context)
            if row is None:
                raise
            return page(request, "orders/queue.html", status_code=problem.status, **context)
        here = here if here in (done.location_code, done.ship_to_store) else done.location_code
        if swap:
            return await _card(request, db, principal, order, done, here)
        target = f"/app/orders/{order.id}" if back == "order" else f"/app/fulfilments?location={quote(here)}"
        return redirect(target, done="fulfilment_updated")


class FulfilmentDocumentsController(Controller):
    """What the stock room prints: a location's pick list and a fulfilment's packing slip, each
    as a page to print and as PDF."""

    path = "/app/fulfilments"
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @get("/pick-list")
    async def pick_list(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                        location: str = "") -> Template:
        picks = await documents.pick_list(db, principal, location or await _first_location(db, principal))
        return page(request, "orders/pick_list.html", picks=picks)

    @get("/pick-list.pdf")
    async def pick_list_pdf(self, db: AsyncSession, principal: Principal, location: str = "") -> Response[bytes]:
        picks = await documents.pick_list(db, principal, location or await _first_location(db, principal))
        return await documents.pdf_response(documents.pick_list_pdf, picks, principal.timezone,
                                            name=f"pick-list-{picks.location.code}")

    @get("/{fulfilment_id:uuid}/packing-slip")
    async def packing_slip(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           fulfilment_id: uuid.UUID) -> Template:
        slip = await documents.packing_slip(db, principal, fulfilment_id)
        return page(request, "orders/packing_slip.html", slip=slip)

    @get("/{fulfilment_id:uuid}/packing-slip.pdf")
    async def packing_slip_pdf(self, db: AsyncSession, principal: Principal,
                               fulfilment_id: uuid.UUID) -> Response[bytes]:
        slip = await documents.packing_slip(db, principal, fulfilment_id)
        return await documents.pdf_response(documents.packing_slip_pdf, slip, principal.timezone,
                                            name=f"packing-slip-{slip.fulfilment.number}")


async def _first_location(db: AsyncSession, principal: Principal) -> str:
    for loc in await inventory_locations.active(db, principal.tenant_id):
        if principal.works_at(loc.code):
            return loc.code
    return ""


async def _queue(db: AsyncSession, principal: Principal, location: str, *, failed: uuid.UUID | None = None,
                 errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                 problem: ProblemError | None = None) -> dict[str, Any]:
    """What the queue page shows: the location's work, the names of what it handles, the carriers
    to offer (the location's country's first) and, after a refused step, its problems."""
    locations = [loc for loc in await inventory_locations.active(db, principal.tenant_id)
                 if principal.works_at(loc.code)]
    code = location or (locations[0].code if locations else "")
    rows = await queries.queue(db, principal, code) if code else []
    here = next((loc for loc in locations if loc.code == code), None)
    names = await fulfilment.line_names(db, principal.tenant_id, [line for _, _, lines in rows for line in lines])
    to_pick = sum(1 for f, _, _ in rows if f.location_code == code and f.status in documents.PICKING)
    return {"rows": rows, "location": code, "locations": locations, "can_handle": principal.role in HANDLERS,
            "names": names, "carriers": carriers.choices(here.country if here else None), "to_pick": to_pick,
            "carrier_name": carriers.name_of,
            "failed": failed, "errors": errors or {}, "values": values or {}, "problem": problem}


async def _card(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, order: Any,
                done: Any, here: str) -> Template:
    """The fulfilment's card after a step: as it is now while the location still has work on it,
    else a line saying what was done."""
    in_queue = (done.location_code == here and done.status in queries.OPEN) or (
        done.kind == "transfer" and done.ship_to_store == here and done.status in queries.ARRIVING)
    context: dict[str, Any] = {"location": here, "can_handle": principal.role in HANDLERS, "failed": None,
                               "errors": {}, "values": {}, "problem": None, "names": {}, "carriers": [],
                               "carrier_name": carriers.name_of}
    if not in_queue:
        return page(request, "orders/_queue_card.html", row=None, finished=done, **context)
    lines = await fulfilment.lines_of(db, done)
    place = (await inventory_locations.by_codes(db, principal.tenant_id, [here])).get(here)
    context["names"] = await fulfilment.line_names(db, principal.tenant_id, lines)
    context["carriers"] = carriers.choices(place.country if place else None)
    return page(request, "orders/_queue_card.html", row=(done, order, lines), **context)


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


# Parts of the order page that higher domains give (customer service's goodwill requests...): each
# returns the template to include and what it shows, or None when it has nothing for the order.
# The template reads its part as ``section``. Registered at import with ``@order_section``.
OrderSection = Callable[[AsyncSession, Principal, Any], Awaitable[tuple[str, Any] | None]]
ORDER_SECTIONS: list[OrderSection] = []


def order_section(section: OrderSection) -> OrderSection:
    ORDER_SECTIONS.append(section)
    return section


async def _order_page(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      order_id: uuid.UUID, *, status_code: int = 200, errors: dict[str, str] | None = None,
                      values: dict[str, str] | None = None, refund_errors: dict[str, str] | None = None,
                      refund_values: dict[str, str] | None = None,
                      refund_review: dict[str, Any] | None = None, **more: Any) -> Template:
    """The order page (or, for htmx, its panel): its money as placed and as it stands, and its
    payment and timeline in words (``orders.wording``); with the parts other domains give
    (``ORDER_SECTIONS``) and what their forms need (``more``)."""
    detail = await queries.order_detail(db, principal, order_id)
    order = detail.order
    template = "orders/_order.html" if request.headers.get("HX-Request") == "true" else "orders/order.html"
    tasks, _ = await service_tasks.listing(db, principal, status="open", order_id=order_id)
    figures = payments.figures(order, detail.lines)
    by_status = await payments.refunds_by_status(db, order) if order.refunded_minor else {}
    words = wording.payment_sentence(order, figures, locale=principal.locale,
                                     refunds_waiting=by_status.get("pending", 0),
                                     refunds_failed=by_status.get("failed", 0))
    return page(request, template, status_code=status_code, detail=detail, order=order,
                can_take=principal.role in TAKERS, can_handle=principal.role in HANDLERS,
                tasks=[row.task for row in tasks], task_kinds=service_tasks.KINDS, figures=figures,
                payment_words=words, balance_label=wording.balance_label(order, figures),
                event_title=wording.event_title, errors=errors or {}, values=values or {},
                carrier_name=carriers.name_of, ledger=(await refunds.ledger(db, principal, order_id)).refunds,
                refund_errors=refund_errors or {}, refund_values=refund_values or {}, refund_review=refund_review,
                sections=[part for section in ORDER_SECTIONS if (part := await section(db, principal, order))],
                amend_offer=await amendments.offer(db, principal, order, [f for f, _ in detail.fulfilments]),
                **more)


render_order_page = _order_page  # for the forms other domains put on the order page


def _cancel_field(field: str, lines: list[tuple[int, int]]) -> str:
    """``lines[i].quantity`` of the cancellation is the form's ``cancel_line_<line number>``."""
    if field.startswith("lines[") and "]" in field:
        index = parse_int(field[len("lines["):field.index("]")], lo=0)
        if index is not None and index < len(lines):
            return f"cancel_line_{lines[index][0]}"
    return "lines" if field == "__all__" else field


def _cancel_notice(done: cancellation.Cancelled) -> str:
    if done.refunded_minor > 0:
        return "order_cancelled_refunded" if done.whole else "units_cancelled_refunded"
    return "order_cancelled_nothing_to_refund" if done.whole else "units_cancelled_nothing_to_refund"


async def _builder(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, draft: manual.Draft,
                   *, status_code: int = 200, show_errors: bool = True) -> Template:
    """The manual order form, with what the person asked for done (and the search results, when
    searching without JavaScript)."""
    q = draft.values.get("q", "").strip()[:100]
    products = await catalog.find_for_sale(db, principal.tenant_id, q, limit=PRODUCTS_SHOWN) if q else []
    stores = [loc for loc in await inventory_locations.active(db, principal.tenant_id) if loc.click_and_collect]
    return page(request, "orders/new.html", status_code=status_code, channels=CHANNELS, stores=stores, draft=draft,
                values=draft.form_values(), errors=draft.errors if show_errors else {}, q=q, products=products,
                limit=PRODUCTS_SHOWN, modes=manual.DELIVERY_MODES, review=False)


def _review(request: Request[Any, Any, Any], principal: Principal, draft: manual.Draft, token: str) -> Template:
    """The order as it will be placed, its total, and the button that places it."""
    return page(request, "orders/new.html", draft=draft, values=draft.form_values(), token=token,
                modes=manual.DELIVERY_MODES, review=True)


route_handlers = [OrdersPagesController, FulfilmentDocumentsController,
                  OrderSettingsPagesController, PaymentsPagesController, NotificationSettingsPagesController]
