"""Transfers arriving at stores: a pickup store's queue lists the transfers on their way to it
and waiting there, found by a small partial index.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ARRIVING = "kind = 'transfer' AND status IN ('shipped', 'ready_for_pickup')"


def upgrade() -> None:
    op.create_index('ix_fulfilments_arriving', 'fulfilments', ['tenant_id', 'ship_to_store', 'created_at'],
                    unique=False, postgresql_where=sa.text(ARRIVING))


def downgrade() -> None:
    op.drop_index('ix_fulfilments_arriving', table_name='fulfilments')
