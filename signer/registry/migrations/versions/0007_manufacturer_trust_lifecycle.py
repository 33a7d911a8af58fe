"""Manufacturer trust has a lifecycle: serial, not-before and revocation per certificate, and
which certificate verified each library image.

Existing certificates get their serial and not-before from their stored DER. Existing images
keep no verifying certificate (NULL): the service then treats them as verified by any
certificate of their manufacturer code, so revoking one of those stops them too.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from cryptography import x509

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_CERTS = sa.table(
    "manufacturer_certificates",
    sa.column("id", sa.Integer),
    sa.column("certificate_der", sa.LargeBinary),
    sa.column("serial", sa.Text),
    sa.column("not_before", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("manufacturer_certificates") as batch:
        batch.add_column(sa.Column("serial", sa.Text, nullable=True))
        batch.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revocation_reason", sa.Text, nullable=True))
    conn = op.get_bind()
    for row_id, der in conn.execute(sa.select(_CERTS.c.id, _CERTS.c.certificate_der)).all():
        cert = x509.load_der_x509_certificate(bytes(der))
        conn.execute(
            sa.update(_CERTS)
            .where(_CERTS.c.id == row_id)
            .values(serial=str(cert.serial_number), not_before=cert.not_valid_before_utc)
        )
    with op.batch_alter_table("manufacturer_certificates") as batch:
        batch.alter_column("serial", existing_type=sa.Text, nullable=False)
        batch.alter_column("not_before", existing_type=sa.DateTime(timezone=True), nullable=False)
    with op.batch_alter_table("firmware_images") as batch:
        batch.add_column(sa.Column("manufacturer_fingerprint", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("firmware_images") as batch:
        batch.drop_column("manufacturer_fingerprint")
    with op.batch_alter_table("manufacturer_certificates") as batch:
        for column in ("revocation_reason", "revoked_at", "not_before", "serial"):
            batch.drop_column(column)
