"""The keys customer service's search finds a record by, and the keys a query looks for.

A record (a customer) is found by:

- each token of its name and of its email's local part (``"jean-luc.picard42"`` gives ``jean``,
  ``luc``, ``picard``, ``42``), as typed;
- each such token's prefixes of three letters or more, so that a name is found as it is typed
  (``"smi"`` finds Smith), and its one-letter deletions (four letters or more; for tokens of
  letters only, digits being found as they are): typo tolerance by
  *symmetric deletion*. The query's tokens are looked up with their own deletions, and two words
  one edit apart always share a key: ``"jhon"`` and ``"john"`` share ``"jon"`` and ``"jhn"`` (a
  transposition), ``"smyth"`` and ``"smith"`` share ``"smth"`` (a substitution), ``"smih"`` is
  both a deletion of ``"smith"`` and the query itself (a missing letter);
- its whole email, in lower case;
- its phone's last nine digits, so that ``+33 6 12 34 56 78``, ``06.12.34.56.78`` and
  ``0612345678`` agree (the country code and trunk prefix fall outside them).

Text is normalised first: NFKD, accents stripped, case folded, split on anything not a letter or
a digit (``"Zoë O'Brien"`` is ``zoe``, ``o``, ``brien``).

The keys live in ``customer_search_keys`` (one row per customer and key), whose primary key
``(tenant_id, key, customer_id)`` is the search's index: it leads with ``tenant_id``, and a lookup
compares keys with text equality, which is leakproof, so PostgreSQL uses the index under
row-level security whoever owns the database (``&&`` on an array under GIN is not leakproof, and
marking it so needs a superuser).

A record has at most ``MAX_KEYS`` keys, the most telling first (email, phone, whole tokens,
prefixes, then deletions), and a query at most ``MAX_QUERY_TOKENS`` tokens.
"""

from __future__ import annotations

import re
import unicodedata

MAX_KEYS = 160
MAX_TOKEN = 32  # letters of a token that count (keys stay short in the index)
MAX_QUERY_TOKENS = 6
MIN_PREFIX = 3
MIN_DELETIONS = 4  # shorter tokens would share their deletions with too many others
PHONE_DIGITS = 9
MIN_PHONE_DIGITS = 6  # fewer is no phone number worth a key
MAX_EMAIL_KEY = 100

_SPLIT = re.compile(r"[\W_]+")
_LETTERS_DIGITS = re.compile(r"[^\W\d_]+|\d+")
_PHONE = re.compile(r"[+(\d][\d\s().\-/]*")



def fold(text: str) -> str:
    """Accents stripped and case folded: ``"Zoë Straße"`` is ``"zoe strasse"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def tokens(text: str) -> list[str]:
    """The words of ``text``, normalised, in order, each once."""
    seen: dict[str, None] = {}
    for token in _SPLIT.split(fold(text)):
        if token:
            seen.setdefault(token[:MAX_TOKEN])
    return list(seen)


def email_tokens(email: str) -> list[str]:
    """The words of an email's local part; letters and digits apart (``jsmith1985`` is
    ``jsmith`` and ``1985``) as well as together."""
    local = email.partition("@")[0]
    seen: dict[str, None] = {}
    for token in tokens(local):
        seen.setdefault(token)
        for part in _LETTERS_DIGITS.findall(token):
            seen.setdefault(part)
    return list(seen)


def deletions(token: str) -> list[str]:
    """The token with one letter left out, each way (none for a short token)."""
    if len(token) < MIN_DELETIONS:
        return []
    return list(dict.fromkeys(token[:i] + token[i + 1:] for i in range(len(token))))


def prefixes(token: str) -> list[str]:
    return [token[:n] for n in range(MIN_PREFIX, len(token))]


def phone_digits(phone: str) -> str:
    """A phone number's last nine digits ("" when it has too few to be one)."""
    digits = "".join(c for c in phone if c.isdigit())
    return digits[-PHONE_DIGITS:] if len(digits) >= MIN_PHONE_DIGITS else ""


def looks_like_phone(text: str) -> bool:
    """Digits with the punctuation phone numbers are written with, enough of them for one."""
    text = text.strip()
    return bool(_PHONE.fullmatch(text)) and len(phone_digits(text)) >= MIN_PHONE_DIGITS


def record_keys(*, name: str = "", email: str = "", phone: str = "") -> list[str]:
    """Every key a customer with this name, email and phone is found by (see the module)."""
    words = list(dict.fromkeys([*tokens(name), *email_tokens(email)]))
    keys: dict[str, None] = {}
    email = email_key(email)
    if email and len(email) <= MAX_EMAIL_KEY:
        keys[email] = None
    if phone_key_ := phone_key(phone):
        keys[phone_key_] = None
    # Prefixes and typos for words of letters: a token with digits (``smith1985``, a house number) is
    # found as it is, its letters already being a word of their own (``email_tokens``).
    spelt = [w for w in words if w.isalpha()]
    for group in (words, (p for w in spelt for p in prefixes(w)), (d for w in spelt for d in deletions(w))):
        for key in group:
            if len(keys) == MAX_KEYS:
                return list(keys)
            keys.setdefault(key)
    return list(keys)


def query_keys(text: str, *, typos: bool = True) -> list[list[str]]:
    """For each word of the query (at most ``MAX_QUERY_TOKENS``), the keys any one of which a
    record must have: the word itself (a record's word, or the start of one), and with
    ``typos`` its one-letter deletions as well. A record matches when it matches every word."""
    return [[token, *(deletions(token) if typos else ())] for token in tokens(text)[:MAX_QUERY_TOKENS]]


def email_key(email: str) -> str:
    return email.strip().lower()


def phone_key(phone: str) -> str | None:
    digits = phone_digits(phone)
    return "+" + digits if digits else None
