"""Numbers typed into console forms, read with bounded grammars before any arithmetic.

What a person types ("12", "-3", "48.85", "49,90") is read; nothing else is: not "²" (a digit
to ``str.isdigit``), "--1", "nan", "1e999", nor five thousand digits (which ``int`` refuses and
``Decimal`` happily turns into seconds of work). Each reader answers None for text that is not
such a number within its bounds, and the form says so next to the field.
"""

from __future__ import annotations

import re

from core.limits import INT32_MAX

_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_DECIMAL = re.compile(r"[+-]?[0-9]{1,15}(?:[.,][0-9]{1,15})?")


def parse_int(text: str | None, *, lo: int = -INT32_MAX - 1, hi: int = INT32_MAX) -> int | None:
    if text is None or not _INTEGER.fullmatch(text := text.strip()):
        return None
    value = int(text)
    return value if lo <= value <= hi else None


def parse_float(text: str | None, *, lo: float, hi: float) -> float | None:
    if text is None or not _DECIMAL.fullmatch(text := text.strip()):
        return None
    value = float(text.replace(",", "."))
    return value if lo <= value <= hi else None
