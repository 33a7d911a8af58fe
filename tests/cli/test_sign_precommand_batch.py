"""`signer sign-precommand`'s batch form (StreamSignPreCommands) against a real dev server.

Two devices are activated and the development DCC answers both 11.3 requests; a third
response is tampered with after the DCC signed it. The batch signs the two genuine ones and
refuses the tampered one without stopping (exit 4); a genuine one sent again is refused as
already signed. Each CS06 signature is checked with `cryptography` against the Supplier
certificate read off the token with OpenSC, each DUIS request with the DUIS schema.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.cli.output import ExitCode
from tests.support.devenv import CONFIG, DevEnv
from tests.support.independent import assert_schema_valid

SR = "{http://www.dccinterface.co.uk/ServiceUserGateway}"
B1, B2 = "00-DB-12-34-56-78-90-B1", "00-DB-12-34-56-78-90-B2"
CFG = ("--config", str(CONFIG))
BYTES_WRITTEN = {"signed_pre_command", "duis_request"}


def _fields(message: Any) -> set[str]:
    return set(message.DESCRIPTOR.fields_by_name)


def _verified_image(env: DevEnv) -> str:
    ex = "var/dev/example"
    env.signer(
        "verify",
        "--ota-header",
        f"{ex}/ota_header.bin",
        "--manufacturer-image",
        f"{ex}/manufacturer_image.bin",
        "--signature",
        f"{ex}/manufacturer_signature.der",
        "--hash",
        f"{ex}/hash.hex",
    )
    return (env.root / f"{ex}/hash.hex").read_text().strip()


def _responses(env: DevEnv, image_id: str, devices: tuple[str, ...], out: str) -> dict[str, str]:
    """Activate ``devices``, have the dev DCC answer each request in ``out``/<device>.xml;
    {device: RequestID}."""
    ids = [a for d in devices for a in ("--device", d)]
    activated = env.signer(
        "activate", "--image-id", image_id, *ids, "--out-dir", "var/dev/activation", "--json"
    )
    requests = [json.loads(line)["request"] for line in activated.stdout.splitlines()]
    for request in requests:  # the same file-path convention as sign-precommand's
        assert set(request) == {"device_id", "request_id", "duis_request_file"}
        assert request["duis_request_file"] == f"var/dev/activation/{request['device_id']}.xml"
    assert [r["device_id"] for r in requests] == list(devices)
    rids = {}
    for device in devices:
        answered = env.signer(
            "dev",
            "dcc",
            "respond",
            "--request",
            f"var/dev/activation/{device}.xml",
            "--out",
            f"{out}/{device}.xml",
            "--json",
            *CFG,
        )
        rids[device] = json.loads(answered.stdout)["request_id"]
    return rids


def _signer_reading(env: DevEnv, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A client command as `DevEnv.signer` runs it, with ``stdin`` on its standard input."""
    assert env.server is not None
    return subprocess.run(
        [sys.executable, "-m", "signer.cli.main", *args, "--server", env.server.address],
        cwd=env.root,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env.env,
        check=False,
    )


def _pre_command(response: bytes) -> bytes:
    payload = etree.fromstring(response).findtext(
        f"{SR}Body/{SR}ResponseMessage/{SR}PreCommand/{SR}GBCSPayload"
    )
    assert payload is not None
    return base64.b64decode(payload)


def _assert_cs06_signed(signed: bytes, pre_command: bytes, key: ec.EllipticCurvePublicKey) -> None:
    """APDU || 0x40 || r||s, the signature over the APDU after its first byte (GBCS CS06)."""
    assert signed[: len(pre_command)] == pre_command and signed[len(pre_command)] == 0x40
    raw = signed[len(pre_command) + 1 :]
    assert len(raw) == 64
    key.verify(  # raises unless the Supplier key signed it
        encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
        pre_command[1:],
        ec.ECDSA(hashes.SHA256()),
    )


def test_batch_signs_the_good_and_refuses_the_bad_one_on_its_own(
    dev_env: DevEnv, vectors: Path
) -> None:
    env = dev_env
    rids = _responses(env, _verified_image(env), (B1, B2), "responses")
    genuine = (env.root / f"responses/{B1}.xml").read_bytes()
    # after the DCC signed it: its RequestID's counter moved by one, so the signature fails
    rid = rids[B1].encode()
    assert genuine.count(rid) >= 1
    tampered = genuine.replace(rid, rid[:-1] + (b"8" if rid[-1:] != b"8" else b"9"))
    (env.root / "responses/zz-tampered.xml").write_bytes(tampered)
    (env.root / "responses/.hidden.xml").write_bytes(b"left out: hidden")

    # a directory and --batch 2: three files in two streamed messages
    done = env.signer(
        "sign-precommand", "responses", "--batch", "2", "--out-dir", "signed", "--json", check=False
    )
    assert done.returncode == ExitCode.SOME_REFUSED, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [sorted(line) for line in lines] == [
        ["signed", "source_file"],
        ["signed", "source_file"],
        ["refused", "source_file"],
    ]
    assert [line["source_file"] for line in lines] == [
        f"responses/{B1}.xml",
        f"responses/{B2}.xml",
        "responses/zz-tampered.xml",
    ]
    supplier = env.token_certificate("supplier-ds").public_key()
    assert isinstance(supplier, ec.EllipticCurvePublicKey)
    for line, device in zip(lines[:2], (B1, B2), strict=True):
        signed = line["signed"]
        # the proto's fields, each written one replaced by <field>_file
        assert set(signed) == _fields(pb.SignPreCommandResponse) - BYTES_WRITTEN | {
            f"{f}_file" for f in BYTES_WRITTEN
        }
        assert signed["device_id"] == device and signed["request_id"] == rids[device]
        assert signed["signed_pre_command_file"] == f"signed/{device}.bin"
        assert signed["duis_request_file"] == f"signed/{device}.xml"
        response = (env.root / f"responses/{device}.xml").read_bytes()
        command = (env.root / f"signed/{device}.bin").read_bytes()
        _assert_cs06_signed(command, _pre_command(response), supplier)
        request = (env.root / f"signed/{device}.xml").read_bytes()
        assert_schema_valid(request, vectors / "xsd")
    refused = lines[2]["refused"]
    assert set(refused) == _fields(pb.PreCommandRefusal)
    assert refused["code"] == "pre_command_unauthenticated" and refused["device_id"] == ""
    assert refused["index"] == 0  # the first of the second message
    assert not (env.root / "signed/zz-tampered.bin").exists()
    assert sorted(p.name for p in (env.root / "signed").iterdir()) == sorted(
        [f"{B1}.bin", f"{B1}.xml", f"{B2}.bin", f"{B2}.xml", "refused.jsonl"]
    )
    rejects = [json.loads(r) for r in (env.root / "signed/refused.jsonl").read_text().splitlines()]
    assert rejects == [{**refused, "source_file": "responses/zz-tampered.xml"}]

    # people: one line per pre-command, then the summary; a replay is refused on its own
    again = _signer_reading(
        env,
        f"responses/{B2}.xml\n\nresponses/zz-tampered.xml\n",
        "sign-precommand",
        "--from-file",
        "-",
        "--out-dir",
        "signed-again",
    )
    assert again.returncode == 4, again.stderr
    out = again.stdout.splitlines()
    assert len(out) == 3, again.stdout
    assert out[0].startswith(f"refused {B2}: pre_command_already_signed: responses/{B2}.xml: ")
    assert out[1].startswith("refused responses/zz-tampered.xml: pre_command_unauthenticated: ")
    assert "dcc_responses[" not in again.stdout  # the file, not its place in the batch
    assert out[2] == "0 signed pre-command(s) in signed-again, 2 refused (refused.jsonl)"


def test_batch_human_lines_and_exit_0_when_all_are_signed(dev_env: DevEnv) -> None:
    env = dev_env
    rids = _responses(env, _verified_image(env), (B1, B2), "responses")
    listing = env.root / "list.txt"
    listing.write_text(f"responses/{B2}.xml\nresponses/{B1}.xml\n")
    done = env.signer(
        "sign-precommand", f"responses/{B1}.xml", "--from-file", "list.txt", "--out-dir", "s"
    )
    out = done.stdout.splitlines()
    # B1 once (named twice), in the order given
    assert out == [
        f"signed {B1} (RequestID {rids[B1]}) from responses/{B1}.xml: s/{B1}.bin, s/{B1}.xml",
        f"signed {B2} (RequestID {rids[B2]}) from responses/{B2}.xml: s/{B2}.bin, s/{B2}.xml",
        "2 signed pre-command(s) in s, 0 refused (refused.jsonl)",
    ]
    assert (env.root / "s/refused.jsonl").read_text() == ""


def test_single_form_json_names_both_files(dev_env: DevEnv) -> None:
    env = dev_env
    rids = _responses(env, _verified_image(env), (B1,), "responses")
    done = env.signer(
        "sign-precommand", "--dcc-response", f"responses/{B1}.xml", "--out-dir", "one", "--json"
    )
    doc = json.loads(done.stdout)
    assert doc == {
        "device_id": B1,
        "request_id": rids[B1],
        "signed_pre_command_file": "one/signed-pre-command.bin",
        "duis_request_file": "one/signed-pre-command.xml",
    }
    assert (env.root / "one/signed-pre-command.bin").read_bytes()[-65] == 0x40


def test_batch_file_problems_name_the_file_and_send_nothing(dev_env: DevEnv) -> None:
    env = dev_env
    (env.root / "empty").mkdir()
    (env.root / "list.txt").write_text("responses/none.xml\n")
    (env.root / "odd.hex").write_text("abc\n")
    cases = {
        ("sign-precommand", "empty"): "Error: empty: is a directory with no file to sign",
        ("sign-precommand", "--from-file", "list.txt"): (
            "Error: list.txt: line 1: responses/none.xml: no such file or directory"
        ),
        ("sign-precommand", "odd.hex", "--unauthenticated-gbcs"): (
            "Error: odd.hex: 3 hex digits: an odd number"
        ),
    }
    for args, error in cases.items():
        failed = env.signer(*args, "--out-dir", "out", check=False)
        assert failed.returncode == ExitCode.ERROR, (args, failed.stderr)
        assert failed.stderr.strip().splitlines()[-1] == error, (args, failed.stderr)
        assert "Traceback" not in failed.stderr
    mixed = env.signer(
        "sign-precommand", "odd.hex", "--dcc-response", "odd.hex", "--out-dir", "o", check=False
    )
    assert mixed.returncode == ExitCode.USAGE and "not both" in mixed.stderr
