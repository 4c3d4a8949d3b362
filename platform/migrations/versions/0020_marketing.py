"""Marketing: its settings, segments, coupons and their batches, the counters of promotions'
limits and budgets, redemptions recorded with orders, campaigns and their recipients; and on
customers, what segments test (order counts, value, dates, channels, stores, categories) and
marketing consent, with the existing customers' figures counted from their orders.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 05:57:57.387283
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.settings import get_settings
from core.tenancy import rls_statements, sweeper_statements

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('campaigns',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('segment_id', sa.Uuid(), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('coupon_code', sa.String(length=40), nullable=True),
    sa.Column('status', sa.String(length=20), server_default='draft', nullable=False),
    sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attribution_days', sa.Integer(), server_default='7', nullable=False),
    sa.Column('pace_per_minute', sa.Integer(), server_default='600', nullable=False),
    sa.Column('recipients_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('sent_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('skipped_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=320), server_default='', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('attribution_days BETWEEN 0 AND 365', name=op.f('ck_campaigns_attribution_range')),
    sa.CheckConstraint('pace_per_minute BETWEEN 1 AND 100000', name=op.f('ck_campaigns_pace_range')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_campaigns_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_campaigns'))
    )
    op.create_index('ix_campaigns_due', 'campaigns', ['tenant_id', 'status', 'scheduled_at'], unique=False)
    op.create_table('coupon_batches',
    sa.Column('promotion_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=20), server_default='', nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('max_uses', sa.Integer(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=320), server_default='', nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_coupon_batches_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_coupon_batches'))
    )
    op.create_table('coupons',
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('promotion_id', sa.String(length=40), nullable=False),
    sa.Column('batch_id', sa.Uuid(), nullable=True),
    sa.Column('max_uses', sa.Integer(), nullable=True),
    sa.Column('uses', sa.Integer(), server_default='0', nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=320), server_default='', nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('uses >= 0 AND (max_uses IS NULL OR uses <= max_uses)', name=op.f('ck_coupons_uses_within_limit')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_coupons_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_coupons')),
    sa.UniqueConstraint('tenant_id', 'code', name=op.f('uq_coupons_tenant_id_code'))
    )
    op.create_index('ix_coupons_batch', 'coupons', ['tenant_id', 'batch_id'], unique=False)
    op.create_index('ix_coupons_promotion', 'coupons', ['tenant_id', 'promotion_id'], unique=False)
    op.create_table('marketing_settings',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('capture_mode', sa.String(length=10), server_default='apply', nullable=False),
    sa.Column('refuse_invalid_coupons', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=320), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_marketing_settings_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_marketing_settings'))
    )
    op.create_table('promotion_counters',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('promotion_id', sa.String(length=40), nullable=False),
    sa.Column('uses', sa.Integer(), server_default='0', nullable=False),
    sa.Column('given_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.CheckConstraint('uses >= 0 AND given_minor >= 0', name=op.f('ck_promotion_counters_not_negative')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_promotion_counters_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'promotion_id', name=op.f('pk_promotion_counters'))
    )
    op.create_table('promotion_customer_uses',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('promotion_id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('uses', sa.Integer(), server_default='0', nullable=False),
    sa.CheckConstraint('uses >= 0', name=op.f('ck_promotion_customer_uses_not_negative')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_promotion_customer_uses_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'promotion_id', 'customer_id', name=op.f('pk_promotion_customer_uses'))
    )
    op.create_table('redemptions',
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('order_number', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=True),
    sa.Column('promotion_id', sa.String(length=40), nullable=False),
    sa.Column('promotion_name', sa.String(length=200), nullable=False),
    sa.Column('promotion_class', sa.String(length=10), nullable=False),
    sa.Column('rule_version', sa.Integer(), nullable=True),
    sa.Column('coupon_id', sa.Uuid(), nullable=True),
    sa.Column('coupon_code', sa.String(length=40), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('lines', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('shipping_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('given_back_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('use_given_back', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('counted', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('counted_for_customer', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('amount_minor >= 0 AND given_back_minor BETWEEN 0 AND amount_minor', name=op.f('ck_redemptions_amounts')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_redemptions_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_redemptions'))
    )
    op.create_index('ix_redemptions_coupon', 'redemptions', ['tenant_id', 'coupon_id'], unique=False)
    op.create_index('ix_redemptions_customer', 'redemptions', ['tenant_id', 'customer_id'], unique=False)
    op.create_index('ix_redemptions_order', 'redemptions', ['tenant_id', 'order_id'], unique=False)
    op.create_index('ix_redemptions_promotion', 'redemptions', ['tenant_id', 'promotion_id', 'created_at'], unique=False)
    op.create_table('segments',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.String(length=500), server_default='', nullable=False),
    sa.Column('condition', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=320), server_default='', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=320), server_default='', nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_segments_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_segments')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_segments_tenant_id_name'))
    )
    op.create_table('campaign_recipients',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('status', sa.String(length=20), server_default='pending', nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('mail_id', sa.Uuid(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id', 'campaign_id'], ['campaigns.tenant_id', 'campaigns.id'], name=op.f('fk_campaign_recipients_tenant_id_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_campaign_recipients_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'campaign_id', 'customer_id', name=op.f('pk_campaign_recipients'))
    )
    op.create_index('ix_campaign_recipients_customer', 'campaign_recipients', ['tenant_id', 'customer_id'], unique=False)
    op.create_index('ix_campaign_recipients_status', 'campaign_recipients', ['tenant_id', 'campaign_id', 'status'], unique=False)
    op.add_column('customers', sa.Column('orders_count', sa.Integer(), server_default='0', nullable=False))
    op.add_column('customers', sa.Column('lifetime_value_minor', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('customers', sa.Column('first_order_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('customers', sa.Column('last_order_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('customers', sa.Column('channels', sa.ARRAY(sa.String(length=20)), server_default='{}', nullable=False))
    op.add_column('customers', sa.Column('stores', sa.ARRAY(sa.String(length=64)), server_default='{}', nullable=False))
    op.add_column('customers', sa.Column('categories', sa.ARRAY(sa.String(length=100)), server_default='{}', nullable=False))
    op.add_column('customers', sa.Column('email_consent', sa.Boolean(), server_default='false', nullable=False))
    op.add_column('customers', sa.Column('sms_consent', sa.Boolean(), server_default='false', nullable=False))
    op.add_column('customers', sa.Column('consent_updated_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('customers', sa.Column('unsubscribed_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_customers_last_order', 'customers', ['tenant_id', 'last_order_at'], unique=False)
    for table in ("marketing_settings", "segments", "coupon_batches", "coupons", "promotion_counters",
                  "promotion_customer_uses", "redemptions", "campaigns", "campaign_recipients"):
        for statement in rls_statements(table):
            op.execute(statement)
    for statement in sweeper_statements("campaigns", get_settings().sweeper_db_role,
                                        columns=["tenant_id", "status", "scheduled_at"],
                                        due="status IN ('scheduled', 'sending')", name="due"):
        op.execute(statement)
    _count_customers_orders()


# Each customer's figures from their orders, as orders.customer_stats counts them: orders not
# wholly cancelled; their totals less what the units cancelled or returned were worth (each
# line's net shared per unit, rounded down cumulatively: payments.value_of), less the shipping of
# a wholly cancelled order; the dates, channels, pickup stores and categories of every order.
BACKFILL_CUSTOMER_STATS = """
    WITH per_order AS (
        SELECT o.customer_id, o.placed_at, o.channel, o.pickup_location_code AS store,
               bool_and(l.qty_cancelled >= l.quantity) AS cancelled,
               o.total_minor - sum(div((l.unit_price_minor::numeric * l.quantity - l.discount_minor
                                        - l.order_discount_minor) * least(l.quantity, l.qty_cancelled + l.qty_returned),
                                       l.quantity))
               - CASE WHEN bool_and(l.qty_cancelled >= l.quantity) THEN o.shipping_fee_minor ELSE 0 END AS value
        FROM orders o JOIN order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
        WHERE o.tenant_id = :tenant AND o.customer_id IS NOT NULL
        GROUP BY o.tenant_id, o.id),
    categories AS (
        SELECT o.customer_id, array_agg(DISTINCT l.category) AS categories
        FROM orders o JOIN order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
        WHERE o.tenant_id = :tenant AND o.customer_id IS NOT NULL AND l.category IS NOT NULL
        GROUP BY o.customer_id),
    counted AS (
        SELECT p.customer_id, count(*) FILTER (WHERE NOT p.cancelled) AS orders_count, sum(p.value) AS value,
               min(p.placed_at) AS first_at, max(p.placed_at) AS last_at, array_agg(DISTINCT p.channel) AS channels,
               coalesce(array_agg(DISTINCT p.store) FILTER (WHERE p.store IS NOT NULL), '{}') AS stores,
               coalesce(c.categories, '{}') AS categories
        FROM per_order p LEFT JOIN categories c ON c.customer_id = p.customer_id
        GROUP BY p.customer_id, c.categories)
    UPDATE customers SET orders_count = counted.orders_count, lifetime_value_minor = counted.value,
                         first_order_at = counted.first_at, last_order_at = counted.last_at,
                         channels = counted.channels, stores = counted.stores, categories = counted.categories
    FROM counted WHERE customers.tenant_id = :tenant AND customers.id = counted.customer_id
"""


def _count_customers_orders() -> None:
    """The existing customers' figures, company by company (within its row-level security scope,
    as the owner may be subject to it), one statement each."""
    connection = op.get_bind()
    for tenant_id in connection.scalars(sa.text("SELECT id FROM tenants ORDER BY id")).all():
        connection.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)})
        connection.execute(sa.text(BACKFILL_CUSTOMER_STATS), {"tenant": tenant_id})
    connection.execute(sa.text("SELECT set_config('app.tenant_id', '', true)"))


def downgrade() -> None:
    op.drop_index('ix_customers_last_order', table_name='customers')
    op.drop_column('customers', 'unsubscribed_at')
    op.drop_column('customers', 'consent_updated_at')
    op.drop_column('customers', 'sms_consent')
    op.drop_column('customers', 'email_consent')
    op.drop_column('customers', 'categories')
    op.drop_column('customers', 'stores')
    op.drop_column('customers', 'channels')
    op.drop_column('customers', 'last_order_at')
    op.drop_column('customers', 'first_order_at')
    op.drop_column('customers', 'lifetime_value_minor')
    op.drop_column('customers', 'orders_count')
    op.drop_index('ix_campaign_recipients_status', table_name='campaign_recipients')
    op.drop_index('ix_campaign_recipients_customer', table_name='campaign_recipients')
    op.drop_table('campaign_recipients')
    op.drop_table('segments')
    op.drop_index('ix_redemptions_promotion', table_name='redemptions')
    op.drop_index('ix_redemptions_order', table_name='redemptions')
    op.drop_index('ix_redemptions_customer', table_name='redemptions')
    op.drop_index('ix_redemptions_coupon', table_name='redemptions')
    op.drop_table('redemptions')
    op.drop_table('promotion_customer_uses')
    op.drop_table('promotion_counters')
    op.drop_table('marketing_settings')
    op.drop_index('ix_coupons_promotion', table_name='coupons')
    op.drop_index('ix_coupons_batch', table_name='coupons')
    op.drop_table('coupons')
    op.drop_table('coupon_batches')
    op.drop_index('ix_campaigns_due', table_name='campaigns')
    op.drop_table('campaigns')
