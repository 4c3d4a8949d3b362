"""Paper for the stock room: a location's pick list (what to take from the shelves for the
fulfilments it has accepted) and a fulfilment's packing slip (what goes in the parcel, for whom),
as data for their HTML print views and as PDF.

PDFs use the viewer's built-in Helvetica with Windows-1252 text, so they need no font file and
work on any machine: accented Latin letters and € print as typed; a character outside that set
prints as its base letter (ő as o) or "?", unless the system has DejaVu Sans, which is then
embedded for that document.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from fpdf import FPDF
from fpdf.fonts import FontFace
from litestar import Response
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import clock
from core.auth import Principal
from core.problems import not_found
from core.validation import countries
from inventory import catalog
from inventory import locations as inventory_locations
from inventory.schemas import LocationOut
from orders import carriers, queries
from orders import fulfilment as fulfilment_rules
from orders.models import Fulfilment, FulfilmentLine, Order, OrderLine

# What is on the shelves still to take: accepted, or being picked.
PICKING = ("accepted", "picking")
PICK_MAX = 500  # fulfilments on one list; the oldest first
# Product attributes that say where it sits, in the order they are looked for.
BIN_ATTRIBUTES = ("bin", "location", "shelf")
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
DEJAVU_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


@dataclass
class PickLine:
    sku: str
    name: str
    quantity: int
    bin: str | None
    fulfilments: list[str]


@dataclass
class PickList:
    company: str
    location: LocationOut
    made_at: datetime
    fulfilments: list[str]
    lines: list[PickLine]
    truncated: bool  # more fulfilments wait than one list holds

    @property
    def units(self) -> int:
        return sum(line.quantity for line in self.lines)


async def pick_list(session: AsyncSession, principal: Principal, location_code: str) -> PickList:
    """The location's accepted fulfilments (oldest first, up to ``PICK_MAX``), their units summed
    by SKU, sorted by bin when products say where they sit, else by SKU."""
    if not location_code or not principal.works_at(location_code):
        raise not_found("Location")
    location = (await inventory_locations.by_codes(session, principal.tenant_id, [location_code])).get(location_code)
    if location is None:
        raise not_found("Location")
    waiting = list((await session.execute(
        select(Fulfilment.id, Fulfilment.number).where(
            Fulfilment.tenant_id == principal.tenant_id, Fulfilment.location_code == location_code,
            Fulfilment.status.in_(PICKING))
        .order_by(Fulfilment.created_at, Fulfilment.id).limit(PICK_MAX + 1))).all())
    truncated = len(waiting) > PICK_MAX
    waiting = waiting[:PICK_MAX]
    numbers = {row.id: row.number for row in waiting}
    by_sku: dict[str, PickLine] = {}
    if numbers:
        rows = await session.execute(
            select(FulfilmentLine.fulfilment_id, FulfilmentLine.sku, FulfilmentLine.quantity, OrderLine.name)
            .join(OrderLine, and_(OrderLine.tenant_id == FulfilmentLine.tenant_id,
                                  OrderLine.id == FulfilmentLine.order_line_id))
            .where(FulfilmentLine.tenant_id == principal.tenant_id,
                   FulfilmentLine.fulfilment_id.in_(list(numbers)), FulfilmentLine.quantity > 0))
        for row in rows:
            line = by_sku.setdefault(row.sku, PickLine(row.sku, row.name or "", 0, None, []))
            line.quantity += row.quantity
            line.name = line.name or row.name or ""
            number = numbers[row.fulfilment_id]
            if number not in line.fulfilments:
                line.fulfilments.append(number)
    products = await catalog.products_by_sku(session, principal.tenant_id, list(by_sku))
    for sku, line in by_sku.items():
        product = products.get(sku)
        if product is None:
            continue
        line.name = line.name or product.name
        line.bin = _bin_of(product.attributes)
    order = {number: i for i, number in enumerate(numbers.values())}
    for line in by_sku.values():
        line.fulfilments.sort(key=order.__getitem__)
    lines = sorted(by_sku.values(), key=lambda line: (line.bin is None, line.bin or "", line.sku))
    return PickList(principal.tenant_name, location, clock.now(), list(numbers.values()), lines, truncated)


def _bin_of(attributes: dict[str, Any] | None) -> str | None:
    for name in BIN_ATTRIBUTES:
        value = (attributes or {}).get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:40]
    return None


@dataclass
class SlipLine:
    sku: str
    name: str
    quantity: int


@dataclass
class PackingSlip:
    company: str
    fulfilment: Fulfilment
    order: Order
    made_at: datetime
    ship_from: list[str]
    ship_to: list[str]
    ship_to_title: str
    lines: list[SlipLine]
    notes: list[str] = field(default_factory=list)

    @property
    def order_number(self) -> str:
        """The number the customer knows: the channel's own when there is one."""
        return self.order.external_number or self.order.number

    @property
    def units(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def carrier_name(self) -> str:
        return carriers.name_of(self.fulfilment.carrier)


async def packing_slip(session: AsyncSession, principal: Principal, fulfilment_id: uuid.UUID) -> PackingSlip:
    """What goes in the fulfilment's parcel and where it goes, no prices. Seen by whoever may
    see the order; a store associate, for their locations' fulfilments (sent or arriving) only."""
    fulfilment = await session.scalar(select(Fulfilment).where(Fulfilment.tenant_id == principal.tenant_id,
                                                               Fulfilment.id == fulfilment_id))
    if fulfilment is None or not fulfilment_rules.may_see(principal, fulfilment):
        raise not_found("Fulfilment")
    order = await queries.get_order(session, principal, fulfilment.order_id)
    rows = await session.execute(
        select(FulfilmentLine.sku, FulfilmentLine.quantity, OrderLine.name, OrderLine.line_no)
        .join(OrderLine, and_(OrderLine.tenant_id == FulfilmentLine.tenant_id,
                              OrderLine.id == FulfilmentLine.order_line_id))
        .where(FulfilmentLine.tenant_id == principal.tenant_id, FulfilmentLine.fulfilment_id == fulfilment.id,
               FulfilmentLine.quantity > 0)
        .order_by(OrderLine.line_no))
    lines = [SlipLine(row.sku, row.name or "", row.quantity) for row in rows]
    places = await inventory_locations.by_codes(session, principal.tenant_id,
                                                [c for c in (fulfilment.location_code, fulfilment.ship_to_store,
                                                             order.pickup_location_code) if c])
    customer = order.ship_name or order.customer_name or ""
    notes: list[str] = []
    if fulfilment.kind == "ship":
        title = "Ship to"
        ship_to = _lines(customer, order.ship_line1, _town(order.ship_postcode, order.ship_city),
                         _country(order.ship_country))
        if order.customer_phone:
            notes.append(f"Phone: {order.customer_phone}")
    elif fulfilment.kind == "transfer":
        title = "Ship to store"
        store = places.get(fulfilment.ship_to_store or "")
        ship_to = _address(store) if store else _lines(fulfilment.ship_to_store)
        notes.append(f"For {customer or 'the customer'} to collect there" if customer else
                     "For the customer to collect there")
    else:
        title = "Collected by"
        store = places.get(fulfilment.location_code)
        ship_to = _lines(customer, f"at {store.name if store else fulfilment.location_code}")
    here = places.get(fulfilment.location_code)
    ship_from = [principal.tenant_name, *(_address(here)[1:] if here else [])]
    return PackingSlip(principal.tenant_name, fulfilment, order, clock.now(), ship_from, ship_to, title, lines,
                       notes)


def _lines(*parts: str | None) -> list[str]:
    return [part.strip() for part in parts if part and part.strip()]


def _town(postcode: str | None, city: str | None) -> str:
    return " ".join(part for part in (postcode, city) if part)


@lru_cache(maxsize=1)
def _country_names() -> dict[str, str]:
    return dict(countries())


def _country(code: str | None) -> str:
    return _country_names().get((code or "").upper(), code or "")


def _address(location: LocationOut) -> list[str]:
    return _lines(location.name, location.address_line1, _town(location.postcode, location.city),
                  _country(location.country))


# --- PDF -----------------------------------------------------------------------------------------


_NO_DECOMPOSITION = str.maketrans({"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "\u0131": "i", "ħ": "h", "Ħ": "H",
                                   "ŧ": "t", "Ŧ": "T", "\u2010": "-", "\u2011": "-", "\u2212": "-",
                                   "\u00a0": " ", "\u202f": " "})


def printable(text: str) -> str:
    """``text`` in Windows-1252, which the PDF's built-in fonts print: what it lacks becomes its
    base letter (ő as o), else "?"; line breaks and controls become spaces."""
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
                   for ch in text.translate(_NO_DECOMPOSITION))
    try:
        text.encode("cp1252")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for ch in text:
        try:
            ch.encode("cp1252")
            out.append(ch)
        except UnicodeEncodeError:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            try:
                out.append(base.encode("cp1252").decode("cp1252") if base else "?")
            except UnicodeEncodeError:
                out.append("?")
    return "".join(out)


class _Document:
    """An A4 page with the document's font: DejaVu Sans when some text needs it and the system
    has it, else Helvetica in Windows-1252."""

    def __init__(self, title: str, texts: list[str], footer: str) -> None:
        needs_unicode = any(_outside_cp1252(text) for text in texts)
        self.unicode = needs_unicode and DEJAVU.is_file() and DEJAVU_BOLD.is_file()
        footer_text = footer if self.unicode else printable(footer)

        class _Pdf(FPDF):
            def footer(inner) -> None:  # fpdf2 calls it on each page
                inner.set_y(-12)
                inner.set_font(size=8)
                inner.set_text_color(110)
                inner.cell(0, 6, f"{footer_text} · {inner.page_no()}/{{nb}}", align="R")

        self.pdf = _Pdf(format="A4")
        pdf = self.pdf
        pdf.set_title(self.text(title))
        pdf.set_creator("OMS")
        pdf.set_auto_page_break(True, margin=16)
        pdf.set_margins(14, 14, 14)
        if self.unicode:
            pdf.add_font("DejaVu", "", str(DEJAVU))
            pdf.add_font("DejaVu", "B", str(DEJAVU_BOLD))
            self.family = "DejaVu"
        else:
            pdf.core_fonts_encoding = "windows-1252"
            self.family = "helvetica"
        pdf.set_font(self.family, size=10)
        pdf.add_page()

    def text(self, value: str | None) -> str:
        value = value or ""
        return value.replace("\n", " ") if self.unicode else printable(value)

    def heading(self, title: str, subtitle: str) -> None:
        pdf = self.pdf
        pdf.set_font(self.family, "B", 16)
        pdf.cell(0, 9, self.text(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(self.family, "", 10)
        pdf.set_text_color(80)
        pdf.multi_cell(0, 5, self.text(subtitle), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0)
        pdf.ln(3)

    def blocks(self, *blocks: tuple[str, list[str]]) -> None:
        """Address blocks side by side, each a bold title over its lines."""
        pdf = self.pdf
        width = (pdf.w - pdf.l_margin - pdf.r_margin) / len(blocks)
        top, bottom = pdf.get_y(), pdf.get_y()
        for i, (title, lines) in enumerate(blocks):
            pdf.set_xy(pdf.l_margin + i * width, top)
            pdf.set_font(self.family, "B", 10)
            pdf.cell(width - 4, 6, self.text(title), new_x="LEFT", new_y="NEXT")
            pdf.set_font(self.family, "", 11)
            for line in lines:
                pdf.multi_cell(width - 4, 5.5, self.text(line), new_x="LEFT", new_y="NEXT")
            bottom = max(bottom, pdf.get_y())
        pdf.set_xy(pdf.l_margin, bottom + 4)

    def table(self, header: tuple[str, ...], rows: list[tuple[str, ...]], widths: tuple[int, ...],
              align: tuple[str, ...]) -> None:
        pdf = self.pdf
        pdf.set_font(self.family, "", 10)
        with pdf.table(col_widths=widths, text_align=align, line_height=5.5, padding=1.2,
                       headings_style=FontFace(emphasis="BOLD", fill_color=(235, 235, 235))) as table:
            table.row([self.text(cell) for cell in header])
            for values in rows:
                table.row([self.text(cell) for cell in values])
        pdf.ln(3)

    def paragraph(self, text: str, *, bold: bool = False) -> None:
        self.pdf.set_font(self.family, "B" if bold else "", 10)
        self.pdf.multi_cell(0, 5, self.text(text), new_x="LMARGIN", new_y="NEXT")

    def output(self) -> bytes:
        return bytes(self.pdf.output())


def _outside_cp1252(text: str | None) -> bool:
    try:
        (text or "").encode("cp1252")
        return False
    except UnicodeEncodeError:
        return True


def _stamp(at: datetime, timezone: str) -> str:
    return at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def _some(numbers: list[str], shown: int = 8) -> str:
    """The first fulfilment numbers a line is for: a row of a busy warehouse's list must still fit
    on one page (the HTML view lists them all)."""
    more = len(numbers) - shown
    return ", ".join(numbers[:shown]) + (f" and {more} more" if more > 0 else "")


async def pdf_response(build: Callable[..., bytes], *args: Any, name: str) -> Response[bytes]:
    """A PDF built in a worker thread (a long pick list takes seconds of CPU, which the event loop
    must not wait on), served inline under a safe file name and never cached: it holds addresses."""
    content = await anyio.to_thread.run_sync(build, *args)
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "-" for ch in name)
    return Response(content, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{safe}.pdf"', "Cache-Control": "no-store"})


def pick_list_pdf(picks: PickList, timezone: str) -> bytes:
    texts = [picks.company, picks.location.name, *(f"{line.name} {line.bin or ''}" for line in picks.lines)]
    doc = _Document(f"Pick list {picks.location.code}", texts, f"Pick list {picks.location.code}")
    doc.heading(f"Pick list · {picks.location.code} {picks.location.name}",
                f"{picks.company} · {len(picks.fulfilments)} fulfilments, {picks.units} units · printed "
                f"{_stamp(picks.made_at, timezone)}")
    if picks.truncated:
        doc.paragraph(f"Only the {len(picks.fulfilments)} oldest fulfilments are on this list: print another once "
                      "they are picked.", bold=True)
    if not picks.lines:
        doc.paragraph("Nothing to pick: no fulfilment is accepted here.")
        return doc.output()
    doc.table(("Bin", "SKU", "Product", "Qty", "For", "Taken"),
              [(line.bin or "", line.sku, line.name, str(line.quantity), _some(line.fulfilments), "")
               for line in picks.lines],
              (14, 30, 54, 10, 58, 16), ("LEFT", "LEFT", "LEFT", "RIGHT", "LEFT", "CENTER"))
    return doc.output()


def packing_slip_pdf(slip: PackingSlip, timezone: str) -> bytes:
    f, order = slip.fulfilment, slip.order
    texts = [slip.company, *slip.ship_from, *slip.ship_to, *slip.notes, *(line.name for line in slip.lines)]
    doc = _Document(f"Packing slip {f.number}", texts, f"Packing slip {f.number} · order {slip.order_number}")
    ours = f" (our {order.number})" if order.external_number else ""
    doc.heading(f"{slip.company} · Packing slip",
                f"Order {slip.order_number}{ours} · parcel {f.number} · placed "
                f"{_stamp(order.placed_at, timezone)}")
    doc.blocks(("From", slip.ship_from), (slip.ship_to_title, slip.ship_to + slip.notes))
    doc.table(("Qty", "SKU", "Product"), [(str(line.quantity), line.sku, line.name) for line in slip.lines],
              (14, 44, 124), ("RIGHT", "LEFT", "LEFT"))
    doc.paragraph(f"{slip.units} unit{'s' if slip.units != 1 else ''} in this parcel.")
    if f.tracking_number:
        doc.paragraph(f"{slip.carrier_name or 'Carrier'} tracking number: {f.tracking_number}")
    return doc.output()
