"""The README's worked examples, run to the end in development as a new user runs them.

`var/dev` is provisioned as scripts/dev-server does it and its server started; then, with the
real CLI from the directory holding `var/dev`: "Try it" (verify, resign, build-duis), the
worked example (CPL path and graph, verify, an activation with a refused device, the
development DCC's pre-command, sign-precommand, the activation reported done) and the
rotation walkthrough's eight steps (the development SMKI CA certifying the new key, the
development DCC updating and reading back the devices' cells). What the development
parties produce is checked with independent tools: xmlsec1 for the DCC's XML signatures, the
DUIS schema, `cryptography` for the CS06 signature and the certificate, and a CS06
pre-command laid out by hand from the spec.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from signer.cli.main import cli
from tests.support.dcc import xmlsec1
from tests.support.devenv import CONFIG, DevEnv, printed_activation_steps, provision
from tests.support.independent import assert_schema_valid, cs06_pre_command, xmlsec1_verify
from tests.support.smki_ca import SMKI_POLICY, method2_ski

SR = "{http://www.dccinterface.co.uk/ServiceUserGateway}"
SUPPLIER = "90-B3-D5-1F-30-01-00-00"
B1, B2, B3 = (f"00-DB-12-34-56-78-90-{x}" for x in ("B1", "B2", "B3"))
CFG = ("--config", str(CONFIG))


def _image_id(env: DevEnv) -> str:
    return (env.root / "var/dev/example/hash.hex").read_text().strip()


def _verify(env: DevEnv) -> str:
    """README "Try it", first call: the example delivery verifies against CPL entry DEV-2.0."""
    ex = "var/dev/example"
    out = env.signer(
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
    assert "VERIFIED" in out.stdout and "DEV-2.0" in out.stdout, out.stdout
    return _image_id(env)


def _records(stdout: str, key: str) -> list[dict[str, Any]]:
    """A listing's JSON: one document ``{key: [...]}`` (or a bare list), or JSON lines."""
    try:
        value = json.loads(stdout)
    except json.JSONDecodeError:
        return [json.loads(line) for line in stdout.splitlines() if line.strip()]
    rows = value[key] if isinstance(value, dict) else value
    assert isinstance(rows, list)
    return rows


def _keys(env: DevEnv) -> dict[str, dict[str, Any]]:
    listed = _records(env.signer("keys", "list", "--json", *CFG).stdout, "keys")
    return {k["label"]: k for k in listed}


def _dcc_certificate(env: DevEnv) -> x509.Certificate:
    return x509.load_pem_x509_certificate((env.root / "var/dev/dcc/cert.pem").read_bytes())


def _xmlsec1_accepts(document: bytes, cert: x509.Certificate, tmp: Path) -> None:
    xmlsec1()  # installed, or skipped (a failure under CI=true)
    checked = xmlsec1_verify(document, cert, tmp)
    assert checked.returncode == 0, checked.stderr


def test_try_it_and_the_worked_example_run_to_the_end(
    dev_env: DevEnv, vectors: Path, tmp_path: Path
) -> None:
    env = dev_env
    # "Try it": the three calls
    image_id = _verify(env)
    devices = ("--device", B1, "--device", B2)
    env.signer("resign", "--image-id", image_id, *devices, "--out-dir", "var/dev/out")
    env.signer(
        "build-duis",
        "--upgrade-image",
        "var/dev/out/supplier-ds.bin",
        "--device",
        B1,
        "--firmware-version",
        "00000002",
        "--out",
        "var/dev/out/request.xml",
    )
    assert_schema_valid((env.root / "var/dev/out/request.xml").read_bytes(), vectors / "xsd")
    assert env.signer("audit", "verify", *CFG).returncode == 0

    # the worked example
    path = env.signer("cpl", "path", "--from", "DEV-0.9", "--to", "DEV-2.0", *CFG)
    assert "DEV-0.9 -> DEV-1.0 -> DEV-2.0" in path.stdout
    env.signer("cpl", "graph", "--model", "DEV-ESME", "--out", "var/dev/graph.dot", *CFG)
    assert "DEV-2.0" in (env.root / "var/dev/graph.dot").read_text()
    assert _verify(env) == image_id
    activated = env.signer(
        "activate",
        "--image-id",
        image_id,
        "--device",
        B1,
        "--device",
        B3,
        "--out-dir",
        "var/dev/activation",
        check=False,
    )
    assert activated.returncode == 4, activated.stderr  # done, with B3 refused
    assert "1 request(s)" in activated.stdout and "1 refused" in activated.stdout
    refused = json.loads((env.root / "var/dev/activation/refused.jsonl").read_text())
    assert refused["device_id"] == B3
    assert refused["upgrade_path"] == ["DEV-0.9", "DEV-1.0", "DEV-2.0"]
    request = (env.root / f"var/dev/activation/{B1}.xml").read_bytes()
    rid = etree.fromstring(request).findtext(f"{SR}Header/{SR}RequestID")
    assert rid is not None

    # the development DCC answers the request with its pre-command, signed
    response_path = f"var/dev/dcc/responses/{B1}.xml"
    answered = env.signer(
        "dev",
        "dcc",
        "respond",
        "--request",
        f"var/dev/activation/{B1}.xml",
        "--out",
        response_path,
        "--json",
        *CFG,
    )
    assert json.loads(answered.stdout)["request_id"] == rid
    response = (env.root / response_path).read_bytes()
    _xmlsec1_accepts(response, _dcc_certificate(env), tmp_path)
    assert_schema_valid(response, vectors / "xsd")
    doc = etree.fromstring(response)
    assert doc.findtext(f"{SR}Header/{SR}RequestID") == rid
    payload = doc.findtext(f"{SR}Body/{SR}ResponseMessage/{SR}PreCommand/{SR}GBCSPayload")
    assert payload is not None
    pre_command = base64.b64decode(payload)
    assert pre_command == cs06_pre_command(  # laid out by hand from the spec
        originator=SUPPLIER,
        recipient=B1,
        counter=int(rid.rsplit(":", 1)[1]),
        firmware_hash=bytes.fromhex(image_id),
    )

    signed = env.signer(
        "sign-precommand", "--dcc-response", response_path, "--out-dir", "var/dev/signed"
    )
    assert rid in signed.stdout
    command = (env.root / "var/dev/signed/signed-pre-command.bin").read_bytes()
    assert command[: len(pre_command)] == pre_command and command[len(pre_command)] == 0x40
    raw = command[len(pre_command) + 1 :]
    supplier_key = env.token_certificate("supplier-ds").public_key()
    assert isinstance(supplier_key, ec.EllipticCurvePublicKey)
    supplier_key.verify(  # raises if the CS06 signature is not the device's key's
        encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
        pre_command[1:],
        ec.ECDSA(hashes.SHA256()),
    )
    assert_schema_valid(
        (env.root / "var/dev/signed/signed-pre-command.xml").read_bytes(), vectors / "xsd"
    )

    # the DCC reports the activation done: B1 now runs DEV-2.0
    assert env.signer("devices", "show", B1, "--json", *CFG).stdout.count("DEV-1.0") == 1
    done = env.signer(
        "dev", "dcc", "done", "--signed", "var/dev/signed/signed-pre-command.xml", *CFG
    )
    assert f"{B1}: now runs CPL entry DEV-2.0" in done.stdout
    shown = json.loads(env.signer("devices", "show", B1, "--json", *CFG).stdout)
    assert shown["current_entry_id"] == "DEV-2.0"
    again = env.signer(
        "sign-precommand",
        "--dcc-response",
        response_path,
        "--out-dir",
        "var/dev/signed2",
        check=False,
    )
    assert again.returncode != 0 and "already" in again.stderr  # a replay is refused


def test_the_printed_activation_steps_run_as_printed(dev_env: DevEnv) -> None:
    """What `dev provision` prints after the three calls (and scripts/dev-server shows)."""
    env = dev_env
    _verify(env)
    steps = printed_activation_steps(env.provision_output)
    assert [s[0] for s in steps] == ["activate", "dev", "sign-precommand", "dev"]
    assert steps[1][:3] == ["dev", "dcc", "respond"] and steps[3][:3] == ["dev", "dcc", "done"]
    first = env.signer(*steps[0], check=False)
    assert first.returncode == 4 and "1 refused" in first.stdout  # B3, as the README says
    for step in steps[1:]:
        env.signer(*step)
    shown = json.loads(env.signer("devices", "show", B1, "--json", *CFG).stdout)
    assert shown["current_entry_id"] == "DEV-2.0"


def test_key_rotation_walkthrough_in_development(dev_env: DevEnv, tmp_path: Path) -> None:
    env = dev_env
    env.env["SIGNER_CONFIG"] = str(CONFIG)  # step 0: export SIGNER_CONFIG
    old, new = "supplier-ds", "supplier-ds-2027"
    # 1. generate
    assert (
        "pending"
        in env.signer("keys", "generate", "--purpose", "supplier-ds", "--label", new).stdout
    )
    # 2. csr
    env.signer(
        "keys",
        "csr",
        "--label",
        new,
        "--eui",
        SUPPLIER,
        "--cn",
        "Supplier DS 2027",
        "--out",
        f"{new}.csr",
    )
    csr = x509.load_pem_x509_csr((env.root / f"{new}.csr").read_bytes())
    assert csr.is_signature_valid
    # 3. the (development) SMKI CA issues the certificate; install it
    issued = json.loads(
        env.signer("dev", "smki", "sign", f"{new}.csr", "--out", f"{new}.pem", "--json").stdout
    )
    cert = x509.load_pem_x509_certificate((env.root / f"{new}.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((env.root / "var/dev/smki-ca/cert.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public == csr.public_key()
    ski = method2_ski(public)
    assert issued["ski"] == ski.hex()
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest == ski
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_agreement
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies)
    assert policies.critical and [p.policy_identifier for p in policies.value] == [SMKI_POLICY]
    assert cert.subject == csr.subject
    env.signer("keys", "install-cert", "--label", new, f"{new}.pem")
    # 4. activate: both keys active
    assert "active" in env.signer("keys", "activate", "--label", new).stdout
    listed = _keys(env)
    assert listed[old]["state"] == listed[new]["state"] == "active"
    # 5. plan: every device still on the old key
    report = env.signer("keys", "rotation-report", "--from", old, "--to", new)
    (env.root / "still-on-old.txt").write_text(report.stdout)
    assert report.stdout.split() == [B1, B2, B3]
    # 6. the (development) DCC updates the cells and reads them back; import the responses
    updated = env.signer(
        "dev",
        "dcc",
        "update-credentials",
        "--certificate",
        f"{new}.pem",
        "--devices-file",
        "still-on-old.txt",
        "--out-dir",
        "responses",
        "--json",
    )
    written = json.loads(updated.stdout)["responses"]
    assert [w["device_id"] for w in written] == [B1, B2, B3]
    read_back = (env.root / f"responses/{B1}.xml").read_bytes()
    _xmlsec1_accepts(read_back, _dcc_certificate(env), tmp_path)
    responses = sorted(str(p.relative_to(env.root)) for p in (env.root / "responses").iterdir())
    imported = env.signer("devices", "import", *responses)
    assert f"{B1}: updated" in imported.stdout
    for device in (B1, B2, B3):
        cells = json.loads(env.signer("devices", "show", device, "--json").stdout)["cells"]
        assert [c["ski"] for c in cells if c["role"] == "02"] == [ski.hex()]
    final = env.signer("keys", "rotation-report", "--from", old, "--to", new)
    assert final.stdout.strip() == "" and "0 device(s) still trust" in final.stderr
    # the devices now get images signed with the new key
    env.signer(
        "resign", "--image-id", _verify(env), "--device", B2, "--out-dir", "var/dev/out-2027"
    )
    assert (env.root / f"var/dev/out-2027/{new}.bin").exists()
    # 7. retire the old key
    assert "retired" in env.signer("keys", "retire", "--label", old).stdout
    # 8. the record
    records = _records(env.signer("keys", "operations", "--json").stdout, "operations")
    done = [(r["operation"], r.get("key_label", r.get("label"))) for r in records]
    for step in ("generate", "csr", "install-cert", "activate"):
        assert (step, new) in done
    assert ("retire", old) in done


def _dev_commands(group: click.Group, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    ctx = click.Context(group)
    found: list[tuple[str, ...]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            found += _dev_commands(command, (*prefix, name))
        elif any(p.name == "config_path" for p in command.params):
            found.append((*prefix, name))
    return found


def test_every_dev_command_refuses_a_configuration_outside_development_mode(
    tmp_path: Path,
) -> None:
    env = provision(tmp_path)
    production = tmp_path / "not-dev.toml"
    text = env.config.read_text()
    assert "dev_mode = true" in text
    production.write_text(text.replace("dev_mode = true", "dev_mode = false"))
    production.chmod(0o600)
    any_file = tmp_path / "input.xml"
    any_file.write_bytes(b"<x/>")
    shutil.copy(tmp_path / "var/dev/dcc/cert.pem", tmp_path / "cert.pem")
    arguments = {
        ("dcc", "respond"): ["--request", str(any_file), "--out", str(tmp_path / "r.xml")],
        ("dcc", "done"): ["--signed", str(any_file)],
        ("dcc", "update-credentials"): [
            "--certificate",
            str(tmp_path / "cert.pem"),
            "--device",
            B1,
            "--out-dir",
            str(tmp_path / "responses"),
        ],
        ("smki", "sign"): [str(any_file), "--out", str(tmp_path / "c.pem")],
    }
    dev = cli.get_command(click.Context(cli), "dev")
    assert isinstance(dev, click.Group)
    assert sorted(_dev_commands(dev, ())) == sorted(arguments)  # each is tried below
    for command, args in arguments.items():
        refused = env.signer("dev", *command, *args, "--config", str(production), check=False)
        assert refused.returncode == 1, (command, refused.stderr)
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and "only in development mode" in lines[0], (command, lines)
        assert "Traceback" not in refused.stderr
    assert not (tmp_path / "r.xml").exists() and not (tmp_path / "c.pem").exists()
    assert not (tmp_path / "responses").exists()
    # the same commands on the development configuration get past the check
    ok = env.signer("dev", "dcc", "done", "--signed", str(any_file), *CFG, check=False)
    assert ok.returncode == 1 and "development mode" not in ok.stderr


def test_provision_adds_the_development_parties_to_an_older_directory(tmp_path: Path) -> None:
    """A `var/dev` without the development DCC and SMKI CA gets them on the next provision,
    and its ARP-signing key a certificate from the new CA (same SKI), so it keeps signing."""
    env = provision(tmp_path)
    text = env.config.read_text()
    older = text[: text.index("\n# the development DCC")] + "\n"
    assert "[dcc]" not in older and "[smki]" not in older
    env.config.write_text(older)
    for party in ("dcc", "smki-ca"):
        shutil.rmtree(tmp_path / "var/dev" / party)
    before = _keys(env)
    again = env.signer("dev", "provision", "--dir", "var/dev", "--json")
    added = json.loads(again.stdout)["added"]
    assert any("renewed" in a for a in added) and len(added) == 5, added
    for party in ("dcc", "smki-ca"):
        key = tmp_path / "var/dev" / party / "key.pem"
        assert oct(key.stat().st_mode & 0o777) == "0o600"
    after = _keys(env)
    assert after["supplier-ds"]["ski"] == before["supplier-ds"]["ski"]
    assert after["supplier-ds"]["state"] == "active"
    ca = x509.load_pem_x509_certificate((tmp_path / "var/dev/smki-ca/cert.pem").read_bytes())
    env.token_certificate("supplier-ds").verify_directly_issued_by(ca)
    third = env.signer("dev", "provision", "--dir", "var/dev", "--json")
    assert json.loads(third.stdout)["added"] == []  # nothing more to add
    digest = hashlib.sha256(env.config.read_bytes()).hexdigest()
    env.signer("dev", "provision", "--dir", "var/dev")
    assert hashlib.sha256(env.config.read_bytes()).hexdigest() == digest
