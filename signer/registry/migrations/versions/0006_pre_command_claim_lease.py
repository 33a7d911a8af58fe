"""Pre-command claims become leases: `pre_command_claimed_at` beside `pre_command_signed_at`.

A claim used to set the signed time itself and was undone on failure; if the undo failed
too (the database away) or the process died, the pre-command stayed "signed" forever. Now
the claim is a lease that expires, and the signed time is written with the signature's
audit records.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("activations") as batch:
        batch.add_column(
            sa.Column("pre_command_claimed_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("activations") as batch:
        batch.drop_column("pre_command_claimed_at")
