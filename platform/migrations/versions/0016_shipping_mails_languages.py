"""Shipping with carriers and tracking, mails customers can read: a fulfilment's carrier, tracking
link and shipping and delivery times; the language of an order and the company's, its brand
colour; mails with an HTML alternative and the company's own subjects and introductions.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.tenancy import rls_statements

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('fulfilments', sa.Column('carrier', sa.String(length=40), nullable=True))
    op.add_column('fulfilments', sa.Column('tracking_url', sa.String(length=500), nullable=True))
    op.add_column('fulfilments', sa.Column('shipped_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('fulfilments', sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_fulfilments_tracking', 'fulfilments', ['tenant_id', 'tracking_number'], unique=False,
                    postgresql_where=sa.text('tracking_number IS NOT NULL'))
    op.add_column('orders', sa.Column('language', sa.String(length=8), nullable=True))
    op.add_column('tenants', sa.Column('language', sa.String(length=8), server_default='en', nullable=False))
    op.add_column('tenants', sa.Column('brand_colour', sa.String(length=7), server_default='#1d4ed8',
                                       nullable=False))
    # Companies of French-speaking countries had their mails in English only because nothing else
    # existed: they start in French, which every setting can change.
    op.execute("UPDATE tenants SET language = 'fr' WHERE country IN ('FR', 'BE', 'LU', 'MC')")
    op.add_column('mail_messages', sa.Column('body_html', sa.Text(), nullable=True))
    op.create_table('mail_templates',
    sa.Column('kind', sa.String(length=50), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('intro', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=320), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_mail_templates_tenant_id_tenants'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_mail_templates')),
    sa.UniqueConstraint('tenant_id', 'kind', 'language', name=op.f('uq_mail_templates_tenant_id_kind_language'))
    )
    for statement in rls_statements("mail_templates"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table('mail_templates')
    op.drop_column('mail_messages', 'body_html')
    op.drop_column('tenants', 'brand_colour')
    op.drop_column('tenants', 'language')
    op.drop_column('orders', 'language')
    op.drop_index('ix_fulfilments_tracking', table_name='fulfilments')
    for column in ('delivered_at', 'shipped_at', 'tracking_url', 'carrier'):
        op.drop_column('fulfilments', column)
