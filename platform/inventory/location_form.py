"""The location form: what a person types, read into a ``LocationIn`` with every problem at once
and each beside its field; the shipping cost typed as people write amounts ("5,90 €", "5.90");
the coordinates found from the city when they are left empty."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from babel.numbers import get_currency_symbol

from core import validation
from core.forms import convert, html_attributes, parse_float, parse_int
from core.limits import COUNTRY_PATTERN
from core.locale import format_money, money_input, parse_money
from inventory import geocoding
from inventory.models import Location
from inventory.schemas import LocationIn

FLAGS = ("ships_to_customers", "click_and_collect", "ship_from_store", "receives_transfers", "accepts_returns")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TAGS_MAX, TAG_LENGTH_MAX = 50, 50  # LocationIn.tags
_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
_WIDE = 10**15  # numbers are read by grammar first; their range is the type's, told in its words

# The browser checks what the server checks, in the same words (see core.forms.html_attributes).
RULES = html_attributes(LocationIn)
COUNTRY_HTML_PATTERN = COUNTRY_PATTERN.strip("^$")
# Numbers are typed into text fields (a number field sends nothing for what it can't read, and the
# form would come back without it): the grammar of core.forms.parse_float / parse_int, spaces around.
DECIMAL_HTML_PATTERN = r"\s*[+\-]?[0-9]{1,15}(?:[.,][0-9]{1,15})?\s*"
INTEGER_HTML_PATTERN = r"\s*[+\-]?[0-9]{1,18}\s*"
NUMBER_WORDS = {
    "latitude": "Enter a number such as 48.85.",
    "longitude": "Enter a number such as 2.35.",
    "daily_capacity": "Enter a whole number such as 500, or leave it empty for no limit.",
    "priority": "Enter a whole number such as 100.",
    "promise_hours": "Enter a whole number of hours from 1 to 720, such as 24.",
}
HOURS_WORDS = {
    "open_missing": "Give the opening time too, or neither.",
    "close_missing": "Give the closing time too, or neither.",
    "open_format": "Enter a time such as 09:30.",
    "close_format": "Enter a time such as 19:00.",
    "order": "Closing must be later than opening.",
}
_REGEX_SYNTAX = frozenset("\\^$.*+?()[]{}|/")  # escaped outside a class in the browser's unicode regexes


def amount_words(currency: str, locale: str) -> str:
    return f"Enter an amount such as {money_input(590, currency, locale)} or {format_money(590, currency, locale)}."


def amount_html_pattern(currency: str, locale: str) -> str:
    """What ``parse_money`` may read, for the browser to tell "abc" at once: digits with separators,
    the currency's code or symbol before or after. The server reads it exactly."""
    tokens = {currency, currency.lower(), get_currency_symbol(currency, locale=locale)}
    unit = "|".join("".join("\\" + c if c in _REGEX_SYNTAX else c for c in token)
                    for token in sorted(tokens, key=len, reverse=True))
    return rf"\s*(?:{unit})?\s*[+\-]?[0-9][0-9\s'.,]*\s*(?:{unit})?\s*"


def browser_checks(currency: str, locale: str) -> dict[str, Any]:
    """The patterns and words the form's fields carry (``data-msg-*``), so that app.js tells in the
    browser, in the server's words, what the server would refuse; the server checks everything again."""
    return {
        "decimal_pattern": DECIMAL_HTML_PATTERN, "integer_pattern": INTEGER_HTML_PATTERN, "numbers": NUMBER_WORDS,
        "amount_pattern": amount_html_pattern(currency, locale), "amount": amount_words(currency, locale),
        "hours": HOURS_WORDS,
        # The service's own words, with the typed value put in by the browser where {value} stands.
        "unknown_country": validation.check_country("{value}"),
        "unknown_timezone": validation.check_timezone("{value}"),
    }


def _read_numbers(text: dict[str, str], names: tuple[str, ...], parse: Callable[..., float | int | None],
                  raw: dict[str, Any], errors: dict[str, str]) -> None:
    """Each typed number into ``raw``, or its words into ``errors``; its range is the type's."""
    for name in names:
        if typed := text.get(name):
            number = parse(typed, lo=-_WIDE, hi=_WIDE)
            if number is None:
                errors[name] = NUMBER_WORDS[name]
            else:
                raw[name] = number


def read(data: dict[str, str], *, timezone: str, country: str, currency: str, locale: str) -> LocationIn:
    """The form's fields as a location, or ``invalid`` with every problem, each on its field."""
    errors: dict[str, str] = {}
    text = {name: (data.get(name) or "").strip() for name in data}
    raw: dict[str, Any] = {
        "code": text.get("code", ""), "name": text.get("name", ""), "kind": text.get("kind") or "warehouse",
        "country": (text.get("country") or country).upper(), "timezone": text.get("timezone") or timezone,
        "address_line1": text.get("address_line1", ""), "city": text.get("city", ""),
        "postcode": text.get("postcode", ""), "status": text.get("status") or "active",
    }
    for flag in FLAGS:
        raw[flag] = data.get(flag) == "on"

    _read_numbers(text, ("latitude", "longitude"), parse_float, raw, errors)
    if ("latitude" in raw) != ("longitude" in raw) and not errors:
        missing = "longitude" if "latitude" in raw else "latitude"
        errors[missing] = f"Give the {missing} too, or leave both empty to find them from the city."
    _read_numbers(text, ("daily_capacity", "priority", "promise_hours"), parse_int, raw, errors)
    if typed := text.get("shipping_cost"):
        minor = parse_money(typed, currency, locale)
        if minor is None:
            errors["shipping_cost"] = amount_words(currency, locale)
        elif minor < 0:
            errors["shipping_cost"] = "Enter an amount of 0 or more."
        else:
            raw["shipping_cost_minor"] = minor

    tags = [t.strip() for t in text.get("tags", "").split(",") if t.strip()]
    if len(tags) > TAGS_MAX:
        errors["tags"] = f"Use at most {TAGS_MAX} tags."
    elif any(len(t) > TAG_LENGTH_MAX for t in tags):
        errors["tags"] = f"Keep each tag to {TAG_LENGTH_MAX} characters at most."
    raw["tags"] = tags

    hours: dict[str, list[list[str]]] = {}
    for day in DAYS:
        opens, closes = text.get(f"open_{day}", ""), text.get(f"close_{day}", "")
        if not opens and not closes:
            continue
        if not opens:
            errors[f"open_{day}"] = HOURS_WORDS["open_missing"]
        elif not closes:
            errors[f"close_{day}"] = HOURS_WORDS["close_missing"]
        elif not _TIME.fullmatch(opens):
            errors[f"open_{day}"] = HOURS_WORDS["open_format"]
        elif not _TIME.fullmatch(closes):
            errors[f"close_{day}"] = HOURS_WORDS["close_format"]
        elif opens >= closes:
            errors[f"close_{day}"] = HOURS_WORDS["order"]
        else:
            hours[day] = [[opens, closes]]
    raw["opening_hours"] = hours

    # What the service checks too, told here with the rest rather than after them.
    if len(raw["country"]) == 2 and (problem := validation.check_country(raw["country"])):
        errors["country"] = problem
    if raw["timezone"] and len(raw["timezone"]) <= 64 and (problem := validation.check_timezone(raw["timezone"])):
        errors["timezone"] = problem
    return convert(raw, LocationIn, errors=errors, names={"shipping_cost_minor": "shipping_cost"},
                   messages={"shipping_cost": "Enter an amount of 0 or more."})


def values_of(location: Location, currency: str, locale: str) -> dict[str, Any]:
    """A saved location as the form shows it for editing."""
    values: dict[str, Any] = {f: getattr(location, f) for f in LocationIn.__struct_fields__}
    values["tags"] = ", ".join(location.tags)
    values["shipping_cost"] = money_input(location.shipping_cost_minor, currency, locale)
    for name in ("latitude", "longitude", "daily_capacity"):
        values[name] = "" if values[name] is None else str(values[name])
    for day, windows in location.opening_hours.items():
        if windows:
            values[f"open_{day}"], values[f"close_{day}"] = windows[0]
    return values


@dataclass(frozen=True)
class Placement:
    """What finding a location's coordinates from its city gave, for the form to tell."""

    tried: bool  # the coordinates were left empty and a city was given
    place: geocoding.Place | None = None

    def note(self, city: str, country: str) -> dict[str, str]:
        if self.place is not None:
            return {"placed": f"Placed at {self.place.short} — correct the coordinates if needed."}
        return {"not_found": f"We couldn't find “{city[:100]}” in {country}: enter its coordinates yourself, or "
                             "leave them empty (routing by distance then leaves this location aside)."}


async def place(data: LocationIn) -> tuple[LocationIn, Placement]:
    """The location with coordinates found from its city when it has none."""
    if data.latitude is not None or data.longitude is not None or not data.city.strip():
        return data, Placement(tried=False)
    found = await geocoding.locate(data.city, data.country, data.postcode)
    if found is None:
        return data, Placement(tried=True)
    return msgspec.structs.replace(data, latitude=found.latitude, longitude=found.longitude), \
        Placement(tried=True, place=found)
