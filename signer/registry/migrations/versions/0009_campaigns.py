"""Campaigns (issue 16): plans, their devices and approvals; the registry generation; SR 11.3
requests a pre-flight withheld.

``registry_generation`` is to the device registry what ``trust_generation`` (0008) is to
trust: one counter row, raised by triggers in the transaction of every insert, update and
delete (and, on PostgreSQL, truncate) of ``devices`` (their inventory is columns of it) and
``trust_anchor_cells``, and every update of ``firmware_images`` (a re-delivery rewrites
an image's Force Replace byte). With the trust generation it tells a campaign's apply in one read
whether anything its plan could depend on changed. PostgreSQL moves it once per transaction
(``bumped_by``), as 0008 does.

``activations.withheld_at``: an SR 11.3 request whose pre-flight failed was never returned;
no pre-command is ever signed for it.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: table -> the changes to it that move the registry generation
WATCHED = {
    "devices": ("INSERT", "UPDATE", "DELETE"),
    "trust_anchor_cells": ("INSERT", "UPDATE", "DELETE"),
    # any update of a library image (a re-delivery rewrites its Force Replace byte without
    # moving the trust generation, which 0008 raises for its verdict only)
    "firmware_images": ("UPDATE",),
}
BUMP = "UPDATE registry_generation SET value = value + 1 WHERE id = 1"
PG_BUMP = (
    "UPDATE registry_generation SET value = value + 1, "
    "bumped_by = pg_current_xact_id()::text::bigint "
    "WHERE id = 1 AND bumped_by IS DISTINCT FROM pg_current_xact_id()::text::bigint"
)


def _name(table: str, event: str) -> str:
    return f"registry_generation_{table}_{event.lower()}"


def upgrade() -> None:
    op.create_table(
        "campaign_plans",
        sa.Column("plan_id", sa.String(64), primary_key=True),
        sa.Column("requester", sa.Text, nullable=False),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spec_json", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("counts_json", sa.Text, nullable=False),
        sa.Column("trust_generation", sa.BigInteger, nullable=False),
        sa.Column("registry_generation", sa.BigInteger, nullable=False),
        sa.Column("device_count", sa.Integer, nullable=False),
        sa.Column("eligible", sa.Integer, nullable=False),
        sa.Column("refused", sa.Integer, nullable=False),
        sa.Column("approvals_required", sa.Integer, nullable=False),
        sa.Column("rejected_by", sa.Text, nullable=True),
        sa.Column("rejection_reason", sa.Text, nullable=True),
        sa.Column("issued", sa.Integer, nullable=False),
        sa.Column("withheld", sa.Integer, nullable=False),
        sa.Column("stale_reason", sa.Text, nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        # the Force Replace byte and tail the plan resolved: apply signs with these
        sa.Column("force_replace", sa.Boolean, nullable=True),
        sa.Column("with_tail", sa.Boolean, nullable=True),
        # the apply lease: one apply at a time, taken over only once it expired
        sa.Column("apply_owner", sa.Text, nullable=True),
        sa.Column("apply_lease_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "campaign_devices",
        sa.Column(
            "plan_id",
            sa.String(64),
            sa.ForeignKey("campaign_plans.plan_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("key_ski", sa.String(16), nullable=True),
        sa.Column("key_label", sa.Text, nullable=True),
        sa.Column("certificate_serial", sa.String(64), nullable=True),
        sa.Column("current_entry_id", sa.String(64), nullable=True),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("pathway", sa.String(64), nullable=False),
        sa.Column("refusal_json", sa.Text, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("withheld_check", sa.String(64), nullable=True),
        sa.Column("withheld_detail", sa.Text, nullable=True),
        sa.Column("request_ids", sa.Text, nullable=True),
    )
    op.create_table(
        "campaign_approvals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "plan_id",
            sa.String(64),
            sa.ForeignKey("campaign_plans.plan_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("identity", sa.Text, nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("comment", sa.Text, nullable=False),
    )
    op.create_index("ix_campaign_approvals_plan", "campaign_approvals", ["plan_id"])
    # the direct calls' cumulative limit sums an image's direct signatures over a window:
    # partial, so a campaign's (millions of rows) are never read by it
    direct = sa.text("outcome = 'ok' AND method <> 'ApplyCampaign'")
    op.create_index(
        "ix_audit_records_image_operation_at",
        "audit_records",
        ["image_id", "operation", "at"],
        sqlite_where=direct,
        postgresql_where=direct,
    )
    # a plain ADD COLUMN: no table rebuild on SQLite, so no trigger is lost
    op.add_column(
        "activations", sa.Column("withheld_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "registry_generation",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("bumped_by", sa.BigInteger, nullable=True),
    )
    op.execute("INSERT INTO registry_generation (id, value) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION registry_generation_bump() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {PG_BUMP}; RETURN NULL; END $$"
        )
        for table, events in WATCHED.items():
            op.execute(
                f"CREATE TRIGGER registry_generation_{table} AFTER "
                f"{' OR '.join((*events, 'TRUNCATE'))} ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION registry_generation_bump()"
            )
        return
    for table, events in WATCHED.items():
        for event in events:
            op.execute(
                f"CREATE TRIGGER {_name(table, event)} AFTER {event} ON {table} BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER registry_generation_{table} ON {table}")
        op.execute("DROP FUNCTION registry_generation_bump()")
    else:
        for table, events in WATCHED.items():
            for event in events:
                op.execute(f"DROP TRIGGER {_name(table, event)}")
    op.drop_table("registry_generation")
    op.drop_column("activations", "withheld_at")
    op.drop_index("ix_audit_records_image_operation_at", "audit_records")
    op.drop_index("ix_campaign_approvals_plan", "campaign_approvals")
    op.drop_table("campaign_approvals")
    op.drop_table("campaign_devices")
    op.drop_table("campaign_plans")
