"""Real artifacts for the pre-flight tests: made by the project's own signing paths
(Resign, BuildDUIS, BuildActivation) in-process on the session's SoftHSM2 token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer.clock import fixed_clock
from signer.config import load_config
from signer.service import admin
from signer.service.activation import ActivationSpec, build_activations
from signer.service.duis import build_duis
from signer.service.resign import resign
from signer.service.services import open_services
from tests.support.constants import MANUFACTURER_CODE, PINNED, RTDS_DEVICE
from tests.support.hsm import Hsm, ensure_vector_keys
from tests.support.independent import duis_schema, ota_header
from tests.support.ledger import activate
from tests.support.manufacturer import Manufacturer
from tests.support.preflight import (
    FIRMWARE_VERSION,
    Artifacts,
    header_with_hardware_versions,
    schema_check,
    sha256,
    verified_image,
)
from tests.support.server import write_config


@pytest.fixture(scope="session")
def artifacts(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Artifacts]:
    tmp = tmp_path_factory.mktemp("preflight")
    token = hsm.token()
    ensure_vector_keys(token, vectors)
    config = load_config(
        write_config(
            tmp / "signer.toml",
            hsm,
            f"sqlite:///{tmp / 'db'}",
            schema_dir=vectors / "xsd",
            pinned=None,
        )
    )
    svc = open_services(config, clock=fixed_clock(PINNED), token=token)
    admin.add_manufacturer(
        svc.db, f"{MANUFACTURER_CODE:04X}", manufacturer.cert_pem.read_bytes(), PINNED
    )
    admin.import_device(
        svc.db,
        (vectors / "trust_anchor/CS02aMAC_6.24.1_SUCCESS_RESPONSE_GBCS.HEX").read_bytes(),
        PINNED,
        dcc_certificates=(),
        accept_unauthenticated=True,
    )
    activate(svc, "z1-supplier-ds", "xml-sign")
    image = b"pre-flight firmware " * 60
    image_id = verified_image(svc, manufacturer, image, header_with_hardware_versions(len(image)))
    other = b"another firmware " * 50
    other_id = verified_image(svc, manufacturer, other, ota_header(len(other)))
    (signed,) = resign(svc, image_id, [RTDS_DEVICE], None).images
    update = build_duis(
        svc,
        image_id=None,
        upgrade_image=signed.upgrade_image,  # the request carries the image Resign made
        device_ids=[RTDS_DEVICE],
        firmware_version=FIRMWARE_VERSION,
        service="11.1",
    )
    (activation,), refused = build_activations(svc, ActivationSpec(image_id), [RTDS_DEVICE])
    assert not refused
    (other_activation,), refused = build_activations(svc, ActivationSpec(other_id), [RTDS_DEVICE])
    assert not refused
    yield Artifacts(
        svc=svc,
        manufacturer_image=image,
        image_sha256=sha256(image),
        upgrade_image=signed.upgrade_image,
        update_request=update.document,
        activation=activation.document,
        activation_counter=activation.request_id.counter,
        other_image_sha256=sha256(other),
        other_activation=other_activation.document,
        supplier_cert=x509.load_pem_x509_certificate(
            (vectors / "certs/Z1-supplier-ds.pem").read_bytes()
        ),
        xml_cert=x509.load_pem_x509_certificate(
            (vectors / "certs/xml-sign-90B3D51F30010000-ds.pem").read_bytes()
        ),
        schema=schema_check(duis_schema(vectors / "xsd")),
    )
    svc.db.dispose()


@pytest.fixture(scope="session")
def xml_key(vectors: Path) -> ec.EllipticCurvePrivateKey:
    """The published test key of the Supplier's XML-signing certificate."""
    key = serialization.load_pem_private_key(
        (vectors / "keys/xml-sign-90B3D51F30010000-ds.key.pem").read_bytes(), None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


@pytest.fixture(scope="session")
def supplier_key(vectors: Path) -> ec.EllipticCurvePrivateKey:
    """The published test key of Z1-supplier-ds (the RTDS device's Supplier cell)."""
    key = serialization.load_pem_private_key(
        (vectors / "keys/Z1-supplier-ds.key.pem").read_bytes(), None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


@pytest.fixture(scope="session")
def vector_cert(vectors: Path) -> Callable[[str], x509.Certificate]:
    def load(name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((vectors / "certs" / name).read_bytes())

    return load
