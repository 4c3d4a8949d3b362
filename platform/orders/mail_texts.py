"""The words of the customer mails: their languages (message catalogs read with Babel), the
default subject and introduction of each kind of mail, the placeholders a company may use in its
own, and the company's own texts (``mail_templates``).

Catalogs are ``orders/translations/<language>/LC_MESSAGES/messages.po``, read when first needed:
no build step. The English msgids are the source; a language without a catalog gets English.
After changing a message, bring the catalogs up to date and translate what is new (a unit test
lists what is missing)::

    pybabel extract -F platform/orders/translations/babel.cfg -k N_ -o platform/orders/translations/messages.pot .
    pybabel update -i platform/orders/translations/messages.pot -d platform/orders/translations

A new language is ``pybabel init -l <code>`` plus its entry in ``core.locale.LANGUAGES``.
A company's subject and introduction may name placeholders such as ``{order_number}``. They are
filled by name only (``fill``): no attribute, index or format spec is ever evaluated, and an
unknown one stays as typed. Saving refuses unknown ones (``placeholder_problem``).
"""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from string import Formatter

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.auth import Principal
from core.db import utcnow
from core.ids import uuid7
from core.locale import LANGUAGES
from core.models import MailTemplate
from core.problems import invalid, not_found
from tenants.service import Actor, audit

CATALOGS = Path(__file__).resolve().parent / "translations"
DEFAULT_LANGUAGE = "en"
SUBJECT_MAX = 200
INTRO_MAX = 2000


def N_(message: str) -> str:  # the name message extraction looks for
    """Marks a message for the catalogs; it is translated where it is used."""
    return message


@lru_cache(maxsize=16)
def translations(language: str) -> NullTranslations:
    """The catalog of ``language`` (English, the msgids themselves, when there is none)."""
    path = CATALOGS / language / "LC_MESSAGES" / "messages.po"
    if language not in LANGUAGES or not path.is_file():
        return NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out: they fall back to English
    compiled.seek(0)
    return Translations(compiled)


_LANGUAGE_TAG = re.compile(r"([A-Za-z]{2})(?:[-_][A-Za-z0-9]{1,8})*")


def language_code(tag: str | None) -> str | None:
    """The two-letter language of a tag as a customer's browser or shop sends it ("fr", "fr-BE",
    "en_GB"); None when it is not one."""
    found = _LANGUAGE_TAG.fullmatch((tag or "").strip())
    return found.group(1).lower() if found else None


def language_of(wanted: str | None, company_language: str | None) -> str:
    """The mail's language: the order's when supported, else the company's, else English."""
    for candidate in (wanted, company_language):
        if (code := language_code(candidate)) in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


# --- kinds of mail ------------------------------------------------------------------------------


PLACEHOLDERS = {
    "order_number": "the order's number (the channel's own when it has one)",
    "customer_name": "the customer's name",
    "company": "your company's name",
    "total": "the order's total",
    "store": "the pickup store's name",
    "pickup_by": "the date and time to collect by",
    "carrier": "the carrier's name",
    "tracking_number": "the parcel's tracking number",
    "refund": "the amount refunded",
}
_COMMON = ("order_number", "customer_name", "company", "total")


@dataclass(frozen=True)
class MailKind:
    code: str
    label: str  # in the console
    when: str  # when it is sent, in the console
    subject: str  # msgid
    intro: str  # msgid
    placeholders: tuple[str, ...]


KINDS: dict[str, MailKind] = {kind.code: kind for kind in (
    MailKind("confirmation", "Order confirmation", "when an order is received",
             N_("We have your order {order_number}"),
             N_("Thank you for your order with {company}. Here is what you ordered; we will write to you again "
                "at each step."), _COMMON),
    MailKind("shipped", "Shipped", "when a parcel leaves for the customer's address",
             N_("Your order {order_number} is on its way"),
             N_("Good news: your order has left us and is on its way to you."),
             (*_COMMON, "carrier", "tracking_number")),
    MailKind("delivered", "Delivered", "when the carrier has delivered the parcel",
             N_("Your order {order_number} was delivered"),
             N_("Your parcel was delivered. We hope you enjoy your order."),
             (*_COMMON, "carrier", "tracking_number")),
    MailKind("ready_for_pickup", "Ready for pickup", "when a click & collect order waits at the store",
             N_("Your order {order_number} is ready to collect"),
             N_("Your order is waiting for you at {store}. Please bring your order number."),
             (*_COMMON, "store", "pickup_by")),
    MailKind("cancelled", "Cancelled", "when the whole order is cancelled",
             N_("Your order {order_number} was cancelled"),
             N_("Your order has been cancelled. We are sorry it did not work out this time."),
             (*_COMMON, "refund")),
    MailKind("lines_cancelled", "Partly cancelled", "when some units of an order are cancelled, not all of it",
             N_("Part of your order {order_number} was cancelled"),
             N_("Part of your order has been cancelled. Here is what was cancelled, and what is still coming."),
             (*_COMMON, "refund")),
    MailKind("pickup_expired", "Not collected", "when a pickup was not collected in time",
             N_("Your order {order_number} was not collected"),
             N_("Your order was not collected in time from {store}, so we cancelled it."),
             (*_COMMON, "store", "refund")),
    MailKind("pickup_store_changed", "Pickup store changed", "when customer service changes the pickup store",
             N_("New pickup store for your order {order_number}"),
             N_("You will now collect your order at {store}. We will write to you as soon as it is ready there."),
             (*_COMMON, "store")),
    MailKind("address_changed", "Delivery address changed", "when customer service changes the delivery address",
             N_("New delivery address for your order {order_number}"),
             N_("The delivery address of your order has been changed to the one below. If you did not ask for "
                "this, please contact us."), _COMMON),
)}


# --- placeholders -------------------------------------------------------------------------------


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with each ``{name}`` of ``values`` replaced by its value, by name only. Anything
    else between braces (unknown names, ``{0.__class__}``, format specs) is left as typed."""
    try:
        parsed = list(Formatter().parse(text))
    except ValueError:  # an unmatched brace: the text as it is
        return text
    out: list[str] = []
    for literal, name, spec, conversion in parsed:
        out.append(literal)
        if name is None:
            continue
        if name in values and not spec and not conversion:
            out.append(values[name])
        else:
            out.append("{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}")
    return "".join(out)


def placeholder_problem(text: str, allowed: tuple[str, ...]) -> str | None:
    """What is wrong with the placeholders of ``text``, in plain words; None when all is well."""
    try:
        parsed = list(Formatter().parse(text))
    except ValueError:
        return "A brace { or } is not closed: placeholders are written {order_number}; for a brace itself, " \
               "type it twice ({{ or }})."
    names = ", ".join("{" + name + "}" for name in allowed)
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in allowed or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            return f"{shown} is not a placeholder of this mail. You can use {names}."
    return None


# --- the company's own texts --------------------------------------------------------------------


Texts = dict[tuple[str, str], tuple[str, str]]  # (kind, language) -> (subject, intro)


async def company_texts(session: AsyncSession, tenant_id: uuid.UUID) -> Texts:
    rows = await session.execute(select(MailTemplate.kind, MailTemplate.language, MailTemplate.subject,
                                        MailTemplate.intro).where(MailTemplate.tenant_id == tenant_id))
    return {(kind, language): (subject, intro) for kind, language, subject, intro in rows}


def default_texts(kind: str, language: str) -> tuple[str, str]:
    catalog = translations(language)
    return catalog.gettext(KINDS[kind].subject), catalog.gettext(KINDS[kind].intro)


def text_problems(kind: str, subject: str, intro: str) -> dict[str, str]:
    """Every problem of a subject and introduction, by field."""
    allowed = KINDS[kind].placeholders
    errors: dict[str, str] = {}
    if not subject.strip():
        errors["subject"] = "Give the mail a subject (or reset it to the default)."
    elif len(subject) > SUBJECT_MAX:
        errors["subject"] = f"Keep the subject under {SUBJECT_MAX} characters; it has {len(subject)}."
    elif problem := placeholder_problem(subject, allowed):
        errors["subject"] = problem
    if not intro.strip():
        errors["intro"] = "Give the mail an introduction (or reset it to the default)."
    elif len(intro) > INTRO_MAX:
        errors["intro"] = f"Keep the introduction under {INTRO_MAX} characters; it has {len(intro)}."
    elif problem := placeholder_problem(intro, allowed):
        errors["intro"] = problem
    return errors


def check_kind(kind: str, language: str) -> None:
    if kind not in KINDS:
        raise not_found("Kind of mail")
    if language not in LANGUAGES:
        raise not_found("Language")


async def save_texts(session: AsyncSession, principal: Principal, kind: str, language: str, subject: str,
                     intro: str, *, ip: str | None = None) -> None:
    """The company's subject and introduction of one mail in one language; refused with every
    problem at once. Audited."""
    check_kind(kind, language)
    subject, intro = " ".join(subject.split()), intro.strip().replace("\r\n", "\n")
    if errors := text_problems(kind, subject, intro):
        raise invalid(errors)
    statement = insert(MailTemplate).values(
        tenant_id=principal.tenant_id, id=uuid7(), kind=kind, language=language, subject=subject, intro=intro,
        updated_at=utcnow(), updated_by=principal.label)
    await session.execute(statement.on_conflict_do_update(
        index_elements=["tenant_id", "kind", "language"],
        set_={"subject": subject, "intro": intro, "updated_at": utcnow(), "updated_by": principal.label}))
    await audit(session, principal.tenant_id, Actor.of(principal, ip), "settings.mail_text_changed",
                target=f"{KINDS[kind].label} ({LANGUAGES[language]})", subject=subject)


async def reset_texts(session: AsyncSession, principal: Principal, kind: str, language: str, *,
                      ip: str | None = None) -> None:
    """Back to the platform's default subject and introduction for one mail in one language."""
    check_kind(kind, language)
    deleted = await session.execute(delete(MailTemplate).where(
        MailTemplate.tenant_id == principal.tenant_id, MailTemplate.kind == kind, MailTemplate.language == language
    ).returning(MailTemplate.id))
    if deleted.first() is not None:
        await audit(session, principal.tenant_id, Actor.of(principal, ip), "settings.mail_text_reset",
                    target=f"{KINDS[kind].label} ({LANGUAGES[language]})")
