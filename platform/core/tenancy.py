"""Row-level security as migrations apply it.

Every tenant table gets ENABLE and FORCE ROW LEVEL SECURITY and one policy that compares
``tenant_id`` with the transaction's ``app.tenant_id``; an unset or empty setting matches
nothing, so a session without a scope sees no rows and can write none.
"""

from __future__ import annotations

TENANT_MATCH = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"
USER_MATCH = "user_id = NULLIF(current_setting('app.user_id', true), '')::uuid"
RELAY_SCOPE = "current_setting('app.outbox_relay', true) = 'on'"


def rls_statements(table: str, *, also_readable_when: str | None = None,
                   also_writable_when: str | None = None) -> list[str]:
    """SQL that puts ``table`` behind the tenant policy.

    ``also_readable_when`` adds a SELECT-only policy for one narrow, named scope (a user
    reading their own memberships): it never lets that scope write or delete.
    ``also_writable_when`` widens reading and writing (the outbox relay marking rows sent).
    Neither ever opens a table to an unscoped session.
    """
    check = TENANT_MATCH if also_writable_when is None else f"({TENANT_MATCH}) OR ({also_writable_when})"
    statements = [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS tenant_isolation ON {table}",
        f"DROP POLICY IF EXISTS readable_in_scope ON {table}",
        f"CREATE POLICY tenant_isolation ON {table} USING ({check}) WITH CHECK ({check})",
    ]
    if also_readable_when is not None:
        statements.append(f"CREATE POLICY readable_in_scope ON {table} FOR SELECT USING ({also_readable_when})")
    return statements


def sweeper_statements(table: str, role: str, *, columns: list[str], due: str, name: str = "due",
                       deletable: str | None = None) -> list[str]:
    """Let the scheduler's sweeper ``role`` read ``columns`` of the ``due`` rows of ``table`` in
    every company, to learn which companies have work due (it then acts in each company's own
    scope); and, with ``deletable``, delete the rows that have expired. Nothing else is readable
    (no other row, no other column) or writable. The policies are the role's alone, so the app
    role's queries are planned with the tenant policy only."""
    statements = [
        f'GRANT SELECT ({", ".join(columns)}) ON {table} TO "{role}"',
        f"DROP POLICY IF EXISTS sweeper_{name} ON {table}",
        f'CREATE POLICY sweeper_{name} ON {table} FOR SELECT TO "{role}" USING ({due})',
    ]
    if deletable is not None:
        statements += [
            f'GRANT DELETE ON {table} TO "{role}"',
            f"DROP POLICY IF EXISTS sweeper_{name}_delete ON {table}",
            f'CREATE POLICY sweeper_{name}_delete ON {table} FOR DELETE TO "{role}" USING ({deletable})',
        ]
    return statements
