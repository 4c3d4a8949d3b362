"""Customer-service tasks (a capture that failed, a refund refused, an order on hold), and the
company's pickup window for click & collect orders.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 16:55:22.626946
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.tenancy import rls_statements

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('service_tasks',
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('detail', sa.String(length=1000), nullable=False),
    sa.Column('occurrences', sa.Integer(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=320), nullable=True),
    sa.Column('resolution', sa.String(length=1000), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'order_id'], ['orders.tenant_id', 'orders.id'], name=op.f('fk_service_tasks_tenant_id_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_service_tasks_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_service_tasks'))
    )
    op.create_index('ix_service_tasks_status', 'service_tasks', ['tenant_id', 'status', 'id'], unique=False)
    op.create_index('uq_service_tasks_open', 'service_tasks', ['tenant_id', 'order_id', 'kind'], unique=True, postgresql_where=sa.text("status = 'open'"))
    for statement in rls_statements("service_tasks"):
        op.execute(statement)
    op.add_column('tenants', sa.Column('pickup_window_days', sa.Integer(), server_default='7', nullable=False))
    op.create_check_constraint(op.f('ck_tenants_pickup_window_days'), 'tenants', 'pickup_window_days BETWEEN 1 AND 60')


def downgrade() -> None:
    op.drop_constraint(op.f('ck_tenants_pickup_window_days'), 'tenants')
    op.drop_column('tenants', 'pickup_window_days')
    op.drop_index('uq_service_tasks_open', table_name='service_tasks', postgresql_where=sa.text("status = 'open'"))
    op.drop_index('ix_service_tasks_status', table_name='service_tasks')
    op.drop_table('service_tasks')
