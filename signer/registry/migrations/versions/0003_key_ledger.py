"""The key ledger (purpose and state of each token key) and key operation records.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("token_label", sa.String(32), primary_key=True),
        sa.Column("key_id", sa.String(128), primary_key=True),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("ski", sa.String(16), nullable=True),
        sa.Column("certificate_serial", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "key_operations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("token_label", sa.String(32), nullable=False),
        sa.Column("key_label", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(128), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_key_operations_key", "key_operations", ["token_label", "key_id"])
    op.create_index("ix_cells_role_usage_ski", "trust_anchor_cells", ["role", "key_usage", "ski"])


def downgrade() -> None:
    op.drop_index("ix_cells_role_usage_ski", "trust_anchor_cells")
    op.drop_index("ix_key_operations_key", "key_operations")
    op.drop_table("key_operations")
    op.drop_table("signing_keys")
