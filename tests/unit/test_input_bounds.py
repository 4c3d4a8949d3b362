"""Every number and every text a route accepts has a bound that its column can hold: path and
query integers, and every field of every request body, read from the app's own routes, so that a
route added tomorrow without bounds fails here rather than answering 500 to a fuzzer."""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi

from core.limits import INT32_MAX, MONEY_MAX

BIGGEST = max(INT32_MAX, MONEY_MAX)


def _handlers() -> list[tuple[str, Any]]:
    from oms.app import create_app

    app = create_app()
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            found.append((route.path, handler))
    return found


def _unbounded(info: mi.Type, where: str, seen: set[type]) -> list[str]:
    """Where a body type lets through an integer without bounds, a string or list without a
    length limit."""
    problems: list[str] = []
    if isinstance(info, mi.IntType):
        if (info.ge is None and info.gt is None) or (info.le is None and info.lt is None) \
                or (info.le or info.lt or 0) > BIGGEST:
            problems.append(f"{where}: integer without bounds")
    elif isinstance(info, mi.StrType):
        if info.max_length is None:
            problems.append(f"{where}: text without a maximum length")
    elif isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        if info.max_length is None:
            problems.append(f"{where}: list without a maximum length")
        problems += _unbounded(info.item_type, f"{where}[]", seen)
    elif isinstance(info, mi.UnionType):
        for member in info.types:
            problems += _unbounded(member, where, seen)
    elif isinstance(info, mi.StructType):
        if info.cls in seen:
            return []
        seen.add(info.cls)
        for struct_field in info.fields:
            problems += _unbounded(struct_field.type, f"{where}.{struct_field.name}", seen)
    elif isinstance(info, mi.DictType):
        # Free-form documents (rule documents, product attributes) are bounded by the boundary's
        # depth and text checks and their own validators; their size by the request's.
        pass
    return problems


def test_every_path_and_query_integer_is_bounded() -> None:
    problems = []
    for path, handler in _handlers():
        for name, parameter in handler.parsed_fn_signature.parameters.items():
            if parameter.annotation is not int and str(parameter.annotation) not in ("int | None",):
                continue
            bound = parameter.kwarg_definition
            le = getattr(bound, "le", None) or getattr(bound, "lt", None)
            ge = getattr(bound, "ge", None) if getattr(bound, "ge", None) is not None else getattr(bound, "gt", None)
            if le is None or ge is None or le > BIGGEST:
                problems.append(f"{path} {name}")
    assert problems == []


def test_every_request_body_field_is_bounded() -> None:
    problems = []
    for path, handler in _handlers():
        parameter = handler.parsed_fn_signature.parameters.get("data")
        if parameter is None:
            continue
        annotation = parameter.annotation
        try:
            info = mi.type_info(annotation)
        except (TypeError, msgspec.ValidationError):
            continue
        problems += _unbounded(info, f"{path} {annotation}", set())
    assert problems == [], "\n".join(sorted(set(problems)))
