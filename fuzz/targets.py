"""The atheris targets: one per parser of outside bytes, each with its seed corpus.

A target takes the fuzzer's bytes, hands them to the parser the way the service would, and
returns; the project's own errors (``SignerError``) are the expected answer to bad input.
Anything else escaping is a finding (``fuzz/run.py`` records it). Seeds are built from
``../shared/vectors`` at run time, never copied into the repository.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
NOW = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)  # inside the test certificates' validity


@dataclass(frozen=True)
class Target:
    name: str
    parser: str  # what the table calls it
    run: Callable[[bytes], object]
    seeds: Callable[[Path], list[bytes]]


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _hex(path: Path) -> bytes:
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


# -- the targets (imports inside, so atheris.instrument_imports() sees them first) -------


def ota(data: bytes) -> None:
    from signer.gbcs.ota import parse_ota_header, parse_upgrade_image

    for fn in (
        parse_ota_header,
        lambda d: parse_upgrade_image(d, with_tail=True),
        lambda d: parse_upgrade_image(d, with_tail=False),
    ):
        _guard(fn, data)


def delivery(data: bytes) -> None:
    from signer.gbcs.delivery import from_combined, from_gbcs, from_separate

    digest = hashlib.sha256(data).hexdigest()
    sig, body = data[-72:], data[:-72] if len(data) > 72 else data
    _guard(lambda d: from_gbcs(d, hash=digest), data)
    _guard(lambda d: from_combined(header_and_image=d, signature=sig, hash=digest), body)
    _guard(
        lambda d: from_separate(
            ota_header=d[:60], manufacturer_image=d[60:], signature=sig, hash=d[:64]
        ),
        body,
    )


def signature(data: bytes) -> None:
    from signer.gbcs.signature import der_to_raw, normalise_ecdsa_signature

    _guard(der_to_raw, data)
    _guard(lambda d: normalise_ecdsa_signature(d, field="signature"), data)


def trust_anchor(data: bytes) -> None:
    from signer.gbcs.trust_anchor import decode_payload_text, parse_security_credentials_response

    _guard(parse_security_credentials_response, data)
    _guard(lambda d: parse_security_credentials_response(decode_payload_text(d)), data)


def precommand(data: bytes) -> None:
    from signer.gbcs.eui import Eui64
    from signer.gbcs.precommand import (
        ExpectedActivation,
        check_pre_command,
        parse_pre_command,
        parse_signed_command,
    )

    expected = ExpectedActivation(
        originator=Eui64(bytes.fromhex("90B3D51F30010000")),
        recipient=Eui64(bytes.fromhex("00DB1234567890A0")),
        firmware_hash=b"\xaa" * 32,
        counter=1000,
        execution_time=None,
    )
    _guard(lambda d: check_pre_command(parse_pre_command(d), expected), data)
    _guard(parse_signed_command, data)


def duis_response(data: bytes) -> None:
    from signer.duis.activation import extract_pre_command
    from signer.duis.response import extract_gbcs_payload

    _guard(extract_gbcs_payload, data)
    _guard(extract_pre_command, data)


def certificate(data: bytes) -> None:
    from signer.smki.certificate import check_profile_basics, load_certificate

    _guard(lambda d: check_profile_basics(load_certificate(d), NOW), data)


def cpl_csv(data: bytes) -> None:
    from signer.cpl.parse import read_csv

    _guard(lambda d: list(read_csv(_text(d).splitlines(keepends=True))), data)


def cpl_json(data: bytes) -> None:
    from signer.cpl.parse import read_json

    _guard(lambda d: list(read_json(_text(d))), data)


def inventory(data: bytes) -> None:
    from signer.cpl.inventory import read_inventory_csv

    _guard(lambda d: list(read_inventory_csv(_text(d).splitlines(keepends=True))), data)


def eui(data: bytes) -> None:
    from signer.gbcs.eui import Eui64

    _guard(lambda d: Eui64.parse(_text(d)), data)


def request_id(data: bytes) -> None:
    from signer.duis.request import RequestId

    _guard(lambda d: RequestId.parse(_text(d)), data)


class Finding(Exception):
    """An exception other than the project's own escaped a parser."""


def _guard(fn: Callable[[bytes], object], data: bytes) -> None:
    from signer.errors import SignerError

    try:
        fn(data)
    except SignerError as exc:
        if len(str(exc)) > 600:
            raise Finding(f"{len(str(exc))}-character error message: {str(exc)[:100]}") from exc
    except Exception as exc:
        raise Finding(f"{type(exc).__name__}: {str(exc)[:200]}") from exc


# -- seeds ------------------------------------------------------------------------------


def _ota_seeds(v: Path) -> list[bytes]:
    return [base64.b64decode(p.read_text()) for p in sorted((v / "ota").glob("*.b64"))]


def _precommand_seeds(v: Path) -> list[bytes]:
    return [_hex(p) for p in sorted((v / "gbcs").glob("CS06_*_GBCS.HEX"))]


def _trust_anchor_seeds(v: Path) -> list[bytes]:
    hexes = sorted((v / "trust_anchor").glob("*_RESPONSE_GBCS.HEX"))
    return [_hex(p) for p in hexes] + [p.read_bytes() for p in hexes]


def _signature_seeds(v: Path) -> list[bytes]:
    from cryptography import x509

    ders = [x509.load_pem_x509_certificate(p).signature for p in _certificate_pems(v)[:10]]
    return ders + [img[-64:] for img in _ota_seeds(v)[:1]]


def _xml_seeds(v: Path) -> list[bytes]:
    files = sorted((v / "xmldsig").glob("*.xml")) + sorted((v / "trust_anchor").glob("*.xml"))
    return [p.read_bytes() for p in files]


def _certificate_seeds(v: Path) -> list[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    pems = _certificate_pems(v)
    ders = [x509.load_pem_x509_certificate(p).public_bytes(Encoding.DER) for p in pems]
    return ders + pems[:1]


def _certificate_pems(v: Path) -> list[bytes]:
    """The published certificates `cryptography` reads (one is malformed on purpose)."""
    from cryptography import x509

    good = []
    for path in sorted((v / "certs").glob("*.pem")):
        try:
            x509.load_pem_x509_certificate(path.read_bytes())
        except ValueError:
            continue
        good.append(path.read_bytes())
    return good


_CPL_HEADER = (
    "entry_id,manufacturer_code,device_type,model,image_type,hardware_version,"
    "firmware_version,image_hash,upgrade_from,zigbee_chipset_vendor,zigbee_stack_version,"
    "band_join_option\n"
)


def _cpl_csv_seeds(v: Path) -> list[bytes]:
    digest = hashlib.sha256(_ota_seeds(v)[0][60:-66]).hexdigest()
    rows = [
        f"E-1,121D,ESME,M1,0000,0001,ACDCACDC,{digest},N/A,,,\n",
        f'E-2,0x121D,Comms Hub,"M, 2",,0002,00000002,{digest},E-1;E-0,V,"1.2",Dual Band\n',
    ]
    return [(_CPL_HEADER + "".join(rows)).encode(), (_CPL_HEADER + rows[0]).encode()]


def _cpl_json_seeds(v: Path) -> list[bytes]:
    import csv
    import io
    import json

    seeds = []
    for text in _cpl_csv_seeds(v):
        rows = list(csv.DictReader(io.StringIO(text.decode())))
        seeds.append(json.dumps(rows).encode())
        seeds.append(json.dumps({"entries": rows}).encode())
    return seeds


def _inventory_seeds(v: Path) -> list[bytes]:
    header = "device_id,device_type,hardware_version,current_entry_id\n"
    return [
        (header + "00-DB-12-34-56-78-90-A0,ESME,0001,E-1\n").encode(),
        (
            header + "00DB1234567890A1,gsme,0x0002,E-2\n00:db:12:34:56:78:90:a2,PPMID,0003,E\n"
        ).encode(),
    ]


def _eui_seeds(v: Path) -> list[bytes]:
    return [b"00-DB-12-34-56-78-90-A0", b"00:db:12:34:56:78:90:a0", b"00DB1234567890A0"]


def _request_id_seeds(v: Path) -> list[bytes]:
    return [b"90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1000", b"A:B:18446744073709551615"]


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("ota", "OTA header + upgrade image", ota, _ota_seeds),
        Target("delivery", "delivery shapes (separate, GBCS, combined)", delivery, _ota_seeds),
        Target("signature", "ECDSA signature (DER, raw r and s)", signature, _signature_seeds),
        Target(
            "trust_anchor", "SR 6.24.1 trust anchor response", trust_anchor, _trust_anchor_seeds
        ),
        Target("precommand", "CS06 pre-command / signed command", precommand, _precommand_seeds),
        Target(
            "duis_response", "DUIS response (GBCSPayload, PreCommand)", duis_response, _xml_seeds
        ),
        Target(
            "certificate", "SMKI certificate (PEM/DER + profile)", certificate, _certificate_seeds
        ),
        Target("cpl_csv", "CPL CSV", cpl_csv, _cpl_csv_seeds),
        Target("cpl_json", "CPL JSON", cpl_json, _cpl_json_seeds),
        Target("inventory", "device inventory CSV", inventory, _inventory_seeds),
        Target("eui", "EUI-64 text", eui, _eui_seeds),
        Target("request_id", "DUIS RequestID", request_id, _request_id_seeds),
    )
}
