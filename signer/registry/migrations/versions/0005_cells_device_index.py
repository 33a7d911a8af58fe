"""Index trust anchor cells by (device, role, key usage, cell usage).

With (device, role) and (role, key usage, SKI) both matching two columns of the per-device
cell look-up, SQLite chose the SKI index and scanned every Supplier cell for each device
(measured: 0.45 s instead of 1.7 ms for 1,000 of 5,000 devices). Four equality columns make
the device index the plan on every backend.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_cells_device_role", table_name="trust_anchor_cells")
    op.create_index(
        "ix_cells_device_role_usage",
        "trust_anchor_cells",
        ["device_eui", "role", "key_usage", "cell_usage"],
    )


def downgrade() -> None:
    op.drop_index("ix_cells_device_role_usage", table_name="trust_anchor_cells")
    op.create_index("ix_cells_device_role", "trust_anchor_cells", ["device_eui", "role"])
