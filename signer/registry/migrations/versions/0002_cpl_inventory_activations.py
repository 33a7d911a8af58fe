"""CPL entries, device inventory, issued activations (SR 11.3).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cpl_entries",
        sa.Column("entry_id", sa.String(64), primary_key=True),
        sa.Column("manufacturer_code", sa.Integer, nullable=False),
        sa.Column("device_type", sa.String(16), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("image_type", sa.Integer, nullable=True),
        sa.Column("hardware_version", sa.Integer, nullable=True),
        sa.Column("firmware_version", sa.String(64), nullable=False),
        sa.Column("image_hash", sa.String(64), nullable=False, index=True),
        sa.Column("upgrade_from", sa.Text, nullable=False),
        sa.Column("zigbee_chipset_vendor", sa.String(128), nullable=False),
        sa.Column("zigbee_stack_version", sa.String(64), nullable=False),
        sa.Column("band_join_option", sa.String(64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("device_type", sa.String(16), nullable=True))
        batch.add_column(sa.Column("hardware_version", sa.Integer, nullable=True))
        batch.add_column(sa.Column("current_entry_id", sa.String(64), nullable=True))
    op.create_table(
        "activations",
        sa.Column("originator", sa.String(16), primary_key=True),
        sa.Column("counter", sa.BigInteger, primary_key=True),
        sa.Column("device_eui", sa.String(16), nullable=False),
        sa.Column("image_id", sa.String(64), nullable=False),
        sa.Column("execution_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel", sa.Boolean, nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pre_command_signed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_activations_device", "activations", ["device_eui"])


def downgrade() -> None:
    op.drop_index("ix_activations_device", "activations")
    op.drop_table("activations")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("current_entry_id")
        batch.drop_column("hardware_version")
        batch.drop_column("device_type")
    op.drop_table("cpl_entries")
