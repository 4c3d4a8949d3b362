"""Field checks shared by every domain: emails, countries, currencies, time zones, roles."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

import email_validator
import pycountry
from email_validator import EmailNotValidError, validate_email

from core.auth import ROLES

# Reserved names (.test, .example, .localhost) are refused by default; retailers try the
# product with such addresses, and mail here goes to the log anyway.
email_validator.SPECIAL_USE_DOMAIN_NAMES = []


@lru_cache(maxsize=1)
def countries() -> list[tuple[str, str]]:
    return sorted(((c.alpha_2, c.name) for c in pycountry.countries), key=lambda item: item[1])


@lru_cache(maxsize=1)
def country_currencies() -> dict[str, str]:
    """Each country's currency today (France: EUR), to suggest it when a country is chosen."""
    from babel.numbers import get_territory_currencies

    found = {}
    for code, _ in countries():
        current = get_territory_currencies(code, tender=True)
        if current:
            found[code] = current[0]
    return found


@lru_cache(maxsize=1)
def currencies() -> list[tuple[str, str]]:
    return sorted((c.alpha_3, c.name) for c in pycountry.currencies)


@lru_cache(maxsize=1)
def timezones() -> list[str]:
    return sorted(tz for tz in zoneinfo.available_timezones() if "/" in tz or tz == "UTC")


@lru_cache(maxsize=4096)  # order capture checks every customer's: most are returning ones
def check_email(value: str) -> tuple[str | None, str | None]:
    """(normalised email, None) or (None, why it is not valid)."""
    value = (value or "").strip()
    if not value:
        return None, "Enter an email address."
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return None, f"This is not a valid email address: {exc}"
    return result.normalized.lower(), None


def check_required(value: str | None, label: str, *, max_length: int = 200) -> str | None:
    value = (value or "").strip()
    if not value:
        return f"Enter {label}."
    if len(value) > max_length:
        return f"Use at most {max_length} characters for {label}."
    return None


def check_country(value: str) -> str | None:
    if not (value or "").strip():
        return "Choose a country."
    if pycountry.countries.get(alpha_2=value.upper()) is None:
        return f"Unknown country {value!r}: use a two-letter country code such as FR or US."
    return None


def check_currency(value: str) -> str | None:
    if not (value or "").strip():
        return "Choose a currency."
    if pycountry.currencies.get(alpha_3=value.upper()) is None:
        return f"Unknown currency {value!r}: use a three-letter currency code such as EUR or USD."
    return None


def check_timezone(value: str) -> str | None:
    if not (value or "").strip():
        return "Choose a time zone."
    if value not in timezones():
        return f"Unknown time zone {value!r}: use a region and a city, such as Europe/Paris."
    return None


def check_role(value: str, *, allowed: list[str] | None = None) -> str | None:
    choices = allowed if allowed is not None else list(ROLES)
    if value not in choices:
        return f"Choose one of: {', '.join(choices)}."
    return None
