"""The customer mails' catalogs hold every message the mails use, each translated into French with
the same placeholders; and a company's placeholders are filled by name only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [("platform/orders/mail_texts.py", "python"), ("platform/orders/notifications.py", "python"),
           ("web/templates/mail/order.html", "jinja2.ext:babel_extract"),
           ("web/templates/mail/order.txt", "jinja2.ext:babel_extract")]
JINJA = {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true", "trim_blocks": "true", "lstrip_blocks": "true"}
PLACEHOLDER = re.compile(r"\{[a-z_]+\}|%\([a-z_]+\)s")


def _used() -> set[str]:
    found = set()
    for path, method in SOURCES:
        for _, message, _, _ in extract_from_file(method, str(ROOT / path), keywords={"_": None, "N_": None},
                                                  options=JINJA if "jinja" in method else None):
            found.add(message)
    return found


@pytest.mark.parametrize("language", ["en", "fr"])
def test_every_message_of_the_mails_is_in_the_catalog(language: str) -> None:
    with (ROOT / "platform/orders/translations" / language / "LC_MESSAGES/messages.po").open("rb") as source:
        catalog = read_po(source, locale=language)
    used = _used()
    assert len(used) > 25
    assert sorted(used - {m.id for m in catalog if m.id}) == [], "run the pybabel commands in orders/mail_texts.py"
    if language == "fr":
        for message in catalog:
            if message.id in used:
                assert message.string and not message.fuzzy, f"not translated: {message.id!r}"
                assert sorted(PLACEHOLDER.findall(message.string)) == sorted(PLACEHOLDER.findall(message.id)), \
                    message.id


def test_the_runtime_catalog_translates() -> None:
    from orders.mail_texts import default_texts, language_of, translations

    assert translations("fr").gettext("Closed") == "Fermé"
    assert translations("de").gettext("Closed") == "Closed"
    assert default_texts("shipped", "fr")[0] == "Votre commande {order_number} est en route"
    assert [language_of(w, c) for w, c in (("fr-BE", "en"), ("de", "fr"), ("de", None), (None, "fr"),
                                            ("", ""), ("EN_gb", "fr"))] == ["fr", "fr", "en", "fr", "en", "en"]


def test_placeholders_are_filled_by_name_only() -> None:
    from orders.mail_texts import fill, placeholder_problem

    values = {"order_number": "W-1", "customer_name": "{company}"}
    assert fill("Order {order_number} for {customer_name}", values) == "Order W-1 for {company}"
    assert fill("{0.__class__} {order_number.__class__} {order_number!r} {order_number:>20} {x}", values) == \
        "{0.__class__} {order_number.__class__} {order_number!r} {order_number:>20} {x}"
    assert fill("{{literal}} {order_number", values) == "{{literal}} {order_number"  # unclosed: left as typed
    assert fill("{{literal}} {order_number}", values) == "{literal} W-1"
    allowed = ("order_number", "customer_name")
    assert placeholder_problem("Hi {customer_name}, {{braces}} are fine", allowed) is None
    assert placeholder_problem("{order_number.__class__}", allowed) == \
        "{order_number.__class__} is not a placeholder of this mail. You can use {order_number}, {customer_name}."
    assert placeholder_problem("{order_number!r}", allowed) is not None
    assert placeholder_problem("{}", allowed) is not None
    assert "not closed" in (placeholder_problem("{order_number", allowed) or "")
