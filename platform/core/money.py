"""Amounts in integer minor units, and the decimals each currency uses to show them."""

from __future__ import annotations

import re
from decimal import Decimal

from core.limits import MONEY_MAX

ZERO_DECIMAL = frozenset({"JPY", "KRW", "CLP", "ISK", "VND", "XOF", "XAF", "UGX", "PYG"})
THREE_DECIMAL = frozenset({"BHD", "KWD", "JOD", "OMR", "TND"})


def exponent(currency: str) -> int:
    return 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2


def major(minor: int, currency: str) -> str:
    """Minor units as the amount a person reads and types: 4990 EUR is "49.90"."""
    places = exponent(currency)
    return str(Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places))) if places else str(minor)


# Digits, one decimal separator, a few decimals: read as text, never through Decimal, whose free
# exponent ("1e999990") would cost seconds of work.
_AMOUNT = re.compile(r"([+-]?)([0-9]{1,16})(?:[.,]([0-9]{1,3}))?")


def to_minor(text: str, currency: str) -> int | None:
    """A typed amount ("49.90" or "49,90") in minor units; None when it is not an amount in the
    currency's decimals, or beyond what the platform stores. More decimals than the currency has
    are refused, not rounded or read as zeros: "1,000" is a thousand to one person and one to
    another, so in yen or euros it is asked again rather than guessed."""
    match = _AMOUNT.fullmatch(text.strip())
    if match is None:
        return None
    sign, whole, decimals = match.groups()
    places = exponent(currency)
    decimals = decimals or ""
    if len(decimals) > places:
        return None
    minor = int(whole) * 10**places + int(decimals[:places].ljust(places, "0") or "0")
    minor = -minor if sign == "-" else minor
    return minor if abs(minor) <= MONEY_MAX else None


def apportion(amount: int, weights: list[int]) -> list[int]:
    """``amount`` shared in proportion to ``weights``, in whole minor units that add up to it
    exactly: each share rounded down, and the units left over given to the largest remainders
    (the first of equal ones). Zero weights get nothing; with no weight at all, nothing is shared."""
    total = sum(weights)
    if amount == 0 or total <= 0:
        return [0] * len(weights)
    shares = [amount * weight // total for weight in weights]
    remainders = sorted(range(len(weights)), key=lambda i: (-(amount * weights[i] % total), i))
    for i in remainders[:amount - sum(shares)]:
        shares[i] += 1
    return shares
