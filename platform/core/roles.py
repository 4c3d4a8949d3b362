"""The restricted login role the application and workers connect as.

Created by `oms migrate` with the owner's connection: LOGIN, NOSUPERUSER, NOBYPASSRLS, and
owner of nothing, so row-level security always applies to it. With it, a role it may switch
to for one transaction, and nothing else: the scheduler's sweeper, which can only read a few
columns of the rows of due work and delete what expired (granted and given policies by the
migrations that make those tables).
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


async def ensure_app_role(conn: AsyncConnection, role: str, password: str, sweeper_role: str) -> None:
    ident = _quote_ident(role)
    exists = await conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    verb = "ALTER" if exists else "CREATE"
    await conn.execute(
        text(
            f"{verb} ROLE {ident} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT "
            f"PASSWORD {_quote_literal(password)}"
        )
    )
    sweeper = _quote_ident(sweeper_role)
    exists = await conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": sweeper_role})
    verb = "ALTER" if exists else "CREATE"
    await conn.execute(text(f"{verb} ROLE {sweeper} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"))
    # NOINHERIT above: the app role may SET ROLE to the sweeper for one transaction, but never
    # has its privileges, nor its policies (which would show it every company's due rows).
    # Granted anew, so that a grant made before keeps no inheritance either (PostgreSQL 16+
    # stores it per grant).
    await conn.execute(text(f"REVOKE {sweeper} FROM {ident}"))
    await conn.execute(text(f"GRANT {sweeper} TO {ident}"))


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
