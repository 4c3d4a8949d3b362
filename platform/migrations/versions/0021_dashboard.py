"""The dashboard: day rows of orders (per channel and routing rule) and of fulfilments (per
location) that the figures read instead of summing millions of orders, the mark of how far
they are refreshed, when a fulfilment was first ready for pickup, each location's promise;
and the live pages' announcements: statement-level triggers that NOTIFY ``oms_live`` with the
company (and orders, locations or rows) a transaction changed, delivered at its commit only.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 09:20:12.592660
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.settings import get_settings
from core.tenancy import rls_statements, sweeper_statements

revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('location_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('location_code', sa.String(length=64), nullable=False),
    sa.Column('fulfilments', sa.Integer(), server_default='0', nullable=False),
    sa.Column('rejected', sa.Integer(), server_default='0', nullable=False),
    sa.Column('done', sa.Integer(), server_default='0', nullable=False),
    sa.Column('done_hist', sa.ARRAY(sa.Integer()), server_default='{}', nullable=False),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_location_days_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_location_days')),
    sa.UniqueConstraint('tenant_id', 'day', 'location_code', name=op.f('uq_location_days_tenant_id_day_location_code'))
    )
    op.create_table('order_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('rule', sa.String(length=200), server_default='', nullable=False),
    sa.Column('orders', sa.Integer(), server_default='0', nullable=False),
    sa.Column('units', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('gross_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('discount_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cancelled_orders', sa.Integer(), server_default='0', nullable=False),
    sa.Column('cancelled_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('refunds_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cancellation_refunds_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('goodwill_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('returned_units', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('split_orders', sa.Integer(), server_default='0', nullable=False),
    sa.Column('backordered_orders', sa.Integer(), server_default='0', nullable=False),
    sa.Column('held_orders', sa.Integer(), server_default='0', nullable=False),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_order_days_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_order_days')),
    sa.UniqueConstraint('tenant_id', 'day', 'channel', 'rule', name=op.f('uq_order_days_tenant_id_day_channel_rule'))
    )
    op.create_table('rollup_marks',
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_rollup_marks_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_rollup_marks')),
    sa.UniqueConstraint('tenant_id', name=op.f('uq_rollup_marks_tenant_id'))
    )
    op.add_column('fulfilments', sa.Column('ready_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_fulfilments_open', 'fulfilments', ['tenant_id', 'created_at'], unique=False, postgresql_where=sa.text("status IN ('created', 'accepted', 'picking', 'packed')"))
    op.add_column('locations', sa.Column('promise_hours', sa.SmallInteger(), server_default='24', nullable=False))
    op.create_index('ix_order_events_created', 'order_events', ['created_at'], unique=False, postgresql_using='brin')
    op.create_check_constraint('promise_hours_range', 'locations', 'promise_hours BETWEEN 1 AND 720')
    for table in ("order_days", "location_days", "rollup_marks"):
        for statement in rls_statements(table):
            op.execute(statement)
    for statement in sweeper_statements("order_events", get_settings().sweeper_db_role,
                                        columns=["tenant_id", "created_at"],
                                        due="created_at > now() - interval '15 minutes'", name="recent"):
        op.execute(statement)
    # When each fulfilment was first ready for pickup, from its timeline: every company's at once, so
    # with row-level security lifted for the owner meanwhile (forced, it binds the owner too).
    for table in ("fulfilments", "order_events"):
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute("""
        UPDATE fulfilments f SET ready_at = e.first_ready
        FROM (SELECT tenant_id, fulfilment_id, min(created_at) AS first_ready FROM order_events
              WHERE to_status = 'ready_for_pickup' AND fulfilment_id IS NOT NULL
              GROUP BY tenant_id, fulfilment_id) e
        WHERE f.tenant_id = e.tenant_id AND f.id = e.fulfilment_id
    """)
    for table in ("fulfilments", "order_events"):
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    for statement in LIVE:
        op.execute(statement)


# Orders: the orders a statement's timeline entries are about, and the locations concerned (the
# entries' own, the orders' fulfilments' and the stores they go to for pickup), so that an order's page and a store's
# queue hear only of theirs. Past 50 orders (a capture batch) the payload names none: "any".
LIVE_ORDERS = """
CREATE FUNCTION live_order_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    company uuid;
    order_ids uuid[];
    codes text[];
BEGIN
    FOR company IN SELECT DISTINCT tenant_id FROM new_rows LOOP
        SELECT array_agg(DISTINCT order_id) INTO order_ids FROM new_rows WHERE tenant_id = company;
        IF cardinality(order_ids) > 50 THEN
            PERFORM pg_notify('oms_live', json_build_object('t', company, 'k', 'orders')::text);
            CONTINUE;
        END IF;
        SELECT array_agg(DISTINCT code) INTO codes FROM (
            SELECT data->>'location' AS code FROM new_rows WHERE tenant_id = company
            UNION SELECT unnest(ARRAY[location_code, ship_to_store]) FROM fulfilments
                  WHERE tenant_id = company AND order_id = ANY(order_ids)
            UNION SELECT pickup_location_code FROM orders WHERE tenant_id = company AND id = ANY(order_ids)
        ) found WHERE code IS NOT NULL;
        IF cardinality(codes) > 50 THEN
            PERFORM pg_notify('oms_live', json_build_object('t', company, 'k', 'orders', 'o', order_ids)::text);
        ELSE
            PERFORM pg_notify('oms_live', json_build_object('t', company, 'k', 'orders', 'o', order_ids,
                                                            'l', coalesce(codes, '{}'))::text);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$
"""

# Any other table: its kind (the trigger's argument) and the ids of the rows, up to 50.
LIVE_ROWS = """
CREATE FUNCTION live_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    company uuid;
    ids text[];
BEGIN
    FOR company IN SELECT DISTINCT tenant_id FROM new_rows LOOP
        SELECT array_agg(DISTINCT id::text) INTO ids FROM (
            SELECT id FROM new_rows WHERE tenant_id = company LIMIT 51) few;
        IF cardinality(ids) > 50 THEN
            PERFORM pg_notify('oms_live', json_build_object('t', company, 'k', TG_ARGV[0])::text);
        ELSE
            PERFORM pg_notify('oms_live', json_build_object('t', company, 'k', TG_ARGV[0], 'i', ids)::text);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$
"""

# (table, kind, events): transition tables allow one event per trigger.
LIVE_TABLES = [
    ("service_tasks", "tasks", ("INSERT", "UPDATE")),
    ("inventory_feeds", "feeds", ("INSERT", "UPDATE")),
    ("returns", "returns", ("INSERT", "UPDATE")),
    ("usage_events", "usage", ("INSERT",)),
    ("stock_exceptions", "stock", ("INSERT", "UPDATE")),
    ("failed_jobs", "work", ("INSERT", "UPDATE")),
]

LIVE = [
    LIVE_ORDERS,
    LIVE_ROWS,
    "CREATE TRIGGER live_insert AFTER INSERT ON order_events REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION live_order_events()",
    *(f"CREATE TRIGGER live_{event.lower()} AFTER {event} ON {table} REFERENCING NEW TABLE AS new_rows "
      f"FOR EACH STATEMENT EXECUTE FUNCTION live_rows('{kind}')"
      for table, kind, events in LIVE_TABLES for event in events),
]


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS live_insert ON order_events")
    for table, _kind, events in LIVE_TABLES:
        for event in events:
            op.execute(f"DROP TRIGGER IF EXISTS live_{event.lower()} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS live_order_events()")
    op.execute("DROP FUNCTION IF EXISTS live_rows()")
    op.execute("DROP POLICY IF EXISTS sweeper_recent ON order_events")
    op.execute(f'REVOKE SELECT (tenant_id, created_at) ON order_events FROM "{get_settings().sweeper_db_role}"')
    op.drop_constraint('promise_hours_range', 'locations', type_='check')
    op.drop_index('ix_order_events_created', table_name='order_events', postgresql_using='brin')
    op.drop_column('locations', 'promise_hours')
    op.drop_index('ix_fulfilments_open', table_name='fulfilments', postgresql_where=sa.text("status IN ('created', 'accepted', 'picking', 'packed')"))
    op.drop_column('fulfilments', 'ready_at')
    op.drop_table('rollup_marks')
    op.drop_table('order_days')
    op.drop_table('location_days')
