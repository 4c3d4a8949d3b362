"""Routing rule sets with immutable versions, the orders routing judges, shipping cost per location.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 14:14:06.387046
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.tenancy import rls_statements

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TABLES = ("orders", "order_lines", "rule_sets", "rule_versions")


def upgrade() -> None:
    op.create_table('orders',
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('total_minor', sa.Integer(), nullable=False),
    sa.Column('delivery_mode', sa.String(length=10), nullable=False),
    sa.Column('ship_country', sa.String(length=2), nullable=True),
    sa.Column('ship_postcode', sa.String(length=20), nullable=True),
    sa.Column('ship_latitude', sa.Float(), nullable=True),
    sa.Column('ship_longitude', sa.Float(), nullable=True),
    sa.Column('pickup_location_code', sa.String(length=64), nullable=True),
    sa.Column('customer_email', sa.String(length=320), nullable=True),
    sa.Column('customer_tags', sa.ARRAY(sa.String(length=50)), nullable=False),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('total_minor >= 0', name=op.f('ck_orders_total_not_negative')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_orders_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_orders')),
    sa.UniqueConstraint('tenant_id', 'number', name=op.f('uq_orders_tenant_id_number'))
    )
    op.create_index('ix_orders_placed', 'orders', ['tenant_id', 'placed_at'], unique=False)
    op.create_table('rule_sets',
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('draft', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('draft_revision', sa.Integer(), nullable=False),
    sa.Column('draft_updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('draft_updated_by', sa.String(length=320), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_rule_sets_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_rule_sets')),
    sa.UniqueConstraint('tenant_id', 'kind', name=op.f('uq_rule_sets_tenant_id_kind'))
    )
    op.create_table('order_lines',
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('category', sa.String(length=100), nullable=True),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price_minor', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_order_lines_quantity_positive')),
    sa.ForeignKeyConstraint(['tenant_id', 'order_id'], ['orders.tenant_id', 'orders.id'], name=op.f('fk_order_lines_tenant_id_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_order_lines_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_order_lines')),
    sa.UniqueConstraint('tenant_id', 'order_id', 'line_no', name=op.f('uq_order_lines_tenant_id_order_id_line_no'))
    )
    op.create_table('rule_versions',
    sa.Column('rule_set_id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('document', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('effective_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('effective_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('republished_from', sa.Integer(), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_by', sa.String(length=320), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_by', sa.String(length=320), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('effective_to IS NULL OR effective_to > effective_from', name=op.f('ck_rule_versions_window_not_empty')),
    sa.ForeignKeyConstraint(['tenant_id', 'rule_set_id'], ['rule_sets.tenant_id', 'rule_sets.id'], name=op.f('fk_rule_versions_tenant_id_rule_set_id_rule_sets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_rule_versions_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_rule_versions')),
    sa.UniqueConstraint('tenant_id', 'rule_set_id', 'number', name=op.f('uq_rule_versions_tenant_id_rule_set_id_number'))
    )
    op.create_index('ix_rule_versions_window', 'rule_versions', ['tenant_id', 'rule_set_id', 'effective_from'], unique=False)
    op.add_column('locations', sa.Column('shipping_cost_minor', sa.Integer(), nullable=True))
    for table in TABLES:
        for statement in rls_statements(table):
            op.execute(statement)
    # A published version never changes: only its withdrawal (before it takes effect) is recorded, once.
    op.execute("""
        CREATE FUNCTION rule_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (NEW.document, NEW.effective_from, NEW.effective_to, NEW.number, NEW.rule_set_id, NEW.tenant_id,
                NEW.republished_from, NEW.note, NEW.published_at, NEW.published_by)
               IS DISTINCT FROM
               (OLD.document, OLD.effective_from, OLD.effective_to, OLD.number, OLD.rule_set_id, OLD.tenant_id,
                OLD.republished_from, OLD.note, OLD.published_at, OLD.published_by)
               OR (OLD.cancelled_at IS NOT NULL
                   AND (NEW.cancelled_at, NEW.cancelled_by) IS DISTINCT FROM (OLD.cancelled_at, OLD.cancelled_by))
            THEN
                RAISE EXCEPTION 'published rule versions are immutable' USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$
    """)
    op.execute("CREATE TRIGGER rule_versions_immutable BEFORE UPDATE ON rule_versions "
               "FOR EACH ROW EXECUTE FUNCTION rule_versions_immutable()")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS rule_versions_immutable ON rule_versions")
    op.execute("DROP FUNCTION IF EXISTS rule_versions_immutable()")
    op.drop_column('locations', 'shipping_cost_minor')
    op.drop_index('ix_rule_versions_window', table_name='rule_versions')
    op.drop_table('rule_versions')
    op.drop_table('order_lines')
    op.drop_table('rule_sets')
    op.drop_index('ix_orders_placed', table_name='orders')
    op.drop_table('orders')
