"""Order capture, for every channel: check everything, store the order with its lines and
customer, and queue its routing, all in the caller's transaction.

A channel's own order number is unique per channel: sending the same order again returns the
one already stored, even when the two arrive at the same moment.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import NamedTuple

import pycountry
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from core.ids import uuid7
from core.outbox import enqueue
from core.problems import ProblemError, invalid
from marketing.customers import find_or_create
from orders import lifecycle, notifications, payments
from orders.models import Location, Order, OrderLine, Product
from orders.schemas import OrderIn
from rules.fields import CHANNELS

DELIVERY_MODES = ("ship", "pickup", "ship_to_store")
MAX_QUANTITY = 1_000_000
MAX_AMOUNT = 10**12


def order_number(order_id: uuid.UUID) -> str:
    """Short and unguessable enough to read out on the phone: the random tail of the id."""
    return "O-" + order_id.hex[-10:].upper()


async def check(session: AsyncSession, principal: Principal, data: OrderIn) -> tuple[
        dict[str, str], dict[str, Product], Location | None]:
    """Every problem with the order, by field; the products and pickup store it names."""
    errors: dict[str, str] = {}
    if data.channel not in CHANNELS:
        errors["channel"] = f"Unknown channel {data.channel!r}: use one of {', '.join(CHANNELS)}."
    if data.currency != principal.currency:
        errors["currency"] = f"Orders are in {principal.currency}, the company's currency, not {data.currency}."
    if not data.lines:
        errors["lines"] = "An order has at least one line."
    skus = {line.sku for line in data.lines}
    products = {p.sku: p for p in await session.scalars(
        select(Product).where(Product.tenant_id == principal.tenant_id, Product.sku.in_(skus)))} if skus else {}
    subtotal = 0
    for i, line in enumerate(data.lines):
        at = f"lines[{i}]"
        product = products.get(line.sku)
        if product is None:
            errors[f"{at}.sku"] = f"Line {i + 1}: unknown SKU {line.sku!r}."
        elif product.status != "active":
            errors[f"{at}.sku"] = f"Line {i + 1}: {line.sku} is not for sale (inactive)."
        if not 1 <= line.quantity <= MAX_QUANTITY:
            errors[f"{at}.quantity"] = f"Line {i + 1}: the quantity is a whole number from 1, not {line.quantity}."
        if not 0 <= line.unit_price_minor <= MAX_AMOUNT:
            errors[f"{at}.unit_price_minor"] = f"Line {i + 1}: the unit price can't be negative."
        if not 0 <= line.discount_minor <= line.unit_price_minor * max(line.quantity, 0):
            errors[f"{at}.discount_minor"] = f"Line {i + 1}: the discount is between 0 and the line's amount."
        subtotal += line.unit_price_minor * line.quantity - line.discount_minor
    for name, value in (("shipping_fee_minor", data.shipping_fee_minor), ("discount_minor", data.discount_minor)):
        if not 0 <= value <= MAX_AMOUNT:
            errors[name] = "Amounts are whole numbers of minor units, not negative."
    expected = subtotal - data.discount_minor + data.shipping_fee_minor
    if not any(key.startswith("lines") for key in errors) and data.total_minor != expected:
        errors["total_minor"] = (f"The total doesn't add up: lines {subtotal} - discount {data.discount_minor} "
                                 f"+ shipping {data.shipping_fee_minor} = {expected}, not {data.total_minor}.")
    store = await _check_delivery(session, principal, data, errors)
    if data.payment is not None:
        if not 0 <= data.payment.authorized_minor <= MAX_AMOUNT:
            errors["payment.authorized_minor"] = "The authorised amount can't be negative."
        elif data.payment.authorized_minor < data.total_minor and "total_minor" not in errors:
            errors["payment.authorized_minor"] = (f"The payment authorises {data.payment.authorized_minor}, "
                                                  f"less than the total {data.total_minor}.")
        if data.payment.provider == "stripe" and not data.payment.reference:
            errors["payment.reference"] = "A Stripe payment needs its PaymentIntent id as the reference."
        elif data.payment.provider == "stripe" and not await payments.stripe_key(session, principal.tenant_id):
            errors["payment.provider"] = "Stripe payments need your Stripe account: see Settings → Payments."
    if "@" not in data.customer.email:
        errors["customer.email"] = f"{data.customer.email!r} is not an email address."
    if data.placed_at is not None and data.placed_at.tzinfo is None:
        errors["placed_at"] = "Give placed_at with its UTC offset."
    elif data.placed_at is not None and data.placed_at > clock.now() + timedelta(minutes=5):
        errors["placed_at"] = "An order can't be placed in the future."
    return errors, products, store


async def _check_delivery(session: AsyncSession, principal: Principal, data: OrderIn,
                          errors: dict[str, str]) -> Location | None:
    mode = data.delivery.mode
    if mode not in DELIVERY_MODES:
        errors["delivery.mode"] = f"Unknown delivery mode {mode!r}: use ship, pickup or ship_to_store."
        return None
    if mode == "ship":
        address = data.delivery.address
        if address is None:
            errors["delivery.address"] = "Home delivery needs an address with at least its country."
        elif pycountry.countries.get(alpha_2=address.country.strip().upper()) is None:
            errors["delivery.address.country"] = (f"Unknown country {address.country.strip()!r}: use a two-letter "
                                                  f"ISO code such as FR.")
        return None
    code = data.delivery.pickup_location
    if not code:
        errors["delivery.pickup_location"] = "Pickup needs the code of the store the customer collects from."
        return None
    store = await session.scalar(select(Location).where(Location.tenant_id == principal.tenant_id,
                                                        Location.code == code))
    if store is None:
        errors["delivery.pickup_location"] = f"Unknown pickup store {code!r}."
    elif store.status != "active":
        errors["delivery.pickup_location"] = f"{code} is paused: it takes no pickups now."
    elif not store.click_and_collect:
        errors["delivery.pickup_location"] = f"{code} does not offer pickup (click & collect)."
    elif mode == "ship_to_store" and not store.receives_transfers:
        errors["delivery.pickup_location"] = f"{code} does not receive ship-to-store parcels."
    return store


async def existing(session: AsyncSession, tenant_id: uuid.UUID, channel: str, external_number: str) -> Order | None:
    found: Order | None = await session.scalar(select(Order).where(
        Order.tenant_id == tenant_id, Order.channel == channel, Order.external_number == external_number))
    return found


class Captured(NamedTuple):
    order: Order
    created: bool  # False: the channel sent an order it had sent before; this is the stored one
    lines: list[OrderLine]  # a new order's lines (empty for a resend)


async def capture(session: AsyncSession, principal: Principal, data: OrderIn) -> Captured:
    """The order stored and its routing queued; or the one already stored under this channel's
    order number. Refuses with every problem listed."""
    errors, products, store = await check(session, principal, data)
    if errors:
        # A channel resending an order it sent before gets that order, even if, say, a product
        # was withdrawn since.
        if data.external_number and data.channel in CHANNELS:
            found = await existing(session, principal.tenant_id, data.channel, data.external_number)
            if found is not None:
                return Captured(found, False, [])
        raise invalid(errors, detail=f"The order was not accepted: {len(errors)} problem"
                                     f"{'s' if len(errors) > 1 else ''}. " + next(iter(errors.values())))
    customer = await find_or_create(session, principal.tenant_id, email=data.customer.email,
                                    name=data.customer.name, phone=data.customer.phone)
    order_id = uuid7()
    address = data.delivery.address
    subtotal = sum(line.unit_price_minor * line.quantity - line.discount_minor for line in data.lines)
    values = dict(
        tenant_id=principal.tenant_id, id=order_id, number=order_number(order_id), channel=data.channel,
        external_number=data.external_number, status="received", currency=data.currency,
        subtotal_minor=subtotal, discount_minor=data.discount_minor, shipping_fee_minor=data.shipping_fee_minor,
        total_minor=data.total_minor, delivery_mode=data.delivery.mode,
        ship_name=address.name if address else None, ship_line1=address.line1 if address else None,
        ship_city=address.city if address else None, ship_country=address.country.upper() if address else None,
        ship_postcode=address.postcode if address else None,
        ship_latitude=address.latitude if address else None, ship_longitude=address.longitude if address else None,
        pickup_location_code=store.code if store else None, customer_id=customer.id,
        customer_email=customer.email.lower(), customer_name=data.customer.name or customer.name,
        customer_phone=data.customer.phone or customer.phone, customer_tags=list(customer.tags or []),
        payment_provider=data.payment.provider if data.payment else None,
        payment_method=data.payment.method if data.payment else None,
        payment_reference=data.payment.reference if data.payment else None,
        payment_status="authorized" if data.payment and data.payment.authorized_minor else "none",
        authorized_minor=data.payment.authorized_minor if data.payment else 0,
        excluded_locations=[], created_by=principal.label, placed_at=data.placed_at or clock.now(),
    )
    # The channel's order number is unique: when the same order arrives twice at the same
    # moment, the second insert does nothing and returns the first one once it is committed.
    order: Order | None = await session.scalar(
        insert(Order).values(**values)
        .on_conflict_do_nothing(index_elements=[Order.tenant_id, Order.channel, Order.external_number],
                                index_where=Order.external_number.is_not(None))
        .returning(Order))
    if order is None:
        found = await existing(session, principal.tenant_id, data.channel, data.external_number or "")
        if found is None:  # the other request rolled back after all: this one is a first
            raise ProblemError(409, "Order in progress", "The same order is being captured by another request; "
                                                         "send it again.")
        return Captured(found, False, [])
    lines = [
        OrderLine(tenant_id=principal.tenant_id, id=uuid7(), order_id=order_id, line_no=i + 1, sku=line.sku,
                  product_id=products[line.sku].id, name=products[line.sku].name,
                  category=products[line.sku].category, quantity=line.quantity,
                  unit_price_minor=line.unit_price_minor, discount_minor=line.discount_minor)
        for i, line in enumerate(data.lines)
    ]
    session.add_all(lines)
    lifecycle.record(session, order, "order.received", actor=principal.label, to_status="received",
                     reason=f"{data.channel} order" + (f" {data.external_number}" if data.external_number else ""))
    lifecycle.announce(session, order, "order.created")
    from orders.tasks import route_order

    enqueue(session, route_order, tenant_id=principal.tenant_id, order_id=str(order_id))
    await notifications.tell_customer(session, order, "confirmation")
    return Captured(order, True, lines)
