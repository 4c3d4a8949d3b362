"""Customer service: returns and the company's return policy, notes on customers, goodwill
refunds waiting for approval, comments and assignees on tasks, exchanges linked to their
original order, and the keys customer service's search finds customers by.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 00:03:35
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core import search_keys
from core.settings import get_settings
from core.tenancy import rls_statements, sweeper_statements

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('customer_notes',
    sa.Column('customer_id', sa.Uuid(), nullable=True),
    sa.Column('order_id', sa.Uuid(), nullable=True),
    sa.Column('body', sa.String(length=2000), nullable=False),
    sa.Column('author', sa.String(length=320), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_customer_notes_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_customer_notes'))
    )
    op.create_index('ix_customer_notes_customer', 'customer_notes', ['tenant_id', 'customer_id', 'created_at'], unique=False)
    op.create_index('ix_customer_notes_order', 'customer_notes', ['tenant_id', 'order_id'], unique=False)
    op.create_table('goodwill_requests',
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('shipping_minor', sa.BigInteger(), nullable=False),
    sa.Column('lines', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('requested_by', sa.String(length=320), nullable=False),
    sa.Column('requested_role', sa.String(length=32), nullable=False),
    sa.Column('decided_by', sa.String(length=320), nullable=True),
    sa.Column('decision_note', sa.String(length=1000), nullable=True),
    sa.Column('refund_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("status IN ('waiting', 'approved', 'declined')", name=op.f('ck_goodwill_requests_status_known')),
    sa.CheckConstraint('amount_minor > 0', name=op.f('ck_goodwill_requests_amount_positive')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_goodwill_requests_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_goodwill_requests'))
    )
    op.create_index('ix_goodwill_requests_order', 'goodwill_requests', ['tenant_id', 'order_id'], unique=False)
    op.create_index('ix_goodwill_requests_waiting', 'goodwill_requests', ['tenant_id', 'created_at'], unique=False, postgresql_where=sa.text("status = 'waiting'"))
    op.create_table('return_policies',
    sa.Column('window_days', sa.Integer(), nullable=False),
    sa.Column('non_returnable_categories', sa.ARRAY(sa.String(length=100)), nullable=False),
    sa.Column('restocking_fee_bp', sa.Integer(), nullable=False),
    sa.Column('refund_return_shipping', sa.Boolean(), nullable=False),
    sa.Column('override_roles', sa.ARRAY(sa.String(length=32)), nullable=False),
    sa.Column('refund_on', sa.String(length=20), nullable=False),
    sa.Column('reason_codes', sa.ARRAY(sa.String(length=40)), nullable=False),
    sa.Column('goodwill_limits', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=320), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("refund_on IN ('received', 'inspected')", name=op.f('ck_return_policies_refund_on_known')),
    sa.CheckConstraint('restocking_fee_bp BETWEEN 0 AND 10000', name=op.f('ck_return_policies_restocking_fee_range')),
    sa.CheckConstraint('window_days BETWEEN 0 AND 3650', name=op.f('ck_return_policies_window_days_range')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_return_policies_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_return_policies')),
    sa.UniqueConstraint('tenant_id', name=op.f('uq_return_policies_tenant_id'))
    )
    op.create_table('returns',
    sa.Column('number', sa.String(length=80), nullable=False),
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('order_number', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('expected_location_code', sa.String(length=64), nullable=False),
    sa.Column('received_location_code', sa.String(length=64), nullable=True),
    sa.Column('label_reference', sa.String(length=100), nullable=True),
    sa.Column('note', sa.String(length=1000), nullable=False),
    sa.Column('window_overridden', sa.Boolean(), nullable=False),
    sa.Column('opened_via', sa.String(length=20), nullable=False),
    sa.Column('exchange_order_id', sa.Uuid(), nullable=True),
    sa.Column('refund_id', sa.Uuid(), nullable=True),
    sa.Column('refunded_minor', sa.BigInteger(), nullable=False),
    sa.Column('restocking_fee_minor', sa.BigInteger(), nullable=False),
    sa.Column('exchange_credit_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('opened_by', sa.String(length=320), nullable=False),
    sa.Column('received_by', sa.String(length=320), nullable=True),
    sa.Column('inspected_by', sa.String(length=320), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('inspected_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refunded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expected_by', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("method IN ('in_store', 'post')", name=op.f('ck_returns_method_known')),
    sa.CheckConstraint("status IN ('requested', 'received', 'inspected', 'refunded', 'closed', 'cancelled')", name=op.f('ck_returns_status_known')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_returns_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_returns')),
    sa.UniqueConstraint('tenant_id', 'number', name=op.f('uq_returns_tenant_id_number'))
    )
    op.create_index('ix_returns_customer', 'returns', ['tenant_id', 'customer_id', 'created_at'], unique=False)
    op.create_index('ix_returns_order', 'returns', ['tenant_id', 'order_id'], unique=False)
    op.create_index('ix_returns_status', 'returns', ['tenant_id', 'status', 'created_at'], unique=False)
    op.create_index('ix_returns_waiting', 'returns', ['tenant_id', 'expected_by'], unique=False,
                    postgresql_where=sa.text("status = 'refunded' OR (status = 'requested' AND expected_by IS NOT NULL)"))
    op.create_table('return_lines',
    sa.Column('return_id', sa.Uuid(), nullable=False),
    sa.Column('order_line_id', sa.Uuid(), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('product_id', sa.Uuid(), nullable=True),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('reason_code', sa.String(length=40), nullable=False),
    sa.Column('condition', sa.String(length=20), nullable=True),
    sa.Column('refund_minor', sa.BigInteger(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("condition IS NULL OR condition IN ('resellable', 'damaged')", name=op.f('ck_return_lines_condition_known')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_return_lines_quantity_positive')),
    sa.ForeignKeyConstraint(['tenant_id', 'return_id'], ['returns.tenant_id', 'returns.id'], name=op.f('fk_return_lines_tenant_id_return_id_returns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_return_lines_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_return_lines'))
    )
    op.create_index('ix_return_lines_return', 'return_lines', ['tenant_id', 'return_id'], unique=False)
    op.create_table('task_comments',
    sa.Column('task_id', sa.Uuid(), nullable=False),
    sa.Column('body', sa.String(length=2000), nullable=False),
    sa.Column('author', sa.String(length=320), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'task_id'], ['service_tasks.tenant_id', 'service_tasks.id'], name=op.f('fk_task_comments_tenant_id_task_id_service_tasks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_task_comments_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_task_comments'))
    )
    op.create_index('ix_task_comments_task', 'task_comments', ['tenant_id', 'task_id', 'id'], unique=False)
    op.create_table('customer_search_keys',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_customer_search_keys_tenant_id_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_customer_search_keys_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'key', 'customer_id', name=op.f('pk_customer_search_keys'))
    )
    op.add_column('orders', sa.Column('exchange_for', sa.Uuid(), nullable=True))
    op.create_index('ix_orders_exchange_for', 'orders', ['tenant_id', 'exchange_for'], unique=False, postgresql_where=sa.text('exchange_for IS NOT NULL'))
    op.create_index('ix_orders_ship_postcode', 'orders', ['tenant_id', 'ship_postcode'], unique=False)
    op.create_index('ix_mail_messages_order', 'mail_messages', ['tenant_id', sa.text("(meta ->> 'order_id')")],
                    unique=False)
    op.create_index('ix_refunds_goodwill_by', 'refunds', ['tenant_id', 'created_by', 'created_at'], unique=False, postgresql_where=sa.text("source = 'goodwill'"))
    op.add_column('service_tasks', sa.Column('subject', sa.String(length=64), server_default='', nullable=False))
    op.add_column('service_tasks', sa.Column('assigned_to', sa.String(length=320), nullable=True))
    op.drop_index(op.f('uq_service_tasks_open'), table_name='service_tasks', postgresql_where="((status)::text = 'open'::text)")
    op.create_index('uq_service_tasks_open', 'service_tasks', ['tenant_id', 'order_id', 'kind', 'subject'], unique=True, postgresql_where=sa.text("status = 'open'"))
    op.create_index('ix_service_tasks_assigned', 'service_tasks', ['tenant_id', 'assigned_to', 'status'], unique=False)
    for table in ("customer_notes", "goodwill_requests", "return_policies", "returns", "return_lines",
                  "task_comments", "customer_search_keys"):
        for statement in rls_statements(table):
            op.execute(statement)
    for statement in sweeper_statements("returns", get_settings().sweeper_db_role,
                                        columns=["tenant_id", "status", "expected_by"],
                                        due="status = 'refunded' OR (status = 'requested' AND expected_by IS NOT NULL)",
                                        name="waiting"):
        op.execute(statement)
    _backfill_search_keys()


def _backfill_search_keys(batch: int = 2000) -> None:
    """Every existing customer's search keys, company by company (within its row-level security
    scope, as the owner may be subject to it), a batch of customers at a time."""
    connection = op.get_bind()
    insert = sa.text(
        "INSERT INTO customer_search_keys (tenant_id, key, customer_id) "
        "SELECT CAST(:tenant AS uuid), u.key, u.customer_id FROM unnest(:keys, :customers) AS u(key, customer_id) "
        "ON CONFLICT DO NOTHING").bindparams(sa.bindparam("keys", type_=postgresql.ARRAY(sa.Text())),
                                             sa.bindparam("customers", type_=postgresql.ARRAY(sa.Uuid())))
    for tenant_id in connection.scalars(sa.text("SELECT id FROM tenants ORDER BY id")).all():
        connection.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)})
        after = None
        while True:
            rows = connection.execute(sa.text(
                "SELECT id, email, name, phone FROM customers WHERE tenant_id = :tenant"
                + (" AND id > :after" if after else "") + " ORDER BY id LIMIT :n"),
                {"tenant": tenant_id, "after": after, "n": batch} if after else {"tenant": tenant_id, "n": batch}).all()
            if not rows:
                break
            pairs = [(key, row.id) for row in rows
                     for key in search_keys.record_keys(name=row.name, email=row.email, phone=row.phone)]
            connection.execute(insert, {"tenant": tenant_id, "keys": [key for key, _ in pairs],
                                        "customers": [customer for _, customer in pairs]})
            after = rows[-1].id
    connection.execute(sa.text("SELECT set_config('app.tenant_id', '', true)"))


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS sweeper_waiting ON returns")
    op.drop_index('ix_service_tasks_assigned', table_name='service_tasks')
    op.drop_index('uq_service_tasks_open', table_name='service_tasks', postgresql_where=sa.text("status = 'open'"))
    op.create_index(op.f('uq_service_tasks_open'), 'service_tasks', ['tenant_id', 'order_id', 'kind'], unique=True, postgresql_where="((status)::text = 'open'::text)")
    op.drop_column('service_tasks', 'assigned_to')
    op.drop_column('service_tasks', 'subject')
    op.drop_index('ix_refunds_goodwill_by', table_name='refunds', postgresql_where=sa.text("source = 'goodwill'"))
    op.drop_index('ix_orders_ship_postcode', table_name='orders')
    op.drop_index('ix_mail_messages_order', table_name='mail_messages')
    op.drop_index('ix_orders_exchange_for', table_name='orders', postgresql_where=sa.text('exchange_for IS NOT NULL'))
    op.drop_column('orders', 'exchange_for')
    op.drop_table('customer_search_keys')
    op.drop_index('ix_task_comments_task', table_name='task_comments')
    op.drop_table('task_comments')
    op.drop_index('ix_return_lines_return', table_name='return_lines')
    op.drop_table('return_lines')
    op.drop_index('ix_returns_status', table_name='returns')
    op.drop_index('ix_returns_order', table_name='returns')
    op.drop_index('ix_returns_customer', table_name='returns')
    op.drop_table('returns')
    op.drop_table('return_policies')
    op.drop_index('ix_goodwill_requests_waiting', table_name='goodwill_requests', postgresql_where=sa.text("status = 'waiting'"))
    op.drop_index('ix_goodwill_requests_order', table_name='goodwill_requests')
    op.drop_table('goodwill_requests')
    op.drop_index('ix_customer_notes_order', table_name='customer_notes')
    op.drop_index('ix_customer_notes_customer', table_name='customer_notes')
    op.drop_table('customer_notes')
