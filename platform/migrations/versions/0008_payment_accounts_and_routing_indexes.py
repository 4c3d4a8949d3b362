"""Companies' own payment accounts (Stripe), and indexes that keep routing fast at a million
orders: a customer's earlier orders, and the fulfilments a location took today.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 15:13:03.667141
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.tenancy import rls_statements

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('payment_accounts',
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('secret_key', sa.String(length=300), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=320), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_payment_accounts_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_payment_accounts')),
    sa.UniqueConstraint('tenant_id', 'provider', name=op.f('uq_payment_accounts_tenant_id_provider'))
    )
    op.create_index('ix_fulfilments_location_day', 'fulfilments', ['tenant_id', 'location_code', 'created_at'], unique=False)
    op.create_index('ix_orders_customer_placed', 'orders', ['tenant_id', 'customer_id', 'placed_at'], unique=False)
    op.create_index('ix_orders_payment_attention', 'orders', ['tenant_id', 'payment_status', 'placed_at'], unique=False,
                    postgresql_where=sa.text("payment_status IN ('capture_failed', 'capture_pending')"))
    for statement in rls_statements("payment_accounts"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_index('ix_orders_payment_attention', table_name='orders')
    op.drop_index('ix_orders_customer_placed', table_name='orders')
    op.drop_index('ix_fulfilments_location_day', table_name='fulfilments')
    op.drop_table('payment_accounts')
