"""Amounts in integer minor units, and the decimals each currency uses to show them."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

ZERO_DECIMAL = frozenset({"JPY", "KRW", "CLP", "ISK", "VND", "XOF", "XAF", "UGX", "PYG"})
THREE_DECIMAL = frozenset({"BHD", "KWD", "JOD", "OMR", "TND"})


def exponent(currency: str) -> int:
    return 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2


def major(minor: int, currency: str) -> str:
    """Minor units as the amount a person reads and types: 4990 EUR is "49.90"."""
    places = exponent(currency)
    return str(Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places))) if places else str(minor)


def to_minor(text: str, currency: str) -> int | None:
    """A typed amount ("49.90" or "49,90") in minor units; None when it is not an exact amount."""
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    minor = value.scaleb(exponent(currency))
    return int(minor) if minor == minor.to_integral_value() else None
