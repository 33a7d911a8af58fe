"""The README's campaign walkthrough, as a new user runs it against the development server:
alice plans a campaign (nothing signed), her own approval is refused, bob and carol approve
(`--as`, development identities), alice applies it into a directory. What apply wrote is
checked apart from the signer's code: the upgrade image's ARP signature with `cryptography`
against the supplier-ds certificate read from the token with OpenSC, the DUIS requests with
xmlsec1 and the DUIS schema, and report.json per device.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lxml import etree

from tests.support.devenv import DevEnv, provision
from tests.support.independent import (
    assert_schema_valid,
    duis_fields,
    raw_signature_verifies,
    split_upgrade_image,
    xmlsec1_verify,
)
from tests.support.server import start_server

B1, B2, B3 = (f"00-DB-12-34-56-78-90-{x}" for x in ("B1", "B2", "B3"))
SR = "{http://www.dccinterface.co.uk/ServiceUserGateway}"
OUT = Path("var/dev/campaign")


@contextmanager
def dev_server_needing_two_approvals(root: Path, vectors: Path) -> Iterator[DevEnv]:
    """`SIGNER_CAMPAIGN_APPROVALS=2 scripts/dev-server`, on ports the system picks."""
    env = provision(root, schema_dir=vectors / "xsd")
    env.server = start_server(
        env.config,
        root / "server.log",
        env={
            "SIGNER_LISTEN": "127.0.0.1:0",
            "SIGNER_METRICS_LISTEN": "127.0.0.1:0",
            "SIGNER_EPHEMERAL_PORTS_FOR_TESTS": "1",
            "SIGNER_DEV_MODE": "1",
            "SIGNER_CAMPAIGN_APPROVALS": "2",
        },
    )
    try:
        yield env
    finally:
        assert env.stop() == 0


def campaign(env: DevEnv, *args: str, code: int = 0) -> str:
    """``signer campaign ARGS`` against the dev server; its stdout, after its exit code."""
    assert env.server is not None
    out = env.signer("campaign", *args, "--server", env.server.address, check=False)
    assert out.returncode == code, f"exit {out.returncode}:\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


def test_the_campaign_walkthrough_plan_two_approvals_apply(vectors: Path, tmp_path: Path) -> None:
    with dev_server_needing_two_approvals(tmp_path, vectors) as env:
        assert env.server is not None
        image_id = (env.root / "var/dev/example/hash.hex").read_text().strip()
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
            "--server",
            env.server.address,
        )
        devices = ("--device", B1, "--device", B2, "--device", B3)
        planned = campaign(
            env,
            "plan",
            "--as",
            "alice",
            "--image-id",
            image_id,
            "--produce",
            "both",
            "--firmware-version",
            "00000002",
            *devices,
            code=4,  # planned, with B3 refused (it runs DEV-0.9)
        )
        found = re.search(r"^plan ([0-9a-f]{64})$", planned, flags=re.M)
        assert found, planned
        plan_id = found.group(1)
        assert "requested by dev:alice" in planned
        assert "3 (2 eligible, 1 refused)" in planned
        assert "approvals: 0 of 2 required" in planned
        assert "not_permitted_predecessor" in planned
        assert f"signer campaign approve {plan_id}" in planned

        # the JSON is the API's plan; planning again is the same plan
        again = json.loads(
            campaign(
                env,
                "plan",
                "--as",
                "alice",
                "--image-id",
                image_id,
                "--produce",
                "both",
                "--firmware-version",
                "00000002",
                *devices,
                "--json",
                code=4,
            )
        )
        assert again["plan_id"] == plan_id and again["state"] == "CAMPAIGN_STATE_PLANNED"
        assert again["by_key"] == [{"name": "supplier-ds", "devices": "2"}]

        mine = campaign(env, "approve", plan_id, "--as", "alice", code=1)
        assert mine.startswith("Error: refused: ") and "\n" not in mine.strip(), mine
        early = campaign(env, "apply", plan_id, "--as", "alice", "--out-dir", str(OUT), code=1)
        assert "Error: refused:" in early
        once = campaign(env, "approve", plan_id, "--as", "bob", "--comment", "counts checked")
        assert "approvals: 1 of 2 required" in once and "dev:bob" in once
        twice = campaign(env, "approve", plan_id, "--as", "bob", code=1)
        assert "Error: refused:" in twice
        done = campaign(env, "approve", plan_id, "--as", "carol")
        assert "state: approved" in done and f"signer campaign apply {plan_id}" in done

        shown = campaign(
            env, "show", plan_id, "--devices", "--graph", "var/dev/campaign.dot", "--as", "bob"
        )
        assert B3 in shown and "refused: not_permitted_predecessor" in shown
        dot = (env.root / "var/dev/campaign.dot").read_text()
        assert dot.startswith("digraph campaign {") and "legend" in dot and "refused" in dot

        listed = json.loads(campaign(env, "show", plan_id, "--json"))
        assert set(listed) == {"plan"} and listed["plan"]["state"] == "CAMPAIGN_STATE_APPROVED"
        assert [a["approver"] for a in listed["plan"]["approvals"]] == ["dev:bob", "dev:carol"]

        applied = campaign(env, "apply", plan_id, "--as", "alice", "--out-dir", str(OUT), code=4)
        assert f"report: {OUT / 'report.json'}" in applied

        out = env.root / OUT
        check_artifacts(env, out, vectors, tmp_path)
        report = json.loads((out / "report.json").read_text())
        assert report["plan_id"] == plan_id and report["complete"] is True
        assert report["plan"]["state"] == "CAMPAIGN_STATE_APPLIED"
        assert {d: e["outcome"] for d, e in report["devices"].items()} == {
            B1: "issued",
            B2: "issued",
            B3: "refused",
        }
        assert report["devices"][B3]["refused"]["upgrade_path"] == ["DEV-0.9", "DEV-1.0", "DEV-2.0"]
        for device in (B1, B2):
            files = {Path(f).name for f in report["devices"][device]["files"]}
            assert {"supplier-ds.bin", f"{device}.xml"} <= files
            assert len(report["devices"][device]["request_ids"]) == 2  # SR 11.1 and SR 11.3

        # applied once: a second apply is refused, nothing more is signed
        after = campaign(env, "apply", plan_id, "--as", "alice", "--out-dir", str(OUT), code=1)
        assert "Error: refused:" in after


def check_artifacts(env: DevEnv, out: Path, vectors: Path, tmp: Path) -> None:
    """Everything apply wrote, checked with tools that are not the signer's."""
    assert not list(out.glob(".*.part"))  # every file renamed into place, whole
    supplier_ds = env.token_certificate("supplier-ds")
    xml_sign = env.token_certificate("xml-sign")
    manufacturer_image = (env.root / "var/dev/example/manufacturer_image.bin").read_bytes()

    image = (out / "supplier-ds.bin").read_bytes()
    _header, signed_image, _force, signature = split_upgrade_image(image)
    assert signed_image == manufacturer_image
    assert raw_signature_verifies(supplier_ds, signed_image, signature)

    [update] = sorted(out.glob("update-*.xml"))
    document = update.read_bytes()
    assert_schema_valid(document, vectors / "xsd")
    checked = xmlsec1_verify(document, xml_sign, tmp)
    assert checked.returncode == 0, checked.stderr
    fields = duis_fields(document)
    assert fields["ServiceReference"] == "11.1" and fields["FirmwareVersion"] == "00000002"

    for device in (B1, B2):
        activation = (out / f"{device}.xml").read_bytes()
        assert_schema_valid(activation, vectors / "xsd")
        checked = xmlsec1_verify(activation, xml_sign, tmp)
        assert checked.returncode == 0, checked.stderr
        rid = etree.fromstring(activation).findtext(f"{SR}Header/{SR}RequestID")
        assert rid is not None and device in rid
        firmware_hash = etree.fromstring(activation).findtext(f".//{SR}FirmwareHash")
        assert firmware_hash is not None
        assert bytes.fromhex(firmware_hash) == hashlib.sha256(manufacturer_image).digest()
    assert not (out / f"{B3}.xml").exists()
