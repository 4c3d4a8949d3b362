"""Every money column 64-bit; each line's share of the order-level discount (apportioned by
largest remainder, so that line nets add up to what the customer pays); and the attempts that
give each Stripe retry a new idempotency key.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WIDENED = (("orders", "total_minor"), ("order_lines", "unit_price_minor"), ("products", "price_minor"),
           ("locations", "shipping_cost_minor"))


def upgrade() -> None:
    for table, column in WIDENED:
        op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())
    op.add_column('order_lines', sa.Column('order_discount_minor', sa.BigInteger(), server_default='0',
                                           nullable=False))
    op.add_column('orders', sa.Column('capture_attempts', sa.Integer(), server_default='0', nullable=False))
    op.add_column('refunds', sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
    # Orders captured before: their discount shared among their lines as capture now does (in
    # numeric: a product of two amounts overflows 64 bits). Read past row-level security once:
    # the migration's owner may not be a superuser.
    for table in ("orders", "order_lines"):
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute("""
        WITH weighted AS (
            SELECT l.tenant_id, l.id, l.line_no, l.order_id, o.discount_minor::numeric AS amount,
                   l.unit_price_minor::numeric * l.quantity - l.discount_minor AS weight
            FROM order_lines l JOIN orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
            WHERE o.discount_minor > 0),
        shared AS (
            SELECT *, sum(weight) OVER (PARTITION BY tenant_id, order_id) AS total FROM weighted),
        rounded AS (
            SELECT *, CASE WHEN total > 0 THEN div(amount * weight, total) ELSE 0 END AS base,
                      CASE WHEN total > 0 THEN mod(amount * weight, total) ELSE 0 END AS remainder
            FROM shared),
        ranked AS (
            SELECT *, CASE WHEN total > 0 THEN amount - sum(base) OVER (PARTITION BY tenant_id, order_id)
                           ELSE 0 END AS left_over,
                      row_number() OVER (PARTITION BY tenant_id, order_id ORDER BY remainder DESC, line_no) AS rank
            FROM rounded)
        UPDATE order_lines l SET order_discount_minor = (r.base + CASE WHEN r.rank <= r.left_over THEN 1 ELSE 0 END)::bigint
        FROM ranked r WHERE l.tenant_id = r.tenant_id AND l.id = r.id
    """)
    for table in ("orders", "order_lines"):
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.drop_column('refunds', 'attempts')
    op.drop_column('orders', 'capture_attempts')
    op.drop_column('order_lines', 'order_discount_minor')
    for table, column in WIDENED:
        op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger())
