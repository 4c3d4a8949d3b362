"""Input read into its type with every problem at once, each in words a shop employee understands.

One mechanism for console forms and API bodies: ``convert(raw, Type)`` checks each field of a
msgspec Struct on its own against its annotated type (msgspec stops at the first problem of a
whole struct), walks into nested structs and lists of structs, then converts the whole struct for
what spans fields (``__post_init__``). It raises ``invalid(errors)`` with one plain message per
field: ``{"code": "Use letters, digits, dots, dashes or slashes, starting with a letter or digit."}``,
never msgspec's ``Expected `str` matching regex ... - at `$.code```.

Messages come from the type itself: ``msgspec.Meta(extra={"message": ...})`` on a field when it
has one (patterns need one: see ``core.limits.PATTERN_MESSAGES``), else they are worded from the
constraint that failed ("Use at most 64 characters.", "Enter a whole number from 0 to 100.").
``html_attributes(Type)`` gives the same constraints as HTML attributes (required, minlength,
maxlength, pattern, min, max) and the same messages as ``data-msg-*`` attributes, so the browser
checks what the server checks and says it the same way.

Numbers typed into forms are read with bounded grammars before any arithmetic: what a person types
("12", "-3", "48.85", "49,90") is read; nothing else is: not "²" (a digit to ``str.isdigit``),
"--1", "nan", "1e999", nor five thousand digits (which ``int`` refuses and ``Decimal`` happily turns
into seconds of work). Each reader answers None for text that is not such a number within its
bounds, and the form says so next to the field.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi
from markupsafe import Markup, escape

from core.limits import INT32_MAX, PATTERN_MESSAGES
from core.problems import ProblemError, invalid

T = TypeVar("T")

_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_DECIMAL = re.compile(r"[+-]?[0-9]{1,15}(?:[.,][0-9]{1,15})?")

REQUIRED = "This field is required."
NOT_EMPTY = "This can't be empty."
UNKNOWN_FIELD = "This field is not expected here: remove it or check its spelling."
NOT_VALID = "This value is not valid here."
BODY = "body"  # the field name of a problem with the whole request body


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


# --- plain words for msgspec's messages ------------------------------------------------------------

_AT = re.compile(r"^(?P<message>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.DOTALL)
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_EXPECTED_TYPE = re.compile(r"^Expected `(?P<type>[^`]+)`, got `(?P<got>[^`]+)`$")
_LENGTH = re.compile(r"^Expected `(?P<type>\w+)` of length (?P<op>[<>]=) (?P<n>\d+)$")
_RANGE = re.compile(r"^Expected `(?P<type>int|float|decimal)` (?P<op>[<>]=?) ")
_BOUND = re.compile(r"^Expected `(?P<type>int|float|decimal)` (?P<op>[<>]=?) (?P<n>-?[0-9]+(?:\.[0-9]+)?)$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")

_TYPE_WORDS = {
    "int": "Enter a whole number.",
    "float": "Enter a number.",
    "decimal": "Enter a number.",
    "str": "Enter text.",
    "bool": "Choose yes or no (true or false).",
    "array": "Give a list.",
    "object": "Give an object with named fields.",
    "datetime": "Enter a date and time with its offset, such as 2026-10-01T09:00:00+02:00.",
    "date": "Enter a date such as 2026-10-01.",
    "time": "Enter a time such as 09:30.",
    "uuid": "Enter an identifier such as 3f1c2a4e-8d5b-4c1e-9a7f-2b6d8e0c4a11.",
    "null": "Leave this empty.",
    "bytes": "Enter base64-encoded data.",
}
_INVALID_WORDS = {
    "Invalid RFC3339 encoded datetime": _TYPE_WORDS["datetime"],
    "Invalid RFC3339 encoded date": _TYPE_WORDS["date"],
    "Invalid RFC3339 encoded time": _TYPE_WORDS["time"],
    "Invalid ISO 8601 duration": "Enter a duration such as PT2H.",
    "Invalid UUID": _TYPE_WORDS["uuid"],
    "Invalid base64 encoded string": _TYPE_WORDS["bytes"],
    "Invalid decimal string": _TYPE_WORDS["decimal"],
    "Expected `datetime` with a timezone component": "Give the time with its offset, such as "
                                                      "2026-10-01T09:00:00+02:00.",
    "Expected `datetime` with no timezone component": "Give the time without an offset.",
}


def _number(value: float | int) -> str:
    if isinstance(value, float) and not value.is_integer():
        return repr(value)
    return f"{int(value):,}"


def _unwrap(info: Any) -> tuple[Any, dict[str, Any]]:
    """The type under its metadata and unions with None, and the extras found on the way."""
    extra: dict[str, Any] = {}
    while True:
        if isinstance(info, mi.Metadata):
            extra = {**(info.extra_json_schema or {}), **(info.extra or {}), **extra}
            info = info.type
        elif isinstance(info, mi.UnionType):
            others = [t for t in info.types if not isinstance(t, mi.NoneType)]
            if len(others) != 1:
                return info, extra
            info = others[0]
        else:
            return info, extra


def _info_at(info: Any, path: str) -> Any:
    """The inspected type at a msgspec path below ``info`` (``.name``, ``[3]``, ``[...]``)."""
    for name, index in _STEP.findall(path):
        info, _ = _unwrap(info)
        if name and isinstance(info, mi.StructType):
            info = next((f.type for f in info.fields if f.encode_name == name), None)
        elif index == "..." and isinstance(info, mi.DictType):
            info = info.value_type
        elif index and isinstance(info, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
            info = info.item_type
        elif index and isinstance(info, mi.TupleType) and index.isdigit() and int(index) < len(info.item_types):
            info = info.item_types[int(index)]
        else:
            return None
        if info is None:
            return None
    return info


def _range(info: Any) -> str | None:
    kind = "a whole number" if isinstance(info, mi.IntType) else "a number"
    if info.ge is not None and info.le is not None:
        return f"Enter {kind} from {_number(info.ge)} to {_number(info.le)}."
    phrases = [phrase for bound, phrase in (
        (info.ge, f"of {_number(info.ge or 0)} or more"), (info.gt, f"above {_number(info.gt or 0)}"),
        (info.le, f"of {_number(info.le or 0)} or less"), (info.lt, f"below {_number(info.lt or 0)}"),
    ) if bound is not None]
    return f"Enter {kind} {' and '.join(phrases)}." if phrases else None


def _length(info: Any, op: str, n: int, required: bool, kind: str = "") -> str:
    if op == ">=" and n == 1:
        return REQUIRED if required else NOT_EMPTY
    unit = "characters" if isinstance(info, mi.StrType) or kind == "str" else "entries"
    if getattr(info, "min_length", None) == getattr(info, "max_length", None) is not None:
        return f"Use exactly {n} {unit}."
    return f"Use at least {n} {unit}." if op == ">=" else f"Use at most {n} {unit}."


def pattern_message(pattern: str, extra: Mapping[str, Any] | None = None) -> str:
    extra = extra or {}
    return str(extra.get("message") or PATTERN_MESSAGES.get(pattern) or extra.get("description")
               or "This is not in the expected form.")


def plain(message: str, info: Any = None, *, required: bool = False) -> str:
    """msgspec's ``message`` (without its path) in plain words, knowing the type that refused it:
    the type's own message when it has one, else words for the constraint that failed."""
    base, extra = _unwrap(info) if info is not None else (None, {})
    length = _LENGTH.match(message)
    if length and length["op"] == ">=" and length["n"] == "1":
        return REQUIRED if required else NOT_EMPTY  # empty, whatever the type's own message says
    if custom := extra.get("message"):
        return str(custom)
    if message in _INVALID_WORDS:
        return _INVALID_WORDS[message]
    if message.startswith("Invalid enum value"):
        if isinstance(base, mi.LiteralType):
            return "Choose one of: " + ", ".join(str(v) for v in base.values) + "."
        if isinstance(base, mi.EnumType):
            return "Choose one of: " + ", ".join(str(m.value) for m in base.cls) + "."
        return "Choose one of the values offered."
    if length:
        return _length(base, length["op"], int(length["n"]), required, length["type"])
    if _RANGE.match(message):
        if isinstance(base, (mi.IntType, mi.FloatType)) and (words := _range(base)):
            return words
        if bound := _BOUND.match(message):  # no type to read the bounds from: the message has one
            kind = "a whole number" if bound["type"] == "int" else "a number"
            value = _number(float(bound["n"]))
            return {">=": f"Enter {kind} of {value} or more.", ">": f"Enter {kind} above {value}.",
                    "<=": f"Enter {kind} of {value} or less.", "<": f"Enter {kind} below {value}."}[bound["op"]]
        return _TYPE_WORDS.get(message.split("`")[1], _TYPE_WORDS["float"])
    if "multiple of" in message:
        factor = getattr(base, "multiple_of", None)
        return f"Enter a multiple of {_number(factor)}." if factor is not None else NOT_VALID
    if message.startswith("Expected `str` matching regex"):
        pattern = getattr(base, "pattern", None) or message.split("'", 1)[-1].rsplit("'", 1)[0]
        return pattern_message(pattern, extra)
    if match := _EXPECTED_TYPE.match(message):
        wanted = [t.strip() for t in match["type"].split("|") if t.strip() != "null"] or ["null"]
        return _TYPE_WORDS.get(wanted[0], NOT_VALID)
    if _MISSING.match(message):
        return REQUIRED
    if _UNKNOWN.match(message):
        return UNKNOWN_FIELD
    if "`" in message or message.startswith(("Expected", "Invalid", "Object")):
        return NOT_VALID
    return message  # our own words, from a __post_init__


def join(path: str, step: str) -> str:
    if step.startswith("["):
        return (path or BODY) + step
    return f"{path}.{step}" if path else step


def _info(type_: Any) -> Any:
    try:
        return mi.type_info(type_)
    except (TypeError, ValueError):
        return None


def translate(error: msgspec.ValidationError | str, type_: Any, prefix: str = "", *,
              required: bool = False) -> tuple[str, str]:
    """(field, plain message) for msgspec's error converting a value of ``type_`` found at
    ``prefix``; ``required`` says whether that value may be left out (then "This field is
    required." rather than "This can't be empty.")."""
    match = _AT.match(str(error))
    assert match is not None  # the pattern matches any text
    message, path = match["message"], match["path"] or ""
    info = _info(type_)
    at = _info_at(info, path) if info is not None else None
    named = _MISSING.match(message) or _UNKNOWN.match(message)
    if named:
        path += "." + named["name"]
    field = prefix
    for name, index in _STEP.findall(path):
        field = join(field, f"[{index}]" if index else name)
    field = field or BODY
    if match["key"]:  # a dict's key, not its value
        return field, _key_words(message, None)
    return field, plain(message, at, required=required and not path)


# --- every problem of a value, at once -------------------------------------------------------------

def _strip(annotation: Any) -> Any:
    """The annotation without Annotated and a union with None."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            others = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(others) != 1:
                return annotation
            annotation = others[0]
        else:
            return annotation


def _struct_of(annotation: Any) -> type[msgspec.Struct] | None:
    base = _strip(annotation)
    return base if isinstance(base, type) and issubclass(base, msgspec.Struct) else None


def _list_item(annotation: Any) -> Any:
    """The item type of a list of structs, else None."""
    base = _strip(annotation)
    if typing.get_origin(base) is list:
        args = typing.get_args(base)
        if args and _struct_of(args[0]) is not None:
            return args[0]
    return None


def _collect(raw: Any, annotation: Any, path: str, out: dict[str, str], strict: bool, required: bool,
             skip: frozenset[str]) -> None:
    if raw is None:
        try:
            msgspec.convert(None, annotation, strict=strict)
            return  # an optional value left empty
        except msgspec.ValidationError:
            pass
    struct = _struct_of(annotation)
    if struct is not None and isinstance(raw, dict):
        fields = msgspec.structs.fields(struct)
        if struct.__struct_config__.forbid_unknown_fields:
            known = {f.encode_name for f in fields}
            for key in raw:
                if key not in known and join(path, str(key)) not in skip:
                    out[join(path, str(key))] = UNKNOWN_FIELD
        for f in fields:
            at = join(path, f.encode_name)
            if at in skip:
                continue
            needed = f.default is msgspec.NODEFAULT and f.default_factory is msgspec.NODEFAULT
            if f.encode_name not in raw:
                if needed:
                    out[at] = REQUIRED
                continue
            _collect(raw[f.encode_name], f.type, at, out, strict, needed, skip)
        return
    item = _list_item(annotation)
    if item is not None and isinstance(raw, list):
        bounds, _ = _unwrap(_info(annotation))
        low, high = getattr(bounds, "min_length", None), getattr(bounds, "max_length", None)
        if high is not None and len(raw) > high:
            out[path or BODY] = _length(bounds, "<=", high, required)
        elif low is not None and len(raw) < low:
            out[path or BODY] = _length(bounds, ">=", low, required)
        else:
            for i, entry in enumerate(raw):
                _collect(entry, item, join(path, f"[{i}]"), out, strict, True, skip)
        return
    mapping = _dict_types(annotation)
    if mapping is not None and isinstance(raw, dict):
        key_type, value_type = mapping
        bounds, _ = _unwrap(_info(annotation))
        high = getattr(bounds, "max_length", None)
        if high is not None and len(raw) > high:
            out[path or BODY] = _length(bounds, "<=", high, required)
            return
        for key, value in raw.items():
            try:
                msgspec.convert(key, key_type, strict=strict)
            except msgspec.ValidationError as exc:
                out.setdefault(path or BODY, _key_words(str(exc), key_type))
                continue
            _collect(value, value_type, join(path, str(key)), out, strict, True, skip)
        return
    try:
        msgspec.convert(raw, annotation, strict=strict)
    except msgspec.ValidationError as exc:
        field, message = translate(exc, annotation, path, required=required)
        if required and field == (path or BODY) and raw in ("", None):
            message = REQUIRED  # left empty, whatever the type's own words say of a wrong value
        out.setdefault(field, message)


def _dict_types(annotation: Any) -> tuple[Any, Any] | None:
    base = _strip(annotation)
    if typing.get_origin(base) is dict:
        args = typing.get_args(base)
        if len(args) == 2:
            return args[0], args[1]
    return None


def _key_words(error: str, key_type: Any) -> str:
    """A dict's key refused: what names here must be."""
    match = _AT.match(error)
    message = match["message"] if match else error
    length = _LENGTH.match(message)
    if length and length["op"] == ">=" and length["n"] == "1":
        return "Names here can't be empty."
    if length and length["op"] == "<=":
        return f"Use at most {length['n']} characters for each name."
    words = plain(message, _info(key_type) if key_type is not None else None, required=True)
    return "A name here is not valid. " + words


def problems(raw: Any, type_: Any, *, strict: bool = True, skip: Iterable[str] = ()) -> dict[str, str]:
    """Every problem converting ``raw`` to ``type_``, field (a JSON path such as ``lines[0].sku``;
    ``body`` for the whole) → plain message; empty when it converts. Fields in ``skip`` are left
    alone (the caller has already said what is wrong with them)."""
    out: dict[str, str] = {}
    skipped = frozenset(skip)
    if _struct_of(type_) is not None and not isinstance(raw, dict):
        return {BODY: _TYPE_WORDS["object"]}
    _collect(raw, type_, "", out, strict, True, skipped)
    if not out and not skipped:
        try:  # what spans fields: a __post_init__, a union of structs
            msgspec.convert(raw, type_, strict=strict)
        except msgspec.ValidationError as exc:
            field, message = translate(exc, type_)
            out[field] = message
    return out


def convert(raw: Mapping[str, Any], type_: type[T], *, strict: bool = True,
            errors: Mapping[str, str] | None = None, names: Mapping[str, str] | None = None,
            messages: Mapping[str, str] | None = None) -> T:
    """``raw`` as ``type_``, or ``invalid(...)`` with every problem at once.

    ``errors``: problems the caller already found (a number that isn't one), by form field; those
    fields are not checked again. ``names``: the form's name for a field where it differs from the
    struct's (``shipping_cost_minor`` is typed as ``shipping_cost``). ``messages``: the form's own
    words for a field, whatever its problem (an amount typed in euros, bounded in cents)."""
    names = names or {}
    found = dict(errors or {})
    back = {form: field for field, form in names.items()}
    issues = problems(dict(raw), type_, strict=strict, skip={back.get(name, name) for name in found})
    for field, message in issues.items():
        top = re.split(r"[.\[]", field, maxsplit=1)[0]
        name = names.get(top, top) + field[len(top):]
        found.setdefault(name, (messages or {}).get(name, message))
    if found:
        raise invalid(found)
    return msgspec.convert(dict(raw), type_, strict=strict)


def decode_json(body: bytes, type_: type[T], *, strict: bool = True) -> T:
    """A JSON request body as ``type_``: 422 "Invalid JSON" when it isn't JSON, else every problem at
    once as ``convert`` gives them."""
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ProblemError(422, "Invalid JSON", f"The body is not valid JSON: {exc}.") from None
    if _struct_of(type_) is not None and not isinstance(raw, dict):
        raise invalid({BODY: _TYPE_WORDS["object"]})
    return convert(raw, type_, strict=strict)


# --- the same rules for the browser ----------------------------------------------------------------

def html_pattern(pattern: str) -> str:
    """A server regex as an HTML ``pattern``: anchors dropped (the browser anchors it), and the
    characters the browser's ``v``-mode regexes want escaped inside brackets escaped."""
    body = pattern.removeprefix("^").removesuffix("$")
    out, in_class, escaped = [], False, False
    for char in body:
        if escaped:
            out.append(char)
            escaped = False
            continue
        if char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif in_class and char in "/()[{}|":
            out.append("\\")
        out.append(char)
    return "".join(out)


def field_rules(type_: type[msgspec.Struct]) -> dict[str, dict[str, Any]]:
    """Each field's constraints as HTML attributes and the messages the server would give."""
    info = mi.type_info(type_)
    assert isinstance(info, mi.StructType)
    rules: dict[str, dict[str, Any]] = {}
    for field in info.fields:
        base, extra = _unwrap(field.type)
        optional = isinstance(field.type, mi.UnionType) or not field.required
        attrs: dict[str, Any] = {}
        msgs: dict[str, str] = {}
        if isinstance(base, mi.StrType):
            if field.required and (base.min_length or 0) >= 1:
                attrs["required"] = True
                msgs["required"] = REQUIRED
            if base.min_length and base.min_length > 1:
                attrs["minlength"] = base.min_length
                msgs["length"] = _length(base, ">=", base.min_length, not optional)
            if base.max_length is not None:
                attrs["maxlength"] = base.max_length
            if base.pattern:
                attrs["pattern"] = html_pattern(base.pattern)
                msgs["pattern"] = attrs["title"] = pattern_message(base.pattern, extra)
        elif isinstance(base, (mi.IntType, mi.FloatType)):
            if base.ge is not None:
                attrs["min"] = _number(base.ge).replace(",", "")
            if base.le is not None:
                attrs["max"] = _number(base.le).replace(",", "")
            if (words := _range(base)) is not None:
                msgs["range"] = words
            msgs["number"] = _TYPE_WORDS["int" if isinstance(base, mi.IntType) else "float"]
            if field.required:
                attrs["required"] = True
                msgs["required"] = REQUIRED
        if custom := extra.get("message"):
            msgs = {kind: (REQUIRED if kind == "required" else str(custom)) for kind in msgs}
        rules[field.encode_name] = {"attrs": attrs, "messages": msgs}
    return rules


def html_attributes(type_: type[msgspec.Struct], *, only: Iterable[str] = ("required", "minlength", "maxlength",
                                                                           "pattern", "title", "min", "max"),
                    required: Iterable[str] = ()) -> dict[str, Markup]:
    """``{field: 'required maxlength="64" pattern="..." data-msg-pattern="..."'}`` for a template:
    the browser checks what the server checks (``data-msg-*`` are the words the server would use,
    shown by ``app.js`` next to each field when a form is submitted with mistakes)."""
    also_required = set(required)
    out: dict[str, Markup] = {}
    for name, rule in field_rules(type_).items():
        parts: list[str] = []
        attrs = dict(rule["attrs"])
        msgs = dict(rule["messages"])
        if name in also_required:
            attrs["required"] = True
            msgs["required"] = REQUIRED
        for key, value in attrs.items():
            if key not in only:
                continue
            parts.append(key if value is True else f'{key}="{escape(str(value))}"')
        for kind, message in msgs.items():
            parts.append(f'data-msg-{kind}="{escape(message)}"')
        out[name] = Markup(" ".join(parts))  # noqa: S704  (every value above is escaped)
    return out
