"""A trust generation: one counter the database raises whenever what signing trusts changes.

Triggers, not the application, raise it: every writer (this service, a replica, the CLI, an
operator's SQL) moves it in the transaction of its change, so a process that caches the CPL,
the manufacturer certificates and the key ledger re-reads them exactly when they changed.
Watched: every insert, update, delete (and, on PostgreSQL, truncate) of ``cpl_entries``,
``manufacturer_certificates`` and ``signing_keys``; updates of the verdict or verifying
certificate of a library image and deletions from ``firmware_images`` (a new image is new
to every cache already). On PostgreSQL the counter moves once per transaction however many
statements it runs (``bumped_by`` holds the transaction that moved it last: updating one
row thousands of times in a transaction, as an ORM flush of a CPL import would, grows its
version chain with the square of the count).

SQLite drops a table's triggers when a migration rebuilds it (``batch_alter_table``): a later
migration that does so must create them again (`signer.registry.trust.check_triggers`, run
at start, refuses a database without them).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: table -> the changes to it that move the generation
WATCHED = {
    "cpl_entries": ("INSERT", "UPDATE", "DELETE"),
    "manufacturer_certificates": ("INSERT", "UPDATE", "DELETE"),
    "signing_keys": ("INSERT", "UPDATE", "DELETE"),
    "firmware_images": ("UPDATE OF verified, manufacturer_fingerprint", "DELETE"),
}
#: PostgreSQL also has TRUNCATE, which row triggers never see
TRUNCATED = ("cpl_entries", "manufacturer_certificates", "signing_keys", "firmware_images")
BUMP = "UPDATE trust_generation SET value = value + 1 WHERE id = 1"
PG_BUMP = (
    "UPDATE trust_generation SET value = value + 1, "
    "bumped_by = pg_current_xact_id()::text::bigint "
    "WHERE id = 1 AND bumped_by IS DISTINCT FROM pg_current_xact_id()::text::bigint"
)


def _name(table: str, event: str) -> str:
    return f"trust_generation_{table}_{event.split()[0].lower()}"


def upgrade() -> None:
    op.create_table(
        "trust_generation",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("bumped_by", sa.BigInteger, nullable=True),
    )
    op.execute("INSERT INTO trust_generation (id, value) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION trust_generation_bump() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {PG_BUMP}; RETURN NULL; END $$"
        )
        for table, events in WATCHED.items():
            every = (*events, "TRUNCATE") if table in TRUNCATED else events
            op.execute(
                f"CREATE TRIGGER trust_generation_{table} AFTER {' OR '.join(every)} "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION trust_generation_bump()"
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
            op.execute(f"DROP TRIGGER trust_generation_{table} ON {table}")
        op.execute("DROP FUNCTION trust_generation_bump()")
    else:
        for table, events in WATCHED.items():
            for event in events:
                op.execute(f"DROP TRIGGER {_name(table, event)}")
    op.drop_table("trust_generation")
