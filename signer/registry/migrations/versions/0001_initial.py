"""Registries: manufacturers, devices and their trust anchor cells, firmware library, counters.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "manufacturer_certificates",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("manufacturer_code", sa.Integer, nullable=False, index=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary, nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("manufacturer_code", "fingerprint"),
    )
    op.create_table(
        "devices",
        sa.Column("eui", sa.String(16), primary_key=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "trust_anchor_cells",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "device_eui",
            sa.String(16),
            sa.ForeignKey("devices.eui", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.Integer, nullable=False),
        sa.Column("key_usage", sa.String(20), nullable=False),
        sa.Column("cell_usage", sa.Integer, nullable=False),
        sa.Column("subject_eui", sa.String(16), nullable=False),
        sa.Column("ski", sa.String(16), nullable=False),
    )
    op.create_index("ix_cells_device_role", "trust_anchor_cells", ["device_eui", "role"])
    op.create_table(
        "firmware_images",
        sa.Column("image_id", sa.String(64), primary_key=True),
        sa.Column("manufacturer_code", sa.Integer, nullable=False),
        sa.Column("image_type", sa.Integer, nullable=False),
        sa.Column("file_version", sa.BigInteger, nullable=False),
        sa.Column("header_bytes", sa.LargeBinary, nullable=False),
        sa.Column("with_tail", sa.Boolean, nullable=False),
        sa.Column("force_replace", sa.Boolean, nullable=True),
        sa.Column("delivery_shape", sa.String(16), nullable=False),
        sa.Column("verified", sa.Boolean, nullable=False),
        sa.Column("verdict_json", sa.Text, nullable=False),
        sa.Column("manufacturer_image", sa.LargeBinary, nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "request_counters",
        sa.Column("originator", sa.String(16), primary_key=True),
        sa.Column("last_counter", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "request_counters",
        "firmware_images",
        "trust_anchor_cells",
        "devices",
        "manufacturer_certificates",
    ):
        op.drop_table(table)
