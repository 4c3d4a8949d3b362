"""The bounds of what the platform accepts and stores, in one place: database column types and
input validation are written from the same constants, so a value that passes validation always
fits its column.

Money is integer minor units in 64-bit columns (``core.db.MONEY_COLUMN``); validation stops far
below their limit, at a quadrillion minor units, so that sums of many lines still fit. Counts, quantities and
numbers (versions, revisions, line numbers) are 32-bit columns.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

INT32_MAX = 2**31 - 1
MONEY_MAX = 10**15  # minor units: 10^13 euros, and a thousand such lines still fit 64 bits
QUANTITY_MAX = 1_000_000_000  # units of stock at one place; a billion is a typo, not stock
LINE_QUANTITY_MAX = 1_000_000  # units of one order line
JSON_DEPTH_MAX = 64  # nesting of any JSON body (condition trees have their own, lower bound)
TEXT_MAX = 100_000  # characters of any one string field the API accepts

Money = Annotated[int, msgspec.Meta(ge=0, le=MONEY_MAX)]
# Stored as given, checked by business rules that list every problem at once ("can't be negative").
SignedMoney = Annotated[int, msgspec.Meta(ge=-MONEY_MAX, le=MONEY_MAX)]
Count = Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)]
Number = Annotated[int, msgspec.Meta(ge=1, le=INT32_MAX)]  # versions, revisions, line numbers
Int32 = Annotated[int, msgspec.Meta(ge=-INT32_MAX - 1, le=INT32_MAX)]

# Text formats, each with the words a person reads when what they typed doesn't fit (core.forms
# shows these instead of the regex; a pattern without words here needs Meta(extra={"message": ...})).
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$"  # SKUs, location codes
CODE_MESSAGE = "Use letters, digits, dots, dashes or slashes, starting with a letter or digit."
CURRENCY_PATTERN = "^[A-Za-z]{3}$"
CURRENCY_UPPER_PATTERN = "^[A-Z]{3}$"
COUNTRY_PATTERN = "^[A-Za-z]{2}$"
COUNTRY_MESSAGE = "Use a two-letter country code such as FR or US."
CURRENCY_MESSAGE = "Use a three-letter currency code such as EUR or USD."
TIMEZONE_MESSAGE = "Use a time zone name such as Europe/Paris."
PATTERN_MESSAGES: dict[str, str] = {
    CODE_PATTERN: CODE_MESSAGE,
    CURRENCY_PATTERN: CURRENCY_MESSAGE,
    CURRENCY_UPPER_PATTERN: "Use a three-letter currency code in capitals, such as EUR or USD.",
    COUNTRY_PATTERN: COUNTRY_MESSAGE,
}
