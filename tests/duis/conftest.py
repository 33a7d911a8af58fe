"""Fixtures for the published test vectors in ../shared/vectors (never copied into the project)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from signer.duis.schema import DuisSchema


@pytest.fixture(scope="session")
def xml_cert(vectors: Path) -> x509.Certificate:
    """The test Supplier's XML-signing certificate (self-signed, issuer reads CN=Z1,OU=07)."""
    return x509.load_pem_x509_certificate(
        (vectors / "certs" / "xml-sign-90B3D51F30010000-ds.pem").read_bytes()
    )


@pytest.fixture(scope="session")
def sign_digest(vectors: Path) -> Callable[[bytes], bytes]:
    """Stands where the HSM will: SHA-256 digest in, raw r||s out, with the published key."""
    key = serialization.load_pem_private_key(
        (vectors / "keys" / "xml-sign-90B3D51F30010000-ds.key.pem").read_bytes(), None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)

    def sign(digest: bytes) -> bytes:
        assert len(digest) == 32
        der = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        r, s = utils.decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


@pytest.fixture(scope="session")
def schema(vectors: Path) -> DuisSchema:
    return DuisSchema.load(vectors / "xsd")


_XMLSEC1_FLAGS = ("--verify", "--enabled-reference-uris", "empty")


@pytest.fixture(scope="session")
def xmlsec1() -> Callable[[bytes, Path, Path], subprocess.CompletedProcess[str]]:
    """Debian xmlsec1 as an independent verifier: returns the finished process."""
    exe = shutil.which("xmlsec1")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("xmlsec1 is not installed (CI=true must not skip the cross-check)")
        pytest.skip("xmlsec1 is not installed")

    def run(xml: bytes, cert_pem: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
        doc = workdir / "doc.xml"
        doc.write_bytes(xml)
        cmd = [exe, *_XMLSEC1_FLAGS, "--pubkey-cert-pem", str(cert_pem), str(doc)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    return run
