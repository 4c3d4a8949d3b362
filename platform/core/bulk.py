"""Set-based inserts: any number of rows in one statement of one shape.

A multi-row ``VALUES`` list is a new statement for every row count: SQLAlchemy compiles it
again and PostgreSQL prepares it again, which on the order paths cost more than the work.
``INSERT ... SELECT FROM unnest(:a, :b, ...)`` takes one array per column instead, so a
table's insert is compiled and prepared once per process, and the arrays are bound by
asyncpg's C codecs. The rows go through row-level security like any other insert.

Append-only logs (the order timeline, the outbox, the mail log) are written with ``defer``:
the row waits in the session and goes out with the others of its table in one statement,
just before the session's next statement or its commit, so a transaction that records
fifty events writes them with one INSERT and any read in it still sees them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    SmallInteger,
    String,
    Table,
    TextClause,
    Uuid,
    event,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, class_mapper
from sqlalchemy.sql.schema import Column
from sqlalchemy.types import TypeEngine

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_quote = _DIALECT.identifier_preparer.quote


def _pg_array(values: Sequence[Any] | None) -> str | None:
    """A one-dimensional array as PostgreSQL's text form: unnest can't carry arrays of arrays."""
    if values is None:
        return None
    return "{" + ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _carrier(column_type: TypeEngine[Any]) -> tuple[str, str, Callable[[Any], Any] | None]:
    """How a column's values travel: the array type bound, the cast back in the SELECT, and a
    conversion of each value (None: as it is)."""
    if isinstance(column_type, ARRAY):
        return "text[]", "::text[]", _pg_array
    if isinstance(column_type, (JSON, postgresql.JSONB)):
        return "text[]", "::jsonb", _json
    if isinstance(column_type, Uuid):
        return "uuid[]", "", None
    if isinstance(column_type, String):  # Text, Unicode and Enum too
        return "text[]", "", None
    if isinstance(column_type, BigInteger):
        return "bigint[]", "", None
    if isinstance(column_type, SmallInteger):
        return "smallint[]", "", None
    if isinstance(column_type, Integer):
        return "integer[]", "", None
    if isinstance(column_type, Float):
        return "float8[]", "", None
    if isinstance(column_type, Boolean):
        return "boolean[]", "", None
    if isinstance(column_type, DateTime):
        return ("timestamptz[]" if column_type.timezone else "timestamp[]"), "", None
    if isinstance(column_type, Date):
        return "date[]", "", None
    if isinstance(column_type, LargeBinary):
        return "bytea[]", "", None
    raise NotImplementedError(f"no bulk carrier for {column_type!r}")


def _default(column: Column[Any]) -> Callable[[], Any] | None:
    """The column's Python-side default as a function of nothing, as the ORM would apply it."""
    default = column.default
    if default is None:
        return None
    if default.is_callable:  # SQLAlchemy has wrapped it to take an execution context
        function = default.arg  # type: ignore[attr-defined]
        return lambda: function(None)
    if default.is_scalar:
        value = default.arg  # type: ignore[attr-defined]
        return lambda: value
    return None  # a SQL expression or a sequence: the database applies it


@dataclass(frozen=True)
class _Shape:
    statement: TextClause
    columns: tuple[str, ...]
    convert: tuple[Callable[[Any], Any] | None, ...]
    defaults: tuple[Callable[[], Any] | None, ...]


_shapes: dict[tuple[str, tuple[str, ...], str], _Shape] = {}


def _shape(table: Table, given: Sequence[str], suffix: str) -> _Shape:
    key = (table.name, tuple(given), suffix)
    shape = _shapes.get(key)
    if shape is not None:
        return shape
    unknown = set(given) - set(table.columns.keys())
    if unknown:
        raise KeyError(f"{table.name} has no column {', '.join(sorted(unknown))}")
    # The given columns, then those a row may leave to their Python default.
    columns = [table.columns[name] for name in given]
    columns += [c for c in table.columns if c.name not in given and _default(c) is not None]
    carriers = [_carrier(c.type) for c in columns]
    names = ", ".join(_quote(c.name) for c in columns)
    arrays = ", ".join(f"CAST(:p{i} AS {carrier[0]})" for i, carrier in enumerate(carriers))
    selected = ", ".join(f"u.{_quote(c.name)}{carrier[1]}" for c, carrier in zip(columns, carriers, strict=True))
    sql = (f"INSERT INTO {_quote(table.name)} ({names}) SELECT {selected} "
           f"FROM unnest({arrays}) AS u({names}) {suffix}")
    shape = _Shape(text(sql), tuple(c.name for c in columns), tuple(carrier[2] for carrier in carriers),
                   tuple(None if c.name in given else _default(c) for c in columns))
    _shapes[key] = shape
    return shape


async def insert_rows(session: AsyncSession, model: type[Any] | Table, rows: Sequence[MutableMapping[str, Any]], *,
                      on_conflict: str = "", returning: str = "") -> Sequence[Row[Any]]:
    """Insert ``rows`` (dicts with the same keys) in one statement. A column they leave out
    takes its Python default, written into each dict so the caller sees what was stored, or
    NULL. ``on_conflict`` is the clause's SQL (``ON CONFLICT ... DO NOTHING``); ``returning``
    names columns to return, and then the rows returned are."""
    if not rows:
        return []
    table: Table = model if isinstance(model, Table) else model.__table__
    statement, params = _statement(table, rows, on_conflict + (f" RETURNING {returning}" if returning else ""))
    result = await session.execute(statement, params)
    return result.all() if returning else []


def _statement(table: Table, rows: Sequence[MutableMapping[str, Any]],
               suffix: str) -> tuple[TextClause, dict[str, list[Any]]]:
    shape = _shape(table, tuple(rows[0]), suffix)
    params: dict[str, list[Any]] = {}
    for i, (name, convert, default) in enumerate(zip(shape.columns, shape.convert, shape.defaults, strict=True)):
        if default is not None:
            for row in rows:
                row[name] = default()
        values = [row[name] for row in rows]
        params[f"p{i}"] = values if convert is None else [convert(v) for v in values]
    return shape.statement, params


def _fill_defaults(table: Table, row: MutableMapping[str, Any]) -> None:
    for column in table.columns:
        if column.name not in row and (default := _default(column)) is not None:
            row[column.name] = default()


_DEFERRED = "bulk_deferred"
_WRITING = "bulk_writing"


def defer(session: AsyncSession | Session, model: type[Any], row: MutableMapping[str, Any]) -> None:
    """Insert ``row`` with the session's next statement or at its commit (see above); its
    Python defaults are filled in now, so the caller has its id and times."""
    table: Table = model.__table__
    _fill_defaults(table, row)
    pending: dict[tuple[Table, tuple[str, ...]], list[MutableMapping[str, Any]]] = \
        session.info.setdefault(_DEFERRED, {})
    pending.setdefault((table, tuple(row)), []).append(row)


@functools.cache
def _sorted_tables(metadata: MetaData) -> list[Table]:
    return metadata.sorted_tables


def _write_deferred(session: Session) -> None:
    pending = session.info.pop(_DEFERRED, None)
    if not pending:
        return
    session.info[_WRITING] = True
    try:
        if session.new:  # a timeline row names its order, which may still be pending in the ORM
            session.flush()
        tables = _sorted_tables(next(iter(pending))[0].metadata)  # parents before children
        for (table, _), rows in sorted(pending.items(), key=lambda item: tables.index(item[0][0])):
            statement, params = _statement(table, rows, "")
            session.execute(statement, params)
    finally:
        session.info.pop(_WRITING, None)


async def write_deferred(session: AsyncSession) -> None:
    """Write the deferred rows now (before a savepoint, which they must not cross)."""
    await session.run_sync(_write_deferred)


@event.listens_for(Session, "do_orm_execute")
def _before_statement(state: ORMExecuteState) -> None:
    if _DEFERRED in state.session.info and not state.session.info.get(_WRITING):
        _write_deferred(state.session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    _write_deferred(session)


@event.listens_for(Session, "after_transaction_create")
def _before_savepoint(session: Session, transaction: SessionTransaction) -> None:
    # Rows deferred before a savepoint would be written inside it and lost with its rollback.
    if transaction.nested and session.info.get(_DEFERRED):
        raise RuntimeError("deferred rows are pending: await bulk.write_deferred(session) before begin_nested()")


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    session.info.pop(_DEFERRED, None)  # with the no-crossing rule, all of them belong to what rolled back


M = TypeVar("M")


def detached(model: type[M], values: Mapping[str, Any]) -> M:
    """An instance of a mapped class that carries ``values`` and belongs to no session: the
    row just inserted by ``insert_rows``, for code that reads an ORM object (answers, mails).
    Never add it to a session: that would insert the row a second time."""
    instance: M = class_mapper(model).class_manager.new_instance()
    instance.__dict__.update(values)
    return instance
