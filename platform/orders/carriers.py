"""Parcel carriers: who takes a shipment and where its customer follows it.

The list is data (``carriers.json``): a code stored on the fulfilment, a name, the countries a
carrier mainly serves (its carriers come first for a location there) and its public tracking
page, ``{number}`` standing for the tracking number. ``other`` is any carrier not listed: the
tracking link, if there is one, is typed by whoever ships, and must be a web address.

``tracking`` checks what was typed when shipping, reports every problem at once by field, and
gives the number as stored and the link the customer gets.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlsplit

from core.problems import invalid

OTHER = "other"
OTHER_NAME = "Other carrier"
NUMBER_MAX = 100
URL_MAX = 500
# Letters, digits and dashes: what carriers print under their barcodes. Spaces people type to
# group the digits are taken out first.
_NUMBER = re.compile(r"[A-Za-z0-9-]+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Carrier:
    code: str
    name: str
    countries: tuple[str, ...]
    tracking_url: str | None  # with {number}; None for "other"

    def link(self, number: str | None) -> str | None:
        if not number or not self.tracking_url:
            return None
        return self.tracking_url.replace("{number}", quote(number, safe=""))


@lru_cache(maxsize=1)
def carriers() -> dict[str, Carrier]:
    """Every listed carrier by code, in the data's order, then ``other``."""
    raw = json.loads((Path(__file__).with_name("carriers.json")).read_text(encoding="utf-8"))
    found: dict[str, Carrier] = {}
    for item in raw["carriers"]:
        carrier = Carrier(code=item["code"], name=item["name"], countries=tuple(item.get("countries", ())),
                          tracking_url=item["tracking_url"])
        assert carrier.code not in found and len(carrier.code) <= 40 and carrier.code != OTHER, carrier.code
        assert carrier.tracking_url and carrier.tracking_url.startswith("https://") \
            and "{number}" in carrier.tracking_url, carrier.code
        found[carrier.code] = carrier
    found[OTHER] = Carrier(code=OTHER, name=OTHER_NAME, countries=(), tracking_url=None)
    return found


def choices(country: str | None = None) -> list[Carrier]:
    """The carriers to offer when shipping from ``country``: that country's first, then the
    others, then ``other``; each group in the data's order."""
    listed = [c for c in carriers().values() if c.code != OTHER]
    country = (country or "").upper()
    first = [c for c in listed if country in c.countries]
    return [*first, *(c for c in listed if c not in first), carriers()[OTHER]]


def name_of(code: str | None) -> str:
    if not code:
        return ""
    carrier = carriers().get(code)
    return carrier.name if carrier else code


def normalised(carrier: str | None, number: str | None) -> str | None:
    """A tracking number as stored and looked up: without spaces, and in capitals for a listed
    carrier (whose numbers ignore case); None when nothing was typed."""
    if number is None:
        return None
    number = _SPACES.sub("", number)
    if not number:
        return None
    return number.upper() if carrier and carrier != OTHER and carrier in carriers() else number


@dataclass(frozen=True)
class Tracking:
    carrier: str | None
    number: str | None
    url: str | None

    @property
    def carrier_name(self) -> str:
        return name_of(self.carrier)


def check_number(number: str | None, *, label: str = "The tracking number") -> str | None:
    """Why a (normalised) tracking number can't be stored, or None."""
    if number is None:
        return None
    if len(number) > NUMBER_MAX:
        return f"{label} is longer than {NUMBER_MAX} characters: check what was typed."
    if not _NUMBER.fullmatch(number):
        return f"{label} may hold only letters, digits and dashes."
    return None


def check_url(url: str) -> str | None:
    if len(url) > URL_MAX:
        return f"The tracking link is longer than {URL_MAX} characters."
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(ch.isspace() or ord(ch) < 32
                                                                          for ch in url):
        return "The tracking link must be a web address starting with https:// (or http://)."
    return None


def tracking(carrier: str | None, number: str | None, url: str | None = None, *,
             carrier_required: bool = False) -> Tracking:
    """What was typed when shipping, checked: a listed carrier needs its tracking number and
    builds the link; ``other`` takes an optional number and an optional link of its own; no
    carrier at all is allowed unless ``carrier_required`` (the console asks for one when a parcel
    goes to a customer). Every problem is reported at once (422, by field)."""
    errors: dict[str, str] = {}
    code = (carrier or "").strip().lower() or None
    number = normalised(code, number)
    url = (url or "").strip() or None
    known = carriers().get(code) if code else None
    if code is None and carrier_required:
        errors["carrier"] = "Choose the carrier that takes the parcel (or Other carrier)."
    elif code is not None and known is None:
        errors["carrier"] = f"Unknown carrier {code[:40]!r}: choose one of the list, or {OTHER!r}."
    if problem := check_number(number):
        errors["tracking_number"] = problem
    elif known is not None and known.code != OTHER and number is None:
        errors["tracking_number"] = f"Enter the tracking number {known.name} gave for the parcel."
    if url is not None:
        if code != OTHER:
            errors["tracking_url"] = ("A tracking link is typed only for another carrier: the listed carriers' "
                                      "links are made from the tracking number.")
        elif problem := check_url(url):
            errors["tracking_url"] = problem
    if errors:
        raise invalid(errors, detail=next(iter(errors.values())))
    link = url if code == OTHER else (known.link(number) if known else None)
    return Tracking(carrier=code, number=number, url=link)
