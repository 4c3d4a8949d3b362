"""VAT on the platform's invoices: which rate and which mentions, from where the issuer and the
customer are established and whether the customer is a business with a valid VAT number.

- Customer in the issuer's country: the issuer's domestic rate.
- EU issuer, EU business (a valid VAT number) in another member state: reverse charge, 0 %,
  "Reverse charge" (and "Autoliquidation" for a French issuer) on the invoice.
- EU issuer, EU consumer in another member state: that member state's standard rate (services
  supplied electronically are taxed where the consumer is).
- EU issuer, customer outside the EU: 0 %, the supply is outside the scope of EU VAT.

Rates are data (``vat_rates.json``). VAT numbers are checked by format and checksum with
python-stdnum, and online with VIES only when the platform says so.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pycountry
import structlog
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength, ValidationError
from stdnum.util import get_cc_module

from billing import config
from billing.config import Issuer

log = structlog.get_logger(__name__)

OUTSIDE_EU = "VAT not applicable: services supplied outside the EU (article 44 of Directive 2006/112/EC)"
ABROAD = "VAT not applicable: services supplied to a customer established abroad"
REVERSE_CHARGE = "Reverse charge"
AUTOLIQUIDATION = "Autoliquidation"  # the French wording, required on a French issuer's invoices
NUMBER_MAX = 20  # characters of ``billing_accounts.vat_number``
VIES_TIMEOUT = 5.0  # seconds: the check runs while the owner waits for the form


@dataclass(frozen=True)
class VatDecision:
    rate_bp: int  # hundredths of a percent: 2000 is 20 %
    treatment: str  # domestic | eu_consumer | reverse_charge | outside_eu | export
    mentions: list[str] = field(default_factory=list)


@cache
def _rates() -> dict[str, dict[str, dict[str, Any]]]:
    data: dict[str, dict[str, dict[str, Any]]] = json.loads(
        (Path(__file__).parent / "vat_rates.json").read_text(encoding="utf-8"))
    return {"eu": data["eu"], "other": data["other"]}


def in_eu(country: str) -> bool:
    return country.upper() in _rates()["eu"]


def _entry(country: str) -> dict[str, Any] | None:
    rates = _rates()
    code = country.upper()
    return rates["eu"].get(code) or rates["other"].get(code)


def standard_rate(country: str) -> int:
    entry = _entry(country)
    if entry is None:
        raise LookupError(f"no VAT rate is known for {country!r}: add it to billing/vat_rates.json")
    return int(entry["rate_bp"])


def country_name(country: str) -> str:
    found = pycountry.countries.get(alpha_2=country.upper()) if len(country) == 2 else None
    return str(getattr(found, "common_name", None) or found.name) if found else country


def adjective(country: str) -> str:
    """"German" for DE; for a country the data does not describe, "of <name>" reads instead."""
    entry = _entry(country)
    return str(entry["adjective"]) if entry else ""


def _prefix(country: str) -> str:
    entry = _entry(country)
    return str(entry.get("vat_prefix", country.upper())) if entry else country.upper()


def _country_of_prefix(prefix: str) -> str:
    return "GR" if prefix == "EL" else prefix


def known_country(country: str) -> bool:
    """A country the platform bills: one ISO 3166 knows (pycountry); every EU member has a rate."""
    code = (country or "").strip().upper()
    return len(code) == 2 and pycountry.countries.get(alpha_2=code) is not None


def _number_words(exc: ValidationError, country: str) -> str:
    where = f" for {country_name(country)}" if known_country(country) else ""
    if isinstance(exc, InvalidChecksum):
        return "This VAT number is not valid: its check digits don't match. Check it for a typing mistake."
    if isinstance(exc, InvalidLength):
        return f"This VAT number has the wrong number of characters{where}."
    if isinstance(exc, InvalidFormat):
        return f"This VAT number is not in the format used{where}. Check it for a typing mistake."
    if isinstance(exc, InvalidComponent):
        return f"This VAT number is not valid{where}: check its country prefix and digits."
    return "This VAT number is not valid."


def _cleaned(number: str) -> str:
    return "".join(ch for ch in (number or "").upper() if ch.isalnum())


def check_number(number: str, country: str) -> tuple[str | None, str | None]:
    """(the number compacted with its country prefix, None), (None, None) for no number (a
    consumer), or (None, what is wrong with it in plain words). The number must belong to the
    billing ``country``; with no known country, it is checked on its own."""
    raw = _cleaned(number)
    if not raw:
        return None, None
    if len(raw) > 2 * NUMBER_MAX:
        return None, f"A VAT number has at most {NUMBER_MAX} characters."
    code = (country or "").strip().upper()
    if known_country(code) and not in_eu(code):
        return _check_national(raw, code)
    if known_country(code):
        prefix = _prefix(code)
        if raw[0].isdigit():
            raw = prefix + raw  # typed without its country prefix
        elif code == "GR" and raw.startswith("GR"):
            raw = "EL" + raw[2:]
    if not in_eu(_country_of_prefix(raw[:2])):
        return None, "Start the VAT number with its country prefix, such as DE or FR."
    try:
        compact = str(eu_vat.validate(raw))
    except ValidationError as exc:
        return None, _number_words(exc, _country_of_prefix(raw[:2]))
    if known_country(code) and compact[:2] != _prefix(code):
        other = _country_of_prefix(compact[:2])
        kind = f"a {adjective(other)}" if adjective(other) else f"a {country_name(other)}"
        return None, (f"This is {kind} VAT number: enter the VAT number your company has in "
                      f"{country_name(code)}, the billing country.")
    if len(compact) > NUMBER_MAX:
        return None, f"A VAT number has at most {NUMBER_MAX} characters."
    return compact, None


def _check_national(raw: str, country: str) -> tuple[str | None, str | None]:
    """A tax number outside the EU, where python-stdnum knows the country's (CH, GB, NO...)."""
    module = get_cc_module(country.lower(), "vat")
    if module is None:
        return None, (f"We can't check VAT numbers of {country_name(country)}: leave the field empty "
                      "(none is needed on our invoices there).")
    try:
        compact = str(module.validate(raw))
    except ValidationError as exc:
        return None, _number_words(exc, country)
    if not compact.startswith(country):
        compact = country + compact
    if len(compact) > NUMBER_MAX:
        return None, f"A VAT number has at most {NUMBER_MAX} characters."
    return compact, None


def decide(issuer: Issuer, country: str, vat_number: str | None) -> VatDecision:
    """The VAT of an invoice to a customer established in ``country``; ``vat_number`` is its
    checked VAT number, or None for a consumer (or a business that gave none)."""
    home, there = issuer.country.upper(), country.upper()
    if there == home:
        return VatDecision(standard_rate(home), "domestic", [])
    if not in_eu(home):
        return VatDecision(0, "export", [ABROAD])
    if not in_eu(there):
        return VatDecision(0, "outside_eu", [OUTSIDE_EU])
    if vat_number:
        return VatDecision(0, "reverse_charge", [REVERSE_CHARGE] + ([AUTOLIQUIDATION] if home == "FR" else []))
    return VatDecision(standard_rate(there), "eu_consumer", [])


def vat_of(subtotal_minor: int, rate_bp: int) -> int:
    """The VAT on a subtotal: subtotal * rate, rounded half up, in integers."""
    return (2 * subtotal_minor * rate_bp + 10_000) // 20_000


def _vies(number: str) -> Any:
    # The "approx" query names the requester (the issuer), so that VIES returns a consultation
    # number: the proof that the check was made.
    return eu_vat.check_vies_approx(number, config.issuer().vat_number, timeout=VIES_TIMEOUT)


def _field(result: Any, name: str) -> Any:
    try:
        return result[name]
    except (KeyError, TypeError, AttributeError):
        return None


async def verify_online(number: str) -> tuple[str, str | None]:
    """("vies_valid" | "vies_invalid", consultation number) from VIES, or ("not_checked", None)
    when it can't be reached (no network, the service down, no SOAP client installed)."""
    try:
        result = await asyncio.wait_for(asyncio.to_thread(_vies, number), timeout=VIES_TIMEOUT + 1)
        valid = bool(result["valid"])
        consultation = _field(result, "requestIdentifier")
    except Exception as exc:  # whatever stops the check, the number is recorded as not checked
        log.warning("billing.vies_unreachable", number=number, error=str(exc)[:200])
        return "not_checked", None
    return ("vies_valid" if valid else "vies_invalid"), (str(consultation)[:100] if consultation else None)
