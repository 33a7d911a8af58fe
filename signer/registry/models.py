"""Tables of the registries. Portable types only: SQLite now, PostgreSQL next."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class ManufacturerCertificate(Base):
    __tablename__ = "manufacturer_certificates"
    __table_args__ = (UniqueConstraint("manufacturer_code", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    manufacturer_code: Mapped[int] = mapped_column(Integer, index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the DER, hex
    subject: Mapped[str] = mapped_column(Text)
    serial: Mapped[str] = mapped_column(Text)  # decimal
    not_before: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    added_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # revocation: not trusted from revoked_at on (which may be in the future when recorded)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Device(Base):
    __tablename__ = "devices"

    eui: Mapped[str] = mapped_column(String(16), primary_key=True)  # 16 upper-case hex
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # inventory: what the device is and which CPL entry it runs (None until known)
    device_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    hardware_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    current_entry_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cells: Mapped[list[TrustAnchorCellRow]] = relationship(
        back_populates="device", cascade="all, delete-orphan", order_by="TrustAnchorCellRow.id"
    )


class TrustAnchorCellRow(Base):
    __tablename__ = "trust_anchor_cells"
    __table_args__ = (
        Index("ix_cells_device_role_usage", "device_eui", "role", "key_usage", "cell_usage"),
        # which devices trust a key: rotation reports, retirement, key listings
        Index("ix_cells_role_usage_ski", "role", "key_usage", "ski"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_eui: Mapped[str] = mapped_column(ForeignKey("devices.eui", ondelete="CASCADE"))
    role: Mapped[int] = mapped_column(Integer)
    key_usage: Mapped[str] = mapped_column(String(20))
    cell_usage: Mapped[int] = mapped_column(Integer)
    subject_eui: Mapped[str] = mapped_column(String(16))
    ski: Mapped[str] = mapped_column(String(16))  # 8 bytes, lower-case hex
    device: Mapped[Device] = relationship(back_populates="cells")


class FirmwareImage(Base):
    """A Manufacturer Image the service has checked, keyed by its SHA-256."""

    __tablename__ = "firmware_images"

    image_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    manufacturer_code: Mapped[int] = mapped_column(Integer)
    image_type: Mapped[int] = mapped_column(Integer)
    file_version: Mapped[int] = mapped_column(BigInteger)
    header_bytes: Mapped[bytes] = mapped_column(LargeBinary)
    with_tail: Mapped[bool] = mapped_column(Boolean)
    force_replace: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # as delivered
    delivery_shape: Mapped[str] = mapped_column(String(16))
    verified: Mapped[bool] = mapped_column(Boolean)
    verdict_json: Mapped[str] = mapped_column(Text)
    manufacturer_image: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    verified_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # SHA-256 of the manufacturer certificate that verified it: revoking it stops the image
    manufacturer_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RequestCounter(Base):
    """The last RequestID counter handed out per originator: only ever incremented."""

    __tablename__ = "request_counters"

    originator: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_counter: Mapped[int] = mapped_column(BigInteger)


class CplEntryRow(Base):
    """A Central Products List entry with its MP231 "upgraded from" list."""

    __tablename__ = "cpl_entries"

    entry_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    manufacturer_code: Mapped[int] = mapped_column(Integer)
    device_type: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(128))
    image_type: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hardware_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    firmware_version: Mapped[str] = mapped_column(String(64))
    image_hash: Mapped[str] = mapped_column(String(64), index=True)  # hex SHA-256
    # predecessor entry IDs joined by ";"; "N/A" for none; "" when the CPL does not record it
    upgrade_from: Mapped[str] = mapped_column(Text)
    zigbee_chipset_vendor: Mapped[str] = mapped_column(String(128))
    zigbee_stack_version: Mapped[str] = mapped_column(String(64))
    band_join_option: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Activation(Base):
    """An SR 11.3 request the service issued: what its CS06 pre-command must match."""

    __tablename__ = "activations"
    # (device, originator, counter): a campaign batch's latest counters read the index alone
    # (migration 0010); the device alone, the primary key had been SQLite's choice
    __table_args__ = (
        Index("ix_activations_device_counter", "device_eui", "originator", "counter"),
    )

    originator: Mapped[str] = mapped_column(String(16), primary_key=True)
    counter: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    device_eui: Mapped[str] = mapped_column(String(16))
    image_id: Mapped[str] = mapped_column(String(64))
    execution_time: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    cancel: Mapped[bool] = mapped_column(Boolean)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    pre_command_signed_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    # a lease, not a mark: a claim whose signer died or could not release it expires
    pre_command_claimed_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    # a campaign's pre-flight failed: the request never left, no pre-command is signed for it
    withheld_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SigningKey(Base):
    """The key ledger: what each token key is for and whether it may sign.

    The token holds the key; this row holds its purpose and state, which the token cannot
    record. A token key with no row here never signs.
    """

    __tablename__ = "signing_keys"

    token_label: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(128), primary_key=True)  # CKA_ID, lower-case hex
    label: Mapped[str] = mapped_column(String(128))
    purpose: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    ski: Mapped[str | None] = mapped_column(String(16), nullable=True)  # of the installed cert
    certificate_serial: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    activated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class KeyOperation(Base):
    """Who did what to which key, refusals included; the audit trail takes these records."""

    __tablename__ = "key_operations"
    __table_args__ = (Index("ix_key_operations_key", "token_label", "key_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(256))
    operation: Mapped[str] = mapped_column(String(32))
    token_label: Mapped[str] = mapped_column(String(32))
    key_label: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))  # ok | refused | failed
    detail: Mapped[str] = mapped_column(Text)


#: the rows the direct calls' cumulative limit counts: their own ``ok`` signatures, never a
#: campaign's (``ApplyCampaign``); the predicate of ``ix_audit_records_image_operation_at``,
#: repeated literally by the query (`signer.registry.campaigns.DIRECT_DEVICES`)
DIRECT_PREDICATE = "outcome = 'ok' AND method <> 'ApplyCampaign'"


class AuditRecordRow(Base):
    """One record of the tamper-evident audit trail (``signer.registry.auditchain``).

    ``seq`` is assigned by the appender, contiguous from 1; ``hash`` covers every other
    column, ``prev_hash`` is the previous record's hash.
    """

    __tablename__ = "audit_records"
    # the direct calls' cumulative limit (migration 0009): partial, so a campaign's
    # signatures (millions of rows) are never read by it
    __table_args__ = (
        Index(
            "ix_audit_records_image_operation_at",
            "image_id",
            "operation",
            "at",
            sqlite_where=text(DIRECT_PREDICATE),
            postgresql_where=text(DIRECT_PREDICATE),
        ),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(32))  # UTC, "2024-06-01T12:00:00.000000Z", as hashed
    client: Mapped[str] = mapped_column(Text)
    call_id: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(Text)
    operation: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    image_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    key_label: Mapped[str | None] = mapped_column(Text, nullable=True)
    key_ski: Mapped[str | None] = mapped_column(String(64), nullable=True)
    certificate_serial: Mapped[str | None] = mapped_column(String(64), nullable=True)
    device_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duis_request_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The one row naming the audit trail's last record: appenders lock it to take turns."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class TrustGeneration(Base):
    """One row whose value database triggers raise with every change to what signing trusts
    (CPL entries, manufacturer certificates, the key ledger, which certificate verified an
    image): a process caches those and re-reads them only when the value moved."""

    __tablename__ = "trust_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger)
    # PostgreSQL: the transaction that last moved it (one move per transaction)
    bumped_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class RegistryGeneration(Base):
    """One row database triggers raise with every change to devices, their trust anchor
    cells and their inventory (migration 0009): with `TrustGeneration` it tells a campaign
    in one read whether anything its plan depends on changed."""

    __tablename__ = "registry_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger)
    bumped_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class CampaignPlan(Base):
    """A campaign as planned (its ID the SHA-256 of its content), approved and applied."""

    __tablename__ = "campaign_plans"

    plan_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    requester: Mapped[str] = mapped_column(Text)
    planned_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    spec_json: Mapped[str] = mapped_column(Text)
    # planned | approved | rejected | applying | applied | stale
    state: Mapped[str] = mapped_column(String(16))
    counts_json: Mapped[str] = mapped_column(Text)  # by_key, by_model, by_reason
    trust_generation: Mapped[int] = mapped_column(BigInteger)
    registry_generation: Mapped[int] = mapped_column(BigInteger)
    device_count: Mapped[int] = mapped_column(Integer)
    eligible: Mapped[int] = mapped_column(Integer)
    refused: Mapped[int] = mapped_column(Integer)
    approvals_required: Mapped[int] = mapped_column(Integer)
    rejected_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    rejection_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    issued: Mapped[int] = mapped_column(Integer)
    withheld: Mapped[int] = mapped_column(Integer)
    stale_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    applied_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # the Force Replace byte and tail the plan resolved: apply signs with these
    force_replace: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    with_tail: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # the apply lease: one apply at a time (signer.service.campaigns.apply)
    apply_owner: Mapped[str | None] = mapped_column(Text, nullable=True)
    apply_lease_until: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class CampaignDevice(Base):
    """One device of a plan, in the order given: what apply will do for it, and what it did."""

    __tablename__ = "campaign_devices"

    plan_id: Mapped[str] = mapped_column(
        ForeignKey("campaign_plans.plan_id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    device_id: Mapped[str] = mapped_column(String(64))  # hex EUI, or the ID as given
    key_ski: Mapped[str | None] = mapped_column(String(16), nullable=True)
    key_label: Mapped[str | None] = mapped_column(Text, nullable=True)
    certificate_serial: Mapped[str | None] = mapped_column(String(64), nullable=True)
    current_entry_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str | None] = mapped_column(Text, nullable=True)
    pathway: Mapped[str] = mapped_column(String(64))  # "eligible" or the refusal reason
    refusal_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))  # pending | issued | withheld | refused
    withheld_check: Mapped[str | None] = mapped_column(String(64), nullable=True)
    withheld_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    request_ids: Mapped[str | None] = mapped_column(Text, nullable=True)  # space-separated


class CampaignApproval(Base):
    """An approval or the rejection of a plan, by one identity."""

    __tablename__ = "campaign_approvals"
    __table_args__ = (Index("ix_campaign_approvals_plan", "plan_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("campaign_plans.plan_id", ondelete="CASCADE"))
    identity: Mapped[str] = mapped_column(Text)
    decision: Mapped[str] = mapped_column(String(8))  # approve | reject
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    comment: Mapped[str] = mapped_column(Text)
