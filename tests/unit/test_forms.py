"""Input read with every problem at once, in plain words; the same rules for the browser; places
found from a city; money as people type and read it."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

import msgspec
import pytest

from core.forms import convert, html_attributes, html_pattern, plain, problems
from core.limits import CODE_MESSAGE, CODE_PATTERN, PATTERN_MESSAGES
from core.locale import format_money, money_input, parse_money
from core.problems import ProblemError

INTERNALS = re.compile(r"Expected `|`\$|\$\.|regex|msgspec|got `|\[\.\.\.\]")


class Line(msgspec.Struct, forbid_unknown_fields=True):
    sku: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=CODE_PATTERN)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1000)]


class Sample(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=10)]
    kind: Literal["store", "warehouse"]
    count: Annotated[int, msgspec.Meta(ge=0)]
    ratio: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    code: Annotated[str, msgspec.Meta(min_length=3, max_length=3, extra={"message": "Use a code like ABC."})] = "ABC"
    tags: Annotated[list[Annotated[str, msgspec.Meta(max_length=5)]], msgspec.Meta(max_length=2)] = []
    lines: Annotated[list[Line], msgspec.Meta(max_length=3)] = []
    hours: dict[str, list[str]] = {}
    at: datetime | None = None
    flag: bool = False

    def __post_init__(self) -> None:
        if self.name == "nobody":
            raise ValueError("Nobody can't be a name here.")


def test_every_problem_is_told_at_once_in_plain_words() -> None:
    raw = {"name": "", "kind": "barn", "count": -1, "ratio": 95.5, "code": "ABCD", "tags": ["fine", "too long"],
           "lines": [{"sku": "bad sku!", "quantity": 0}, {"quantity": "two"}], "hours": {"mon": [9]},
           "at": "yesterday", "flag": "yes", "colour": "red"}
    found = problems(raw, Sample)
    assert found == {
        "name": "This field is required.",
        "kind": "Choose one of: store, warehouse.",
        "count": "Enter a whole number of 0 or more.",
        "ratio": "Enter a number from -90 to 90.",
        "code": "Use a code like ABC.",
        "tags[1]": "Use at most 5 characters.",
        "lines[0].sku": "Use letters, digits, dots, dashes or slashes, starting with a letter or digit.",
        "lines[0].quantity": "Enter a whole number from 1 to 1,000.",
        "lines[1].sku": "This field is required.",
        "lines[1].quantity": "Enter a whole number.",
        "hours.mon[0]": "Enter text.",
        "at": "Enter a date and time with its offset, such as 2026-10-01T09:00:00+02:00.",
        "flag": "Choose yes or no (true or false).",
        "colour": "This field is not expected here: remove it or check its spelling.",
    }
    assert not [message for message in found.values() if INTERNALS.search(message)]


@pytest.mark.parametrize(("message", "words"), [
    ("Expected `str` of length <= 64", "Use at most 64 characters."),
    ("Expected `str` of length >= 3", "Use at least 3 characters."),
    ("Expected `array` of length <= 50", "Use at most 50 entries."),
    ("Expected `int` >= 0", "Enter a whole number of 0 or more."),
    ("Expected `float` <= 90.5", "Enter a number of 90.5 or less."),
    ("Expected `str`, got `int`", "Enter text."),
    ("Expected `int | null`, got `str`", "Enter a whole number."),
    ("Expected `object`, got `array`", "Give an object with named fields."),
    (f"Expected `str` matching regex '{CODE_PATTERN}'", CODE_MESSAGE),
    ("Expected `str` matching regex '^x+$'", "This is not in the expected form."),
    ("Object missing required field `sku`", "This field is required."),
    ("Object contains unknown field `skew`", "This field is not expected here: remove it or check its spelling."),
    ("Invalid RFC3339 encoded datetime", "Enter a date and time with its offset, such as 2026-10-01T09:00:00+02:00."),
    ("Invalid UUID", "Enter an identifier such as 3f1c2a4e-8d5b-4c1e-9a7f-2b6d8e0c4a11."),
    ("Invalid enum value 'x'", "Choose one of the values offered."),
    ("Expected `thing` that is odd", "This value is not valid here."),
])
def test_each_kind_of_refusal_has_plain_words_even_without_its_type(message: str, words: str) -> None:
    assert plain(message) == words
    assert not INTERNALS.search(plain(message))


def test_missing_fields_lists_and_the_whole_struct() -> None:
    assert problems({}, Sample) == {"name": "This field is required.", "kind": "This field is required.",
                                    "count": "This field is required."}
    assert problems({"name": "a", "kind": "store", "count": 1, "lines": [{}] * 4}, Sample) == {
        "lines": "Use at most 3 entries."}
    assert problems({"name": "a", "kind": "store", "count": 1, "tags": ["a", "b", "c"]}, Sample) == {
        "tags": "Use at most 2 entries."}
    assert problems([1, 2], Sample) == {"body": "Give an object with named fields."}
    # What spans fields (a __post_init__) is checked once the fields are right, in its own words.
    assert problems({"name": "nobody", "kind": "store", "count": 1}, Sample) == {
        "body": "Nobody can't be a name here."}
    assert problems({"name": "ok", "kind": "store", "count": 1, "ratio": None}, Sample) == {}


def test_convert_names_fields_as_the_form_does_and_keeps_what_the_form_found() -> None:
    with pytest.raises(ProblemError) as refused:
        convert({"name": "a" * 11, "kind": "store", "count": -5}, Sample, names={"count": "how_many"},
                messages={"how_many": "Give how many, 0 or more."}, errors={"ratio": "Enter a number such as 4.5."})
    assert {e.field: e.message for e in refused.value.errors} == {
        "ratio": "Enter a number such as 4.5.", "name": "Use at most 10 characters.",
        "how_many": "Give how many, 0 or more."}
    assert refused.value.status == 422
    converted = convert({"name": "Lyon", "kind": "store", "count": 3}, Sample)
    assert (converted.name, converted.count) == ("Lyon", 3)


def test_lenient_reading_accepts_what_litestar_accepts() -> None:
    assert problems({"name": "a", "kind": "store", "count": "5"}, Sample, strict=False) == {}
    assert problems({"name": "a", "kind": "store", "count": "five"}, Sample, strict=False) == {
        "count": "Enter a whole number."}


@pytest.mark.parametrize("text", ["WH-1", "a", "A.b_c/d-9", "9", "bad code", "-WH", "", "é", "a/b/", "a\\b"])
def test_the_browser_pattern_accepts_what_the_server_accepts(text: str) -> None:
    server = re.fullmatch(CODE_PATTERN.strip("^$"), text) is not None
    browser = re.fullmatch(html_pattern(CODE_PATTERN), text) is not None
    assert browser == server
    assert html_pattern(CODE_PATTERN) == r"[A-Za-z0-9][A-Za-z0-9._\-\/]*"


def test_html_attributes_mirror_the_type_with_the_same_words() -> None:
    attributes = html_attributes(Sample)
    assert str(attributes["name"]) == ('required maxlength="10" data-msg-required="This field is required."')
    assert 'min="-90" max="90"' in attributes["ratio"] and "required" not in attributes["ratio"]
    assert 'data-msg-range="Enter a number from -90 to 90."' in attributes["ratio"]
    assert 'minlength="3" maxlength="3" data-msg-length="Use a code like ABC."' in attributes["code"]
    assert 'min="0" required data-msg-range="Enter a whole number of 0 or more."' in attributes["count"]
    assert PATTERN_MESSAGES[CODE_PATTERN] in str(html_attributes(Line)["sku"])


# --- places -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lookup():  # type: ignore[no-untyped-def]
    from inventory.geocoding import lookup

    return lookup


@pytest.mark.parametrize(("city", "country", "expected"), [
    ("Paris", "FR", ("Paris", 48.85, 2.35)),
    ("Lyon", "fr", ("Lyon", 45.75, 4.85)),
    ("Saint-Étienne", "FR", ("Saint-Étienne", 45.43, 4.39)),
    ("St Etienne", "FR", ("Saint-Étienne", 45.43, 4.39)),
    ("ST. ÉTIENNE", "FR", ("Saint-Étienne", 45.43, 4.39)),
    ("Lyon Cedex 03", "FR", ("Lyon", 45.75, 4.85)),
    ("München", "DE", ("Munich", 48.14, 11.58)),
])
def test_a_city_is_found_however_it_is_written(lookup, city: str, country: str,  # type: ignore[no-untyped-def]
                                               expected: tuple[str, float, float]) -> None:
    place = lookup(city, country, "42000")
    assert place is not None
    assert (place.name, round(place.latitude, 2), round(place.longitude, 2)) == expected
    assert place.country == country.upper() and place.source == "offline"


def test_an_unknown_city_or_country_finds_nothing(lookup) -> None:  # type: ignore[no-untyped-def]
    assert lookup("Xyzzyville", "FR") is None
    assert lookup("Paris", "XX") is None
    assert lookup("", "FR") is None
    assert lookup("Lyon", "US") is None or lookup("Lyon", "US").country == "US"  # namesakes stay in their country


async def test_the_online_geocoder_is_asked_first_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    from inventory import geocoding

    asked: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url)
        if request.url.params.get("city") == "Lyon":
            return httpx.Response(200, json=[{"lat": "45.7578", "lon": "4.8320", "display_name": "Lyon, France"}])
        return httpx.Response(200, json=[])

    class Settings:
        geocoder_url = "https://geocoder.invalid/"
        public_url = "https://oms.invalid"

    monkeypatch.setattr(geocoding, "get_settings", lambda: Settings())
    transport = httpx.MockTransport(answer)
    found = await geocoding.locate("Lyon", "fr", "69002", transport=transport)
    assert found == geocoding.Place("Lyon", "FR", 45.7578, 4.832, "online")
    assert asked[0].path == "/search" and asked[0].params["postalcode"] == "69002"
    assert asked[0].params["country"] == "FR" and asked[0].params["format"] == "json"
    # Nothing found online: the shipped places answer.
    assert (await geocoding.locate("Paris", "FR", transport=transport)).source == "offline"  # type: ignore[union-attr]


# --- money ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "minor"), [("59,00 €", 5900), ("59.00", 5900), ("59", 5900), ("€59", 5900),
                                              ("1 234,56", 123456), ("1,234.56", 123456), ("59 EUR", 5900),
                                              ("0,5", 50), ("abc", None), ("59,001", None), ("1e9", None),
                                              ("12 345 678,90", 1234567890), ("1'234.50", 123450),
                                              ("29\u202f593,90\xa0€", 2959390),
                                              # a space or apostrophe that groups no thousands is a typo
                                              ("59 00", None), ("5 90", None), ("5'9", None), ("1 23,00", None)])
def test_amounts_are_read_as_people_type_them(typed: str, minor: int | None) -> None:
    assert parse_money(typed, "EUR", "fr_FR") == minor
    assert parse_money(typed, "EUR", "en_US") == minor


def test_amounts_are_shown_in_the_company_locale() -> None:
    assert format_money(2959390, "EUR", "fr_FR") == "29\u202f593,90\xa0€"
    assert format_money(2959390, "EUR", "en_US") == "€29,593.90"
    assert money_input(5900, "EUR", "fr_FR") == "59,00"
    assert money_input(5900, "EUR", "en_US") == "59.00"
    assert money_input(None, "EUR", "fr_FR") == ""
