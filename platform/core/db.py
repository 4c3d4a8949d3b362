"""Database engines, the declarative base and the per-transaction tenant scope.

The application and workers connect as the restricted app role (see core.roles), never as
the owner. A session carries the tenant it works for in ``session.info["tenant_id"]``; an
``after_begin`` listener sets ``app.tenant_id`` at the start of every transaction, so a
commit in the middle of a unit of work cannot lose the scope and pooled connections never
carry it over (the setting is transaction-local).
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import BigInteger, DateTime, ForeignKey, MetaData, event, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, SessionTransaction, mapped_column
from sqlalchemy.types import Uuid

from core import clock
from core.ids import uuid7

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return clock.now()


# Every money column: 64-bit, far above what validation lets in (``core.limits.MONEY_MAX``).
MONEY_COLUMN = BigInteger


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True), uuid.UUID: Uuid(as_uuid=True)}


class TenantScoped:
    """Mixin for tenant-owned tables: ``(tenant_id, id)`` is the primary key."""

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)


def _closed_by_the_server(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection the server has closed (a restart, a terminated backend) is known to
    asyncpg without a round trip: the pool drops it and hands out another. This replaces the
    pool's pre-ping, which cost a BEGIN, a ping and a ROLLBACK at every checkout."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError()


def create_engine(url: URL, *, pool_size: int = 10, application_name: str = "oms") -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        # The most recently used connection first: a few connections stay busy, with their
        # prepared statements and the server's caches warm, instead of all of them in turn.
        pool_use_lifo=True,
        connect_args={"server_settings": {"application_name": application_name}},
    )
    event.listen(engine.sync_engine, "checkout", _closed_by_the_server)
    # The rows a flush inserts into one table go as one multi-row INSERT, as they do with
    # psycopg, rather than one execution per row: routing a batch of orders writes hundreds.
    engine.sync_engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


_SET_SCOPE = ("SELECT set_config('app.tenant_id', $1, true), set_config('app.user_id', $2, true), "
              "set_config('app.outbox_relay', $3, true)")


def _apply_scope(connection: Connection, info: dict[str, Any]) -> None:
    tenant = info.get("tenant_id")
    user = info.get("user_id")
    connection.exec_driver_sql(
        _SET_SCOPE, (str(tenant) if tenant else "", str(user) if user else "", "on" if info.get("outbox_relay") else "")
    )


@event.listens_for(Session, "after_begin")
def _scope_transaction(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    if not transaction.nested:  # a savepoint is inside a transaction that has its scope already
        _apply_scope(connection, session.info)


async def set_scope(
    session: AsyncSession, *, tenant_id: uuid.UUID | None, user_id: uuid.UUID | None = None
) -> None:
    """Switch the session's tenant (and user) scope, also inside an open transaction."""
    session.info["tenant_id"] = tenant_id
    session.info["user_id"] = user_id
    if session.in_transaction():
        await session.execute(
            text("SELECT set_config('app.tenant_id', :t, true), set_config('app.user_id', :u, true)"),
            {"t": str(tenant_id) if tenant_id else "", "u": str(user_id) if user_id else ""},
        )


_DRIVER = "driver_connection"


async def driver(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session's transaction (begun now if need be, with its
    tenant scope), for the hot paths' statements: one costs a quarter of the CPU it costs
    through SQLAlchemy, in the same transaction and under the same row-level security.
    Statements take ``$1`` placeholders; asyncpg prepares each once per connection. As before
    any statement through the session, what is pending is written first (the ORM's new and
    changed objects, deferred rows), so the statement sees it."""
    from core import bulk

    if session.new or session.dirty:
        await session.flush()
    await bulk.write_deferred(session)
    return await connection_of(session)


async def connection_of(session: AsyncSession) -> asyncpg.Connection:
    """``driver`` without writing what is pending first: for the writers of deferred rows."""
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_DRIVER)
    if transaction is not None and cached is not None and cached[0] is transaction:
        return cached[1]
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    session.info[_DRIVER] = (session.sync_session.get_transaction(), raw)
    return raw


class Prepared:
    """A Core statement compiled once for asyncpg and run on the session's own connection
    (see ``driver``): a hot path's query written as SQLAlchemy, costing what raw asyncpg costs.
    Its parameters are ``bindparam``s, given by name; rows come back as asyncpg records
    (``row["name"]``), with no SQLAlchemy type processing."""

    def __init__(self, statement: Any) -> None:
        from sqlalchemy.dialects.postgresql.asyncpg import dialect

        compiled = statement.compile(dialect=dialect())  # type: ignore[no-untyped-call]
        self.sql: str = compiled.string
        self.names: list[str] = list(compiled.positiontup or [])
        # The statement's own literals (``attempts + 1``) are bound too.
        self.literals = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}

    def _args(self, params: dict[str, Any]) -> list[Any]:
        return [params[name] if name in params else self.literals[name] for name in self.names]

    async def fetch(self, session: AsyncSession, **params: Any) -> list[asyncpg.Record]:
        return list(await (await driver(session)).fetch(self.sql, *self._args(params)))

    async def execute(self, session: AsyncSession, **params: Any) -> None:
        await (await driver(session)).execute(self.sql, *self._args(params))


class Database:
    """The process's engine to the app role and its session factory."""

    def __init__(self, url: URL, *, pool_size: int = 10, application_name: str = "oms") -> None:
        self.engine = create_engine(url, pool_size=pool_size, application_name=application_name)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=True)

    def session(
        self, *, tenant_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None
    ) -> AsyncSession:
        session = self.sessionmaker()
        session.info["tenant_id"] = tenant_id
        session.info["user_id"] = user_id
        return session

    @asynccontextmanager
    async def transaction(
        self, *, tenant_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None
    ) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit on success, roll back on any exception."""
        async with self.session(tenant_id=tenant_id, user_id=user_id) as session, session.begin():
            yield session
            await before_commit(session)

    async def dispose(self) -> None:
        await self.engine.dispose()


# Work that must join the transaction just before it commits (webhook deliveries for the events
# it recorded): registered by the modules that need it.
PRE_COMMIT: list[Callable[[AsyncSession], Awaitable[None]]] = []


async def before_commit(session: AsyncSession) -> None:
    from core import bulk

    await bulk.write_deferred(session)  # before the hooks' reads, which would write them the slow way
    for hook in PRE_COMMIT:
        await hook(session)
    await bulk.write_deferred(session)


_databases: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Database] = weakref.WeakKeyDictionary()


def get_database() -> Database:
    """The app-role database of the running event loop.

    One per loop because asyncpg connections belong to the loop that opened them: the web
    server, Dramatiq's event-loop thread and a test's loop each get their own pool.
    """
    loop = asyncio.get_running_loop()
    database = _databases.get(loop)
    if database is None:
        from core.settings import get_settings

        settings = get_settings()
        database = Database(settings.app_url, pool_size=settings.db_pool_size)
        _databases[loop] = database
    return database


async def close_database() -> None:
    database = _databases.pop(asyncio.get_running_loop(), None)
    if database is not None:
        await database.dispose()
