"""Money, numbers and times as a company's people read and write them.

A company has a language (``tenants.language``, the default of its customer mails) and a country;
together they give the locale its console formats with: a French company reads "29 593,90 €",
an American one "$29,593.90". Amounts stay integers in minor units everywhere else; this module
only turns them into text and back.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime as _babel_datetime
from babel.dates import format_timedelta
from babel.numbers import format_currency, get_currency_precision, get_currency_symbol, get_decimal_symbol

from core.money import exponent, major, to_minor

DEFAULT_LOCALE = "en_US"
# The languages customer mails and the console's formats come in (message catalogs exist for each).
LANGUAGES = {"en": "English", "fr": "Français"}


def default_language(country: str | None) -> str:
    """The language a new company of ``country`` starts with: the country's main official
    language when mails exist in it (France: French), else English."""
    from babel.languages import get_official_languages

    official = get_official_languages(country or "", de_facto=True) if country else ()
    return official[0] if official and official[0] in LANGUAGES else "en"


@lru_cache(maxsize=512)
def locale_of(language: str | None, country: str | None = None) -> Locale:
    """The locale of a language in a country ("fr" in "BE": fr_BE), else the language's own
    (French in the US: fr), else English."""
    for candidate in (f"{language}_{country}", language, DEFAULT_LOCALE):
        if not candidate or "None" in candidate:
            continue
        try:
            return Locale.parse(candidate)
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse(DEFAULT_LOCALE)


def format_money(minor: int | None, currency: str, locale: Locale | str | None = None) -> str:
    """Minor units in the locale's currency format: 2959390 EUR is "29 593,90 €" in fr_FR. Where
    CLDR shows fewer decimals than the currency's minor unit (HUF, IDR: none), the pattern's own
    two are shown, so no cent stored is hidden."""
    if minor is None:
        return "—"
    places = exponent(currency)
    amount = Decimal(minor).scaleb(-places)
    return format_currency(amount, currency, locale=locale or DEFAULT_LOCALE,
                           currency_digits=places == get_currency_precision(currency))


def format_age(since: datetime, now: datetime, locale: Locale | str | None = None) -> str:
    """How long something has waited, in words of the locale ("3 hours", "2 days", "3 Stunden")."""
    return format_timedelta(max(now - since, timedelta(minutes=1)), granularity="minute", format="long",
                            locale=locale or DEFAULT_LOCALE)


def format_time(value: datetime | None, timezone: str | None, locale: Locale | str | None = None,
                fmt: str = "medium") -> str:
    """A UTC time in the company's time zone and locale ("5 déc. 2026, 22:10:00")."""
    if value is None:
        return "—"
    return _babel_datetime(value, fmt, tzinfo=ZoneInfo(timezone or "UTC"), locale=locale or DEFAULT_LOCALE)


_SPACES = re.compile(r"[\s\u00a0\u202f']")
_SPACE_GROUPED = re.compile(r"([+-]?[0-9]{1,3}(?:[\s\u00a0\u202f'][0-9]{3})+)([.,][0-9]+)?")


def parse_money(text: str | None, currency: str, locale: Locale | str | None = None) -> int | None:
    """An amount as people type it, in minor units: "59,00 €", "59.00", "€59", "1 234,56",
    "1,234.56", "59 EUR". None when it is not an amount in the currency's decimals (see
    ``core.money.to_minor``: nothing is guessed, and the grammar is bounded before arithmetic)."""
    if text is None or len(text) > 64:
        return None
    cleaned = text.strip()
    symbol = get_currency_symbol(currency, locale=locale or DEFAULT_LOCALE)
    for token in (currency, symbol, currency.lower()):
        cleaned = cleaned.replace(token, "")
    cleaned = cleaned.strip()
    # Spaces and apostrophes only ever group thousands ("1 234,56", "1'234.56"): "59 00" is a
    # typo, not 5,900.
    grouped = _SPACE_GROUPED.fullmatch(cleaned)
    if grouped:
        cleaned = _SPACES.sub("", grouped.group(1)) + (grouped.group(2) or "")
    elif _SPACES.search(cleaned):
        return None
    if "," in cleaned and "." in cleaned:
        # Both separators: the last one is the decimal one, the other groups thousands.
        decimal = "," if cleaned.rfind(",") > cleaned.rfind(".") else "."
        group = "." if decimal == "," else ","
        whole, _, fraction = cleaned.rpartition(decimal)
        if not re.fullmatch(r"[+-]?[0-9]{1,3}(?:" + re.escape(group) + r"[0-9]{3})+", whole):
            return None
        cleaned = whole.replace(group, "") + "." + fraction
    return to_minor(cleaned, currency)


def money_input(minor: int | None, currency: str, locale: Locale | str | None = None) -> str:
    """An amount as a form field shows it for editing: "59,00" in French, "59.00" in English."""
    if minor is None:
        return ""
    return major(minor, currency).replace(".", get_decimal_symbol(locale or DEFAULT_LOCALE))
