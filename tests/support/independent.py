"""Independent checks: code that re-derives facts without the project's own parsers.

Tests compare the service's output against these, so a bug shared by builder and parser
cannot hide.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import struct
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

SR = "http://www.dccinterface.co.uk/ServiceUserGateway"


def ota_header(
    image_len: int,
    *,
    code: int = 0x121D,
    image_type: int = 0x0001,
    file_version: int = 0x01020304,
    tail: bool = True,
) -> bytes:
    """A minimal ZigBee OTA header (no optional fields), laid out from the spec table."""
    total = 56 + image_len + (66 if tail else 0)
    return (
        struct.pack("<IHHHHHIH", 0x0BEEF11E, 0x0100, 56, 0, code, image_type, file_version, 0x0002)
        + b"independent test image".ljust(32, b"\0")
        + struct.pack("<I", total)
    )


def raw_signature_verifies(cert: x509.Certificate, message: bytes, raw: bytes) -> bool:
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def split_upgrade_image(data: bytes) -> tuple[bytes, bytes, int, bytes]:
    """(header, manufacturer image, force replace byte, raw signature) by byte offsets."""
    header_len = struct.unpack_from("<H", data, 6)[0]
    assert data[-65] == 0x40
    return data[:header_len], data[header_len:-66], data[-66], data[-64:]


@functools.cache
def duis_schema(xsd_dir: Path) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(xsd_dir / "DUIS_Schema_V5.4.xsd"), parser))


def assert_schema_valid(document: bytes, xsd_dir: Path) -> None:
    schema = duis_schema(xsd_dir)
    doc = etree.fromstring(document, etree.XMLParser(huge_tree=True, resolve_entities=False))
    if not schema.validate(doc):
        raise AssertionError(f"DUIS schema: {schema.error_log.last_error}")


def xmlsec1_verify(
    document: bytes, cert: x509.Certificate, tmp: Path
) -> subprocess.CompletedProcess[str]:
    """Debian's xmlsec1 over the document, with the signer's certificate as the key."""
    doc = tmp / "doc.xml"
    doc.write_bytes(document)
    pem = tmp / "signer.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return subprocess.run(
        [
            "xmlsec1",
            "--verify",
            "--pubkey-cert-pem",
            str(pem),
            "--enabled-reference-uris",
            "empty",
            str(doc),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def duis_fields(document: bytes) -> dict[str, str]:
    doc = etree.fromstring(document, etree.XMLParser(huge_tree=True, resolve_entities=False))
    out = {}
    for name in (
        "RequestID",
        "CommandVariant",
        "ServiceReference",
        "ServiceReferenceVariant",
        "FirmwareImage",
        "FirmwareVersion",
        "DeviceIDList",
    ):
        el = doc.find(f".//{{{SR}}}{name}")
        if el is not None:
            out[name] = el.text or ""
    return out


def firmware_image_of(document: bytes) -> bytes:
    return base64.b64decode(duis_fields(document)["FirmwareImage"])


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cs06_pre_command(
    *,
    originator: str,
    recipient: str,
    counter: int,
    firmware_hash: bytes,
    execution_time: str | None = None,
    message_code: int = 0x0012,
    cra_flag: int = 0x01,
) -> bytes:
    """A GBCS CS06 pre-command laid out by hand from spec section 6, as the DCC would send it.

    ``execution_time`` is GeneralizedTime text such as ``20300115090000Z``.
    """
    content = b"\x04\x20" + firmware_hash
    value = counter.to_bytes((counter.bit_length() + 8) // 8, "big")
    content += bytes([0x02, len(value)]) + value
    if execution_time is not None:
        content += bytes([0x18, len(execution_time)]) + execution_time.encode()
    content = bytes([0x30, len(content)]) + content
    return (
        bytes([0xDF, 0x09, cra_flag])
        + counter.to_bytes(8, "big")
        + b"\x08"
        + bytes.fromhex(originator.replace("-", ""))
        + b"\x08"
        + bytes.fromhex(recipient.replace("-", ""))
        + b"\x00"
        + b"\x02"
        + message_code.to_bytes(2, "big")
        + bytes([len(content)])
        + content
    )
