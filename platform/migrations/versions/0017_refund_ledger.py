"""The refund ledger: each refund says why (cancellation, return, exchange, goodwill, shipping)
and how much of it goes to each order line and to shipping; an order never has more refunded
than captured.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.tenancy import rls_statements

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every refund recorded so far came from a cancellation (of units, or of a pickup not collected).
    op.add_column('refunds', sa.Column('source', sa.String(length=20), server_default='cancellation',
                                       nullable=False))
    op.add_column('refunds', sa.Column('shipping_minor', sa.BigInteger(), server_default='0', nullable=False))
    op.create_check_constraint(op.f('ck_refunds_source_known'), 'refunds',
                               "source IN ('cancellation', 'return', 'exchange', 'goodwill', 'shipping')")
    op.create_check_constraint(op.f('ck_refunds_shipping_within_amount'), 'refunds',
                               'shipping_minor >= 0 AND shipping_minor <= amount_minor')
    # Added without a scan under the exclusive lock, then validated while orders keep being written.
    op.execute("ALTER TABLE orders ADD CONSTRAINT ck_orders_refunded_within_captured "
               "CHECK (refunded_minor <= captured_minor) NOT VALID")
    op.execute("ALTER TABLE orders VALIDATE CONSTRAINT ck_orders_refunded_within_captured")
    op.create_table('refund_lines',
    sa.Column('refund_id', sa.Uuid(), nullable=False),
    sa.Column('order_line_id', sa.Uuid(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('amount_minor > 0', name=op.f('ck_refund_lines_amount_positive')),
    sa.ForeignKeyConstraint(['tenant_id', 'order_line_id'], ['order_lines.tenant_id', 'order_lines.id'],
                            name=op.f('fk_refund_lines_tenant_id_order_line_id_order_lines'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'refund_id'], ['refunds.tenant_id', 'refunds.id'],
                            name=op.f('fk_refund_lines_tenant_id_refund_id_refunds'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_refund_lines_tenant_id_tenants'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_refund_lines'))
    )
    op.create_index('ix_refund_lines_refund', 'refund_lines', ['tenant_id', 'refund_id'], unique=False)
    op.create_index('ix_refund_lines_order_line', 'refund_lines', ['tenant_id', 'order_line_id'], unique=False)
    for statement in rls_statements("refund_lines"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table('refund_lines')
    op.drop_constraint(op.f('ck_orders_refunded_within_captured'), 'orders', type_='check')
    op.drop_constraint(op.f('ck_refunds_shipping_within_amount'), 'refunds', type_='check')
    op.drop_constraint(op.f('ck_refunds_source_known'), 'refunds', type_='check')
    op.drop_column('refunds', 'shipping_minor')
    op.drop_column('refunds', 'source')
