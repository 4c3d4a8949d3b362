"""Idle companies cost nothing: the scheduler's sweeper learns which companies have pickups to
expire or orders to close (small partial indexes on those states), and purges what the kernel
keeps for a while (relayed outbox rows, idempotency records, re-drives) across companies, so no
periodic job sends a message per company.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.settings import get_settings
from core.tenancy import sweeper_statements

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING_PICKUP = "status = 'ready_for_pickup'"
TO_CLOSE = "status IN ('delivered', 'collected', 'shipped')"
SENT_A_WEEK_AGO = "sent_at IS NOT NULL AND sent_at < now() - interval '7 days'"
A_DAY_OLD = "created_at < now() - interval '24 hours'"
REDRIVEN_A_WEEK_AGO = "gave_up_at IS NULL AND last_at < now() - interval '7 days'"


def upgrade() -> None:
    role = get_settings().sweeper_db_role
    op.create_index('ix_fulfilments_waiting_pickup', 'fulfilments', ['tenant_id', 'pickup_expires_at'], unique=False,
                    postgresql_where=sa.text(WAITING_PICKUP))
    op.create_index('ix_orders_to_close', 'orders', ['tenant_id', 'updated_at'], unique=False,
                    postgresql_where=sa.text(TO_CLOSE))
    # Time-ordered tables that only grow at the end: a block-range index costs next to nothing.
    op.create_index('ix_outbox_messages_created', 'outbox_messages', ['created_at'], unique=False,
                    postgresql_using='brin')
    op.create_index('ix_idempotency_records_created', 'idempotency_records', ['created_at'], unique=False,
                    postgresql_using='brin')
    for statement in [
        *sweeper_statements("fulfilments", role, columns=["tenant_id", "status", "pickup_expires_at"],
                            due=WAITING_PICKUP, name="pickups"),
        *sweeper_statements("orders", role, columns=["tenant_id", "status", "updated_at"], due=TO_CLOSE,
                            name="to_close"),
        *sweeper_statements("outbox_messages", role, columns=["tenant_id", "id", "created_at", "sent_at"],
                            due=SENT_A_WEEK_AGO, name="expired", deletable=SENT_A_WEEK_AGO),
        *sweeper_statements("idempotency_records", role, columns=["tenant_id", "id", "created_at"],
                            due=A_DAY_OLD, name="expired", deletable=A_DAY_OLD),
        *sweeper_statements("redrives", role, columns=["tenant_id", "id", "last_at", "gave_up_at"],
                            due=REDRIVEN_A_WEEK_AGO, name="expired", deletable=REDRIVEN_A_WEEK_AGO),
    ]:
        op.execute(statement)


def downgrade() -> None:
    role = get_settings().sweeper_db_role
    for table, name in (("fulfilments", "pickups"), ("orders", "to_close"), ("outbox_messages", "expired"),
                        ("idempotency_records", "expired"), ("redrives", "expired")):
        op.execute(f"DROP POLICY IF EXISTS sweeper_{name} ON {table}")
        op.execute(f"DROP POLICY IF EXISTS sweeper_{name}_delete ON {table}")
    for table in ("fulfilments", "outbox_messages", "idempotency_records", "redrives"):
        op.execute(f'REVOKE ALL ON {table} FROM "{role}"')
    op.drop_index('ix_idempotency_records_created', table_name='idempotency_records')
    op.drop_index('ix_outbox_messages_created', table_name='outbox_messages')
    op.drop_index('ix_orders_to_close', table_name='orders')
    op.drop_index('ix_fulfilments_waiting_pickup', table_name='fulfilments')
