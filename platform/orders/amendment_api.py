"""The changes customer service makes to an order, in the JSON API: its pickup store and delivery
address (until the goods leave), its customer's mails sent again, and notes
(``orders.amendments``). Each write takes an ``Idempotency-Key``: a retry gets the first answer and
changes nothing twice."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from core import idempotency
from core.auth import Principal, signed_in
from core.deps import DEPS
from core.forms import decode_json
from core.pages import client_ip
from core.problems import invalid
from orders import amendments, queries
from orders.amendment_schemas import (
    AddressOut,
    DeliveryAddressChangeOut,
    DeliveryAddressIn,
    MailOut,
    NoteIn,
    NoteOut,
    PickupStoreChangeOut,
    PickupStoreIn,
    ReleasedOut,
    ReleasedUnitsOut,
    ResendIn,
)
from orders.guards import handle_fulfilments, take_orders
from orders.models import OrderEvent


def pickup_out(change: amendments.PickupChange) -> PickupStoreChangeOut:
    return PickupStoreChangeOut(
        order_id=change.order.id, number=change.order.number, status=change.order.status, before=change.before,
        after=change.after.code,
        released=[ReleasedOut(fulfilment_id=r.id, number=r.number, location=r.location, kind=r.kind, status=r.status,
                              lines=[ReleasedUnitsOut(sku=sku, quantity=units) for sku, units in r.units])
                  for r in change.released])


def _address(address: amendments.Address) -> AddressOut:
    return AddressOut(name=address.name, line1=address.line1, postcode=address.postcode, city=address.city,
                      country=address.country)


def mail_out(mail: amendments.SentMail) -> MailOut:
    return MailOut(id=mail.id, kind=mail.kind, label=mail.label, subject=mail.subject, to=mail.to_address,
                   status=mail.status, created_at=mail.created_at, sent_at=mail.sent_at,
                   resend_of=uuid.UUID(mail.resend_of) if mail.resend_of else None)


def note_out(event: OrderEvent) -> NoteOut:
    return NoteOut(id=event.id, order_id=event.order_id, body=event.reason or "", author=event.actor,
                   created_at=event.created_at)


class OrderAmendmentsApiController(Controller):
    path = "/api/v1/orders"
    tags = ["Orders"]
    guards = [signed_in]
    dependencies = DEPS

    @post("/{order_id:uuid}/pickup-store", summary="Change the pickup store, until the goods leave",
          guards=[handle_fulfilments], status_code=200,
          description="For click & collect and ship-to-store orders whose goods have not left (no fulfilment "
                      "shipped, delivered or collected). The new store (location_code) must be active, offer "
                      "click & collect and, for ship-to-store, receive transfers; a reason is required. The "
                      "fulfilments still holding stock are cancelled and their reservations released, and the "
                      "order is routed again for the new store; the customer is told by mail. A store associate "
                      "may change it only for an order collected at their store. With an Idempotency-Key, a retry "
                      "gets the first answer.")
    async def change_pickup_store(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                                  order_id: uuid.UUID) -> Response[Any]:
        await queries.get_order(db, principal, order_id)  # another company's order: 404 before any 422
        data = decode_json(await request.body(), PickupStoreIn)

        async def change() -> PickupStoreChangeOut:
            return pickup_out(await amendments.change_pickup_store(db, principal, order_id, data.location_code,
                                                                   data.reason, ip=client_ip(request)))

        return await idempotency.idempotent_create(request, db, principal, change, status_code=200)

    @post("/{order_id:uuid}/delivery-address", summary="Change the delivery address, until the goods leave",
          guards=[take_orders], status_code=200,
          description="For home-delivery orders none of whose parcels has shipped. line1, postcode, city and a "
                      "two-letter country are required, name is optional, and so are latitude and longitude (kept "
                      "from before when the postcode, city and country are the same). The fulfilments stay where "
                      "routing put them: their packing slips show the new address. A reason is required; the "
                      "customer is told by mail, and webhooks get order.updated.")
    async def change_delivery_address(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                                      order_id: uuid.UUID) -> Response[Any]:
        await queries.get_order(db, principal, order_id)
        data = decode_json(await request.body(), DeliveryAddressIn)
        values = {"name": data.name, "line1": data.line1, "postcode": data.postcode, "city": data.city,
                  "country": data.country}
        if (data.latitude is None) != (data.longitude is None):
            missing = "longitude" if data.longitude is None else "latitude"
            raise invalid({missing: "Give the latitude and the longitude together, or neither."})
        where = (data.latitude, data.longitude) if data.latitude is not None and data.longitude is not None else None

        async def change() -> DeliveryAddressChangeOut:
            done = await amendments.change_address(db, principal, order_id, values, data.reason, coordinates=where,
                                                   ip=client_ip(request))
            return DeliveryAddressChangeOut(order_id=done.order.id, number=done.order.number,
                                            before=_address(done.before), after=_address(done.after),
                                            fulfilments=[f.number for f in done.kept])

        return await idempotency.idempotent_create(request, db, principal, change, status_code=200)

    @post("/{order_id:uuid}/notes", summary="Add a note to the order's timeline", guards=[handle_fulfilments],
          status_code=201, description="body: up to 1000 characters. Store associates may add notes to the orders "
                                       "of their locations.")
    async def add_note(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                       order_id: uuid.UUID) -> Response[Any]:
        await queries.get_order(db, principal, order_id)
        data = decode_json(await request.body(), NoteIn)

        async def create() -> NoteOut:
            return note_out(await amendments.add_note(db, principal, order_id, data.body))

        return await idempotency.idempotent_create(request, db, principal, create)

    @get("/{order_id:uuid}/notifications", summary="The mails the order's customer was sent, newest first",
         guards=[take_orders])
    async def list_mails(self, db: AsyncSession, principal: Principal, order_id: uuid.UUID) -> list[MailOut]:
        _, mails = await amendments.mails_of(db, principal, order_id)
        return [mail_out(mail) for mail in mails]

    @post("/{order_id:uuid}/notifications/{mail_id:uuid}/resend", summary="Send one of the order's mails again",
          guards=[take_orders], status_code=201,
          description="A copy of the mail, to the address it went to, marked as a resend (resend_of); a reason is "
                      "required. A mail still being sent is refused (409).")
    async def resend_mail(self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal,
                          order_id: uuid.UUID, mail_id: uuid.UUID) -> Response[Any]:
        await queries.get_order(db, principal, order_id)
        data = decode_json(await request.body(), ResendIn)

        async def create() -> MailOut:
            return mail_out(await amendments.resend(db, principal, order_id, mail_id, data.reason,
                                                    ip=client_ip(request)))

        return await idempotency.idempotent_create(request, db, principal, create)


route_handlers = [OrderAmendmentsApiController]
