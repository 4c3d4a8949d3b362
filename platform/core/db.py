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

from sqlalchemy import ARRAY, ColumnElement, DateTime, ForeignKey, MetaData, any_, bindparam, event, text
from sqlalchemy.engine import URL, Connection
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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True), uuid.UUID: Uuid(as_uuid=True)}


class TenantScoped:
    """Mixin for tenant-owned tables: ``(tenant_id, id)`` is the primary key."""

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)


def one_of(column: Any, values: Any) -> ColumnElement[bool]:
    """``column = ANY(:array)``: one statement whatever the number of values. ``IN (...)`` is a
    new statement for each count, compiled again and prepared again by the server."""
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))  # type: ignore[no-any-return]


def create_engine(url: URL, *, pool_size: int = 10, application_name: str = "oms") -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": application_name}},
    )
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
    for hook in PRE_COMMIT:
        await hook(session)


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
