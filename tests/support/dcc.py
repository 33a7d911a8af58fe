"""A test DCC: a P-256 XML-signing certificate, and DUIS responses it signs with xmlsec1.

The signature is made by Debian's xmlsec1 from a Signature template in the DCC profile, not
by the service's own signer, so a bug shared by the service's signer and verifier cannot
make a test pass.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
_ALGORITHMS = (
    ("CanonicalizationMethod", "http://www.w3.org/2001/10/xml-exc-c14n#"),
    ("SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"),
)


@dataclass(frozen=True)
class DccKey:
    """A DCC XML-signing key (PEM file) and its self-issued certificate."""

    key_pem: Path
    cert_pem: Path
    cert: x509.Certificate

    @classmethod
    def make(cls, directory: Path, cn: str = "Test DCC") -> DccKey:
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "07"),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
            .not_valid_after(dt.datetime(2045, 1, 1, tzinfo=dt.UTC))
            .sign(key, hashes.SHA256())
        )
        slug = cn.lower().replace(" ", "-")
        key_pem, cert_pem = directory / f"{slug}.key.pem", directory / f"{slug}.pem"
        key_pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(key_pem, cert_pem, cert)

    def sign(self, xml: bytes, workdir: Path, *, as_cert: x509.Certificate | None = None) -> bytes:
        """``xml`` signed in the DCC profile by xmlsec1 with this key; KeyInfo names
        ``as_cert`` (default: this certificate), so a key can claim another's identity."""
        named = as_cert or self.cert
        template = workdir / "dcc-template.xml"
        signed = workdir / "dcc-signed.xml"
        template.write_bytes(_with_template(xml, named))
        cmd = [xmlsec1(), "--sign", "--privkey-pem", str(self.key_pem)]
        proc = subprocess.run(
            [*cmd, "--output", str(signed), str(template)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return signed.read_bytes()


def dcc_section(*dccs: DccKey) -> str:
    """The configuration section that trusts these DCC certificates."""
    listed = ", ".join(f'"{d.cert_pem}"' for d in dccs)
    return f"\n[dcc]\ncertificates = [{listed}]\n"


def xmlsec1() -> str:
    exe = shutil.which("xmlsec1")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("xmlsec1 is not installed (CI=true must not skip DCC signing)")
        pytest.skip("xmlsec1 is not installed")
    return exe


def _with_template(xml: bytes, cert: x509.Certificate) -> bytes:
    """The document with an empty DCC-profile Signature appended to its root."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(xml, parser)
    sig = etree.SubElement(root, f"{{{DS}}}Signature", nsmap={"ds": DS})
    signed_info = etree.SubElement(sig, f"{{{DS}}}SignedInfo")
    for local, algorithm in _ALGORITHMS:
        etree.SubElement(signed_info, f"{{{DS}}}{local}", Algorithm=algorithm)
    ref = etree.SubElement(signed_info, f"{{{DS}}}Reference", URI="")
    etree.SubElement(
        etree.SubElement(ref, f"{{{DS}}}Transforms"),
        f"{{{DS}}}Transform",
        Algorithm=f"{DS}enveloped-signature",
    )
    etree.SubElement(
        ref, f"{{{DS}}}DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"
    )
    etree.SubElement(ref, f"{{{DS}}}DigestValue")
    etree.SubElement(sig, f"{{{DS}}}SignatureValue")
    issuer_serial = etree.SubElement(
        etree.SubElement(etree.SubElement(sig, f"{{{DS}}}KeyInfo"), f"{{{DS}}}X509Data"),
        f"{{{DS}}}X509IssuerSerial",
    )
    etree.SubElement(issuer_serial, f"{{{DS}}}X509IssuerName").text = cert.issuer.rfc4514_string()
    etree.SubElement(issuer_serial, f"{{{DS}}}X509SerialNumber").text = str(cert.serial_number)
    out: bytes = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")
    return out
