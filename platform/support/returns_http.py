"""Returns in the JSON API and the console: open (agents, or an order-intake key for its
channel's self-service returns page), receive (a store associate at their location, or the
office), inspect, cancel; the returns list, a return's page, and an order's returns panel with
the form that opens one (its effect shown before it is confirmed)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core import idempotency
from core.auth import FOR_ORDER_KEYS, Principal, requires, signed_in
from core.deps import DEPS
from core.forms import decode_json, parse_int
from core.pages import NOTICES, form_data, page, redirect
from core.params import PageSize, id_cursor
from core.problems import ProblemError, invalid
from inventory import locations as inventory_locations
from orders import aftersales
from orders.pages import order_section
from support import exchanges, returns
from support import policy as policies
from support.return_schemas import (
    CancelReturnIn,
    ExchangeIn,
    ExchangeOut,
    InspectIn,
    InspectLineIn,
    ReceiveIn,
    ReplacementIn,
    ReturnIn,
    ReturnLineIn,
    ReturnOut,
    ReturnPage,
)

open_returns = requires(*returns.AGENTS)
receive_returns = requires(*returns.RECEIVERS)

NOTICES.update({
    "return_opened": "Return opened: it is expected at the location named below.",
    "return_received": "Return received: the units are back; inspect them to put them back on sale.",
    "return_inspected": "Return inspected: resellable units are back on hand.",
    "return_cancelled": "Return cancelled.",
    "return_checked": "Refund status checked.",
})


class ReturnsApiController(Controller):
    path = "/api/v1/returns"
    tags = ["Returns"]
    guards = [signed_in]
    dependencies = DEPS

    @post("/", summary="Open a return", guards=[open_returns], opt=FOR_ORDER_KEYS, status_code=201,
          description="Names the order, its lines ([{line_no or order_line_id, quantity, reason_code}]), the method "
                      "(in_store or post) and the location expected to receive it (blank: the first location that "
                      "accepts returns). Refused (422, every problem named, nothing written) for more units than the "
                      "customer has had less those already in returns, after the return window (unless "
                      "override_window by a role the policy allows), for a category the policy excludes, or with a "
                      "reason code not on the company's list. An order-intake key opens returns for its channel's "
                      "orders. With an Idempotency-Key, a retry is answered the first answer.")
    async def open_return(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal
                          ) -> Response[ReturnOut]:
        data = decode_json(await request.body(), ReturnIn)
        via = "api"

        async def create() -> ReturnOut:
            return returns.out(await returns.open_return(db, principal, data, via=via))

        return await idempotency.idempotent_create(request, db, principal, create)

    @get("/", summary="Returns, newest first", opt=FOR_ORDER_KEYS)
    async def list_returns(self, db: AsyncSession, principal: Principal, status: str = "", location: str = "",
                           after: str | None = None, limit: PageSize = 50) -> ReturnPage:
        found, cursor = await returns.listing(db, principal, status=status, location=location[:64],
                                              after=id_cursor(after), limit=limit)
        return ReturnPage(items=[returns.out(item) for item in found], next_cursor=cursor)

    @get("/{return_id:uuid}", summary="A return", opt=FOR_ORDER_KEYS)
    async def get_return(self, db: AsyncSession, principal: Principal, return_id: uuid.UUID) -> ReturnOut:
        return returns.out(await returns.get(db, principal, return_id))

    @post("/{return_id:uuid}/receive", summary="Receive a return at a location", guards=[receive_returns],
          status_code=200,
          description="At any active location that accepts returns; a store associate only at their own. Receiving "
                      "twice is refused (409).")
    async def receive(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      return_id: uuid.UUID) -> ReturnOut:
        await returns.known(db, principal, return_id)  # another company's return: a 404, never a 422
        data = decode_json(await request.body(), ReceiveIn)
        return returns.out(await returns.receive(db, principal, return_id, data.location))

    @post("/{return_id:uuid}/inspect", summary="Inspect a received return, line by line", guards=[receive_returns],
          status_code=200,
          description="Each line resellable (back on hand at the receiving location) or damaged (written off); "
                      "refund false keeps a line's refund (damage by the customer). Refunds then, when the policy "
                      "refunds at inspection.")
    async def inspect(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      return_id: uuid.UUID) -> ReturnOut:
        await returns.known(db, principal, return_id)
        data = decode_json(await request.body(), InspectIn)
        return returns.out(await returns.inspect(db, principal, return_id, data))

    @post("/{return_id:uuid}/cancel", summary="Cancel a return not yet received", guards=[open_returns],
          status_code=200)
    async def cancel(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                     return_id: uuid.UUID) -> ReturnOut:
        await returns.known(db, principal, return_id)
        data = decode_json(await request.body(), CancelReturnIn)
        return returns.out(await returns.cancel(db, principal, return_id, data.reason))


class OrderReturnsApiController(Controller):
    path = "/api/v1/orders"
    tags = ["Returns"]
    guards = [signed_in]
    dependencies = DEPS

    @post("/{order_id:uuid}/exchanges", summary="Start an exchange", guards=[open_returns], status_code=201,
          description="Some units come back (a return, checked as POST /returns checks it) and the replacement "
                      "([{sku, quantity}], at today's prices) goes out as a new order linked to this one, delivered "
                      "the same way: when the return is received, or at once with ship_now (the return is then "
                      "expected within the return window; a task opens if it does not come). A replacement that "
                      "costs more is charged the difference (confirm with charge_difference); one that costs less "
                      "has the difference refunded on this order when the goods come back. With an "
                      "Idempotency-Key, a retry is answered the first answer.")
    async def start_exchange(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                             order_id: uuid.UUID) -> Response[ExchangeOut]:
        await aftersales.visible(db, principal, order_id)  # another company's order: a 404, never a 422
        data = decode_json(await request.body(), ExchangeIn)

        async def create() -> ExchangeOut:
            return await exchanges.start(db, principal, order_id, data)

        return await idempotency.idempotent_create(request, db, principal, create)

    @get("/{order_id:uuid}/returns", summary="An order's returns", opt=FOR_ORDER_KEYS)
    async def order_returns(self, db: AsyncSession, principal: Principal, order_id: uuid.UUID) -> list[ReturnOut]:
        await aftersales.visible(db, principal, order_id)
        return [returns.out(item) for item in await returns.for_order(db, principal, order_id)]


# --- console ---------------------------------------------------------------------------------------

def _return_form(values: dict[str, str], order_id: uuid.UUID, line_nos: list[int]) -> ReturnIn:
    """The order panel's form as a return: ``qty_<line>`` and ``reason_<line>`` per line."""
    lines = []
    errors: dict[str, str] = {}
    for no in line_nos:
        typed = values.get(f"qty_{no}", "").strip()
        if not typed or typed == "0":
            continue
        quantity = parse_int(typed, lo=0, hi=1_000_000)
        if quantity is None:
            errors[f"qty_{no}"] = "Enter a whole number of units."
            continue
        lines.append(ReturnLineIn(line_no=no, quantity=quantity, reason_code=values.get(f"reason_{no}", "")[:40]))
    if errors:
        raise invalid(errors)
    method = values.get("method", "post")
    return ReturnIn(order_id=order_id, lines=lines, method="in_store" if method == "in_store" else "post",
                    location=values.get("location", "")[:64], note=values.get("note", ""),
                    override_window=values.get("override_window") == "on")


def _form_field(field: str, data: ReturnIn | None) -> str:
    """An error of ``lines[i].x`` is shown at the form's field of that line."""
    if field.startswith("replacement"):
        return "replacement_quantity" if field.endswith("quantity") else "replacement_sku"
    if field.startswith("lines[") and "]." in field and data is not None:
        index = parse_int(field[len("lines["):field.index("]")], lo=0)
        if index is not None and index < len(data.lines):
            name = field[field.index("].") + 2:]
            prefix = {"quantity": "qty", "reason_code": "reason", "line_no": "qty"}.get(name, "qty")
            return f"{prefix}_{data.lines[index].line_no}"
    return field


class ReturnsPagesController(Controller):
    path = "/app"
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @get("/returns")
    async def returns_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           status: str = "", location: str = "", after: str | None = None) -> Template:
        found, cursor = await returns.listing(db, principal, status=status if status in returns.STATUS_LABELS else "",
                                              location=location[:64], after=id_cursor(after))
        return page(request, "support/returns.html", items=found, status=status, location=location[:64],
                    statuses=returns.STATUS_LABELS, next_cursor=cursor)

    @get("/returns/{return_id:uuid}")
    async def return_page(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                          return_id: uuid.UUID) -> Template:
        return await _return_page(request, db, principal, return_id)

    @post("/returns/{return_id:uuid}/receive", guards=[receive_returns])
    async def receive(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      return_id: uuid.UUID) -> Template | Redirect:
        async def act(values: dict[str, str]) -> object:
            return await returns.receive(db, principal, return_id, values.get("location", ""))

        return await _step(request, db, principal, return_id, act, done="return_received")

    @post("/returns/{return_id:uuid}/inspect", guards=[receive_returns])
    async def inspect(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      return_id: uuid.UUID) -> Template | Redirect:
        async def act(values: dict[str, str]) -> object:
            found = await returns.get(db, principal, return_id)
            lines = [InspectLineIn(return_line_id=line.id, condition=condition,  # type: ignore[arg-type]
                                   refund=values.get(f"norefund_{line.id}") != "on")
                     for line in found.lines
                     if (condition := values.get(f"condition_{line.id}", "")) in ("resellable", "damaged")]
            return await returns.inspect(db, principal, return_id, InspectIn(lines=lines, note=values.get("note", "")))

        return await _step(request, db, principal, return_id, act, done="return_inspected")

    @post("/returns/{return_id:uuid}/cancel", guards=[open_returns])
    async def cancel(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                     return_id: uuid.UUID) -> Template | Redirect:
        async def act(values: dict[str, str]) -> object:
            return await returns.cancel(db, principal, return_id, values.get("reason", ""))

        return await _step(request, db, principal, return_id, act, done="return_cancelled")

    @post("/returns/{return_id:uuid}/check-refund", guards=[receive_returns])
    async def check_refund(self, db: AsyncSession, principal: Principal, return_id: uuid.UUID) -> Redirect:
        await returns.get(db, principal, return_id)
        await returns.close_paid(db, principal, return_id)
        return redirect(f"/app/returns/{return_id}", done="return_checked")

    @get("/orders/{order_id:uuid}/returns")
    async def order_returns(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                            order_id: uuid.UUID) -> Template:
        return await _order_panel(request, db, principal, order_id)

    @post("/orders/{order_id:uuid}/returns", guards=[open_returns])
    async def open_return(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                          order_id: uuid.UUID) -> Template | Response[Any]:
        """In two steps: the effect (units, refund, where they go back) first, then made when
        confirmed, once under the review's token."""
        values = await form_data(request)
        panel = await returns.panel(db, principal, order_id)
        if values.get("step") == "edit":
            return await _order_panel(request, db, principal, order_id, values=values)
        data: ReturnIn | None = None
        swap: ExchangeIn | None = None
        try:
            data = _return_form(values, order_id, [line.line_no for line in panel.sale.lines])
            swap = _exchange_form(values, data)
            if values.get("step") != "confirm":
                if swap is not None:
                    quote = await exchanges.quote(db, principal, order_id, swap)
                    return await _order_panel(request, db, principal, order_id, values=values, quote=quote,
                                              token=uuid.uuid4().hex)
                preview = await returns.preview(db, principal, data)
                return await _order_panel(request, db, principal, order_id, values=values, preview=preview,
                                          token=uuid.uuid4().hex)
            made = await _open_once(db, principal, data, values.get("token", "")[:64], swap)
        except ProblemError as problem:
            if problem.status != 422:
                raise
            await db.rollback()
            errors = {_form_field(e.field, data): e.message for e in problem.errors} or {"__all__": problem.detail}
            return await _order_panel(request, db, principal, order_id, values=values, errors=errors,
                                      status_code=422)
        target = f"/app/returns/{made}?done=return_opened"
        if request.headers.get("HX-Request") == "true":
            return Response(b"", status_code=204, headers={"HX-Redirect": target})
        return Redirect(target, status_code=303)


def _exchange_form(values: dict[str, str], data: ReturnIn | None) -> ExchangeIn | None:
    """The return as an exchange, when the form names a replacement product."""
    sku = values.get("replacement_sku", "").strip()[:64]
    if not sku or data is None:
        return None
    quantity = parse_int(values.get("replacement_quantity", "1").strip() or "1", lo=0, hi=1_000_000)
    if quantity is None:
        raise invalid({"replacement_quantity": "Enter a whole number of units."})
    return ExchangeIn(lines=data.lines, replacement=[ReplacementIn(sku=sku, quantity=quantity)], method=data.method,
                      location=data.location, note=data.note, override_window=data.override_window,
                      ship_now=values.get("ship_now") == "on",
                      charge_difference=values.get("charge_difference") == "on")


async def _step(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, return_id: uuid.UUID,
                act: Callable[[dict[str, str]], Awaitable[object]], *, done: str) -> Template | Redirect:
    """A step of the return page's forms: done, then back to the page with its notice; or the page
    again with the refusal, nothing changed."""
    values = await form_data(request)
    try:
        await act(values)
    except ProblemError as problem:
        if problem.status not in (403, 409, 422):
            raise
        await db.rollback()
        return await _return_page(request, db, principal, return_id, problem=problem, values=values)
    return redirect(f"/app/returns/{return_id}", done=done)


async def _open_once(db: AsyncSession, principal: Principal, data: ReturnIn, token: str,
                     swap: ExchangeIn | None = None) -> uuid.UUID:
    """The confirmed return (or exchange), opened once under the review's token: a double click
    or a resent form opens no second return."""
    async def made() -> uuid.UUID:
        if swap is not None:
            return (await exchanges.start(db, principal, data.order_id, swap)).return_.id
        return (await returns.open_return(db, principal, data)).row.id

    if not token:
        return await made()
    digest = hashlib.sha256(msgspec.json.encode([data, swap])).hexdigest()
    claim = idempotency.Keyed(f"console-return:{token}", digest, "POST", f"/app/orders/{data.order_id}/returns")
    earlier = (await idempotency.claim_many(db, principal.tenant_id, [claim]))[claim.key]
    if isinstance(earlier, ProblemError):
        raise earlier
    if earlier is not None:
        return uuid.UUID(msgspec.json.decode(earlier.body)["id"])
    opened = await made()
    answer = idempotency.Answer(201, msgspec.json.encode({"id": str(opened)}))
    await idempotency.settle_many(db, principal.tenant_id, {claim.key: answer}, [])
    return opened


@order_section
async def returns_section(db: AsyncSession, principal: Principal, order: Any) -> tuple[str, Any] | None:
    """The order's returns on its page, with the form that opens one (or an exchange)."""
    return "support/_order_returns_section.html", await _panel_context(db, principal, order.id)


async def _panel_context(db: AsyncSession, principal: Principal, order_id: uuid.UUID) -> dict[str, Any]:
    panel = await returns.panel(db, principal, order_id)
    stores = [loc for loc in await inventory_locations.active(db, principal.tenant_id) if loc.accepts_returns]
    return dict(panel=panel, order=panel.sale.order, locations=stores,
                reasons=[(code, returns.reason_label(code)) for code in panel.policy.reason_codes],
                can_open=principal.role in returns.AGENTS,
                may_override=panel.policy.may_override_window(principal.role),
                statuses=returns.STATUS_LABELS, reason_label=returns.reason_label)


async def _order_panel(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       order_id: uuid.UUID, *, values: dict[str, str] | None = None,
                       errors: dict[str, str] | None = None, preview: returns.Preview | None = None,
                       quote: exchanges.Quote | None = None, token: str = "", status_code: int = 200) -> Template:
    template = "support/_order_returns.html" if request.headers.get("HX-Request") == "true" \
        else "support/order_returns.html"
    return page(request, template, status_code=status_code, values=values or {}, errors=errors or {},
                preview=preview, quote=quote, token=token, **await _panel_context(db, principal, order_id))


async def _return_page(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       return_id: uuid.UUID, *, problem: ProblemError | None = None,
                       values: dict[str, str] | None = None) -> Template:
    found = await returns.get(db, principal, return_id)
    receivers = [loc for loc in await inventory_locations.active(db, principal.tenant_id)
                 if loc.accepts_returns and principal.works_at(loc.code)]
    policy = await policies.current(db, principal.tenant_id)
    return page(request, "support/return.html", status_code=problem.status if problem else 200, item=found,
                row=found.row, receivers=receivers, statuses=returns.STATUS_LABELS,
                reason_label=returns.reason_label, can_open=principal.role in returns.AGENTS,
                can_receive=principal.role in returns.RECEIVERS, problem=problem,
                errors={e.field: e.message for e in problem.errors} if problem else {}, values=values or {},
                policy=policy, currency=principal.currency)


route_handlers = [ReturnsApiController, OrderReturnsApiController, ReturnsPagesController]
