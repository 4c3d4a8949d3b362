"""Set-based inserts: any number of rows in one statement of one shape.

A multi-row ``VALUES`` list is a new statement for every row count: SQLAlchemy compiles it
again and PostgreSQL prepares it again, which on the order paths cost more than the work.
``INSERT ... SELECT FROM unnest($1, $2, ...)`` takes one array per column instead, so a
table's insert is prepared once per connection, and the arrays are bound by asyncpg's C
codecs. The statements go through the session's own connection and transaction (see
``core.db.driver``), under row-level security like any other.

Rows written once in a transaction and not changed in it again (the order timeline, the
outbox, the mail log, new order lines and fulfilments) are written with ``defer``: a row
waits in the session and goes out with all the others, one statement for every table,
just before the session's next statement or its commit. A transaction that records fifty
events writes them with one INSERT, and any read in it still sees them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from asyncpg import Record
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
    SmallInteger,
    String,
    Table,
    Uuid,
    event,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, class_mapper
from sqlalchemy.sql.schema import Column
from sqlalchemy.types import TypeEngine

from core.db import connection_of, driver

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_quote = _DIALECT.identifier_preparer.quote

Rows = Sequence[MutableMapping[str, Any]]


def _pg_array(values: Sequence[Any] | None) -> str | None:
    """A one-dimensional array as PostgreSQL's text form: unnest can't carry arrays of arrays."""
    if values is None:
        return None
    return "{" + ",".join("NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in values) + "}"


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


_ARRAYS: tuple[tuple[type[TypeEngine[Any]], str], ...] = (
    (Uuid, "uuid[]"), (String, "text[]"), (BigInteger, "bigint[]"), (SmallInteger, "smallint[]"),
    (Integer, "integer[]"), (Float, "float8[]"), (Boolean, "boolean[]"), (Date, "date[]"), (LargeBinary, "bytea[]"),
)


def _carrier(column_type: TypeEngine[Any]) -> tuple[str, str, Callable[[Any], Any] | None]:
    """How a column's values travel: the array type bound, the cast back in the SELECT, and a
    conversion of each value (None: as it is)."""
    if isinstance(column_type, ARRAY):
        # Strings as text[] (the column's length limit then applies as it does to any insert).
        item = "text" if isinstance(column_type.item_type, String) else column_type.item_type.compile(_DIALECT)
        return "text[]", f"::{item}[]", _pg_array
    if isinstance(column_type, (JSON, postgresql.JSONB)):
        return "text[]", "::jsonb", _json
    if isinstance(column_type, DateTime):
        return ("timestamptz[]" if column_type.timezone else "timestamp[]"), "", None
    for kind, array in _ARRAYS:  # the first that fits: BigInteger before Integer, Text is a String
        if isinstance(column_type, kind):
            return array, "", None
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


@functools.cache
def _defaults(table: Table) -> tuple[tuple[str, Callable[[], Any]], ...]:
    return tuple((c.name, d) for c in table.columns if (d := _default(c)) is not None)


@dataclass(frozen=True)
class _Shape:
    """One table's insert for rows with the given keys."""

    table: Table
    columns: tuple[str, ...]
    convert: tuple[Callable[[Any], Any] | None, ...]
    defaults: tuple[Callable[[], Any] | None, ...]  # for the columns the rows leave out
    carriers: tuple[tuple[str, str], ...]

    def sql(self, first: int) -> str:
        """The INSERT, its arrays numbered from ``$first``."""
        names = ", ".join(_quote(name) for name in self.columns)
        arrays = ", ".join(f"${first + i}::{array}" for i, (array, _) in enumerate(self.carriers))
        selected = ", ".join(f"u.{_quote(name)}{cast}" for name, (_, cast) in zip(self.columns, self.carriers,
                                                                                   strict=True))
        return f"INSERT INTO {_quote(self.table.name)} ({names}) SELECT {selected} FROM unnest({arrays}) AS u({names})"

    def arrays(self, rows: Rows) -> list[list[Any]]:
        arrays = []
        for name, convert, default in zip(self.columns, self.convert, self.defaults, strict=True):
            if default is not None:
                for row in rows:
                    row[name] = default()
            values = [row[name] for row in rows]
            arrays.append(values if convert is None else [convert(v) for v in values])
        return arrays


@functools.cache
def _shape(table: Table, given: tuple[str, ...]) -> _Shape:
    unknown = set(given) - set(table.columns.keys())
    if unknown:
        raise KeyError(f"{table.name} has no column {', '.join(sorted(unknown))}")
    # The given columns, then those a row may leave to their Python default.
    columns = [table.columns[name] for name in given]
    columns += [c for c in table.columns if c.name not in given and _default(c) is not None]
    carriers = [_carrier(c.type) for c in columns]
    return _Shape(table, tuple(c.name for c in columns), tuple(carrier[2] for carrier in carriers),
                  tuple(None if c.name in given else _default(c) for c in columns),
                  tuple((carrier[0], carrier[1]) for carrier in carriers))


def _table(model: type[Any] | Table) -> Table:
    return model if isinstance(model, Table) else model.__table__


async def insert_rows(session: AsyncSession, model: type[Any] | Table, rows: Rows, *, on_conflict: str = "",
                      returning: str = "") -> list[Record]:
    """Insert ``rows`` (dicts with the same keys) in one statement. A column they leave out
    takes its Python default, written into each dict so the caller sees what was stored, or
    NULL. ``on_conflict`` is the clause's SQL (``ON CONFLICT ... DO NOTHING``); ``returning``
    names columns to return, and then the rows returned are."""
    if not rows:
        return []
    shape = _shape(_table(model), tuple(rows[0]))
    sql = shape.sql(1) + (f" {on_conflict}" if on_conflict else "") + (f" RETURNING {returning}" if returning else "")
    connection = await driver(session)
    arrays = shape.arrays(rows)
    if returning:
        return list(await connection.fetch(sql, *arrays))
    await connection.execute(sql, *arrays)
    return []


# --- deferred rows ---------------------------------------------------------------------------------

_DEFERRED = "bulk_deferred"
_WRITING = "bulk_writing"
Pending = dict[tuple[Table, tuple[str, ...]], list[MutableMapping[str, Any]]]


def defer(session: AsyncSession | Session, model: type[Any], row: MutableMapping[str, Any]) -> None:
    """Insert ``row`` with the session's next statement or at its commit (see above); its
    Python defaults are filled in now, so the caller has its id and times."""
    table = _table(model)
    for name, default in _defaults(table):
        if name not in row:
            row[name] = default()
    pending: Pending = session.info.setdefault(_DEFERRED, {})
    pending.setdefault((table, tuple(row)), []).append(row)


def _statement(pending: Pending) -> tuple[str, list[Any]]:
    """One statement for every table's rows, each but the last INSERT in a WITH clause.
    Foreign keys are checked when the whole statement is done, so a row may name one that is
    deferred with it; the tables go in name order so that the same tables make the same
    statement (prepared once)."""
    groups = sorted(pending.items(), key=lambda item: (item[0][0].name, item[0][1]))
    parts: list[str] = []
    args: list[Any] = []
    for (table, keys), rows in groups:
        shape = _shape(table, keys)
        parts.append(shape.sql(len(args) + 1))
        args += shape.arrays(rows)
    *ctes, main = parts
    if ctes:
        main = "WITH " + ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(ctes)) + " " + main
    return main, args


def _take(session: Session) -> Pending | None:
    if session.info.get(_WRITING):
        return None
    pending: Pending | None = session.info.pop(_DEFERRED, None)
    return pending or None


async def write_deferred(session: AsyncSession) -> None:
    """Write the deferred rows now: before a commit (the kernel's transactions do), or before
    a savepoint, which they must not cross."""
    if _DEFERRED not in session.info:
        return
    if session.new:  # a timeline row names its order, which may still be pending in the ORM
        await session.flush()
    pending = _take(session.sync_session)
    if pending is None:
        return
    sql, args = _statement(pending)
    await (await connection_of(session)).execute(sql, *args)


def _write_now(session: Session) -> None:
    """The same from SQLAlchemy's synchronous side (its events), through its connection."""
    pending = _take(session)
    if pending is None:
        return
    session.info[_WRITING] = True
    try:
        if session.new:
            session.flush()
        sql, args = _statement(pending)
        session.connection().exec_driver_sql(sql, tuple(args))
    finally:
        session.info.pop(_WRITING, None)


@event.listens_for(Session, "do_orm_execute")
def _before_statement(state: ORMExecuteState) -> None:
    if _DEFERRED in state.session.info:
        _write_now(state.session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    _write_now(session)


@event.listens_for(Session, "after_transaction_create")
def _before_savepoint(session: Session, transaction: SessionTransaction) -> None:
    # Rows deferred before a savepoint would be written inside it and lost with its rollback.
    if transaction.nested and session.info.get(_DEFERRED):
        raise RuntimeError("deferred rows are pending: await bulk.write_deferred(session) before begin_nested()")


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    session.info.pop(_DEFERRED, None)  # with the no-crossing rule, all of them belong to what rolled back


@event.listens_for(Session, "after_transaction_end")
def _after_transaction(session: Session, transaction: SessionTransaction) -> None:
    # Written at the commit, or gone with a rollback or a close: never carried into the next one.
    if transaction.parent is None:
        session.info.pop(_DEFERRED, None)


M = TypeVar("M")


def detached(model: type[M], values: Mapping[str, Any]) -> M:
    """An instance of a mapped class that carries ``values`` and belongs to no session: a row
    just inserted or deferred here, for code that reads an ORM object (answers, mails).
    Never add it to a session: that would insert the row a second time."""
    instance: M = class_mapper(model).class_manager.new_instance()
    instance.__dict__.update(values)
    return instance
