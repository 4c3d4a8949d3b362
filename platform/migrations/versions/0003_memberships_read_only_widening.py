"""Memberships: a user's own memberships in other companies are readable, never writable.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 13:30:00
"""

from collections.abc import Sequence

from alembic import op

from core.tenancy import USER_MATCH, rls_statements

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for statement in rls_statements("memberships", also_readable_when=USER_MATCH):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS readable_in_scope ON memberships")
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON memberships")
    op.execute(
        "CREATE POLICY tenant_isolation ON memberships USING "
        "((tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid) OR "
        "(user_id = NULLIF(current_setting('app.user_id', true), '')::uuid)) WITH CHECK "
        "((tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid) OR "
        "(user_id = NULLIF(current_setting('app.user_id', true), '')::uuid))"
    )
