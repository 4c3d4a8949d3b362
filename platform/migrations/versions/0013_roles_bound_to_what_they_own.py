"""Roles bound to what they own: a store associate's locations (on the membership and on the
invitation that makes it), an order-intake API key's channel, and who sent a mail (an
invitation's link is shown in the log to its sender and to owners only).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("memberships", "invitations"):
        op.add_column(table, sa.Column('locations', postgresql.ARRAY(sa.String(length=64)), server_default='{}',
                                       nullable=False))
    op.add_column('api_keys', sa.Column('channel', sa.String(length=20), nullable=True))
    op.add_column('mail_messages', sa.Column('sent_by', sa.Uuid(), nullable=True))
    op.add_column('mail_messages', sa.Column('meta', postgresql.JSONB(astext_type=sa.Text()), server_default='{}',
                                             nullable=False))


def downgrade() -> None:
    op.drop_column('mail_messages', 'meta')
    op.drop_column('mail_messages', 'sent_by')
    op.drop_column('api_keys', 'channel')
    for table in ("invitations", "memberships"):
        op.drop_column(table, 'locations')
