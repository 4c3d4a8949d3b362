"""Row-level security, read from the catalog and tried with raw SQL as the app role."""

from __future__ import annotations

from sqlalchemy import text

from factories import create_tenant


async def test_every_tenant_table_has_forced_rls_and_a_policy(owner_engine) -> None:
    async with owner_engine.connect() as conn:
        rows = (await conn.execute(text("""
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   (SELECT count(*) FROM pg_policies p WHERE p.schemaname = 'public' AND p.tablename = c.relname)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
              AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                          AND NOT a.attisdropped)
        """))).all()
    assert len(rows) >= 8, rows
    missing = [name for name, enabled, forced, policies in rows if not (enabled and forced and policies)]
    assert missing == [], f"tables with tenant_id but without forced RLS and a policy: {missing}"


async def test_tenant_tables_key_and_constraints_include_tenant_id(owner_engine) -> None:
    async with owner_engine.connect() as conn:
        rows = (await conn.execute(text("""
            SELECT c.relname, con.conname, con.contype,
                   (SELECT array_agg(a.attname) FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attnum = ANY(con.conkey))
            FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND con.contype IN ('p', 'u')
              AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
        """))).all()
    offenders = [(table, name) for table, name, _, columns in rows if "tenant_id" not in columns]
    assert offenders == []


async def test_app_role_cannot_bypass_rls(owner_engine, settings) -> None:
    async with owner_engine.connect() as conn:
        role = (await conn.execute(text(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolinherit FROM pg_roles WHERE rolname = :r"
        ), {"r": settings.app_db_role})).one()
        owned = await conn.scalar(text("""
            SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = :r
        """), {"r": settings.app_db_role})
    # NOINHERIT too: the re-drive sweep's role, which it may switch to, lends it no privilege or policy.
    assert tuple(role) == (False, False, False, False, False)
    assert owned == 0


async def test_app_connects_as_the_restricted_role(settings) -> None:
    from core.db import get_database

    async with get_database().transaction() as session:
        user = await session.scalar(text("SELECT current_user"))
    assert user == settings.app_db_role


async def test_raw_select_sees_only_the_scoped_tenant_and_nothing_without_scope() -> None:
    from core.db import get_database

    a = await create_tenant()
    b = await create_tenant()
    db = get_database()
    async with db.engine.connect() as conn:
        async with conn.begin():
            await conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(a.tenant_id)})
            tenants_seen = set((await conn.execute(text("SELECT tenant_id FROM memberships"))).scalars())
            keys_seen = set((await conn.execute(text("SELECT tenant_id FROM api_keys"))).scalars())
            audit_seen = set((await conn.execute(text("SELECT tenant_id FROM audit_events"))).scalars())
        assert tenants_seen == {a.tenant_id}
        assert keys_seen == {a.tenant_id}
        assert audit_seen == {a.tenant_id}
        assert b.tenant_id not in tenants_seen | keys_seen | audit_seen

        async with conn.begin():
            for table in ("memberships", "api_keys", "audit_events", "outbox_messages", "mail_messages"):
                count = await conn.scalar(text(f"SELECT count(*) FROM {table}"))
                assert count == 0, f"{table} is readable without a tenant scope"


async def test_writing_into_another_tenant_is_refused() -> None:
    import pytest
    from sqlalchemy.exc import DBAPIError

    from core.db import get_database

    a = await create_tenant()
    b = await create_tenant()
    async with get_database().engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(a.tenant_id)})
        with pytest.raises(DBAPIError, match="row-level security"):
            await conn.execute(text(
                "INSERT INTO audit_events (tenant_id, id, action, actor_label, details, created_at) "
                "VALUES (:t, gen_random_uuid(), 'forged', 'x', '{}', now())"
            ), {"t": str(b.tenant_id)})


async def test_a_user_scope_reads_its_memberships_elsewhere_but_never_changes_them() -> None:
    from core.db import get_database

    a, b = await create_tenant(), await create_tenant()
    async with get_database().engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT set_config('app.tenant_id', :t, true), set_config('app.user_id', :u, true)"),
                           {"t": str(b.tenant_id), "u": str(a.user_id)})
        readable = await conn.scalar(text("SELECT count(*) FROM memberships WHERE user_id = :u"), {"u": a.user_id})
        deleted = (await conn.execute(text("DELETE FROM memberships WHERE user_id = :u"), {"u": a.user_id})).rowcount
        updated = (await conn.execute(text("UPDATE memberships SET role = 'owner' WHERE user_id = :u"),
                                      {"u": a.user_id})).rowcount
    assert (readable, deleted, updated) == (1, 0, 0)


async def test_the_models_and_the_migrations_describe_the_same_schema(settings) -> None:
    """A model changed without a migration (or the reverse) fails here, not in production."""
    import asyncio

    from alembic import command

    from core.migrate import alembic_config

    await asyncio.to_thread(command.check, alembic_config(settings))  # raises on any difference
