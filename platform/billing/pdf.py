"""An invoice or credit note as PDF, with the same text as its printable page.

fpdf2 (already the stock room's PDF library): pure Python, maintained, no system library or
browser to install, and its built-in Helvetica needs no font file. Text goes through
``orders.documents.printable`` (Windows-1252: accented Latin letters and € print as typed).
The document is built in a worker thread: the event loop never waits on it.
"""

from __future__ import annotations

import anyio
from fpdf import FPDF
from fpdf.fonts import FontFace
from litestar import Response

from billing.display import InvoiceDocument
from orders.documents import printable

FONT = "helvetica"


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "-" for ch in name) or "invoice"


def invoice_pdf(doc: InvoiceDocument) -> bytes:
    footer = printable(f"{doc.title} {doc.number}")

    class _Pdf(FPDF):
        def footer(inner) -> None:  # fpdf2 calls it on each page
            inner.set_y(-12)
            inner.set_font(FONT, size=8)
            inner.set_text_color(110)
            inner.cell(0, 6, f"{footer} · {inner.page_no()}/{{nb}}", align="R")

    pdf = _Pdf(format="A4")
    pdf.core_fonts_encoding = "windows-1252"
    pdf.set_title(printable(f"{doc.title} {doc.number}"))
    pdf.set_creator("OMS")
    pdf.set_auto_page_break(True, margin=16)
    pdf.set_margins(16, 16, 16)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    pdf.set_font(FONT, "B", 18)
    pdf.cell(0, 9, printable(f"{doc.title} {doc.number}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 10)
    pdf.set_text_color(70)
    facts = [f"Issued {doc.issued_on}", f"Status: {doc.status}"]
    if doc.period:
        facts.insert(1, f"Period {doc.period}")
    if doc.plan:
        facts.append(f"Plan: {doc.plan}")
    pdf.multi_cell(0, 5, printable(" · ".join(facts)), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0)
    pdf.ln(4)

    top = bottom = pdf.get_y()
    for i, (title, party) in enumerate((("From", doc.issuer_lines), ("Billed to", doc.customer_lines))):
        pdf.set_xy(pdf.l_margin + i * width / 2, top)
        pdf.set_font(FONT, "B", 10)
        pdf.cell(width / 2 - 4, 6, title, new_x="LEFT", new_y="NEXT")
        pdf.set_font(FONT, "", 10)
        for text in party:
            pdf.multi_cell(width / 2 - 4, 5, printable(text), new_x="LEFT", new_y="NEXT")
        bottom = max(bottom, pdf.get_y())
    pdf.set_xy(pdf.l_margin, bottom + 6)

    with pdf.table(col_widths=(96, 22, 30, 30), text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"), line_height=5.5,
                   padding=1.2, headings_style=FontFace(emphasis="BOLD", fill_color=(235, 235, 235))) as table:
        table.row(["Description", "Quantity", "Unit price", "Amount"])
        for line in doc.lines:
            table.row([printable(line.description), line.quantity, printable(line.unit_price),
                       printable(line.amount)])
    pdf.ln(3)

    for label, amount, bold in (("Subtotal", doc.subtotal, False), (doc.vat_label, doc.vat, False),
                                ("Total", doc.total, True)):
        pdf.set_font(FONT, "B" if bold else "", 11 if bold else 10)
        pdf.set_x(pdf.l_margin + width - 80)
        pdf.cell(50, 6, printable(label), align="R")
        pdf.cell(30, 6, printable(amount), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(FONT, "", 10)
    for text in [*doc.mentions, *doc.notes]:
        pdf.multi_cell(0, 5, printable(text), new_x="LMARGIN", new_y="NEXT")
    if doc.terms:
        pdf.ln(2)
        pdf.set_font(FONT, "", 9)
        pdf.set_text_color(70)
        for text in doc.terms:
            pdf.multi_cell(0, 4.5, printable(text), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


async def pdf_response(doc: InvoiceDocument) -> Response[bytes]:
    """The PDF to download, named after the document's number, never cached (it holds addresses)."""
    content = await anyio.to_thread.run_sync(invoice_pdf, doc)
    return Response(content, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{_safe_name(doc.file_name)}.pdf"',
                             "Cache-Control": "no-store"})
