import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CampaignProduct(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAMPAIGN_PRODUCT_UNSPECIFIED: _ClassVar[CampaignProduct]
    CAMPAIGN_PRODUCT_UPDATE: _ClassVar[CampaignProduct]
    CAMPAIGN_PRODUCT_ACTIVATION: _ClassVar[CampaignProduct]
    CAMPAIGN_PRODUCT_UPDATE_AND_ACTIVATION: _ClassVar[CampaignProduct]

class CampaignState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAMPAIGN_STATE_UNSPECIFIED: _ClassVar[CampaignState]
    CAMPAIGN_STATE_PLANNED: _ClassVar[CampaignState]
    CAMPAIGN_STATE_APPROVED: _ClassVar[CampaignState]
    CAMPAIGN_STATE_REJECTED: _ClassVar[CampaignState]
    CAMPAIGN_STATE_APPLYING: _ClassVar[CampaignState]
    CAMPAIGN_STATE_APPLIED: _ClassVar[CampaignState]
    CAMPAIGN_STATE_STALE: _ClassVar[CampaignState]
CAMPAIGN_PRODUCT_UNSPECIFIED: CampaignProduct
CAMPAIGN_PRODUCT_UPDATE: CampaignProduct
CAMPAIGN_PRODUCT_ACTIVATION: CampaignProduct
CAMPAIGN_PRODUCT_UPDATE_AND_ACTIVATION: CampaignProduct
CAMPAIGN_STATE_UNSPECIFIED: CampaignState
CAMPAIGN_STATE_PLANNED: CampaignState
CAMPAIGN_STATE_APPROVED: CampaignState
CAMPAIGN_STATE_REJECTED: CampaignState
CAMPAIGN_STATE_APPLYING: CampaignState
CAMPAIGN_STATE_APPLIED: CampaignState
CAMPAIGN_STATE_STALE: CampaignState

class SeparateDelivery(_message.Message):
    __slots__ = ("ota_header", "manufacturer_image", "signature", "hash")
    OTA_HEADER_FIELD_NUMBER: _ClassVar[int]
    MANUFACTURER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    ota_header: bytes
    manufacturer_image: bytes
    signature: bytes
    hash: bytes
    def __init__(self, ota_header: _Optional[bytes] = ..., manufacturer_image: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., hash: _Optional[bytes] = ...) -> None: ...

class GbcsDelivery(_message.Message):
    __slots__ = ("upgrade_image", "hash")
    UPGRADE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    upgrade_image: bytes
    hash: bytes
    def __init__(self, upgrade_image: _Optional[bytes] = ..., hash: _Optional[bytes] = ...) -> None: ...

class CombinedDelivery(_message.Message):
    __slots__ = ("header_and_image", "signature", "hash")
    HEADER_AND_IMAGE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    header_and_image: bytes
    signature: bytes
    hash: bytes
    def __init__(self, header_and_image: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., hash: _Optional[bytes] = ...) -> None: ...

class VerifyManufacturerRequest(_message.Message):
    __slots__ = ("separate", "gbcs", "combined")
    SEPARATE_FIELD_NUMBER: _ClassVar[int]
    GBCS_FIELD_NUMBER: _ClassVar[int]
    COMBINED_FIELD_NUMBER: _ClassVar[int]
    separate: SeparateDelivery
    gbcs: GbcsDelivery
    combined: CombinedDelivery
    def __init__(self, separate: _Optional[_Union[SeparateDelivery, _Mapping]] = ..., gbcs: _Optional[_Union[GbcsDelivery, _Mapping]] = ..., combined: _Optional[_Union[CombinedDelivery, _Mapping]] = ...) -> None: ...

class Check(_message.Message):
    __slots__ = ("name", "passed", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    passed: bool
    detail: str
    def __init__(self, name: _Optional[str] = ..., passed: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class OtaHeader(_message.Message):
    __slots__ = ("header_version", "header_length", "field_control", "manufacturer_code", "image_type", "file_version", "zigbee_stack_version", "header_string", "total_image_size", "security_credential_version", "upgrade_file_destination", "min_hardware_version", "max_hardware_version")
    HEADER_VERSION_FIELD_NUMBER: _ClassVar[int]
    HEADER_LENGTH_FIELD_NUMBER: _ClassVar[int]
    FIELD_CONTROL_FIELD_NUMBER: _ClassVar[int]
    MANUFACTURER_CODE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ZIGBEE_STACK_VERSION_FIELD_NUMBER: _ClassVar[int]
    HEADER_STRING_FIELD_NUMBER: _ClassVar[int]
    TOTAL_IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SECURITY_CREDENTIAL_VERSION_FIELD_NUMBER: _ClassVar[int]
    UPGRADE_FILE_DESTINATION_FIELD_NUMBER: _ClassVar[int]
    MIN_HARDWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_HARDWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    header_version: int
    header_length: int
    field_control: int
    manufacturer_code: int
    image_type: int
    file_version: int
    zigbee_stack_version: int
    header_string: str
    total_image_size: int
    security_credential_version: int
    upgrade_file_destination: bytes
    min_hardware_version: int
    max_hardware_version: int
    def __init__(self, header_version: _Optional[int] = ..., header_length: _Optional[int] = ..., field_control: _Optional[int] = ..., manufacturer_code: _Optional[int] = ..., image_type: _Optional[int] = ..., file_version: _Optional[int] = ..., zigbee_stack_version: _Optional[int] = ..., header_string: _Optional[str] = ..., total_image_size: _Optional[int] = ..., security_credential_version: _Optional[int] = ..., upgrade_file_destination: _Optional[bytes] = ..., min_hardware_version: _Optional[int] = ..., max_hardware_version: _Optional[int] = ...) -> None: ...

class VerifyManufacturerResponse(_message.Message):
    __slots__ = ("verified", "checks", "header", "image_id", "cpl_entry_id")
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CPL_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    verified: bool
    checks: _containers.RepeatedCompositeFieldContainer[Check]
    header: OtaHeader
    image_id: str
    cpl_entry_id: str
    def __init__(self, verified: _Optional[bool] = ..., checks: _Optional[_Iterable[_Union[Check, _Mapping]]] = ..., header: _Optional[_Union[OtaHeader, _Mapping]] = ..., image_id: _Optional[str] = ..., cpl_entry_id: _Optional[str] = ...) -> None: ...

class ResignRequest(_message.Message):
    __slots__ = ("image_id", "device_ids", "force_replace")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    FORCE_REPLACE_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    force_replace: bool
    def __init__(self, image_id: _Optional[str] = ..., device_ids: _Optional[_Iterable[str]] = ..., force_replace: _Optional[bool] = ...) -> None: ...

class DeviceRefusal(_message.Message):
    __slots__ = ("device_id", "reason", "detail", "upgrade_path", "no_path")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    UPGRADE_PATH_FIELD_NUMBER: _ClassVar[int]
    NO_PATH_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    reason: str
    detail: str
    upgrade_path: _containers.RepeatedScalarFieldContainer[str]
    no_path: bool
    def __init__(self, device_id: _Optional[str] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ..., upgrade_path: _Optional[_Iterable[str]] = ..., no_path: _Optional[bool] = ...) -> None: ...

class SignedImage(_message.Message):
    __slots__ = ("upgrade_image", "key_label", "key_ski", "certificate_serial", "device_ids")
    UPGRADE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    KEY_LABEL_FIELD_NUMBER: _ClassVar[int]
    KEY_SKI_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    upgrade_image: bytes
    key_label: str
    key_ski: bytes
    certificate_serial: str
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, upgrade_image: _Optional[bytes] = ..., key_label: _Optional[str] = ..., key_ski: _Optional[bytes] = ..., certificate_serial: _Optional[str] = ..., device_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ResignResponse(_message.Message):
    __slots__ = ("image_id", "images", "refused")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    images: _containers.RepeatedCompositeFieldContainer[SignedImage]
    refused: _containers.RepeatedCompositeFieldContainer[DeviceRefusal]
    def __init__(self, image_id: _Optional[str] = ..., images: _Optional[_Iterable[_Union[SignedImage, _Mapping]]] = ..., refused: _Optional[_Iterable[_Union[DeviceRefusal, _Mapping]]] = ...) -> None: ...

class BuildDUISRequest(_message.Message):
    __slots__ = ("image_id", "upgrade_image", "device_ids", "firmware_version", "service_reference", "force_replace")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    UPGRADE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVICE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    FORCE_REPLACE_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    upgrade_image: bytes
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    firmware_version: str
    service_reference: str
    force_replace: bool
    def __init__(self, image_id: _Optional[str] = ..., upgrade_image: _Optional[bytes] = ..., device_ids: _Optional[_Iterable[str]] = ..., firmware_version: _Optional[str] = ..., service_reference: _Optional[str] = ..., force_replace: _Optional[bool] = ...) -> None: ...

class BuildDUISResponse(_message.Message):
    __slots__ = ("duis_request", "request_id", "device_ids", "refused")
    DUIS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    duis_request: bytes
    request_id: str
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    refused: _containers.RepeatedCompositeFieldContainer[DeviceRefusal]
    def __init__(self, duis_request: _Optional[bytes] = ..., request_id: _Optional[str] = ..., device_ids: _Optional[_Iterable[str]] = ..., refused: _Optional[_Iterable[_Union[DeviceRefusal, _Mapping]]] = ...) -> None: ...

class GetUpgradePathRequest(_message.Message):
    __slots__ = ("from_entry_id", "device_id", "to_entry_id", "image_id")
    FROM_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    TO_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    from_entry_id: str
    device_id: str
    to_entry_id: str
    image_id: str
    def __init__(self, from_entry_id: _Optional[str] = ..., device_id: _Optional[str] = ..., to_entry_id: _Optional[str] = ..., image_id: _Optional[str] = ...) -> None: ...

class GetUpgradePathResponse(_message.Message):
    __slots__ = ("path", "reachable")
    PATH_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    path: _containers.RepeatedScalarFieldContainer[str]
    reachable: bool
    def __init__(self, path: _Optional[_Iterable[str]] = ..., reachable: _Optional[bool] = ...) -> None: ...

class ActivationSpec(_message.Message):
    __slots__ = ("image_id", "execution_time", "cancel")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_TIME_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    execution_time: _timestamp_pb2.Timestamp
    cancel: bool
    def __init__(self, image_id: _Optional[str] = ..., execution_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancel: _Optional[bool] = ...) -> None: ...

class BuildActivationRequest(_message.Message):
    __slots__ = ("activation", "device_ids")
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    activation: ActivationSpec
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, activation: _Optional[_Union[ActivationSpec, _Mapping]] = ..., device_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ActivationRequest(_message.Message):
    __slots__ = ("device_id", "request_id", "duis_request")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DUIS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    request_id: str
    duis_request: bytes
    def __init__(self, device_id: _Optional[str] = ..., request_id: _Optional[str] = ..., duis_request: _Optional[bytes] = ...) -> None: ...

class BuildActivationResponse(_message.Message):
    __slots__ = ("requests", "refused")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[ActivationRequest]
    refused: _containers.RepeatedCompositeFieldContainer[DeviceRefusal]
    def __init__(self, requests: _Optional[_Iterable[_Union[ActivationRequest, _Mapping]]] = ..., refused: _Optional[_Iterable[_Union[DeviceRefusal, _Mapping]]] = ...) -> None: ...

class ActivationCampaignRequest(_message.Message):
    __slots__ = ("activation", "devices")
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    activation: ActivationSpec
    devices: DeviceBatch
    def __init__(self, activation: _Optional[_Union[ActivationSpec, _Mapping]] = ..., devices: _Optional[_Union[DeviceBatch, _Mapping]] = ...) -> None: ...

class DeviceBatch(_message.Message):
    __slots__ = ("device_ids",)
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, device_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ActivationResult(_message.Message):
    __slots__ = ("request", "refused")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    request: ActivationRequest
    refused: DeviceRefusal
    def __init__(self, request: _Optional[_Union[ActivationRequest, _Mapping]] = ..., refused: _Optional[_Union[DeviceRefusal, _Mapping]] = ...) -> None: ...

class ActivationResults(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ActivationResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ActivationResult, _Mapping]]] = ...) -> None: ...

class SignPreCommandRequest(_message.Message):
    __slots__ = ("pre_command", "dcc_response", "accept_unauthenticated")
    PRE_COMMAND_FIELD_NUMBER: _ClassVar[int]
    DCC_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_UNAUTHENTICATED_FIELD_NUMBER: _ClassVar[int]
    pre_command: bytes
    dcc_response: bytes
    accept_unauthenticated: bool
    def __init__(self, pre_command: _Optional[bytes] = ..., dcc_response: _Optional[bytes] = ..., accept_unauthenticated: _Optional[bool] = ...) -> None: ...

class SignPreCommandResponse(_message.Message):
    __slots__ = ("device_id", "request_id", "signed_pre_command", "duis_request")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNED_PRE_COMMAND_FIELD_NUMBER: _ClassVar[int]
    DUIS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    request_id: str
    signed_pre_command: bytes
    duis_request: bytes
    def __init__(self, device_id: _Optional[str] = ..., request_id: _Optional[str] = ..., signed_pre_command: _Optional[bytes] = ..., duis_request: _Optional[bytes] = ...) -> None: ...

class PreCommandBatch(_message.Message):
    __slots__ = ("pre_commands", "accept_unauthenticated", "dcc_responses")
    PRE_COMMANDS_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_UNAUTHENTICATED_FIELD_NUMBER: _ClassVar[int]
    DCC_RESPONSES_FIELD_NUMBER: _ClassVar[int]
    pre_commands: _containers.RepeatedScalarFieldContainer[bytes]
    accept_unauthenticated: bool
    dcc_responses: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, pre_commands: _Optional[_Iterable[bytes]] = ..., accept_unauthenticated: _Optional[bool] = ..., dcc_responses: _Optional[_Iterable[bytes]] = ...) -> None: ...

class PreCommandRefusal(_message.Message):
    __slots__ = ("index", "device_id", "request_id", "reason", "code")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    index: int
    device_id: str
    request_id: str
    reason: str
    code: str
    def __init__(self, index: _Optional[int] = ..., device_id: _Optional[str] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class PreCommandResult(_message.Message):
    __slots__ = ("signed", "refused")
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    signed: SignPreCommandResponse
    refused: PreCommandRefusal
    def __init__(self, signed: _Optional[_Union[SignPreCommandResponse, _Mapping]] = ..., refused: _Optional[_Union[PreCommandRefusal, _Mapping]] = ...) -> None: ...

class PreCommandResults(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PreCommandResult]
    def __init__(self, results: _Optional[_Iterable[_Union[PreCommandResult, _Mapping]]] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KeyInfo(_message.Message):
    __slots__ = ("label", "cka_id", "ski", "purpose", "state", "on_token", "role", "eui", "certificate_serial", "issuer", "not_before", "not_after", "days_left", "devices", "certificate_der")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CKA_ID_FIELD_NUMBER: _ClassVar[int]
    SKI_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ON_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EUI_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    DAYS_LEFT_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_DER_FIELD_NUMBER: _ClassVar[int]
    label: str
    cka_id: bytes
    ski: bytes
    purpose: str
    state: str
    on_token: bool
    role: str
    eui: str
    certificate_serial: str
    issuer: str
    not_before: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    days_left: int
    devices: int
    certificate_der: bytes
    def __init__(self, label: _Optional[str] = ..., cka_id: _Optional[bytes] = ..., ski: _Optional[bytes] = ..., purpose: _Optional[str] = ..., state: _Optional[str] = ..., on_token: _Optional[bool] = ..., role: _Optional[str] = ..., eui: _Optional[str] = ..., certificate_serial: _Optional[str] = ..., issuer: _Optional[str] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., days_left: _Optional[int] = ..., devices: _Optional[int] = ..., certificate_der: _Optional[bytes] = ...) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[KeyInfo]
    def __init__(self, keys: _Optional[_Iterable[_Union[KeyInfo, _Mapping]]] = ...) -> None: ...

class CampaignSpec(_message.Message):
    __slots__ = ("image_id", "product", "service_reference", "firmware_version", "force_replace", "execution_time")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    FORCE_REPLACE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_TIME_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    product: CampaignProduct
    service_reference: str
    firmware_version: str
    force_replace: bool
    execution_time: _timestamp_pb2.Timestamp
    def __init__(self, image_id: _Optional[str] = ..., product: _Optional[_Union[CampaignProduct, str]] = ..., service_reference: _Optional[str] = ..., firmware_version: _Optional[str] = ..., force_replace: _Optional[bool] = ..., execution_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PlanCampaignRequest(_message.Message):
    __slots__ = ("spec", "devices")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    spec: CampaignSpec
    devices: DeviceBatch
    def __init__(self, spec: _Optional[_Union[CampaignSpec, _Mapping]] = ..., devices: _Optional[_Union[DeviceBatch, _Mapping]] = ...) -> None: ...

class CampaignCount(_message.Message):
    __slots__ = ("name", "devices")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    name: str
    devices: int
    def __init__(self, name: _Optional[str] = ..., devices: _Optional[int] = ...) -> None: ...

class CampaignApproval(_message.Message):
    __slots__ = ("approver", "approved_at", "expires_at", "expired", "comment")
    APPROVER_FIELD_NUMBER: _ClassVar[int]
    APPROVED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    approver: str
    approved_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    expired: bool
    comment: str
    def __init__(self, approver: _Optional[str] = ..., approved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expired: _Optional[bool] = ..., comment: _Optional[str] = ...) -> None: ...

class CampaignPlan(_message.Message):
    __slots__ = ("plan_id", "spec", "requester", "planned_at", "state", "devices", "eligible", "refused", "by_key", "by_model", "by_reason", "approvals_required", "approvals", "rejected_by", "rejection_reason", "issued", "withheld", "stale_reason", "supersedes")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    PLANNED_AT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    ELIGIBLE_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    BY_KEY_FIELD_NUMBER: _ClassVar[int]
    BY_MODEL_FIELD_NUMBER: _ClassVar[int]
    BY_REASON_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_BY_FIELD_NUMBER: _ClassVar[int]
    REJECTION_REASON_FIELD_NUMBER: _ClassVar[int]
    ISSUED_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELD_NUMBER: _ClassVar[int]
    STALE_REASON_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDES_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    spec: CampaignSpec
    requester: str
    planned_at: _timestamp_pb2.Timestamp
    state: CampaignState
    devices: int
    eligible: int
    refused: int
    by_key: _containers.RepeatedCompositeFieldContainer[CampaignCount]
    by_model: _containers.RepeatedCompositeFieldContainer[CampaignCount]
    by_reason: _containers.RepeatedCompositeFieldContainer[CampaignCount]
    approvals_required: int
    approvals: _containers.RepeatedCompositeFieldContainer[CampaignApproval]
    rejected_by: str
    rejection_reason: str
    issued: int
    withheld: int
    stale_reason: str
    supersedes: str
    def __init__(self, plan_id: _Optional[str] = ..., spec: _Optional[_Union[CampaignSpec, _Mapping]] = ..., requester: _Optional[str] = ..., planned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[CampaignState, str]] = ..., devices: _Optional[int] = ..., eligible: _Optional[int] = ..., refused: _Optional[int] = ..., by_key: _Optional[_Iterable[_Union[CampaignCount, _Mapping]]] = ..., by_model: _Optional[_Iterable[_Union[CampaignCount, _Mapping]]] = ..., by_reason: _Optional[_Iterable[_Union[CampaignCount, _Mapping]]] = ..., approvals_required: _Optional[int] = ..., approvals: _Optional[_Iterable[_Union[CampaignApproval, _Mapping]]] = ..., rejected_by: _Optional[str] = ..., rejection_reason: _Optional[str] = ..., issued: _Optional[int] = ..., withheld: _Optional[int] = ..., stale_reason: _Optional[str] = ..., supersedes: _Optional[str] = ...) -> None: ...

class CampaignDevice(_message.Message):
    __slots__ = ("device_id", "key_label", "key_ski", "current_entry_id", "model", "pathway", "refused", "outcome", "withheld_check", "withheld_detail", "request_ids")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_LABEL_FIELD_NUMBER: _ClassVar[int]
    KEY_SKI_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PATHWAY_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_CHECK_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_DETAIL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_IDS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    key_label: str
    key_ski: bytes
    current_entry_id: str
    model: str
    pathway: str
    refused: DeviceRefusal
    outcome: str
    withheld_check: str
    withheld_detail: str
    request_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, device_id: _Optional[str] = ..., key_label: _Optional[str] = ..., key_ski: _Optional[bytes] = ..., current_entry_id: _Optional[str] = ..., model: _Optional[str] = ..., pathway: _Optional[str] = ..., refused: _Optional[_Union[DeviceRefusal, _Mapping]] = ..., outcome: _Optional[str] = ..., withheld_check: _Optional[str] = ..., withheld_detail: _Optional[str] = ..., request_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetCampaignRequest(_message.Message):
    __slots__ = ("plan_id", "include_devices")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DEVICES_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    include_devices: bool
    def __init__(self, plan_id: _Optional[str] = ..., include_devices: _Optional[bool] = ...) -> None: ...

class CampaignDeviceBatch(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[CampaignDevice]
    def __init__(self, devices: _Optional[_Iterable[_Union[CampaignDevice, _Mapping]]] = ...) -> None: ...

class CampaignPlanPart(_message.Message):
    __slots__ = ("plan", "devices")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    plan: CampaignPlan
    devices: CampaignDeviceBatch
    def __init__(self, plan: _Optional[_Union[CampaignPlan, _Mapping]] = ..., devices: _Optional[_Union[CampaignDeviceBatch, _Mapping]] = ...) -> None: ...

class ApproveCampaignRequest(_message.Message):
    __slots__ = ("plan_id", "comment")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    comment: str
    def __init__(self, plan_id: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class RejectCampaignRequest(_message.Message):
    __slots__ = ("plan_id", "reason")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    reason: str
    def __init__(self, plan_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ApplyCampaignRequest(_message.Message):
    __slots__ = ("plan_id",)
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    def __init__(self, plan_id: _Optional[str] = ...) -> None: ...

class CampaignArtifact(_message.Message):
    __slots__ = ("upgrade_image", "update_request", "activation")
    UPGRADE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    upgrade_image: SignedImage
    update_request: BuildDUISResponse
    activation: ActivationRequest
    def __init__(self, upgrade_image: _Optional[_Union[SignedImage, _Mapping]] = ..., update_request: _Optional[_Union[BuildDUISResponse, _Mapping]] = ..., activation: _Optional[_Union[ActivationRequest, _Mapping]] = ...) -> None: ...

class WithheldArtifact(_message.Message):
    __slots__ = ("kind", "device_ids", "check", "detail")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    kind: str
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    check: str
    detail: str
    def __init__(self, kind: _Optional[str] = ..., device_ids: _Optional[_Iterable[str]] = ..., check: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class AlreadyIssued(_message.Message):
    __slots__ = ("kind", "device_ids", "request_id")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    kind: str
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, kind: _Optional[str] = ..., device_ids: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CampaignResult(_message.Message):
    __slots__ = ("issued", "withheld", "refused", "already_issued")
    ISSUED_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    ALREADY_ISSUED_FIELD_NUMBER: _ClassVar[int]
    issued: CampaignArtifact
    withheld: WithheldArtifact
    refused: DeviceRefusal
    already_issued: AlreadyIssued
    def __init__(self, issued: _Optional[_Union[CampaignArtifact, _Mapping]] = ..., withheld: _Optional[_Union[WithheldArtifact, _Mapping]] = ..., refused: _Optional[_Union[DeviceRefusal, _Mapping]] = ..., already_issued: _Optional[_Union[AlreadyIssued, _Mapping]] = ...) -> None: ...

class CampaignResults(_message.Message):
    __slots__ = ("results", "plan")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CampaignResult]
    plan: CampaignPlan
    def __init__(self, results: _Optional[_Iterable[_Union[CampaignResult, _Mapping]]] = ..., plan: _Optional[_Union[CampaignPlan, _Mapping]] = ...) -> None: ...
