"""Goodwill refunds, API and console: asked for within the asker's limit (made at once) or above
it (a request waits for approval), approved or declined by someone whose limit covers it. The
ledger itself (``orders.refunds``) is orders'; its listing is served here with the POST, as Litestar
wants one controller per path."""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core import idempotency
from core.auth import Principal, signed_in
from core.deps import DEPS
from core.forms import decode_json
from core.locale import money_input, parse_money
from core.pages import NOTICES, client_ip, form_data, form_errors, redirect
from core.problems import ProblemError
from orders import queries, refunds
from orders.guards import take_orders
from orders.pages import order_section, render_order_page
from orders.schemas import RefundIn, RefundOut
from support import goodwill
from support import policy as policies
from support.goodwill_schemas import DeclineIn, GoodwillRequestOut, GoodwillWaitingOut

NOTICES.update({
    "goodwill_waiting": "Above your goodwill limit: nothing is refunded yet. The refund waits for approval by "
                        "someone whose limit covers it; a task is open on the order.",
    "goodwill_approved": "Goodwill approved: the refund is on the order's refund ledger.",
    "goodwill_declined": "Goodwill declined: nothing was refunded, and the note is on the order's timeline.",
})

# The API's names of a refund's fields, as the order page's goodwill form names them.
_REFUND_FIELDS = {"amount_minor": "refund_amount", "reason": "refund_reason", "__all__": "refund_amount"}


class GoodwillApiController(Controller):
    path = "/api/v1"
    tags = ["Customer service"]
    guards = [signed_in]
    dependencies = DEPS

    @post("/orders/{order_id:uuid}/refunds", summary="Refund an order as goodwill, within your role's limits",
          guards=[take_orders], status_code=201,
          responses={202: ResponseSpec(GoodwillWaitingOut, description="Above your limit: nothing refunded, the "
                                                                     "refund waits for approval")},
          description="Gives back amount_minor of what was captured, with a reason (required). Optional lines "
                      "([{line_no or order_line_id, amount_minor}]) and shipping_minor say which parts of it go "
                      "to which line and to shipping. Refused (422, every problem named, nothing written) beyond "
                      "what is left of the captured amount, beyond what a line's net has left, or beyond the "
                      "shipping fee. Above the caller's goodwill limit (per refund, or per month with what they "
                      "gave this calendar month; Settings → Returns) nothing is refunded: the answer is 202 "
                      '{"status": "waiting_approval", "request_id", ...} and a goodwill_approval task waits on '
                      "the order for someone whose limit covers it (POST /goodwill-requests/{id}/approve). "
                      "With an Idempotency-Key, a retry is answered the first answer, never refunding or asking "
                      "twice.")
    async def create_refund(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                            order_id: uuid.UUID) -> Response[RefundOut | GoodwillWaitingOut]:
        # Find the order before reading the body: another company's order is a 404, never a 422.
        await queries.get_order(db, principal, order_id)
        data = decode_json(await request.body(), RefundIn)

        async def create() -> idempotency.WithStatus:
            return (await goodwill.give(db, principal, order_id, data, ip=client_ip(request))).answer()

        return await idempotency.idempotent_create(request, db, principal, create)

    @get("/orders/{order_id:uuid}/refunds", summary="The order's refund ledger, newest first")
    async def list_refunds(self, db: AsyncSession, principal: Principal, order_id: uuid.UUID) -> list[RefundOut]:
        # Here with the POST: one path is served by one controller.
        return (await refunds.ledger(db, principal, order_id)).refunds

    @get("/orders/{order_id:uuid}/goodwill-requests",
         summary="The order's goodwill requests (refunds above their asker's limit), newest first")
    async def list_requests(self, db: AsyncSession, principal: Principal,
                            order_id: uuid.UUID) -> list[GoodwillRequestOut]:
        order, rows = await goodwill.of_order(db, principal, order_id)
        return [goodwill.request_out(row, order.currency) for row in rows]

    @get("/goodwill-requests/{request_id:uuid}", summary="One goodwill request")
    async def get_request(self, db: AsyncSession, principal: Principal, request_id: uuid.UUID) -> GoodwillRequestOut:
        return goodwill.request_out(*await goodwill.one(db, principal, request_id))

    @post("/goodwill-requests/{request_id:uuid}/approve", guards=[take_orders], status_code=200,
          summary="Approve a goodwill request: the refund is made in your name",
          description="For someone other than its asker whose own limit covers it (per refund, and their own "
                      "month). Refused: 403 for the asker or above your limit; 409 when already decided; 422 "
                      "when the order can no longer give that much back (the request still waits). Two "
                      "approvals at once make one refund.")
    async def approve(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      request_id: uuid.UUID) -> GoodwillRequestOut:
        row, _, currency = await goodwill.approve(db, principal, request_id, ip=client_ip(request))
        return goodwill.request_out(row, currency)

    @post("/goodwill-requests/{request_id:uuid}/decline", guards=[take_orders], status_code=200,
          summary="Decline a goodwill request, with a note; nothing is refunded",
          description='Body: {"note": "why"} (required). Its asker may withdraw it; anyone else needs a limit '
                      "per refund that covers it.")
    async def decline(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      request_id: uuid.UUID) -> GoodwillRequestOut:
        await goodwill.one(db, principal, request_id)  # another company's request is a 404, never a 422
        data = decode_json(await request.body(), DeclineIn)
        row, currency = await goodwill.decline(db, principal, request_id, data.note, ip=client_ip(request))
        return goodwill.request_out(row, currency)


class GoodwillPagesController(Controller):
    path = "/app"
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @post("/orders/{order_id:uuid}/refund", guards=[take_orders])
    async def refund_order(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           order_id: uuid.UUID) -> Template | Redirect:
        """A goodwill refund in two steps: its effect shown first (and whether it will wait for
        approval), then made, or asked for, when confirmed."""
        values = await form_data(request)
        order = await queries.get_order(db, principal, order_id)
        typed = values.get("refund_amount", "").strip()
        amount = parse_money(typed, order.currency, principal.locale) if typed else None
        reason = values.get("refund_reason", "")
        errors: dict[str, str] = {}
        if amount is None:
            example = money_input(1200, order.currency, principal.locale)
            errors["refund_amount"] = (f"Type the amount to refund, such as {example}." if not typed else
                                       f"{typed[:30]!r} is not an amount: type it such as {example}.")
        if len(reason) > 500:
            errors["refund_reason"] = "Say why in at most 500 characters."
        _, problems, left = await refunds.effect(db, principal, order_id, amount or 0, reason)
        errors |= {_REFUND_FIELDS.get(field, field): message for field, message in problems.items()
                   if not (field == "amount_minor" and "refund_amount" in errors)}
        if errors:
            return await render_order_page(request, db, principal, order_id, status_code=422, refund_errors=errors,
                                           refund_values=values)
        assert amount is not None
        if values.get("confirm") != "1":
            policy = await policies.current(db, principal.tenant_id)
            waits = await goodwill.above_limit(db, principal, policy, amount, order.currency)
            return await render_order_page(request, db, principal, order_id, refund_values=values,
                                           refund_review={"amount": amount, "left": left, "token": uuid.uuid4().hex,
                                                          "waits": waits})
        token = values.get("refund_token", "")
        try:
            outcome = await goodwill.give_once(db, principal, order_id,
                                               RefundIn(amount_minor=amount, reason=reason.strip()),
                                               token=token if re.fullmatch(r"[0-9a-f]{32}", token) else "",
                                               ip=client_ip(request))
        except ProblemError as problem:  # another refund came first
            if problem.status != 422:
                raise
            await db.rollback()
            shown = {_REFUND_FIELDS.get(field, field): message for field, message in form_errors(problem).items()}
            return await render_order_page(request, db, principal, order_id, status_code=422, refund_errors=shown,
                                           refund_values=values)
        return redirect(f"/app/orders/{order_id}", done="refund_made" if outcome == "refunded" else "goodwill_waiting")

    @post("/goodwill-requests/{request_id:uuid}/approve", guards=[take_orders])
    async def approve(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      request_id: uuid.UUID) -> Template | Redirect:
        try:
            row, _, _ = await goodwill.approve(db, principal, request_id, ip=client_ip(request))
        except ProblemError as problem:
            return await _refused(request, db, principal, request_id, problem, {})
        return redirect(f"/app/orders/{row.order_id}#goodwill-requests", done="goodwill_approved")

    @post("/goodwill-requests/{request_id:uuid}/decline", guards=[take_orders])
    async def decline(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                      request_id: uuid.UUID) -> Template | Redirect:
        values = await form_data(request)
        try:
            row, _ = await goodwill.decline(db, principal, request_id, values.get("note", ""),
                                            ip=client_ip(request))
        except ProblemError as problem:
            return await _refused(request, db, principal, request_id, problem, values)
        return redirect(f"/app/orders/{row.order_id}#goodwill-requests", done="goodwill_declined")


async def _refused(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, request_id: uuid.UUID,
                   problem: ProblemError, values: dict[str, str]) -> Template:
    """The order page again, the refusal said next to the request (nothing was changed)."""
    if problem.status not in (403, 409, 422):
        raise problem
    await db.rollback()
    row, _ = await goodwill.one(db, principal, request_id)
    errors = form_errors(problem)
    message = errors.get("note") or problem.detail
    return await render_order_page(request, db, principal, row.order_id, status_code=problem.status,
                                   goodwill_failed={"id": row.id, "message": message, "note": values.get("note", "")})


@order_section
async def requests_section(db: AsyncSession, principal: Principal, order: Any) -> tuple[str, Any] | None:
    """The order's goodwill requests on its page, waiting ones first with Approve and Decline."""
    shown = await goodwill.shown(db, principal, order)
    return ("support/_goodwill_requests.html", shown) if shown else None


route_handlers = [GoodwillApiController, GoodwillPagesController]
