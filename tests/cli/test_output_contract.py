"""The CLI's output contract (README "Exit codes" and "JSON output"), held for every command.

Every command that reports a result takes `--json`; its keys are the API's field names
where the value comes from the API (bytes in hex, times in RFC 3339 with a zone); the exit
codes the README's table lists are `signer.cli.output.ExitCode`. The command tree is walked
as click resolves it, so a command added later is held to the contract too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from cryptography import x509

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.cli.main import cli
from signer.cli.output import ExitCode, jsonable, message_dict, refusal_line, rfc3339
from tests.support.cli import signer
from tests.support.constants import MANUFACTURER_CODE, RTDS_DEVICE
from tests.support.independent import ota_header
from tests.support.manufacturer import Manufacturer
from tests.support.server import Running

README = Path(__file__).resolve().parents[2] / "README.md"
UNKNOWN_DEVICE = "00-DB-12-34-56-78-90-FE"

#: Commands that report no result, so take no --json; each with its reason. A command
#: belongs here only if there is nothing a script could read from its output.
EXEMPT = {
    # runs the service until SIGTERM; its logs (JSON lines already) go to stderr
    "serve": "runs the service; reports nothing",
    # its output *is* the result: the PKCS#10 request, PEM or DER, to --out or stdout
    "keys csr": "writes the certificate request itself",
    # its output is JSON lines already (the export format); the count goes to stderr
    "audit export": "writes JSON lines already",
}


def _leaves(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(path as typed after `signer`, command) for every leaf command, the lazy ones loaded."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            yield from _leaves(command, (*prefix, name))
        else:
            yield " ".join((*prefix, name)), command


def _json_option(command: click.Command) -> click.Option | None:
    for param in command.params:
        if isinstance(param, click.Option) and "--json" in param.opts:
            return param
    return None


def test_every_command_that_reports_a_result_takes_json() -> None:
    missing = sorted(
        path for path, command in _leaves() if path not in EXEMPT and _json_option(command) is None
    )
    assert missing == [], f"add --json (signer.cli.output.json_option) to: {', '.join(missing)}"


def test_json_is_the_same_flag_everywhere() -> None:
    for path, command in _leaves():
        option = _json_option(command)
        if option is not None:
            assert option.is_flag and option.name == "as_json", path


def test_the_exemptions_name_commands_that_exist_and_take_no_json() -> None:
    commands = dict(_leaves())
    assert "keys list" in commands and "verify" in commands  # the walk did load the lazy ones
    for path in EXEMPT:
        assert path in commands, f"{path}: no such command; drop it from EXEMPT"
        assert _json_option(commands[path]) is None, f"{path} takes --json: drop it from EXEMPT"


def _readme_exit_codes() -> dict[int, str]:
    """The table under the README's "Exit codes" heading: {code: name}."""
    text = README.read_text()
    section = re.search(r"^#+ Exit codes[ \t]*\n(.*?)(?=^#|\Z)", text, flags=re.M | re.S)
    assert section is not None, "README.md has no Exit codes section"
    rows = re.findall(r"^\|\s*`?(\d+)`?\s*\|\s*`?([A-Z_]+)`?\s*\|", section.group(1), flags=re.M)
    assert rows, "the Exit codes section has no table"
    codes = [int(code) for code, _ in rows]
    assert len(codes) == len(set(codes)), "a code is listed twice"
    return {int(code): name for code, name in rows}


def test_the_readme_exit_code_table_is_exitcode() -> None:
    assert _readme_exit_codes() == {int(c): c.name for c in ExitCode}


def test_message_dict_writes_proto_names_hex_bytes_and_rfc3339_times() -> None:
    spec = pb.ActivationSpec(image_id="ab" * 32)
    spec.execution_time.FromDatetime(dt.datetime(2030, 1, 15, 9, 0, tzinfo=dt.UTC))
    assert message_dict(spec) == {
        "image_id": "ab" * 32,
        "execution_time": "2030-01-15T09:00:00Z",
        "cancel": False,
    }
    resp = pb.ResignResponse(
        image_id="cd" * 32,
        images=[pb.SignedImage(upgrade_image=b"\x00\xff", key_ski=b"\x01\x02", device_ids=["d"])],
        refused=[pb.DeviceRefusal(device_id="e", reason="no_path", no_path=True)],
    )
    out = message_dict(resp)
    assert out["images"][0]["upgrade_image"] == "00ff"  # hex, not base64 ("AP8=")
    assert out["images"][0]["key_ski"] == "0102"
    assert out["images"][0]["certificate_serial"] == ""  # every field, defaults too
    assert out["refused"][0] == {
        "device_id": "e",
        "reason": "no_path",
        "detail": "",
        "upgrade_path": [],
        "no_path": True,
    }


def test_jsonable_times_have_a_zone_and_bytes_are_hex() -> None:
    naive = dt.datetime(2024, 6, 1, 12, 0)  # the registry's columns: UTC without a zone
    assert rfc3339(naive) == "2024-06-01T12:00:00Z"
    plus_one = dt.datetime(2024, 6, 1, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert jsonable({"at": plus_one, "ski": b"\xab"}) == {"at": "2024-06-01T12:00:00Z", "ski": "ab"}


def test_a_refusal_line_carries_its_upgrade_path() -> None:
    assert refusal_line("B3", "pathway", "on DEV-0.9", ["DEV-0.9", "DEV-1.0", "DEV-2.0"]) == (
        "refused B3: pathway: on DEV-0.9 (upgrade path: DEV-0.9 -> DEV-1.0 -> DEV-2.0)"
    )
    assert refusal_line("X", "unknown_device", "not registered") == (
        "refused X: unknown_device: not registered"
    )
    said = "may not be installed over C-1; permitted path: C-1 -> C-2"
    assert refusal_line("Y", "not_permitted_predecessor", said, ["C-1", "C-2"]) == (
        f"refused Y: not_permitted_predecessor: {said}"  # the path once, not twice
    )


# against a real server: the keys --json prints are the proto's field names


def _fields(message: Any) -> set[str]:
    return set(message.DESCRIPTOR.fields_by_name)


def _required(message: Any) -> set[str]:
    """The fields message_dict always writes: all but those with explicit presence."""
    return {f.name for f in message.DESCRIPTOR.fields if not f.has_presence}


def _delivery(tmp_path: Path, manufacturer: Manufacturer, image: bytes, dest: bytes) -> list[str]:
    """A separate-shape delivery whose OTA header carries an Upgrade File Destination (a
    bytes field of the response), as verify's arguments."""
    plain = ota_header(len(image))
    # field control bit 1: the 8-byte destination follows the fixed part (header length 64)
    header = plain[:6] + struct.pack("<HH", 64, 0x0002) + plain[10:52]
    header += struct.pack("<I", struct.unpack_from("<I", plain, 52)[0] + 8) + dest
    files = {
        "h.bin": header,
        "i.bin": image,
        "s.der": manufacturer.sign(header + image),
        "hash.hex": hashlib.sha256(image).hexdigest().encode() + b"\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [
        "--ota-header",
        str(tmp_path / "h.bin"),
        "--manufacturer-image",
        str(tmp_path / "i.bin"),
        "--signature",
        str(tmp_path / "s.der"),
        "--hash",
        str(tmp_path / "hash.hex"),
    ]


@pytest.fixture
def verified(
    running: Running, manufacturer: Manufacturer, tmp_path: Path
) -> tuple[str, dict[str, Any]]:
    """A delivery verified through `signer verify --json`: (image ID, the document)."""
    image = b"output contract firmware " * 40
    dest = bytes.fromhex("00db1234567890a0")
    args = _delivery(tmp_path, manufacturer, image, dest)
    done = signer("verify", *args, "--json", "--server", running.server.address, check=False)
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    doc = json.loads(done.stdout)  # one JSON document
    assert doc["header"]["upgrade_file_destination"] == dest.hex()  # hex, not base64
    assert doc["image_id"] == hashlib.sha256(image).hexdigest()
    return str(doc["image_id"]), doc


def test_verify_json_keys_are_the_response_fields(verified: tuple[str, dict[str, Any]]) -> None:
    _, doc = verified
    assert set(doc) == _fields(pb.VerifyManufacturerResponse)
    assert _required(pb.OtaHeader()) <= set(doc["header"]) <= _fields(pb.OtaHeader)
    assert doc["header"]["manufacturer_code"] == MANUFACTURER_CODE  # a number, as in proto
    assert doc["checks"] and all(set(c) == _fields(pb.Check) for c in doc["checks"])
    failed = [c["name"] for c in doc["checks"] if not c["passed"]]
    assert doc["verified"] is True and failed in ([], ["cpl"]), failed  # cpl: advisory here


def test_verify_out_writes_the_document_json_prints(
    running: Running, manufacturer: Manufacturer, tmp_path: Path
) -> None:
    args = _delivery(tmp_path, manufacturer, b"out file firmware " * 30, b"\x01" * 8)
    out = tmp_path / "verdict.json"
    done = signer("verify", *args, "--out", str(out), "--server", running.server.address)
    assert done.stdout.startswith("VERIFIED image ")  # people get words, the file gets JSON
    assert "  structure: passed" in done.stdout
    printed = signer("verify", *args, "--json", "--server", running.server.address).stdout
    assert json.loads(out.read_text()) == json.loads(printed)


def test_verify_not_verified_exits_3(
    running: Running, manufacturer: Manufacturer, tmp_path: Path
) -> None:
    args = _delivery(tmp_path, manufacturer, b"tampered firmware " * 30, b"\x02" * 8)
    (tmp_path / "i.bin").write_bytes(b"Tampered firmware " * 30)  # after it was signed
    server = ("--server", running.server.address)
    done = signer("verify", *args, "--json", *server, check=False)
    assert done.returncode == 3 and ExitCode.NOT_VERIFIED.value == 3, done.stderr
    doc = json.loads(done.stdout)
    assert doc["verified"] is False and not all(c["passed"] for c in doc["checks"])
    plain = signer("verify", *args, *server, check=False)
    assert plain.returncode == 3 and plain.stdout.startswith("NOT VERIFIED image ")
    assert "FAILED" in plain.stdout


def test_resign_json_keys_are_the_response_fields(
    running: Running, verified: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    image_id, _ = verified
    out = tmp_path / "resigned"
    done = signer(
        "resign",
        "--image-id",
        image_id,
        "--device",
        f"{RTDS_DEVICE},{UNKNOWN_DEVICE}",
        "--out-dir",
        str(out),
        "--json",
        "--server",
        running.server.address,
        check=False,
    )
    assert done.returncode == 4 and ExitCode.SOME_REFUSED.value == 4, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) == _fields(pb.ResignResponse)
    # each image's bytes are in its file, named instead of written out
    assert [set(i) for i in doc["images"]] == [
        _fields(pb.SignedImage) - {"upgrade_image"} | {"upgrade_image_file"}
    ]
    assert [set(r) for r in doc["refused"]] == [_fields(pb.DeviceRefusal)]
    assert doc["refused"][0]["device_id"] == UNKNOWN_DEVICE
    z1 = x509.load_pem_x509_certificate((running.vectors / "certs/Z1-supplier-ds.pem").read_bytes())
    ski = z1.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert doc["images"][0]["key_ski"] == ski.hex()
    assert doc["images"][0]["device_ids"] == [RTDS_DEVICE]
    written = Path(doc["images"][0]["upgrade_image_file"])
    assert written.read_bytes()[:4] == bytes.fromhex("1ef1ee0b")
    assert json.loads((out / "result.json").read_text()) == doc  # the same document
    only_known = signer(
        "resign",
        "--image-id",
        image_id,
        "--device",
        RTDS_DEVICE,
        "--out-dir",
        str(out),
        "--server",
        running.server.address,
    )
    assert only_known.returncode == ExitCode.OK and "refused" not in only_known.stdout


def test_build_duis_json_keys_are_the_response_fields(
    running: Running, verified: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    image_id, _ = verified
    request = tmp_path / "request.xml"
    args = ["--image-id", image_id, "--firmware-version", "01020304", "--out", str(request)]
    server = ("--server", running.server.address)
    done = signer(
        "build-duis",
        *args,
        "--device",
        f"{RTDS_DEVICE},{UNKNOWN_DEVICE}",
        "--json",
        *server,
        check=False,
    )
    assert done.returncode == ExitCode.SOME_REFUSED, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) == _fields(pb.BuildDUISResponse) - {"duis_request"} | {"duis_request_file"}
    assert [set(r) for r in doc["refused"]] == [_fields(pb.DeviceRefusal)]
    assert doc["device_ids"] == [RTDS_DEVICE] and doc["duis_request_file"] == str(request)
    assert doc["request_id"] and doc["request_id"] in request.read_text()
    plain = signer(
        "build-duis", *args, "--device", f"{RTDS_DEVICE},{UNKNOWN_DEVICE}", *server, check=False
    )
    assert plain.returncode == 4
    assert f"refused {UNKNOWN_DEVICE}: unknown_device: " in plain.stdout
    clean = signer("build-duis", *args, "--device", RTDS_DEVICE, *server)
    assert clean.returncode == ExitCode.OK and "refused" not in clean.stdout
