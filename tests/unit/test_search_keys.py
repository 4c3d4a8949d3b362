"""The keys customer service's search finds a customer by: typos, as-you-type prefixes, phone
numbers however written, accents, and a bound on their number."""

from __future__ import annotations

import pytest

from core import search_keys
from core.search_keys import query_keys, record_keys


def matches(record: list[str], query: list[list[str]]) -> bool:
    """Whether a record's keys answer a query's, as customers.service.search asks the database."""
    have = set(record)
    return all(have.intersection(keys) for keys in query)

JOHN = record_keys(name="John Smith", email="john.smith@example.com", phone="+33 6 12 34 56 78")


def finds(keys: list[str], query: str, *, typos: bool = True) -> bool:
    return matches(keys, query_keys(query, typos=typos))


@pytest.mark.parametrize("query", ["John Smith", "john smith", "SMITH", "Smith John", "jhon smtih", "Jonh Smith",
                                   "John Smyth", "Jon Smith", "John Smth", "Johnn Smiith", "joh", "john smi"])
def test_a_name_is_found_as_typed_with_one_typo_per_word_and_as_you_type(query: str) -> None:
    assert finds(JOHN, query)


@pytest.mark.parametrize("query", ["Jane Smith", "John Brown", "xjzq", "jhon smtih brown", "Jake Smart"])
def test_other_names_are_not_found(query: str) -> None:
    assert not finds(JOHN, query)


def test_without_typos_only_the_words_and_their_starts_match() -> None:
    assert finds(JOHN, "john smi", typos=False)
    assert not finds(JOHN, "jhon smtih", typos=False)


@pytest.mark.parametrize("phone", ["+33 6 12 34 56 78", "06.12.34.56.78", "0612345678", "(0)6-12-34-56-78",
                                   "0033612345678", "+33612345678"])
def test_a_phone_is_one_key_however_it_is_written(phone: str) -> None:
    key = search_keys.phone_key(phone)
    assert key == "+612345678"
    assert key in JOHN
    assert search_keys.looks_like_phone(phone)


def test_what_is_not_a_phone_number() -> None:
    assert search_keys.phone_key("12 34") is None
    assert not search_keys.looks_like_phone("O-1A2B3C4D5E")
    assert not search_keys.looks_like_phone("john 0612345678")
    assert not [k for k in record_keys(name="Ann", email="a@b.c", phone="12") if k.startswith("+")]


def test_accents_and_case_do_not_matter() -> None:
    zoe = record_keys(name="Zoë Lefèvre-Straße", email="zoe@example.com")
    assert finds(zoe, "zoe lefevre")
    assert finds(zoe, "ZOË LEFÈVRE strasse")
    assert search_keys.tokens("Zoë O'Brien-Straße") == ["zoe", "o", "brien", "strasse"]
    assert finds(record_keys(name="Zoe Lefevre", email="z@example.com"), "Zoë Lefèvre")


def test_the_whole_email_and_the_words_of_its_local_part() -> None:
    keys = record_keys(name="", email="J.Smith1985@Example.com")
    assert search_keys.email_key("j.smith1985@example.com") in keys
    assert finds(keys, "smith")  # letters and digits apart, as well as together
    assert finds(keys, "smith1985")
    assert finds(keys, "1985")
    assert not finds(keys, "example")  # the domain is everybody's


def test_keys_are_bounded_and_fit_the_column() -> None:
    long_name = " ".join(f"Bartholomew{c}-Featherstonehaugh{c}" for c in "abcdefghijklmnopqrst")
    keys = record_keys(name=long_name, email=("x" * 300) + "@example.com", phone="+33 6 12 34 56 78")
    assert len(keys) == search_keys.MAX_KEYS
    assert all(len(key) <= 120 for key in keys)
    assert "+612345678" in keys  # the most telling keys come first
    assert "bartholomewt" in keys  # every word before any prefix
    assert len(query_keys(long_name)) == search_keys.MAX_QUERY_TOKENS


def test_words_with_digits_are_found_as_they_are() -> None:
    keys = record_keys(name="Flat 12B", email="dparker1987@example.com")
    assert finds(keys, "dparker1987") and finds(keys, "12b") and finds(keys, "dparker") and finds(keys, "parker")
    assert not finds(keys, "dparker198", typos=False)  # no prefixes of a word with digits
    assert len(keys) < 40


def test_transpositions_and_substitutions_share_a_deletion() -> None:
    assert set(search_keys.deletions("jhon")) & set(search_keys.deletions("john"))
    assert set(search_keys.deletions("smyth")) & set(search_keys.deletions("smith"))
    assert search_keys.deletions("abc") == []
    assert search_keys.prefixes("smith") == ["smi", "smit"]
