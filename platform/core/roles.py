"""The restricted login role the application and workers connect as.

Created by `oms migrate` with the owner's connection: LOGIN, NOSUPERUSER, NOBYPASSRLS, and
owner of nothing, so row-level security always applies to it.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


def _quote_ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe role name: {name!r}")
    return '"' + name + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def ensure_app_role(conn: AsyncConnection, role: str, password: str) -> None:
    ident = _quote_ident(role)
    exists = await conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    verb = "ALTER" if exists else "CREATE"
    await conn.execute(
        text(
            f"{verb} ROLE {ident} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS "
            f"PASSWORD {_quote_literal(password)}"
        )
    )


async def grant_app_role(conn: AsyncConnection, role: str) -> None:
    """Data privileges only: the role may read and write rows, never change the schema."""
    ident = _quote_ident(role)
    database = await conn.scalar(text("SELECT current_database()"))
    assert isinstance(database, str)
    await conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO {ident}'))
    await conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {ident}"))
    await conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ident}"))
    await conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ident}"))
    await conn.execute(text(f"REVOKE ALL ON alembic_version FROM {ident}"))
    await conn.execute(text(f"GRANT SELECT ON alembic_version TO {ident}"))
