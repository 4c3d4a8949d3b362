"""Order capture, for every channel: check everything, store the order with its lines and
customer, and queue its routing, all in the caller's transaction.

A channel's own order number is unique per channel: sending the same order again returns the
one already stored, even when the two arrive at the same moment.

Promotions (``orders.promotion_hook``, when marketing registered one) price a batch's accepted
orders once, before they are stored: what the channel sent is checked as it was sent, and the
order is stored with the promotions' discounts added to it (or refused when they say so).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import timedelta
from typing import Any, NamedTuple

import pycountry
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from core import bulk, clock, money, validation
from core.auth import Principal
from core.ids import uuid7
from core.limits import LINE_QUANTITY_MAX, MONEY_MAX
from core.outbox import enqueue
from core.problems import ProblemError, invalid
from customers.service import CustomerRef, Person, find_or_create_many
from inventory import catalog, locations
from inventory.schemas import LocationOut
from orders import customer_stats, lifecycle, notifications, payments, promotion_hook
from orders.mail_texts import language_code
from orders.models import Order, OrderLine
from orders.promotion_hook import PricingLine, PricingOutcome, PricingRequest, Promotions
from orders.schemas import OrderIn
from rules.fields import CHANNELS

DELIVERY_MODES = ("ship", "pickup", "ship_to_store")
MAX_QUANTITY = LINE_QUANTITY_MAX
MAX_AMOUNT = MONEY_MAX


def order_number(order_id: uuid.UUID) -> str:
    """Short and unguessable enough to read out on the phone: the random tail of the id."""
    return "O-" + order_id.hex[-10:].upper()


class Lookups(NamedTuple):
    """What the orders of one capture name, read once for all of them."""

    products: dict[str, catalog.ProductRef]
    stores: dict[str, LocationOut]
    stripe_ready: bool


async def lookups(session: AsyncSession, principal: Principal, orders: list[OrderIn]) -> Lookups:
    skus = {line.sku for data in orders for line in data.lines}
    products = await catalog.product_refs(session, principal.tenant_id, skus)
    codes = {data.delivery.pickup_location for data in orders
             if data.delivery.mode in ("pickup", "ship_to_store") and data.delivery.pickup_location}
    stores = await locations.by_codes(session, principal.tenant_id, codes)
    stripe_ready = any(data.payment is not None and data.payment.provider == "stripe" for data in orders) \
        and bool(await payments.stripe_key(session, principal.tenant_id))
    return Lookups(products, stores, stripe_ready)


def problems(principal: Principal, data: OrderIn, found: Lookups) -> dict[str, str]:
    """Every problem with the order, by field."""
    errors: dict[str, str] = {}
    if data.channel not in CHANNELS:
        errors["channel"] = f"Unknown channel {data.channel!r}: use one of {', '.join(CHANNELS)}."
    elif principal.channel is not None and data.channel != principal.channel:
        errors["channel"] = f"This API key sends {principal.channel} orders only."
    if data.currency != principal.currency:
        errors["currency"] = f"Orders are in {principal.currency}, the company's currency, not {data.currency}."
    if not data.lines:
        errors["lines"] = "An order has at least one line."
    subtotal = 0
    for i, line in enumerate(data.lines):
        at = f"lines[{i}]"
        product = found.products.get(line.sku)
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
    if "discount_minor" not in errors and not any(key.startswith("lines") for key in errors) \
            and data.discount_minor > subtotal:
        # It is shared among the lines (their nets are what captures and refunds are made of).
        errors["discount_minor"] = (f"The order discount ({data.discount_minor}) is more than the lines come to "
                                    f"({subtotal}); to waive shipping, send a lower shipping fee.")
    expected = subtotal - data.discount_minor + data.shipping_fee_minor
    if not any(key.startswith("lines") for key in errors) and data.total_minor != expected:
        errors["total_minor"] = (f"The total doesn't add up: lines {subtotal} - discount {data.discount_minor} "
                                 f"+ shipping {data.shipping_fee_minor} = {expected}, not {data.total_minor}.")
    _check_delivery(data, found.stores, errors)
    if data.payment is not None:
        if not 0 <= data.payment.authorized_minor <= MAX_AMOUNT:
            errors["payment.authorized_minor"] = "The authorised amount can't be negative."
        elif data.payment.authorized_minor < data.total_minor and "total_minor" not in errors:
            errors["payment.authorized_minor"] = (f"The payment authorises {data.payment.authorized_minor}, "
                                                  f"less than the total {data.total_minor}.")
        if data.payment.provider == "stripe" and not data.payment.reference:
            errors["payment.reference"] = "A Stripe payment needs its PaymentIntent id as the reference."
        elif data.payment.provider == "stripe" and not found.stripe_ready:
            errors["payment.provider"] = "Stripe payments need your Stripe account: see Settings → Payments."
    # One address, checked as invitations are: a value with commas would mail several people.
    if problem := validation.check_email(data.customer.email)[1]:
        errors["customer.email"] = problem
    if data.language is not None and language_code(data.language) is None:
        errors["language"] = "Give the customer's language as a two-letter code, such as fr or en."
    for i, code in enumerate(data.coupon_codes):
        if not code.strip():
            errors[f"coupon_codes[{i}]"] = f"Coupon code {i + 1} is blank: leave it out or give the code."
    if data.placed_at is not None and data.placed_at.tzinfo is None:
        errors["placed_at"] = "Give placed_at with its UTC offset."
    elif data.placed_at is not None and data.placed_at > clock.now() + timedelta(minutes=5):
        errors["placed_at"] = "An order can't be placed in the future."
    return errors


def _check_delivery(data: OrderIn, stores: dict[str, LocationOut], errors: dict[str, str]) -> None:
    mode = data.delivery.mode
    if mode not in DELIVERY_MODES:
        errors["delivery.mode"] = f"Unknown delivery mode {mode!r}: use ship, pickup or ship_to_store."
        return
    if mode == "ship":
        address = data.delivery.address
        if address is None:
            errors["delivery.address"] = "Home delivery needs an address with at least its country."
        elif pycountry.countries.get(alpha_2=address.country.strip().upper()) is None:
            errors["delivery.address.country"] = (f"Unknown country {address.country.strip()!r}: use a two-letter "
                                                  f"ISO code such as FR.")
        return
    code = data.delivery.pickup_location
    if not code:
        errors["delivery.pickup_location"] = "Pickup needs the code of the store the customer collects from."
        return
    store = stores.get(code)
    if store is None:
        errors["delivery.pickup_location"] = f"Unknown pickup store {code!r}."
    elif store.status != "active":
        errors["delivery.pickup_location"] = f"{code} is paused: it takes no pickups now."
    elif not store.click_and_collect:
        errors["delivery.pickup_location"] = f"{code} does not offer pickup (click & collect)."
    elif mode == "ship_to_store" and not store.receives_transfers:
        errors["delivery.pickup_location"] = f"{code} does not receive ship-to-store parcels."


async def existing(session: AsyncSession, tenant_id: uuid.UUID,
                   numbers: Collection[tuple[str, str]]) -> dict[tuple[str, str], Order]:
    """The stored orders under these (channel, channel's order number) pairs."""
    if not numbers:
        return {}
    found = await session.scalars(select(Order).where(
        Order.tenant_id == tenant_id, tuple_(Order.channel, Order.external_number).in_(list(numbers))))
    return {(order.channel, order.external_number or ""): order for order in found}


class Captured(NamedTuple):
    order: Order
    created: bool  # False: the channel sent an order it had sent before; this is the stored one
    lines: list[OrderLine]  # a new order's lines (empty for a resend)


def _refused(errors: dict[str, str]) -> ProblemError:
    return invalid(errors, detail=f"The order was not accepted: {len(errors)} problem"
                                  f"{'s' if len(errors) > 1 else ''}. " + next(iter(errors.values())))


def _in_progress() -> ProblemError:
    return ProblemError(409, "Order in progress", "The same order is being captured by another request; "
                                                  "send it again.")


async def capture(session: AsyncSession, principal: Principal, data: OrderIn, *,
                  promotions: bool = True) -> Captured:
    """The order stored and its routing queued; or the one already stored under this channel's
    order number. Refuses with every problem listed. ``promotions=False``: priced as sent, with
    no promotion (an exchange's replacement, already paid for)."""
    outcome = (await capture_many(session, principal, [data], promotions=promotions))[0]
    if isinstance(outcome, ProblemError):
        raise outcome
    return outcome


async def capture_many(session: AsyncSession, principal: Principal, orders: list[OrderIn], *,
                       promotions: bool = True) -> list[Captured | ProblemError]:
    """Capture several orders in the caller's transaction with a handful of statements in all:
    each gets its own answer (stored, the stored one for a resend, or its problems), and a
    refused order changes nothing. The web groups concurrent API captures this way."""
    found = await lookups(session, principal, orders)
    outcomes: list[Captured | ProblemError | None] = [None] * len(orders)
    accepted: list[int] = []
    refused: dict[int, dict[str, str]] = {}
    for i, data in enumerate(orders):
        errors = problems(principal, data, found)
        if errors:
            refused[i] = errors
        else:
            accepted.append(i)
    # A channel resending an order it sent before gets that order, even if, say, a product
    # was withdrawn since; a key bound to one channel gets no other channel's.
    resent = await existing(session, principal.tenant_id, {
        (orders[i].channel, orders[i].external_number or "") for i in refused
        if orders[i].external_number and orders[i].channel in CHANNELS
        and principal.channel in (None, orders[i].channel)})
    for i, errors in refused.items():
        stored = resent.get((orders[i].channel, orders[i].external_number or ""))
        outcomes[i] = Captured(stored, False, []) if stored is not None else _refused(errors)
    if accepted:
        customers = await find_or_create_many(session, principal.tenant_id, [
            Person(orders[i].customer.email, orders[i].customer.name, orders[i].customer.phone,
                   orders[i].customer.email_consent, orders[i].customer.sms_consent) for i in accepted])
        rows = {i: _order_row(principal, orders[i], found, customers[orders[i].customer.email.strip().lower()])
                for i in accepted}
        hook = promotion_hook.hook() if promotions else None
        priced: dict[int, PricingOutcome] = {}
        if hook is not None:
            priced = await _price(session, principal, hook, orders, accepted, rows, found)
            turned_down = {i: outcome.refusal for i, outcome in priced.items() if outcome.refusal}
            if turned_down:
                accepted = [i for i in accepted if i not in turned_down]
                await _turn_down(session, principal, orders, turned_down, outcomes)
        # In key order, so that two batches never wait on each other in a cycle.
        ordered = sorted(accepted, key=lambda i: (orders[i].channel, orders[i].external_number or "",
                                                  rows[i]["id"]))
        inserted = {row["id"] for row in await bulk.insert_rows(session, Order, [rows[i] for i in ordered],
                                                                 on_conflict=_NEW_ONLY, returning="id")}
        others = await existing(session, principal.tenant_id, {
            (orders[i].channel, orders[i].external_number or "") for i in accepted if rows[i]["id"] not in inserted})
        if hook is not None:  # what was priced for orders not stored goes back
            unstored = [rows[i]["id"] for i in priced if rows[i]["id"] not in inserted]
            if unstored:
                await hook.release(session, principal.tenant_id, unstored)
        new: list[tuple[Order, list[str | None]]] = []
        for i in accepted:
            if rows[i]["id"] in inserted:
                order = bulk.detached(Order, rows[i])
                captured = outcomes[i] = Captured(order, True, _record(session, principal, orders[i], order, found,
                                                                       priced.get(i)))
                new.append((order, [line.category for line in captured.lines]))
                await notifications.tell_customer(session, order, "confirmation", lines=captured.lines)
                continue
            # The other request rolled back after all: this one is a first, to send again.
            other = others.get((orders[i].channel, orders[i].external_number or ""))
            outcomes[i] = Captured(other, False, []) if other is not None else _in_progress()
        await customer_stats.record_captured(session, principal.tenant_id, new)
    answered = [outcome for outcome in outcomes if outcome is not None]
    assert len(answered) == len(orders), "every order gets an answer"
    return answered


def coupon_codes(data: OrderIn) -> tuple[str, ...]:
    """The order's coupon codes as promotions compare them: trimmed, upper case, each once."""
    return tuple(dict.fromkeys(code.strip().upper() for code in data.coupon_codes if code.strip()))


async def _price(session: AsyncSession, principal: Principal, promotions: Promotions, orders: list[OrderIn],
                 accepted: list[int], rows: dict[int, dict[str, Any]], found: Lookups) -> dict[int, PricingOutcome]:
    """The promotions' outcome for each accepted order (one call for the batch), applied to its
    row: the stored figures are the sent ones with the promotions' discounts added."""
    requests = [_request(orders[i], rows[i], found) for i in accepted]
    outcomes = await promotions.price(session, principal, requests)
    if len(outcomes) != len(requests):
        raise RuntimeError(f"promotions priced {len(outcomes)} orders of {len(requests)}")
    priced = dict(zip(accepted, outcomes, strict=True))
    for i, outcome in priced.items():
        if not outcome.refusal:
            _apply(orders[i], rows[i], outcome)
    return priced


def _request(data: OrderIn, row: dict[str, Any], found: Lookups) -> PricingRequest:
    return PricingRequest(
        order_id=row["id"], order_number=row["number"], customer_id=row["customer_id"], channel=data.channel,
        currency=data.currency,
        lines=tuple(PricingLine(line_no=n, sku=line.sku, category=found.products[line.sku].category,
                                quantity=line.quantity, unit_price_minor=line.unit_price_minor,
                                discount_minor=line.discount_minor) for n, line in enumerate(data.lines, 1)),
        shipping_fee_minor=data.shipping_fee_minor, discount_minor=data.discount_minor,
        coupon_codes=coupon_codes(data), delivery_mode=data.delivery.mode, country=row["ship_country"],
        postcode=row["ship_postcode"], pickup_location=row["pickup_location_code"],
        customer_tags=tuple(row["customer_tags"]), placed_at=row["placed_at"])


def _line_extras(data: OrderIn, outcome: PricingOutcome | None) -> tuple[int, ...]:
    """The promotions' discount on each line (zeros without one)."""
    if outcome is None or not outcome.line_discounts:
        return (0,) * len(data.lines)
    return outcome.line_discounts


def _apply(data: OrderIn, row: dict[str, Any], outcome: PricingOutcome) -> None:
    """The order's stored figures with the promotions' discounts; an outcome that would discount
    more than there is to discount is a fault of the promotions, not of the order."""
    extras = _line_extras(data, outcome)
    lines_ok = len(extras) == len(data.lines) and all(
        0 <= extra <= line.unit_price_minor * line.quantity - line.discount_minor
        for line, extra in zip(data.lines, extras, strict=True))
    subtotal = sum(line.unit_price_minor * line.quantity - line.discount_minor - extra
                   for line, extra in zip(data.lines, extras, strict=False))
    discount = data.discount_minor + outcome.order_discount_minor
    shipping = data.shipping_fee_minor - outcome.shipping_discount_minor
    if not lines_ok or not data.discount_minor <= discount <= subtotal or not 0 <= shipping <= data.shipping_fee_minor:
        raise RuntimeError(f"promotions gave a discount beyond the order's amounts: {outcome!r}")
    row.update(subtotal_minor=subtotal, discount_minor=discount, shipping_fee_minor=shipping,
               total_minor=subtotal - discount + shipping)


async def _turn_down(session: AsyncSession, principal: Principal, orders: list[OrderIn],
                     turned_down: dict[int, dict[str, str]], outcomes: list[Captured | ProblemError | None]) -> None:
    """Orders the promotions refuse: each gets its problems, unless it is a resend of an order
    already stored (whose promotions are spent by it), which gets that order."""
    resent = await existing(session, principal.tenant_id, {
        (orders[i].channel, orders[i].external_number or "") for i in turned_down if orders[i].external_number})
    for i, errors in turned_down.items():
        stored = resent.get((orders[i].channel, orders[i].external_number or ""))
        outcomes[i] = Captured(stored, False, []) if stored is not None else _refused(errors)


# The channel's order number is unique: an order sent twice, in one batch or at the same moment
# by another request, is inserted once; the other gets the stored one once it is committed.
_NEW_ONLY = "ON CONFLICT (tenant_id, channel, external_number) WHERE external_number IS NOT NULL DO NOTHING"


def _order_row(principal: Principal, data: OrderIn, found: Lookups, customer: CustomerRef) -> dict[str, Any]:
    order_id = uuid7()
    address = data.delivery.address
    store = found.stores.get(data.delivery.pickup_location or "") if data.delivery.mode != "ship" else None
    subtotal = sum(line.unit_price_minor * line.quantity - line.discount_minor for line in data.lines)
    return dict(
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
        language=language_code(data.language),
    )


def _record(session: AsyncSession, principal: Principal, data: OrderIn, order: Order,
            found: Lookups, outcome: PricingOutcome | None = None) -> list[OrderLine]:
    """A new order's lines, timeline entry, webhook event and routing, added to the session."""
    from orders.tasks import route_order

    lines = []
    extras = _line_extras(data, outcome)
    shares = money.apportion(order.discount_minor, [line.unit_price_minor * line.quantity - line.discount_minor
                                                    - extra for line, extra in zip(data.lines, extras, strict=True)])
    for i, line in enumerate(data.lines):
        product = found.products[line.sku]
        row = {"tenant_id": principal.tenant_id, "id": uuid7(), "order_id": order.id, "line_no": i + 1,
               "sku": line.sku, "product_id": product.id, "name": product.name, "category": product.category,
               "quantity": line.quantity, "unit_price_minor": line.unit_price_minor,
               "discount_minor": line.discount_minor + extras[i], "order_discount_minor": shares[i]}
        bulk.defer(session, OrderLine, row)  # the batch's lines go in one INSERT
        lines.append(bulk.detached(OrderLine, row))
    promotions: dict[str, Any] = {"promotions": list(outcome.notes)} if outcome is not None and outcome.notes else {}
    lifecycle.record(session, order, "order.received", actor=principal.label, to_status="received",
                     reason=f"{data.channel} order" + (f" {data.external_number}" if data.external_number else ""),
                     **promotions)
    lifecycle.announce(session, order, "order.created")
    enqueue(session, route_order, tenant_id=principal.tenant_id, order_id=str(order.id))
    return lines
