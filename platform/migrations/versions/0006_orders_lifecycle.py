"""Orders with their lifecycle: customers, fulfilments and their lines, the order timeline,
line quantities, payments and routing fields on orders.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 14:48:42.646223
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.tenancy import rls_statements

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TABLES = ("customers", "fulfilments", "fulfilment_lines", "order_events")


def upgrade() -> None:
    op.create_table('customers',
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('phone', sa.String(length=40), nullable=False),
    sa.Column('tags', sa.ARRAY(sa.String(length=50)), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_customers_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_customers'))
    )
    op.create_index('uq_customers_email', 'customers', ['tenant_id', sa.literal_column('lower(email)')], unique=True)
    op.create_table('fulfilments',
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.String(length=80), nullable=False),
    sa.Column('location_id', sa.Uuid(), nullable=False),
    sa.Column('location_code', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('ship_to_store', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('tracking_number', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('pickup_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'order_id'], ['orders.tenant_id', 'orders.id'], name=op.f('fk_fulfilments_tenant_id_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_fulfilments_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_fulfilments'))
    )
    op.create_index('ix_fulfilments_order', 'fulfilments', ['tenant_id', 'order_id'], unique=False)
    op.create_index('ix_fulfilments_queue', 'fulfilments', ['tenant_id', 'location_code', 'status', 'created_at'], unique=False)
    op.create_table('order_events',
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('fulfilment_id', sa.Uuid(), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=True),
    sa.Column('actor', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.String(length=1000), nullable=True),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'order_id'], ['orders.tenant_id', 'orders.id'], name=op.f('fk_order_events_tenant_id_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_order_events_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_order_events'))
    )
    op.create_index('ix_order_events_order', 'order_events', ['tenant_id', 'order_id', 'id'], unique=False)
    op.create_index('ix_order_events_recent', 'order_events', ['tenant_id', 'created_at'], unique=False)
    op.create_table('fulfilment_lines',
    sa.Column('fulfilment_id', sa.Uuid(), nullable=False),
    sa.Column('order_line_id', sa.Uuid(), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('quantity >= 0', name=op.f('ck_fulfilment_lines_quantity_not_negative')),
    sa.ForeignKeyConstraint(['tenant_id', 'fulfilment_id'], ['fulfilments.tenant_id', 'fulfilments.id'], name=op.f('fk_fulfilment_lines_tenant_id_fulfilment_id_fulfilments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_fulfilment_lines_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_fulfilment_lines'))
    )
    op.create_index('ix_fulfilment_lines_fulfilment', 'fulfilment_lines', ['tenant_id', 'fulfilment_id'], unique=False)
    op.add_column('order_lines', sa.Column('product_id', sa.Uuid(), nullable=True))
    op.add_column('order_lines', sa.Column('name', sa.String(length=300), server_default='', nullable=False))
    op.add_column('order_lines', sa.Column('discount_minor', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('order_lines', sa.Column('qty_allocated', sa.Integer(), server_default='0', nullable=False))
    op.add_column('order_lines', sa.Column('qty_shipped', sa.Integer(), server_default='0', nullable=False))
    op.add_column('order_lines', sa.Column('qty_cancelled', sa.Integer(), server_default='0', nullable=False))
    op.add_column('order_lines', sa.Column('qty_returned', sa.Integer(), server_default='0', nullable=False))
    op.add_column('orders', sa.Column('external_number', sa.String(length=100), nullable=True))
    op.add_column('orders', sa.Column('hold_reason', sa.String(length=500), nullable=True))
    op.add_column('orders', sa.Column('subtotal_minor', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('orders', sa.Column('discount_minor', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('orders', sa.Column('shipping_fee_minor', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('orders', sa.Column('ship_name', sa.String(length=200), nullable=True))
    op.add_column('orders', sa.Column('ship_line1', sa.String(length=200), nullable=True))
    op.add_column('orders', sa.Column('ship_city', sa.String(length=100), nullable=True))
    op.add_column('orders', sa.Column('customer_id', sa.Uuid(), nullable=True))
    op.add_column('orders', sa.Column('customer_name', sa.String(length=200), nullable=True))
    op.add_column('orders', sa.Column('customer_phone', sa.String(length=40), nullable=True))
    op.add_column('orders', sa.Column('payment_provider', sa.String(length=20), nullable=True))
    op.add_column('orders', sa.Column('payment_method', sa.String(length=40), nullable=True))
    op.add_column('orders', sa.Column('payment_reference', sa.String(length=200), nullable=True))
    op.add_column('orders', sa.Column('payment_status', sa.String(length=20), server_default='none', nullable=False))
    op.add_column('orders', sa.Column('authorized_minor', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('orders', sa.Column('captured_minor', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('orders', sa.Column('refunded_minor', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('orders', sa.Column('excluded_locations', sa.ARRAY(sa.String(length=64)), server_default='{}', nullable=False))
    op.add_column('orders', sa.Column('routing_version', sa.Integer(), nullable=True))
    op.add_column('orders', sa.Column('routing', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('orders', sa.Column('created_by', sa.String(length=320), server_default='', nullable=False))
    op.add_column('orders', sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False))
    op.alter_column('orders', 'delivery_mode',
               existing_type=sa.VARCHAR(length=10),
               type_=sa.String(length=20),
               existing_nullable=False)
    op.drop_index(op.f('ix_orders_placed'), table_name='orders')
    op.create_index('ix_orders_placed', 'orders', ['tenant_id', 'placed_at', 'id'], unique=False)
    op.create_index('ix_orders_channel_placed', 'orders', ['tenant_id', 'channel', 'placed_at', 'id'], unique=False)
    op.create_index('ix_orders_customer_email', 'orders', ['tenant_id', sa.literal_column('lower(customer_email)')], unique=False)
    op.create_index('ix_orders_status_placed', 'orders', ['tenant_id', 'status', 'placed_at', 'id'], unique=False)
    op.create_index('uq_orders_channel_number', 'orders', ['tenant_id', 'channel', 'external_number'], unique=True, postgresql_where=sa.text('external_number IS NOT NULL'))
    op.create_check_constraint('not_over_allocated', 'order_lines', 'qty_allocated + qty_cancelled <= quantity')
    op.create_check_constraint('shipped_within_allocated', 'order_lines', 'qty_shipped <= qty_allocated')
    for table in TABLES:
        for statement in rls_statements(table):
            op.execute(statement)


def downgrade() -> None:
    op.drop_constraint('shipped_within_allocated', 'order_lines', type_='check')
    op.drop_constraint('not_over_allocated', 'order_lines', type_='check')
    op.drop_index('uq_orders_channel_number', table_name='orders', postgresql_where=sa.text('external_number IS NOT NULL'))
    op.drop_index('ix_orders_status_placed', table_name='orders')
    op.drop_index('ix_orders_customer_email', table_name='orders')
    op.drop_index('ix_orders_channel_placed', table_name='orders')
    op.drop_index('ix_orders_placed', table_name='orders')
    op.create_index(op.f('ix_orders_placed'), 'orders', ['tenant_id', 'placed_at'], unique=False)
    op.alter_column('orders', 'delivery_mode',
               existing_type=sa.String(length=20),
               type_=sa.VARCHAR(length=10),
               existing_nullable=False)
    op.drop_column('orders', 'updated_at')
    op.drop_column('orders', 'created_by')
    op.drop_column('orders', 'routing')
    op.drop_column('orders', 'routing_version')
    op.drop_column('orders', 'excluded_locations')
    op.drop_column('orders', 'refunded_minor')
    op.drop_column('orders', 'captured_minor')
    op.drop_column('orders', 'authorized_minor')
    op.drop_column('orders', 'payment_status')
    op.drop_column('orders', 'payment_reference')
    op.drop_column('orders', 'payment_method')
    op.drop_column('orders', 'payment_provider')
    op.drop_column('orders', 'customer_phone')
    op.drop_column('orders', 'customer_name')
    op.drop_column('orders', 'customer_id')
    op.drop_column('orders', 'ship_city')
    op.drop_column('orders', 'ship_line1')
    op.drop_column('orders', 'ship_name')
    op.drop_column('orders', 'shipping_fee_minor')
    op.drop_column('orders', 'discount_minor')
    op.drop_column('orders', 'subtotal_minor')
    op.drop_column('orders', 'hold_reason')
    op.drop_column('orders', 'external_number')
    op.drop_column('order_lines', 'qty_returned')
    op.drop_column('order_lines', 'qty_cancelled')
    op.drop_column('order_lines', 'qty_shipped')
    op.drop_column('order_lines', 'qty_allocated')
    op.drop_column('order_lines', 'discount_minor')
    op.drop_column('order_lines', 'name')
    op.drop_column('order_lines', 'product_id')
    op.drop_index('ix_fulfilment_lines_fulfilment', table_name='fulfilment_lines')
    op.drop_table('fulfilment_lines')
    op.drop_index('ix_order_events_recent', table_name='order_events')
    op.drop_index('ix_order_events_order', table_name='order_events')
    op.drop_table('order_events')
    op.drop_index('ix_fulfilments_queue', table_name='fulfilments')
    op.drop_index('ix_fulfilments_order', table_name='fulfilments')
    op.drop_table('fulfilments')
    op.drop_index('uq_customers_email', table_name='customers')
    op.drop_table('customers')
