"""Pending work found from the database: partial indexes on what waits for a worker, a policy
by which the scheduler's sweeper role sees a few columns of it across companies (the role is
created by ``oms migrate`` before the migrations run), the re-drives themselves, when a webhook
delivery is due, and refunds as rows (a Stripe refund is pending until Stripe has it).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.settings import get_settings
from core.tenancy import rls_statements, sweeper_statements

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What "pending" means per table: the same predicates as the code's and the partial indexes'.
PENDING = {
    "orders": "status IN ('received', 'backordered') OR payment_status = 'capture_pending'",
    "inventory_feeds": "status IN ('accepted', 'applying')",
    "mail_messages": "status = 'queued'",
    "webhook_deliveries": "status = 'pending'",
    "refunds": "status = 'pending'",
}
# The columns the sweeper reads of them: the company, and what the predicates and ages read.
COLUMNS = {
    "orders": ["tenant_id", "status", "payment_status", "updated_at"],
    "inventory_feeds": ["tenant_id", "status", "created_at"],
    "mail_messages": ["tenant_id", "status", "created_at"],
    "webhook_deliveries": ["tenant_id", "status", "next_attempt_at"],
    "refunds": ["tenant_id", "status", "created_at"],
}


def upgrade() -> None:
    op.create_table('redrives',
    sa.Column('kind', sa.String(length=60), nullable=False),
    sa.Column('item_id', sa.Uuid(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('first_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('gave_up_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_redrives_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_redrives')),
    sa.UniqueConstraint('tenant_id', 'kind', 'item_id', name=op.f('uq_redrives_tenant_id_kind_item_id'))
    )
    op.create_index('ix_redrives_recent', 'redrives', ['tenant_id', 'last_at'], unique=False)
    for statement in rls_statements("redrives"):
        op.execute(statement)

    op.create_table('refunds',
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_by', sa.String(length=320), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('amount_minor > 0', name=op.f('ck_refunds_amount_positive')),
    sa.ForeignKeyConstraint(['tenant_id', 'order_id'], ['orders.tenant_id', 'orders.id'], name=op.f('fk_refunds_tenant_id_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_refunds_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_refunds'))
    )
    op.create_index('ix_refunds_order', 'refunds', ['tenant_id', 'order_id'], unique=False)
    op.create_index('ix_refunds_pending', 'refunds', ['tenant_id', 'created_at'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    for statement in rls_statements("refunds"):
        op.execute(statement)
    # Every refund recorded so far on a timeline becomes a row, with the event's id (the id its
    # Stripe message carries); a Stripe one not confirmed sent is pending if Stripe still knows its
    # idempotency key (24 hours), failed otherwise, as sending it again could refund twice. The
    # tables are read past row-level security for this once: the migration's owner may not be a
    # superuser.
    for table in ("orders", "order_events", "refunds"):
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute("""
        INSERT INTO refunds (tenant_id, id, order_id, amount_minor, currency, provider, reason, status, created_by,
                             created_at, sent_at)
        SELECT e.tenant_id, e.id, e.order_id, (e.data->>'amount_minor')::bigint, o.currency,
               coalesce(o.payment_provider, 'external'), left(coalesce(e.reason, ''), 500),
               CASE WHEN coalesce(o.payment_provider, 'external') <> 'stripe' OR sent.id IS NOT NULL THEN 'sent'
                    WHEN e.created_at > now() - interval '23 hours' THEN 'pending' ELSE 'failed' END,
               e.actor, e.created_at, coalesce(sent.created_at, CASE WHEN o.payment_provider = 'stripe'
                                                                      THEN NULL ELSE e.created_at END)
        FROM order_events e
        JOIN orders o ON o.tenant_id = e.tenant_id AND o.id = e.order_id
        LEFT JOIN LATERAL (SELECT s.id, s.created_at FROM order_events s
                           WHERE s.tenant_id = e.tenant_id AND s.order_id = e.order_id
                             AND s.kind = 'payment.refund_sent' AND s.data->>'refund_id' = e.id::text
                           LIMIT 1) sent ON true
        WHERE e.kind = 'payment.refunded' AND (e.data->>'amount_minor')::bigint > 0
    """)
    for table in ("orders", "order_events", "refunds"):
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")

    op.add_column('webhook_deliveries', sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False))
    op.create_index('ix_webhook_deliveries_pending', 'webhook_deliveries', ['tenant_id', 'next_attempt_at'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_orders_pending_work', 'orders', ['tenant_id', 'updated_at'], unique=False, postgresql_where=sa.text(PENDING["orders"]))
    op.create_index('ix_inventory_feeds_pending', 'inventory_feeds', ['tenant_id', 'created_at'], unique=False, postgresql_where=sa.text(PENDING["inventory_feeds"]))
    op.create_index('ix_mail_messages_queued', 'mail_messages', ['tenant_id', 'created_at'], unique=False, postgresql_where=sa.text(PENDING["mail_messages"]))
    role = get_settings().sweeper_db_role
    for table, pending in PENDING.items():
        for statement in sweeper_statements(table, role, columns=COLUMNS[table], due=pending, name="pending"):
            op.execute(statement)


def downgrade() -> None:
    role = get_settings().sweeper_db_role
    for table in PENDING:
        op.execute(f"DROP POLICY IF EXISTS sweeper_pending ON {table}")
        op.execute(f'REVOKE SELECT ON {table} FROM "{role}"')
    op.drop_index('ix_mail_messages_queued', table_name='mail_messages')
    op.drop_index('ix_inventory_feeds_pending', table_name='inventory_feeds')
    op.drop_index('ix_orders_pending_work', table_name='orders')
    op.drop_index('ix_webhook_deliveries_pending', table_name='webhook_deliveries')
    op.drop_column('webhook_deliveries', 'next_attempt_at')
    op.drop_index('ix_refunds_pending', table_name='refunds')
    op.drop_index('ix_refunds_order', table_name='refunds')
    op.drop_table('refunds')
    op.drop_index('ix_redrives_recent', table_name='redrives')
    op.drop_table('redrives')
