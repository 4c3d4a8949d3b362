"""The platform's own billing settings, read from the environment: the issuing entity named on
invoices, the platform's Stripe account (distinct from each company's own, under Settings →
Payments), and the dunning delays."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Issuer:
    """The one entity that issues every invoice: its numbering series are its own."""

    code: str  # names its series in ``invoice_counters``
    name: str
    address: str  # lines separated by newlines
    country: str
    vat_number: str
    timezone: str  # the invoice's date, and the year of its series, are read here
    legal: str = ""  # legal form, share capital and registration, as French invoices must print them

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def issuer() -> Issuer:
    vat_number = os.environ.get("BILLING_ISSUER_VAT", "FR19812345676").strip().upper().replace(" ", "")
    return Issuer(
        code=os.environ.get("BILLING_ISSUER_CODE", "").strip() or vat_number,
        name=os.environ.get("BILLING_ISSUER_NAME", "OMS Platform SAS"),
        address=os.environ.get("BILLING_ISSUER_ADDRESS", "10 rue de la Paix\n75002 Paris").replace("\\n", "\n"),
        country=os.environ.get("BILLING_ISSUER_COUNTRY", "FR").strip().upper(),
        vat_number=vat_number,
        timezone=os.environ.get("BILLING_ISSUER_TIMEZONE", "Europe/Paris"),
        legal=os.environ.get("BILLING_ISSUER_LEGAL", "SAS au capital de 10 000 € · RCS Paris 812 345 676").strip(),
    )


def stripe_secret_key() -> str | None:
    """The platform's Stripe secret key; None: invoices are local only (not collected), and say so."""
    return os.environ.get("STRIPE_SECRET_KEY", "").strip() or None


def stripe_publishable_key() -> str | None:
    return os.environ.get("STRIPE_PUBLISHABLE_KEY", "").strip() or None


def stripe_webhook_secret() -> str | None:
    return os.environ.get("STRIPE_WEBHOOK_SECRET", "").strip() or None


def test_cards_allowed() -> bool:
    """A card typed into our own form reaches only a fake Stripe (STRIPE_API_BASE set): with Stripe
    itself, cards are taken by Stripe Elements and never pass through the platform."""
    return bool(os.environ.get("STRIPE_API_BASE", "").strip())


def intake_refused_after_days() -> int:
    """How long a restricted account keeps taking new orders before intake is refused (402)."""
    raw = os.environ.get("BILLING_INTAKE_REFUSED_AFTER_DAYS", "30").strip()
    return int(raw) if raw.isdigit() else 30


def vies_enabled() -> bool:
    """Check VAT numbers online with the EU's VIES service too (format and checksum always)."""
    return os.environ.get("BILLING_VIES_CHECK", "").strip().lower() in {"1", "true", "yes", "on"}
