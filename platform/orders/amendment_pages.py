"""The order page's Actions that change an order (``orders.amendments``): change the pickup store
or the delivery address (each shown with its effect, then made once when confirmed), add a note,
and the order's mails with a "Send again" each (on a page of their own: reading the mail log costs
more than the order page should). A confirmed change claims its review's token first: the same
form sent again (a double click) finds it claimed and changes nothing, whatever changed since."""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal, signed_in
from core.deps import DEPS
from core.pages import NOTICES, client_ip, form_data, form_errors, page, redirect
from core.problems import ProblemError
from orders import amendments
from orders.guards import handle_fulfilments, take_orders
from orders.pages import render_order_page

NOTICES.update({
    "pickup_store_changed": "Pickup store changed: the order is routed again for the new store, and the customer "
                            "is told by mail.",
    "address_changed": "Delivery address changed: the customer is told by mail.",
    "mail_resent": "Mail sent again: it is on the order's timeline.",
    "note_added": "Note added to the order's timeline.",
})
ADDRESS_FIELDS = ("name", "line1", "postcode", "city", "country")
_TOKEN = re.compile(r"[0-9a-f]{32}")


def _token(values: dict[str, str]) -> str:
    token = values.get("token", "")
    return token if _TOKEN.fullmatch(token) else ""


async def _refused(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, order_id: uuid.UUID,
                   action: str, values: dict[str, str], problem: ProblemError) -> Template:
    """The order page again, the action's form open with what was refused next to its fields (or
    above them, when it is the order's state that refuses)."""
    if problem.status not in (409, 422):
        raise problem
    await db.rollback()
    errors = form_errors(problem) if problem.status == 422 else {}
    return await render_order_page(request, db, principal, order_id, status_code=problem.status,
                                   amend={"action": action, "values": values, "errors": errors,
                                          "problem": problem.detail if problem.status == 409 else ""})


class OrderAmendmentPagesController(Controller):
    path = "/app/orders/{order_id:uuid}"
    include_in_schema = False
    guards = [signed_in]
    dependencies = DEPS

    @post("/pickup-store", guards=[handle_fulfilments])
    async def pickup_store(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                           order_id: uuid.UUID) -> Template | Redirect:
        values = await form_data(request)
        code, reason = values.get("location_code", ""), values.get("reason", "")
        try:
            if values.get("confirm") != "1":
                change = await amendments.pickup_effect(db, principal, order_id, code, reason)
                return await render_order_page(request, db, principal, order_id, amend={
                    "action": "pickup", "values": values, "errors": {},
                    "review": {"change": change, "token": uuid.uuid4().hex}})

            async def change_it() -> None:
                await amendments.change_pickup_store(db, principal, order_id, code, reason, ip=client_ip(request))

            await amendments.once(db, principal, order_id, "pickup-store", _token(values), [code.strip(),
                                                                                            reason.strip()],
                                  change_it)
        except ProblemError as problem:
            return await _refused(request, db, principal, order_id, "pickup", values, problem)
        return redirect(f"/app/orders/{order_id}", done="pickup_store_changed")

    @post("/delivery-address", guards=[take_orders])
    async def delivery_address(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                               order_id: uuid.UUID) -> Template | Redirect:
        values = await form_data(request)
        address = {name: values.get(name, "") for name in ADDRESS_FIELDS}
        reason = values.get("reason", "")
        try:
            if values.get("confirm") != "1":
                change = await amendments.address_effect(db, principal, order_id, address, reason)
                return await render_order_page(request, db, principal, order_id, amend={
                    "action": "address", "values": values, "errors": {},
                    "review": {"change": change, "token": uuid.uuid4().hex}})

            async def change_it() -> None:
                await amendments.change_address(db, principal, order_id, address, reason, ip=client_ip(request))

            await amendments.once(db, principal, order_id, "delivery-address", _token(values),
                                  [*(address[name].strip() for name in ADDRESS_FIELDS), reason.strip()], change_it)
        except ProblemError as problem:
            return await _refused(request, db, principal, order_id, "address", values, problem)
        return redirect(f"/app/orders/{order_id}", done="address_changed")

    @post("/notes", guards=[handle_fulfilments])
    async def add_note(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       order_id: uuid.UUID) -> Template | Redirect:
        values = await form_data(request)
        try:
            await amendments.add_note(db, principal, order_id, values.get("body", ""))
        except ProblemError as problem:
            return await _refused(request, db, principal, order_id, "note", values, problem)
        return redirect(f"/app/orders/{order_id}", done="note_added")

    @get("/notifications", guards=[take_orders])
    async def mails(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                    order_id: uuid.UUID) -> Template:
        return await _mails_page(request, db, principal, order_id)

    @post("/notifications/{mail_id:uuid}/resend", guards=[take_orders])
    async def resend(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                     order_id: uuid.UUID, mail_id: uuid.UUID) -> Template | Redirect:
        values = await form_data(request)
        reason = values.get("reason", "")
        try:
            if values.get("confirm") != "1":
                done = await amendments.resend_effect(db, principal, order_id, mail_id, reason)
                return await _mails_page(request, db, principal, order_id, chosen=mail_id, values=values,
                                         review={"resend": done, "token": uuid.uuid4().hex})

            async def send_it() -> None:
                await amendments.resend(db, principal, order_id, mail_id, reason, ip=client_ip(request))

            await amendments.once(db, principal, order_id, "resend", _token(values), [str(mail_id), reason.strip()],
                                  send_it)
        except ProblemError as problem:
            if problem.status not in (409, 422):
                raise
            await db.rollback()
            return await _mails_page(request, db, principal, order_id, status_code=problem.status, chosen=mail_id,
                                     values=values, errors=form_errors(problem))
        return redirect(f"/app/orders/{order_id}", done="mail_resent")


async def _mails_page(request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, order_id: uuid.UUID,
                      *, status_code: int = 200, chosen: uuid.UUID | None = None,
                      values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                      review: dict[str, Any] | None = None) -> Template:
    order, mails = await amendments.mails_of(db, principal, order_id)
    return page(request, "orders/mails.html", status_code=status_code, order=order, mails=mails, chosen=chosen,
                values=values or {}, errors=errors or {}, review=review, shown=amendments.MAILS_SHOWN)


route_handlers = [OrderAmendmentPagesController]
