"""The stock ledger also records safety stock changes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 13:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("inventory_movements",
                  sa.Column("safety_stock_delta", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("inventory_movements", "safety_stock_delta")
