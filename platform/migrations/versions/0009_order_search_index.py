"""Lookups that use indexes under row-level security: customers by email, and orders by the
channel's order number without naming the channel or by customer email. Emails are now stored
in lower case: an index on lower(email) can't serve a query guarded by a policy, lower() not
being leakproof.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_orders_external_number', 'orders', ['tenant_id', 'external_number'], unique=False)
    op.execute("UPDATE orders SET customer_email = lower(customer_email) WHERE customer_email <> lower(customer_email)")
    op.drop_index('ix_orders_customer_email', table_name='orders')
    op.create_index('ix_orders_customer_email_plain', 'orders', ['tenant_id', 'customer_email'], unique=False)
    op.execute("UPDATE customers SET email = lower(email) WHERE email <> lower(email)")
    op.drop_index('uq_customers_email', table_name='customers')
    op.create_unique_constraint(op.f('uq_customers_tenant_id_email'), 'customers', ['tenant_id', 'email'])


def downgrade() -> None:
    op.drop_constraint(op.f('uq_customers_tenant_id_email'), 'customers', type_='unique')
    op.create_index('uq_customers_email', 'customers', ['tenant_id', sa.literal_column('lower(email)')], unique=True)
    op.drop_index('ix_orders_customer_email_plain', table_name='orders')
    op.create_index('ix_orders_customer_email', 'orders', ['tenant_id', sa.literal_column('lower(customer_email)')],
                    unique=False)
    op.drop_index('ix_orders_external_number', table_name='orders')
