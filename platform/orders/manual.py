"""An order taken by hand in the console (phone, shop counter, email): its lines built from the
catalog, every field read as a person types it, all problems found at once, and the order placed
once however often its confirmation is sent.

The order in progress lives in the form itself (``line.<k>.sku``, ``line.<k>.quantity``,
``line.<k>.price``, the customer and the delivery): each step posts the whole form and gets it back,
so the builder works the same with or without JavaScript and keeps nothing on the server.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from core import forms, idempotency, validation
from core.auth import Principal
from core.forms import parse_float, parse_int
from core.limits import LINE_QUANTITY_MAX, MONEY_MAX
from core.locale import money_input, parse_money
from core.problems import ProblemError
from inventory import catalog
from inventory.schemas import ProductOut
from orders import capture
from orders.schemas import OrderIn

MAX_LINES = 100
DELIVERY_MODES = {"ship": "Home delivery", "pickup": "Click & collect", "ship_to_store": "Ship to store"}
_LINE_FIELD = re.compile(r"^line\.(\d{1,4})\.(sku|quantity|price)$")


@dataclass
class Line:
    sku: str
    quantity_text: str
    price_text: str
    product: ProductOut | None = None
    quantity: int | None = None
    price: int | None = None

    @property
    def amount(self) -> int | None:
        return None if self.quantity is None or self.price is None else self.quantity * self.price


@dataclass
class Draft:
    """The order as the form holds it, read: each line, the shipping fee and the totals of what
    reads as numbers, with a plain message per field that doesn't."""

    values: dict[str, str]
    lines: list[Line]
    shipping: int | None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def subtotal(self) -> int:
        return sum(line.amount or 0 for line in self.lines)

    @property
    def total(self) -> int:
        return self.subtotal + (self.shipping or 0)

    @property
    def complete(self) -> bool:
        """Every line and the shipping fee read as numbers (the total counts them all)."""
        return self.shipping is not None and all(line.amount is not None for line in self.lines)

    def form_values(self) -> dict[str, str]:
        """The form's fields with the lines numbered again from 0, as the page shows them."""
        kept = {k: v for k, v in self.values.items() if not _LINE_FIELD.match(k)}
        for k, line in enumerate(self.lines):
            kept.update({f"line.{k}.sku": line.sku, f"line.{k}.quantity": line.quantity_text,
                         f"line.{k}.price": line.price_text})
        return kept


def lines_of(values: dict[str, str]) -> list[Line]:
    """The form's lines in their order (a line without a SKU is dropped)."""
    found: dict[int, dict[str, str]] = {}
    for key, value in values.items():
        match = _LINE_FIELD.match(key)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = value.strip()
    return [Line(parts.get("sku", ""), parts.get("quantity", "1") or "1", parts.get("price", ""))
            for _, parts in sorted(found.items()) if parts.get("sku")]


async def read(session: AsyncSession, principal: Principal, values: dict[str, str], *,
               add: str | None = None, remove: int | None = None) -> Draft:
    """The form's order, after adding a product (by SKU: one more unit when it is a line
    already) or removing a line (by its position)."""
    lines = lines_of(values)
    errors: dict[str, str] = {}
    if remove is not None and 0 <= remove < len(lines):
        del lines[remove]
    wanted = (add or "").strip()
    products = await catalog.products_by_sku(session, principal.tenant_id,
                                             {line.sku for line in lines} | ({wanted} if wanted else set()))
    if wanted:
        product = products.get(wanted)
        same = next((line for line in lines if line.sku == wanted), None)
        if product is None or product.status != "active":
            errors["q"] = f"No product for sale has the SKU {wanted[:64]!r}."
        elif same is not None:
            count = parse_int(same.quantity_text, lo=0, hi=LINE_QUANTITY_MAX - 1)
            if count is not None:
                same.quantity_text = str(count + 1)
        elif len(lines) >= MAX_LINES:
            errors["lines"] = f"An order taken here has at most {MAX_LINES} lines."
        else:
            lines.append(Line(product.sku, "1", money_input(product.price_minor, principal.currency,
                                                                principal.locale)))
    if len(lines) > MAX_LINES:
        errors["lines"] = f"An order taken here has at most {MAX_LINES} lines: remove {len(lines) - MAX_LINES}."
    for k, line in enumerate(lines):
        line.product = products.get(line.sku)
        if line.product is None:
            errors[f"line.{k}.sku"] = f"Line {k + 1}: unknown SKU {line.sku[:64]!r}."
        elif line.product.status != "active":
            errors[f"line.{k}.sku"] = f"Line {k + 1}: {line.sku} is not for sale (inactive)."
        line.quantity = parse_int(line.quantity_text, lo=1, hi=LINE_QUANTITY_MAX)
        if line.quantity is None:
            errors[f"line.{k}.quantity"] = (f"Line {k + 1}: {line.quantity_text[:20]!r} is not a whole number "
                                            f"from 1 to {LINE_QUANTITY_MAX}.")
        price = parse_money(line.price_text, principal.currency, principal.locale) if line.price_text else None
        line.price = price if price is not None and 0 <= price <= MONEY_MAX else None
        if line.price is None:
            example = money_input(5900, principal.currency, principal.locale)
            errors[f"line.{k}.price"] = (f"Line {k + 1}: give the unit price, such as {example}."
                                         if not line.price_text else
                                         f"Line {k + 1}: {line.price_text[:20]!r} is not an amount: give the unit "
                                         f"price, such as {example}.")
    fee = values.get("shipping_fee", "").strip()
    shipping = parse_money(fee, principal.currency, principal.locale) if fee else 0
    if shipping is None or shipping < 0:
        shipping = None
        errors["shipping_fee"] = (f"The shipping fee is an amount, such as "
                                  f"{money_input(490, principal.currency, principal.locale)} (or 0).")
    return Draft(dict(values), lines, shipping, errors)


# Where capture's fields are on the form.
_FIELDS = {"customer.email": "email", "customer.name": "name", "customer.phone": "phone",
           "delivery.mode": "mode", "delivery.pickup_location": "pickup_location",
           "delivery.address": "line1", "delivery.address.country": "country", "delivery.address.name": "name",
           "delivery.address.line1": "line1", "delivery.address.city": "city",
           "delivery.address.postcode": "postcode", "delivery.address.latitude": "latitude",
           "delivery.address.longitude": "longitude", "shipping_fee_minor": "shipping_fee", "channel": "channel",
           "lines": "lines", "total_minor": "lines", "payment.authorized_minor": "paid"}
_LINE_ERROR = re.compile(r"^lines\[(\d+)\]\.(\w+)$")


def form_field(name: str) -> str:
    """The form field of a problem found on the order ("lines[2].sku" is "line.2.sku")."""
    match = _LINE_ERROR.match(name)
    if match:
        part = {"unit_price_minor": "price", "discount_minor": "price"}.get(match.group(2), match.group(2))
        return f"line.{match.group(1)}.{part}"
    return _FIELDS.get(name, "__all__")


async def check(session: AsyncSession, principal: Principal, draft: Draft) -> OrderIn | None:
    """The draft as the API's order, or None with every problem in ``draft.errors``: the form's
    own (numbers, the address the console asks for) and the capture's (unknown SKUs, the pickup
    store...), each once, next to its field."""
    values = draft.values
    errors = draft.errors
    if not draft.lines and "lines" not in errors:
        errors["lines"] = "Add at least one product: search the catalog by SKU or name."
    email, problem = validation.check_email(values.get("email", ""))
    if problem:
        errors["email"] = problem
    mode = values.get("mode", "ship")
    if mode not in DELIVERY_MODES:
        errors["mode"] = "Choose home delivery, click & collect or ship to store."
    address: dict[str, Any] | None = None
    if mode == "ship":
        address = {"country": values.get("country", "").strip().upper()}
        for name, label in (("line1", "the street"), ("postcode", "the postcode"), ("city", "the city")):
            address[name] = values.get(name, "").strip()
            if not address[name]:
                errors[name] = f"Home delivery needs {label}."
        address["name"] = values.get("name", "").strip()
        if not re.fullmatch(r"[A-Z]{2}", address["country"]):
            errors["country"] = "Give the country as two letters, such as FR."
        for name, bound in (("latitude", 90.0), ("longitude", 180.0)):
            text = values.get(name, "").strip()
            if text:
                number = parse_float(text, lo=-bound, hi=bound)
                if number is None:
                    errors[name] = f"{text[:20]!r} is not a number: a {name} is between -{bound:g} and {bound:g}."
                else:
                    address[name] = number
    elif not values.get("pickup_location", "").strip():
        errors["pickup_location"] = "Choose the store the customer collects from."
    paid = values.get("paid") == "on"
    raw: dict[str, Any] = {
        "channel": values.get("channel", "phone"), "currency": principal.currency,
        "lines": [{"sku": line.sku, "quantity": line.quantity or 1, "unit_price_minor": line.price or 0}
                  for line in draft.lines],
        "customer": {"email": email or values.get("email", "").strip() or "-",
                     "name": values.get("name", "").strip(), "phone": values.get("phone", "").strip()},
        "delivery": {"mode": mode, **({"address": address} if address is not None else
                                      {"pickup_location": values.get("pickup_location", "").strip() or None})},
        "shipping_fee_minor": draft.shipping or 0, "total_minor": draft.total,
        "payment": {"provider": "external", "method": values.get("payment_method", "card") or "card",
                    "authorized_minor": draft.total} if paid else None,
    }
    if draft.total > MONEY_MAX:
        errors.setdefault("lines", "The order comes to more than can be recorded.")
    for name, message in forms.problems(raw, OrderIn).items():
        errors.setdefault(form_field(name), message)
    if errors:
        return None
    data = msgspec.convert(raw, OrderIn)
    found = await capture.lookups(session, principal, [data])
    for name, message in capture.problems(principal, data, found).items():
        errors.setdefault(form_field(name), message)
    return None if errors else data


# --- placing it once -----------------------------------------------------------------------------

def new_token() -> str:
    """Rendered into the confirmation step: placing it twice (a double click, a resend after a
    lost answer) places one order."""
    return uuid.uuid4().hex


def _claim(token: str, data: OrderIn) -> idempotency.Keyed:
    digest = hashlib.sha256(msgspec.json.encode(data)).hexdigest()
    return idempotency.Keyed(f"console-order:{token}", digest, "POST", "/app/orders/new")


async def place(session: AsyncSession, principal: Principal, token: str, data: OrderIn) -> uuid.UUID:
    """The order placed under the confirmation's token: the same token again gives the same order
    (waiting for the first to be stored when both arrive at once); a token used for another order
    is refused."""
    claim = _claim(token, data)
    earlier = (await idempotency.claim_many(session, principal.tenant_id, [claim]))[claim.key]
    if isinstance(earlier, ProblemError):
        raise earlier
    if earlier is not None:
        return uuid.UUID(json.loads(earlier.body)["id"])
    order, _, _ = await capture.capture(session, principal, data)
    answer = idempotency.Answer(201, json.dumps({"id": str(order.id)}).encode())
    await idempotency.settle_many(session, principal.tenant_id, {claim.key: answer}, [])
    return order.id
