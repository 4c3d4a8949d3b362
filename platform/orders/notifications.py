"""What the customer hears about their order, in their language, through the platform's one mail
interface.

Each mail is rendered from ``web/templates/mail/order.html`` and ``order.txt`` (the HTML and its
plain-text alternative) with an autoescaping Jinja environment per language whose gettext is the
language's catalog (``orders.mail_texts``). It names the order by the channel's own number when
there is one, the company by its name and brand colour, the pickup store by its name, address and
opening hours, a parcel by its carrier and tracking link. The subject and introduction are the
company's own when it wrote some for that kind and language (Settings → Notifications), else the
catalog's.

Capture sends a confirmation per order, so what the mails need of the company (its profile and
its texts) is kept in the process for ``COMPANY_SECONDS``; saving them forgets it at once here.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from datetime import time as clock_time
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time, get_day_names
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from core.locale import format_money, locale_of
from core.mail import queue_mail
from core.settings import WEB_DIR
from inventory import locations as inventory_locations
from inventory.schemas import LocationOut
from orders import carriers, payments
from orders.mail_texts import KINDS, Texts, company_texts, default_texts, fill, language_of, translations
from orders.models import Fulfilment, Order, OrderLine
from tenants.service import BRAND_COLOUR, CompanyProfile, company_profile

COMPANY_SECONDS = 30.0
DEFAULT_COLOUR = "#1d4ed8"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DASH = " \u2013 "  # an en dash between two days or two times


# --- what a mail says ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    name: str
    quantity: int
    amount_minor: int | None  # the line's amount after its own discount; None where none is shown


@dataclass(frozen=True)
class Store:
    name: str
    address_line1: str
    postcode: str
    city: str
    country: str
    timezone: str
    opening_hours: dict[str, Any]


@dataclass(frozen=True)
class Shipment:
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None


@dataclass(frozen=True)
class MailFacts:
    """Everything a mail tells of one order: read from the order, a fulfilment and the pickup
    store, or made up for a preview."""

    number: str
    customer_name: str
    currency: str
    total_minor: int
    delivery_mode: str
    shipping_minor: int = 0
    discount_minor: int = 0
    refunded_minor: int = 0
    ship_name: str = ""
    ship_line1: str = ""
    ship_postcode: str = ""
    ship_city: str = ""
    ship_country: str = ""
    items: Sequence[Item] = ()
    store: Store | None = None
    shipment: Shipment | None = None
    pickup_by: datetime | None = None
    note: str = ""
    # A partial cancellation: the units it cancelled (at what the customer paid for them), the
    # units still to come, what the order comes to now, and whether the customer is simply not
    # charged for them (the payment was authorised, nothing captured yet).
    cancelled: Sequence[Item] = ()
    remaining: Sequence[Item] = ()
    total_now_minor: int | None = None
    not_charged: bool = False

    @classmethod
    def of(cls, order: Order, *, lines: Sequence[OrderLine] = (), store: Store | None = None,
           fulfilment: Fulfilment | None = None, note: str = "") -> MailFacts:
        shipment = None
        if fulfilment is not None and (fulfilment.carrier or fulfilment.tracking_number or fulfilment.tracking_url):
            shipment = Shipment(fulfilment.carrier, fulfilment.tracking_number, fulfilment.tracking_url)
        return cls(
            number=order.external_number or order.number, customer_name=order.customer_name or "",
            currency=order.currency, total_minor=order.total_minor, delivery_mode=order.delivery_mode,
            shipping_minor=order.shipping_fee_minor or 0, discount_minor=order.discount_minor or 0,
            refunded_minor=order.refunded_minor or 0, ship_name=order.ship_name or "",
            ship_line1=order.ship_line1 or "", ship_postcode=order.ship_postcode or "",
            ship_city=order.ship_city or "", ship_country=order.ship_country or "",
            items=[Item(line.name or line.sku, line.quantity,
                        line.unit_price_minor * line.quantity - (line.discount_minor or 0)) for line in lines],
            store=store, shipment=shipment,
            pickup_by=fulfilment.pickup_expires_at if fulfilment is not None else None, note=note,
        )


@dataclass(frozen=True)
class RenderedMail:
    language: str
    subject: str
    text: str
    html: str


# --- rendering ----------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def environment(language: str) -> Environment:
    """Jinja for the mails of one language: HTML autoescaped, text not, gettext from the catalog."""
    env = Environment(loader=FileSystemLoader(WEB_DIR / "templates" / "mail"),
                      autoescape=select_autoescape(enabled_extensions=("html",), default=False),
                      extensions=["jinja2.ext.i18n"], undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True)
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


def _on_colour(colour: str) -> str:
    """Black or white, whichever reads better on ``colour``."""
    red, green, blue = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    channel = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (red, green, blue)]
    luminance = 0.2126 * channel[0] + 0.7152 * channel[1] + 0.0722 * channel[2]
    return "#111827" if luminance > 0.4 else "#ffffff"


def _link(url: str | None) -> str | None:
    """A web address that may be a link: http(s) with a host, nothing else (no javascript:)."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def carrier_name(code: str | None) -> str | None:
    """A listed carrier's name; none for "other" (the mail shows its number and link only)."""
    if not code or code == carriers.OTHER:
        return None
    return carriers.name_of(code)


def _opening_hours(hours: dict[str, Any], locale: Locale, closed: str) -> list[tuple[str, str]]:
    """(days, hours) rows, consecutive days with the same hours together ("Monday to Friday",
    "9:00 AM to 7:00 PM", with an en dash for "to"). Empty when the store gave no hours."""
    if not hours:
        return []
    names = get_day_names("wide", locale=locale)

    def at(text: str) -> str:
        hour, minute = (int(part) for part in text.split(":"))
        return format_time(clock_time(hour, minute), "short", locale=locale)

    per_day = []
    for index, day in enumerate(DAYS):
        windows = [w for w in hours.get(day) or [] if isinstance(w, list | tuple) and len(w) == 2]
        try:
            shown = ", ".join(f"{at(start)}{DASH}{at(end)}" for start, end in windows) or closed
        except ValueError:
            shown = closed
        per_day.append((names[index], shown))
    rows: list[tuple[str, str]] = []
    start = 0
    for index in range(1, len(per_day) + 1):
        if index == len(per_day) or per_day[index][1] != per_day[start][1]:
            first, last = per_day[start][0], per_day[index - 1][0]
            label = first if start == index - 1 else f"{first}{DASH}{last}"
            rows.append((label[:1].upper() + label[1:], per_day[start][1]))
            start = index
    return rows


def _items(items: Sequence[Item], money: Callable[[int], str]) -> list[dict[str, Any]]:
    return [{"name": item.name, "quantity": item.quantity,
             "amount": money(item.amount_minor) if item.amount_minor is not None else ""} for item in items]


def _when(value: datetime, timezone: str, locale: Locale, gettext: Any) -> str:
    local = value.astimezone(ZoneInfo(timezone))
    return fill(gettext("{date} at {time}"), {"date": format_date(local.date(), "full", locale=locale),
                                             "time": format_time(local.time(), "short", locale=locale)})


TEST_MARK = "[Test] "  # before the subject of a test sent to oneself, in every language


def render(kind: str, language: str, facts: MailFacts, profile: CompanyProfile, texts: Texts, *,
           test: bool = False) -> RenderedMail:
    """The mail of ``kind`` about ``facts``, in ``language`` (one with a catalog). A ``test`` says
    so in its subject and at the top of its body, so nobody takes it for a real order's mail."""
    locale = locale_of(language, profile.country)
    gettext = translations(language).gettext

    def money(minor: int) -> str:
        return format_money(minor, facts.currency, locale)

    store_timezone = facts.store.timezone if facts.store and facts.store.timezone else profile.timezone
    pickup_by = _when(facts.pickup_by, store_timezone, locale, gettext) if facts.pickup_by else ""
    shipment = facts.shipment
    carrier = carrier_name(shipment.carrier) if shipment else None
    values = {
        "order_number": facts.number, "customer_name": facts.customer_name, "company": profile.name,
        "total": money(facts.total_minor), "store": facts.store.name if facts.store else "",
        "pickup_by": pickup_by, "carrier": carrier or "",
        "tracking_number": (shipment.tracking_number or "") if shipment else "",
        "refund": money(facts.refunded_minor) if facts.refunded_minor else "",
    }
    subject_text, intro_text = texts.get((kind, language)) or default_texts(kind, language)
    subject = (TEST_MARK if test else "") + " ".join(fill(subject_text, values).split())
    intro = fill(intro_text, values).strip()
    colour = profile.brand_colour if BRAND_COLOUR.fullmatch(profile.brand_colour or "") else DEFAULT_COLOUR
    territories = locale.territories
    store = facts.store
    context = {
        "kind": kind, "lang": language, "subject": subject, "company": profile.name, "colour": colour,
        "on_colour": _on_colour(colour), "customer_name": facts.customer_name, "number": facts.number,
        "intro": intro,
        "intro_html": [Markup("<br>").join(escape(line) for line in paragraph.split("\n"))
                       for paragraph in re.split(r"\n\s*\n", intro) if paragraph.strip()],
        "items": _items(facts.items, money),
        "cancelled": _items(facts.cancelled, money),
        "remaining": _items(facts.remaining, money),
        "total_now": money(facts.total_now_minor) if facts.total_now_minor is not None else "",
        "not_charged": facts.not_charged and not facts.refunded_minor,
        "test": test,
        "discount": money(facts.discount_minor) if facts.discount_minor else "",
        "shipping": money(facts.shipping_minor) if facts.shipping_minor else "",
        "total": money(facts.total_minor),
        "delivery_mode": facts.delivery_mode,
        "address": [line for line in (facts.ship_name, facts.ship_line1,
                                      " ".join(p for p in (facts.ship_postcode, facts.ship_city) if p),
                                      territories.get(facts.ship_country, facts.ship_country)) if line],
        "store": None if store is None else {
            "name": store.name,
            "address": [line for line in (store.address_line1, " ".join(p for p in (store.postcode, store.city) if p),
                                          territories.get(store.country, store.country)) if line],
            "hours": _opening_hours(store.opening_hours, locale, gettext("Closed")),
        },
        "pickup_by": pickup_by,
        "shipment": None if shipment is None else {
            "carrier": carrier, "tracking_number": shipment.tracking_number,
            "tracking_url": _link(shipment.tracking_url),
        },
        "refund": values["refund"],
        "note": facts.note,
    }
    env = environment(language)
    return RenderedMail(language=language, subject=subject,
                        text=env.get_template("order.txt").render(context),
                        html=env.get_template("order.html").render(context))


# --- the company, kept briefly ------------------------------------------------------------------


@dataclass(frozen=True)
class Company:
    profile: CompanyProfile
    texts: Texts = field(default_factory=dict)


_companies: dict[uuid.UUID, tuple[float, Company]] = {}


async def company(session: AsyncSession, tenant_id: uuid.UUID, *, fresh: bool = False) -> Company:
    cached = _companies.get(tenant_id)
    if cached is not None and cached[0] > time.monotonic() and not fresh:
        return cached[1]
    found = Company(await company_profile(session, tenant_id), await company_texts(session, tenant_id))
    if len(_companies) > 10_000:  # a bound on what idle companies keep here
        _companies.clear()
    _companies[tenant_id] = (time.monotonic() + COMPANY_SECONDS, found)
    return found


def forget_company(tenant_id: uuid.UUID) -> None:
    """After the company's look or texts changed: the next mail reads them again."""
    _companies.pop(tenant_id, None)


# --- sending ------------------------------------------------------------------------------------


async def _store(session: AsyncSession, tenant_id: uuid.UUID, code: str | None) -> Store | None:
    if not code:
        return None
    found = (await inventory_locations.by_codes(session, tenant_id, [code])).get(code)
    return _store_of(found) if found is not None else None


def _store_of(location: LocationOut) -> Store:
    return Store(location.name, location.address_line1, location.postcode, location.city, location.country,
                 location.timezone, dict(location.opening_hours or {}))


_FULFILMENT_OF_KIND = {"shipped": ("shipped", ("ship",)), "delivered": ("delivered", ("ship",)),
                       "ready_for_pickup": ("ready_for_pickup", ("pickup", "transfer"))}


async def _fulfilment(session: AsyncSession, order: Order, kind: str) -> Fulfilment | None:
    """The fulfilment a mail is about when the caller did not say: the newest in that state."""
    if kind not in _FULFILMENT_OF_KIND:
        return None
    status, kinds = _FULFILMENT_OF_KIND[kind]
    return await session.scalar(
        select(Fulfilment).where(Fulfilment.tenant_id == order.tenant_id, Fulfilment.order_id == order.id,
                                 Fulfilment.status == status, Fulfilment.kind.in_(kinds))
        .order_by(Fulfilment.updated_at.desc()).limit(1))


async def tell_customer(session: AsyncSession, order: Order, kind: str, detail: str = "", *,
                        fulfilment: Fulfilment | None = None, lines: Sequence[OrderLine] | None = None,
                        cancelled: Mapping[int, int] | None = None, refunded_minor: int | None = None) -> None:
    """Queue the mail of ``kind`` about ``order`` to its customer, in their language. ``fulfilment``
    is the parcel or pickup it is about (found when not given); ``lines`` the order's lines for a
    confirmation or a partial cancellation (read when not given); ``detail`` a note added as it is,
    when no fulfilment says more. A cancellation gives the units it took per line number
    (``cancelled``, already counted on the lines) and what it refunded (``refunded_minor``: the
    mail tells of that refund, not of earlier ones)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of customer mail: {kind}")
    if not order.customer_email or "@" not in order.customer_email:
        return
    known = await company(session, order.tenant_id)
    language = language_of(order.language, known.profile.language)
    if fulfilment is None:
        fulfilment = await _fulfilment(session, order, kind)
    if kind in ("confirmation", "lines_cancelled") and lines is None:
        lines = list(await session.scalars(select(OrderLine).where(
            OrderLine.tenant_id == order.tenant_id, OrderLine.order_id == order.id).order_by(OrderLine.line_no)))
    to_store = kind == "shipped" and fulfilment is not None and fulfilment.kind == "transfer"
    store = await _store(session, order.tenant_id, order.pickup_location_code or (
        fulfilment.ship_to_store if fulfilment is not None else None)) \
        if kind in ("ready_for_pickup", "pickup_expired", "pickup_store_changed") or to_store else None
    note = detail if fulfilment is None else ""
    facts = MailFacts.of(order, lines=(lines or ()) if kind == "confirmation" else (), store=store,
                         fulfilment=fulfilment, note=note)
    if refunded_minor is not None:
        facts = replace(facts, refunded_minor=refunded_minor)
    if kind == "lines_cancelled":
        facts = _part_cancelled(facts, order, lines or (), cancelled or {})
    mail = render(kind, language, facts, known.profile, known.texts)
    await queue_mail(session, tenant_id=order.tenant_id, to=order.customer_email, kind=f"order.{kind}",
                     subject=mail.subject, body=mail.text, body_html=mail.html, sender_name=known.profile.name,
                     meta={"language": language, "order_id": str(order.id)})


def _part_cancelled(facts: MailFacts, order: Order, lines: Sequence[OrderLine],
                    cancelled: Mapping[int, int]) -> MailFacts:
    """The units just cancelled, at what the customer paid for them (as the refund counts them),
    and the units still to come (neither cancelled nor shipped yet)."""
    ordered = sorted(lines, key=lambda line: line.line_no)
    gone = []
    for line in ordered:
        units = min(cancelled.get(line.line_no, 0), line.qty_cancelled)
        if units > 0:
            value = payments.value_of(line, line.qty_cancelled) - payments.value_of(line, line.qty_cancelled - units)
            gone.append(Item(line.name or line.sku, units, value))
    left = [Item(line.name or line.sku, count, None) for line in ordered
            if (count := line.quantity - line.qty_cancelled - line.qty_shipped) > 0]
    return replace(facts, cancelled=gone, remaining=left, total_now_minor=payments.figures(order, ordered).total_now,
                   not_charged=order.captured_minor == 0 and order.authorized_minor > 0)


# --- previews and tests, for Settings → Notifications -------------------------------------------


SAMPLE_STORE = Store("Rivoli", "12 rue de Rivoli", "75004", "Paris", "FR", "Europe/Paris",
                     {day: [["10:00", "19:00"]] for day in DAYS[:6]})


SAMPLE_ITEMS = {"en": ("Leather ankle boots", "Merino socks"), "fr": ("Bottines en cuir", "Chaussettes en mérinos")}


async def sample_facts(session: AsyncSession, principal: Principal, kind: str, language: str,
                       profile: CompanyProfile) -> MailFacts:
    """A made-up order to show a mail with: the company's first pickup store when it has one."""
    stores = [loc for loc in await inventory_locations.active(session, principal.tenant_id) if loc.click_and_collect]
    store = _store_of(stores[0]) if stores else SAMPLE_STORE
    pickup = kind in ("ready_for_pickup", "pickup_expired", "pickup_store_changed")
    boots, socks = SAMPLE_ITEMS.get(language, SAMPLE_ITEMS["en"])
    items = [Item(boots, 1, 12900), Item(socks, 2, 2400)] if kind == "confirmation" else []
    facts = MailFacts(
        number="WEB-100234", customer_name="Camille Martin", currency=principal.currency, total_minor=15300,
        shipping_minor=0 if pickup else 500, discount_minor=0 if pickup else 500,
        delivery_mode="pickup" if pickup else "ship",
        ship_name="Camille Martin", ship_line1="8 avenue Foch", ship_postcode="69006", ship_city="Lyon",
        ship_country="FR", items=items, store=store if pickup else None,
        refunded_minor=15300 if kind in ("cancelled", "pickup_expired") else 0,
    )
    if kind in ("shipped", "delivered"):
        sample = carriers.choices(profile.country)[0]  # the first carrier of the company's country
        facts = replace(facts, shipment=Shipment(sample.code, "6A12345678901", sample.link("6A12345678901")))
    if kind == "ready_for_pickup":
        facts = replace(facts, pickup_by=clock.now() + timedelta(days=7))
    if kind == "lines_cancelled":  # one pair of the two socks, refunded
        facts = replace(facts, cancelled=[Item(socks, 1, 1200)], remaining=[Item(boots, 1, None), Item(socks, 1, None)],
                        refunded_minor=1200, total_now_minor=14100)
    return facts


async def preview(session: AsyncSession, principal: Principal, kind: str, language: str, subject: str,
                  intro: str, *, test: bool = False) -> RenderedMail:
    """The mail of ``kind`` in ``language`` with these texts, about a sample order (marked as a
    test for ``test``: what is sent to oneself)."""
    known = await company(session, principal.tenant_id, fresh=True)
    facts = await sample_facts(session, principal, kind, language, known.profile)
    return render(kind, language, facts, known.profile, {(kind, language): (subject, intro)}, test=test)


async def send_test(session: AsyncSession, principal: Principal, kind: str, language: str, subject: str,
                    intro: str) -> str:
    """Queue the preview to the signed-in person, marked as a test; returns their address."""
    mail = await preview(session, principal, kind, language, subject, intro, test=True)
    known = await company(session, principal.tenant_id)
    await queue_mail(session, tenant_id=principal.tenant_id, to=principal.label, kind=f"test.order.{kind}",
                     subject=mail.subject, body=mail.text, body_html=mail.html, sender_name=known.profile.name,
                     sent_by=principal.user_id, meta={"language": language, "test": True})
    return principal.label
