"""mTLS and the role policy on a real `signer serve` process, over a real TLS socket.

One TLS server for the module, run with the shipped policy's [roles] table and generated
clients: every role x every FirmwareSigner RPC, then the handshake failures (no client
certificate, an untrusted CA, an expired certificate) and the client without a role.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf.descriptor import MethodDescriptor
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from signer.api import auth
from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.cli import client as client_cli
from signer.limits import CHANNEL_OPTIONS
from tests.support.constants import ROOT
from tests.support.hsm import Hsm
from tests.support.scrape import scrape, total
from tests.support.server import Running, ServerProcess, start_server, write_config
from tests.support.smki_ca import TestCa
from tests.support.tlsca import CertificateAuthority, Issued

SERVICE = pb.DESCRIPTOR.services_by_name["FirmwareSigner"]
RPCS = [m.name for m in SERVICE.methods]

# The decision for every cell, written out here on purpose and not read from the policy:
# widening the shipped policy, or adding an RPC without deciding who may call it, fails.
Y, N = True, False
ROLES = ("manufacturer", "supplier", "key-admin", "auditor", "ops", "approver")
MATRIX: dict[str, tuple[bool, bool, bool, bool, bool, bool]] = {
    #                        manufacturer supplier key-admin auditor ops approver
    "VerifyManufacturer": (Y, N, N, N, N, N),
    "Resign": (N, Y, N, N, N, N),
    "BuildDUIS": (N, Y, N, N, N, N),
    "GetUpgradePath": (N, Y, N, N, N, N),
    "BuildActivation": (N, Y, N, N, N, N),
    "StreamActivation": (N, Y, N, N, N, N),
    "SignPreCommand": (N, Y, N, N, N, N),
    "StreamSignPreCommands": (N, Y, N, N, N, N),
    "ListKeys": (N, Y, Y, Y, Y, N),
    # campaigns, four eyes: suppliers plan and apply, approvers review and decide
    "PlanCampaign": (N, Y, N, N, N, N),
    "GetCampaign": (N, Y, N, N, N, Y),
    "ApproveCampaign": (N, N, N, N, N, Y),
    "RejectCampaign": (N, N, N, N, N, Y),
    "ApplyCampaign": (N, Y, N, N, N, N),
}
SAN_CLIENT = "URI:spiffe://signer.test/ops-sidecar"


def needed(rpc: str) -> list[str]:
    return [role for role, ok in zip(ROLES, MATRIX[rpc], strict=True) if ok]


@dataclass
class TlsServer:
    server: ServerProcess
    ca: CertificateAuthority
    certs: dict[str, Issued]  # role name, or "san", "stranger", "untrusted", "expired"
    channels: dict[str, grpc.Channel]

    def channel(self, name: str) -> grpc.Channel:
        if name not in self.channels:
            cert = self.certs[name]
            creds = grpc.ssl_channel_credentials(
                root_certificates=self.ca.cert_path.read_bytes(),
                private_key=cert.key_path.read_bytes(),
                certificate_chain=cert.cert_path.read_bytes(),
            )
            self.channels[name] = grpc.secure_channel(
                self.server.address, creds, options=CHANNEL_OPTIONS
            )
        return self.channels[name]

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.server.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # gRPC core's own lines
        return out


def policy_text() -> str:
    """The shipped [roles] table, and one [[clients]] entry per generated client."""
    shipped = tomllib.loads((ROOT / "deploy/policy.example.toml").read_text())
    lines = ["[roles]"] + [
        f"{role} = {json.dumps(rpcs)}" for role, rpcs in shipped["roles"].items()
    ]
    for role in ROLES:
        lines += ["", "[[clients]]", f'cn = "{role}-client"', f'roles = ["{role}"]']
    lines += ["", "[[clients]]", f'san = "{SAN_CLIENT}"', 'roles = ["ops"]']
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def tls(hsm: Hsm, vectors: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    tmp = tmp_path_factory.mktemp("tls")
    ca = CertificateAuthority(tmp / "pki")
    other = CertificateAuthority(tmp / "other", name="Untrusted CA")
    certs = {role: ca.client(role, f"{role}-client") for role in ROLES}
    # matched by its SAN only: its CN is in no entry
    certs["san"] = ca.client("san", "sidecar-7f3a", sans=(SAN_CLIENT,))
    certs["stranger"] = ca.client("stranger", "stranger")
    # two CNs, one of them listed, in either DER order: which is "the" CN is ambiguous
    certs["two-cns"] = ca.client("two-cns", "manufacturer-client", more_cns=("stranger",))
    certs["two-cns-swapped"] = ca.client(
        "two-cns-swapped", "stranger", more_cns=("manufacturer-client",)
    )
    # both name a listed client: only the handshake stops them
    certs["untrusted"] = other.client("untrusted", "supplier-client")
    certs["expired"] = ca.client("expired", "supplier-client", expired=True)
    server_cert = ca.server()
    policy = tmp / "policy.toml"
    policy.write_text(policy_text())
    tls_section = (
        f'[tls]\ncert = "{server_cert.cert_path}"\nkey = "{server_cert.key_path}"\n'
        f'client_ca = "{ca.cert_path}"\npolicy = "{policy}"\n'
    )
    config = write_config(
        tmp / "signer.toml",
        hsm,
        f"sqlite:///{tmp / 'signer.db'}",
        dev_mode=False,
        # production refuses to start without the schema and the SMKI issuers
        schema_dir=vectors / "xsd",
        issuers=[TestCa().write(tmp / "smki-issuer.pem")],
        extra=tls_section,
    )
    server = start_server(config, tmp / "server.log")
    running = TlsServer(server, ca, certs, {})
    yield running
    for channel in running.channels.values():
        channel.close()
    assert server.stop() == 0


def call(
    channel: grpc.Channel, rpc: str, request_id: str | None = None
) -> tuple[grpc.StatusCode, str]:
    """Call one FirmwareSigner RPC with an empty request (streams: no message at all)."""
    method: MethodDescriptor = SERVICE.methods_by_name[rpc]
    fn = getattr(pb_grpc.FirmwareSignerStub(channel), rpc)
    argument = iter(()) if method.client_streaming else getattr(pb, method.input_type.name)()
    metadata = (("x-request-id", request_id),) if request_id else None
    try:
        result = fn(argument, timeout=10, metadata=metadata)
        if method.server_streaming:
            list(result)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def test_the_matrix_decides_every_rpc_and_every_role() -> None:
    assert set(MATRIX) == set(RPCS), "every FirmwareSigner RPC needs a row in MATRIX"
    assert auth.ROLES == ROLES


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("rpc", RPCS)
def test_role_rpc_matrix(tls: TlsServer, role: str, rpc: str) -> None:
    assert rpc in MATRIX, f"no decision for {rpc}: add it to MATRIX and to the shipped policy"
    code, details = call(tls.channel(role), rpc)
    if MATRIX[rpc][ROLES.index(role)]:
        # past the policy: an empty request may well be refused as INVALID_ARGUMENT
        assert code not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAVAILABLE), details
    else:
        roles = needed(rpc)
        need = f"role {roles[0]}" if len(roles) == 1 else f"one of the roles {', '.join(roles)}"
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert details == (
            f"{rpc} needs {need}; client CN={role}-client,O=Signer Tests has roles: {role}"
        )


def test_a_client_matched_by_san_gets_that_entrys_roles(tls: TlsServer) -> None:
    channel = tls.channel("san")
    assert call(channel, "ListKeys")[0] == grpc.StatusCode.OK
    code, details = call(channel, "Resign")
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert (
        details == "Resign needs role supplier; client CN=sidecar-7f3a,O=Signer Tests "
        "has roles: ops"
    )


def test_a_trusted_client_without_an_entry_has_no_role_and_the_denial_is_logged(
    tls: TlsServer,
) -> None:
    code, details = call(tls.channel("stranger"), "ListKeys", request_id="auth-stranger-1")
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert details == (
        "ListKeys needs one of the roles supplier, key-admin, auditor, ops; "
        "client CN=stranger,O=Signer Tests has no role"
    )
    logged = [r for r in tls.log_lines() if r.get("client_request_id") == "auth-stranger-1"]
    denial = next(r for r in logged if r["message"].startswith("permission denied"))
    assert denial["level"] == "WARNING" and denial["client"] == "CN=stranger,O=Signer Tests"
    assert details in denial["message"]
    assert any(r.get("grpc_code") == "PERMISSION_DENIED" for r in logged)


@pytest.mark.parametrize("who", ["two-cns", "two-cns-swapped"])
def test_a_certificate_with_two_common_names_matches_no_cn_entry(tls: TlsServer, who: str) -> None:
    code, details = call(tls.channel(who), "VerifyManufacturer")
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "has no role" in details


def test_health_and_reflection_are_open_to_any_authenticated_client(tls: TlsServer) -> None:
    for name in (*ROLES, "san", "stranger"):
        stub = health_pb2_grpc.HealthStub(tls.channel(name))
        answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(tls.channel("stranger"))
    answers = list(
        reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
    )
    assert auth.SERVICE in {s.name for s in answers[0].list_services_response.service}
    # reflection v1 too: its messages are v1alpha's on the wire (signer.api.reflection)
    v1 = tls.channel("stranger").stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    [answer] = list(v1(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
    assert auth.SERVICE in {s.name for s in answer.list_services_response.service}


def test_a_denial_carries_the_rich_error_details(tls: TlsServer) -> None:
    stub = pb_grpc.FirmwareSignerStub(tls.channel("supplier"))
    with pytest.raises(grpc.RpcError) as err:
        stub.VerifyManufacturer(pb.VerifyManufacturerRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    status = rpc_status.from_call(err.value)  # type: ignore[arg-type]
    assert status is not None
    assert (status.code, status.message) == (err.value.code().value[0], err.value.details())
    [packed] = status.details
    info = error_details_pb2.ErrorInfo()
    assert packed.Unpack(info)
    assert (info.reason, info.domain) == ("PERMISSION_DENIED", "signer.v1")
    assert dict(info.metadata) == {
        "method": "signer.v1.FirmwareSigner/VerifyManufacturer",
        "roles_held": "supplier",
        "roles_needed": "manufacturer",
    }


HANDSHAKE_FAILURES = "signer_tls_handshake_failures_total"
#: what each client's refusal is counted as, and the OpenSSL text its log line carries
REFUSED_AS = {
    "no certificate": ("no_certificate", "PEER_DID_NOT_RETURN_A_CERTIFICATE"),
    "untrusted": ("certificate_verify_failed", "unable to get local issuer certificate"),
    "expired": ("certificate_verify_failed", "certificate has expired"),
    "plaintext": ("not_tls", "WRONG_VERSION_NUMBER"),
}


def refused_handshake(tls: TlsServer, who: str) -> None:
    """One call by ``who``: it never passes the handshake, and the server keeps serving."""
    ca = tls.ca.cert_path.read_bytes()
    if who == "plaintext":
        channel = grpc.insecure_channel(tls.server.address)
    elif who == "no certificate":
        channel = grpc.secure_channel(
            tls.server.address, grpc.ssl_channel_credentials(root_certificates=ca)
        )
    else:
        cert = tls.certs[who]
        creds = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=cert.key_path.read_bytes(),
            certificate_chain=cert.cert_path.read_bytes(),
        )
        channel = grpc.secure_channel(tls.server.address, creds)
    with channel:
        assert call(channel, "ListKeys")[0] == grpc.StatusCode.UNAVAILABLE
    assert tls.server.proc.poll() is None
    assert call(tls.channel("supplier"), "ListKeys")[0] == grpc.StatusCode.OK


@pytest.mark.parametrize("who", list(REFUSED_AS))
def test_a_refused_handshake_is_counted_and_logged_and_the_server_keeps_serving(
    tls: TlsServer, who: str
) -> None:
    reason, text = REFUSED_AS[who]
    assert tls.server.metrics is not None
    before = total(scrape(tls.server.metrics), HANDSHAKE_FAILURES, reason=reason)
    logged = sum(1 for r in tls.log_lines() if text in r["message"])
    refused_handshake(tls, who)
    # counted from gRPC core's stderr line by the relay process: a moment later
    deadline = time.monotonic() + 10
    while total(scrape(tls.server.metrics), HANDSHAKE_FAILURES, reason=reason) == before:
        assert time.monotonic() < deadline, f"{who}: no {reason} handshake failure counted"
        time.sleep(0.05)
    records = [r for r in tls.log_lines() if text in r["message"]]
    assert len(records) > logged
    assert records[-1]["level"] == "WARNING"
    assert records[-1]["message"].startswith(f"TLS handshake refused ({reason}): ")
    # gRPC core's own line still reaches stderr, as it wrote it
    assert any(
        text in line
        for line in tls.server.log.read_text().splitlines()
        if "Handshake failed with error" in line and not line.startswith("{")
    )


def test_the_policy_is_logged_at_start(tls: TlsServer) -> None:
    assert any(
        r["message"].startswith("role policy ")
        and "manufacturer: VerifyManufacturer" in r["message"]
        for r in tls.log_lines()
    )


def test_cli_client_over_mtls_with_flags_and_environment(tls: TlsServer, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not an upgrade image")

    def flags(name: str) -> list[str]:
        cert = tls.certs[name]
        return [
            "--tls-ca",
            str(tls.ca.cert_path),
            "--tls-cert",
            str(cert.cert_path),
            "--tls-key",
            str(cert.key_path),
        ]

    runner = CliRunner()
    server = ["--server", tls.server.address, "--gbcs", str(junk)]
    allowed = runner.invoke(client_cli.verify, [*server, *flags("manufacturer")])
    # past the handshake and the policy: the junk itself is refused
    assert allowed.exit_code == 1
    # the refused field came from a file: the CLI names it (issue 13)
    assert allowed.stderr.startswith(f"Error: {junk}: invalid request: upgrade_image"), (
        allowed.output
    )

    cert = tls.certs["supplier"]
    denied = runner.invoke(
        client_cli.verify,
        server,
        env={
            "SIGNER_CLIENT_CA": str(tls.ca.cert_path),
            "SIGNER_CLIENT_CERT": str(cert.cert_path),
            "SIGNER_CLIENT_KEY": str(cert.key_path),
        },
    )
    assert denied.exit_code == 1
    assert (
        "Error: permission denied: VerifyManufacturer needs role manufacturer; "
        "client CN=supplier-client,O=Signer Tests has roles: supplier"
    ) in denied.stderr

    plaintext = runner.invoke(client_cli.verify, server)
    assert plaintext.exit_code == 1 and "hint: this call went in plaintext" in plaintext.stderr


def test_dev_mode_warns_once_at_start_not_on_every_call(running: Running) -> None:
    for n in (1, 2):
        running.stub.ListKeys(
            pb.ListKeysRequest(), timeout=10, metadata=(("x-request-id", f"auth-dev-{n}"),)
        )
    records = [
        json.loads(line)
        for line in running.server.log.read_text().splitlines()
        if line.startswith("{")
    ]
    assert any(
        r["level"] == "WARNING"
        and r["message"].startswith("DEVELOPMENT MODE")
        and r["request_id"] == "-"
        for r in records
    )  # the start-up warning
    for n in (1, 2):
        mine = [r for r in records if r.get("client_request_id") == f"auth-dev-{n}"]
        assert [r["level"] for r in mine] == ["INFO"]  # the call's closing line only
        assert mine[0]["client"] == "unauthenticated"


def test_a_development_identity_is_refused_outside_development_mode(tls: TlsServer) -> None:
    stub = pb_grpc.FirmwareSignerStub(tls.channel("supplier"))
    with pytest.raises(grpc.RpcError) as err:
        stub.ListKeys(
            pb.ListKeysRequest(), timeout=10, metadata=(("signer-dev-identity", "alice"),)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "development mode" in (err.value.details() or "")
    status = rpc_status.from_call(err.value)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "DEV_IDENTITY_OUTSIDE_DEV"
    assert info.metadata["field"] == "signer-dev-identity"
    # without it the same client is served as itself
    assert call(tls.channel("supplier"), "ListKeys")[0] == grpc.StatusCode.OK


def test_a_development_server_takes_the_callers_name_from_the_metadata(running: Running) -> None:
    for who in ("alice", "bob"):
        running.stub.ListKeys(
            pb.ListKeysRequest(),
            timeout=10,
            metadata=(("x-request-id", f"auth-dev-as-{who}"), ("signer-dev-identity", who)),
        )
    records = [
        json.loads(line)
        for line in running.server.log.read_text().splitlines()
        if line.startswith("{")
    ]
    for who in ("alice", "bob"):
        [mine] = [r for r in records if r.get("client_request_id") == f"auth-dev-as-{who}"]
        assert mine["client"] == f"dev:{who}"
    with pytest.raises(grpc.RpcError) as err:
        running.stub.ListKeys(
            pb.ListKeysRequest(), timeout=10, metadata=(("signer-dev-identity", "a b/c"),)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "signer-dev-identity" in (err.value.details() or "")
