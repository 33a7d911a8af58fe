"""CRLs and SIGHUP reloads on a real `signer serve` over real TLS.

One server for the module; each test changes its files, sends SIGHUP and waits for the
reload's log line: a client revoked by a new CRL is refused at its next call while its
stream in flight finishes, a policy change takes effect, a broken policy or a forged CRL is
refused and the old configuration kept, a rotated server certificate reaches new
handshakes. The CRL rules themselves are checked on `Revocations` directly.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1.health_pb2 import HealthCheckRequest
from grpc_health.v1.health_pb2_grpc import HealthStub

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.api.revocation import REVOCATION_UNKNOWN, REVOKED, Revocations
from signer.errors import ConfigurationError
from signer.limits import CHANNEL_OPTIONS
from tests.support.constants import RTDS_DEVICE
from tests.support.hsm import Hsm
from tests.support.manufacturer import Manufacturer
from tests.support.scrape import scrape, total
from tests.support.server import ServerProcess, prepare, start_server, verify_separate, write_config
from tests.support.smki_ca import TestCa
from tests.support.tlsca import CertificateAuthority, Issued

IMAGE = b"reload test firmware " * 40
CLIENTS = {
    "manufacturer": "manufacturer",
    "supplier": "supplier",
    "victim": "supplier",
    "ops": "ops",
}
ROLES_TABLE = """[roles]
manufacturer = ["VerifyManufacturer"]
supplier = ["Resign", "BuildDUIS", "StreamActivation", "ListKeys"]
ops = ["ListKeys"]
"""


# a key on a curve cryptography does not support (a throwaway test key, made with
# `openssl ecparam -name secp112r1 -genkey -noout`)
SECP112R1_KEY = b"""-----BEGIN EC PRIVATE KEY-----
MD4CAQEEDmEE9nAgKs8MCDyu1crDoAcGBSuBBAAGoSADHgAELjm+iaP0TSF0tHig
nh1owtWUUEv+y3pMqlvFkw==
-----END EC PRIVATE KEY-----
"""


def policy_text(roles: dict[str, str]) -> str:
    entries = [f'[[clients]]\ncn = "{name}-client"\nroles = ["{r}"]\n' for name, r in roles.items()]
    return ROLES_TABLE + "\n" + "\n".join(entries)


@dataclass
class Env:
    server: ServerProcess
    ca: CertificateAuthority
    certs: dict[str, Issued]
    policy: Path
    crl: Path
    server_cert: Path
    server_key: Path
    image_id: str = ""
    channels: dict[str, grpc.Channel] = field(default_factory=dict)

    def channel(self, name: str, *, fresh: bool = False) -> grpc.Channel:
        if fresh or name not in self.channels:
            cert = self.certs[name]
            creds = grpc.ssl_channel_credentials(
                root_certificates=self.ca.cert_path.read_bytes(),
                private_key=cert.key_path.read_bytes(),
                certificate_chain=cert.cert_path.read_bytes(),
            )
            channel = grpc.secure_channel(self.server.address, creds, options=CHANNEL_OPTIONS)
            if fresh:
                return channel
            self.channels[name] = channel
        return self.channels[name]

    def stub(self, name: str) -> pb_grpc.FirmwareSignerStub:
        return pb_grpc.FirmwareSignerStub(self.channel(name))

    def records(self) -> list[dict[str, Any]]:
        lines = self.server.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def reload(self) -> dict[str, Any]:
        """SIGHUP, then the reload's own log line (`reloaded: ...` or `reload refused`)."""

        def done(r: dict[str, Any]) -> bool:
            return r["logger"] == "signer.api.reload" and r["message"].startswith(
                ("reloaded: ", "reload refused")
            )

        before = sum(1 for r in self.records() if done(r))
        self.server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            found = [r for r in self.records() if done(r)]
            if len(found) > before:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError("no reload line within 15 s")

    def denied(self, reason: str) -> float:
        assert self.server.metrics is not None
        return total(scrape(self.server.metrics), "signer_auth_denied_total", reason=reason)


@pytest.fixture(scope="module")
def env(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("auth-reload")
    _config, _db, db_url = prepare(hsm, vectors, manufacturer, tmp)
    ca = CertificateAuthority(tmp / "pki")
    certs = {name: ca.client(name, f"{name}-client") for name in CLIENTS}
    server_cert = ca.server()
    policy = tmp / "policy.toml"
    policy.write_text(policy_text(CLIENTS))
    crl = tmp / "clients.crl"
    crl.write_bytes(ca.crl("first").read_bytes())
    tls = (
        f'[tls]\ncert = "{server_cert.cert_path}"\nkey = "{server_cert.key_path}"\n'
        f'client_ca = "{ca.cert_path}"\npolicy = "{policy}"\ncrls = ["{crl}"]\n'
    )
    config = write_config(
        tmp / "signer-tls.toml",
        hsm,
        db_url,
        dev_mode=False,
        schema_dir=vectors / "xsd",
        issuers=[TestCa().write(tmp / "smki-issuer.pem")],
        extra=tls,
    )
    server = start_server(config, tmp / "server.log")
    running = Env(server, ca, certs, policy, crl, server_cert.cert_path, server_cert.key_path)
    verdict = verify_separate(running.stub("manufacturer"), manufacturer, IMAGE, timeout=30)
    assert verdict.verified, verdict.checks
    running.image_id = verdict.image_id
    yield running
    for channel in running.channels.values():
        channel.close()
    assert server.stop() == 0


def code_of(fn: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    try:
        fn()
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def list_keys(env: Env, name: str, *, fresh: bool = False) -> tuple[grpc.StatusCode, str]:
    channel = env.channel(name, fresh=fresh)
    try:
        stub = pb_grpc.FirmwareSignerStub(channel)
        return code_of(lambda: stub.ListKeys(pb.ListKeysRequest(), timeout=10))
    finally:
        if fresh:
            channel.close()


def test_a_revoked_client_is_refused_after_sighup_and_its_stream_in_flight_finishes(
    env: Env,
) -> None:
    assert list_keys(env, "victim")[0] == grpc.StatusCode.OK
    gate = threading.Event()
    batch = pb.ActivationCampaignRequest(devices=pb.DeviceBatch(device_ids=[RTDS_DEVICE]))

    def campaign() -> Iterator[pb.ActivationCampaignRequest]:
        yield pb.ActivationCampaignRequest(activation=pb.ActivationSpec(image_id=env.image_id))
        yield batch
        gate.wait(30)  # the reload happens here, with the call in flight
        yield batch

    stream = env.stub("victim").StreamActivation(campaign(), timeout=60)
    first = next(stream)  # past the policy and the CRL: the call is under way
    denied = env.denied(REVOKED)

    env.crl.write_bytes(env.ca.crl("second", (env.certs["victim"],)).read_bytes())
    line = env.reload()
    assert line["message"].startswith("reloaded: ") and "1 revoked" in line["message"]

    # a new call on the same connection, and a new connection: both refused
    for fresh in (False, True):
        code, details = list_keys(env, "victim", fresh=fresh)
        assert code == grpc.StatusCode.UNAUTHENTICATED
        serial = env.certs["victim"].certificate.serial_number
        assert details == (
            f"client certificate CN=victim-client,O=Signer Tests (serial {serial:#x}) is "
            "revoked by the CRL of CN=Signer Test Client CA,O=Signer Tests"
        )
    assert env.denied(REVOKED) == denied + 2
    refused = [r for r in env.records() if r["message"].startswith("refused ")]
    assert refused[-1]["client"] == "CN=victim-client,O=Signer Tests"
    assert refused[-1]["level"] == "WARNING" and "is revoked" in refused[-1]["message"]
    # health is no exception, and other clients are untouched
    health = HealthStub(env.channel("victim"))
    code, _ = code_of(lambda: health.Check(HealthCheckRequest(), timeout=10))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert env.denied(REVOKED) == denied + 3
    assert list_keys(env, "supplier")[0] == grpc.StatusCode.OK

    gate.set()
    rest = list(stream)  # the stream started before the reload runs to its end
    assert [len(m.results) for m in [first, *rest]] == [1, 1]
    assert stream.code() == grpc.StatusCode.OK


def test_a_policy_change_takes_effect_on_sighup(env: Env) -> None:
    stub = env.stub("ops")
    resign = pb.ResignRequest(image_id=env.image_id, device_ids=[RTDS_DEVICE])
    code, details = code_of(lambda: stub.Resign(resign, timeout=30))
    assert code == grpc.StatusCode.PERMISSION_DENIED, details
    denied = env.denied("permission_denied")
    assert env.denied("permission_denied") == denied  # scraping counts nothing
    code_of(lambda: stub.Resign(resign, timeout=30))
    assert env.denied("permission_denied") == denied + 1

    env.policy.write_text(policy_text({**CLIENTS, "ops": "supplier"}))
    assert env.reload()["message"].startswith("reloaded: ")
    code, details = code_of(lambda: stub.Resign(resign, timeout=30))
    assert code not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED), details

    env.policy.write_text(policy_text(CLIENTS))
    assert env.reload()["message"].startswith("reloaded: ")
    assert code_of(lambda: stub.Resign(resign, timeout=30))[0] == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("policy", "unknown role 'suppler' (did you mean 'supplier'?)"),
        ("crl-forged", "its signature does not verify with the client CA"),
        ("crl-expired", "(nextUpdate); fetch a fresh CRL from the CA"),
        ("server-key", "not the key of the certificate in tls.cert"),
        # cryptography raises UnsupportedAlgorithm for it: once, that ended the reload thread
        ("server-key-secp112r1", "not an unencrypted PEM private key"),
    ],
)
def test_a_broken_file_on_sighup_keeps_the_old_configuration(
    env: Env, what: str, expected: str
) -> None:
    files = {
        "policy": env.policy,
        "crl-forged": env.crl,
        "crl-expired": env.crl,
        "server-key": env.server_key,
        "server-key-secp112r1": env.server_key,
    }
    path = files[what]
    good = path.read_bytes()
    if what == "policy":
        path.write_text(policy_text({**CLIENTS, "ops": "suppler"}))
    elif what == "crl-forged":  # revokes the supplier, but signed by a key not the CA's
        forged = env.ca.crl(
            "forged", (env.certs["supplier"],), signer=ec.generate_private_key(ec.SECP256R1())
        )
        path.write_bytes(forged.read_bytes())
    elif what == "crl-expired":
        path.write_bytes(env.ca.crl("expired", (env.certs["supplier"],), expired=True).read_bytes())
    elif what == "server-key-secp112r1":
        path.write_bytes(SECP112R1_KEY)
    else:
        path.write_bytes(env.ca.issue("stray", cn="stray").key_path.read_bytes())
    assert env.server.metrics is not None
    failed = total(scrape(env.server.metrics), "signer_reloads_total", result="failed")
    try:
        line = env.reload()
        assert line["level"] == "ERROR"
        assert line["message"].startswith("reload refused, keeping the previous configuration: ")
        assert str(path) in line["message"] and expected in line["message"], line["message"]
        assert "Traceback" not in env.server.log.read_text()
        after = total(scrape(env.server.metrics), "signer_reloads_total", result="failed")
        assert after == failed + 1
        # the old policy, CRL and TLS files still hold: the supplier is not revoked
        assert list_keys(env, "supplier", fresh=True)[0] == grpc.StatusCode.OK
        assert list_keys(env, "ops")[0] == grpc.StatusCode.OK
    finally:
        path.write_bytes(good)
        assert env.reload()["message"].startswith("reloaded: ")


def served_serial(env: Env) -> int:
    """The serial of the certificate a new TLS handshake gets from the server."""
    client = env.certs["supplier"]
    context = ssl.create_default_context(cafile=str(env.ca.cert_path))
    context.load_cert_chain(client.cert_path, client.key_path)
    context.set_alpn_protocols(["h2"])
    host, port = env.server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_a_rotated_server_certificate_reaches_new_handshakes(env: Env) -> None:
    old = x509.load_pem_x509_certificate(env.server_cert.read_bytes()).serial_number
    assert served_serial(env) == old
    assert list_keys(env, "supplier")[0] == grpc.StatusCode.OK  # a connection opened before
    rotated = env.ca.server("server-rotated")
    env.server_key.write_bytes(rotated.key_path.read_bytes())  # key first: a half-written
    assert env.reload()["message"].startswith("reload refused")  # pair is refused
    env.server_cert.write_bytes(rotated.cert_path.read_bytes())
    line = env.reload()
    assert f"server certificate serial {rotated.certificate.serial_number:#x}" in line["message"]
    assert served_serial(env) == rotated.certificate.serial_number
    assert list_keys(env, "supplier", fresh=True)[0] == grpc.StatusCode.OK
    assert list_keys(env, "supplier")[0] == grpc.StatusCode.OK  # the old connection too


def test_handshakes_are_counted(env: Env) -> None:
    assert env.server.metrics is not None
    before = total(scrape(env.server.metrics), "signer_tls_handshakes_total")
    for _ in range(3):
        assert list_keys(env, "supplier", fresh=True)[0] == grpc.StatusCode.OK
    assert total(scrape(env.server.metrics), "signer_tls_handshakes_total") >= before + 3


def test_an_expired_crl_stops_the_start_with_one_line(env: Env, tmp_path: Path) -> None:
    expired = env.ca.crl("start-expired", expired=True)
    config = tmp_path / "signer.toml"
    text = env.server.config.read_text().replace(str(env.crl), str(expired))
    config.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "signer.cli.main", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "READY" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if "tls.crls" in line]
    assert len(lines) == 1 and str(expired) in lines[0] and "expired at" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


# --- the CRL rules, on Revocations directly -------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertificateAuthority, Issued]:
    ca = CertificateAuthority(tmp_path_factory.mktemp("crl-pki"))
    return ca, ca.client("alice", "alice")


def _load(
    ca: CertificateAuthority, *paths: Path, cas: list[x509.Certificate] | None = None
) -> Revocations:
    return Revocations.load(paths, cas or [ca.certificate], dt.datetime.now(dt.UTC))


def test_a_der_crl_is_read_and_its_serials_revoked(
    pki: tuple[CertificateAuthority, Issued],
) -> None:
    ca, alice = pki
    revocations = _load(ca, ca.crl("der", (alice,), der=True))
    refusal = revocations.refusal(alice.cert_path.read_bytes(), dt.datetime.now(dt.UTC))
    assert refusal is not None and refusal.reason == REVOKED
    other = ca.client("bob", "bob")
    assert revocations.refusal(other.cert_path.read_bytes(), dt.datetime.now(dt.UTC)) is None


def test_a_crl_that_expires_while_serving_fails_closed(
    pki: tuple[CertificateAuthority, Issued],
) -> None:
    ca, alice = pki
    revocations = _load(ca, ca.crl("current"))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
    refusal = revocations.refusal(alice.cert_path.read_bytes(), later)
    assert refusal is not None and refusal.reason == REVOCATION_UNKNOWN
    assert "the CRL of CN=Signer Test Client CA,O=Signer Tests expired at" in refusal.message


def test_no_crls_configured_checks_nothing(pki: tuple[CertificateAuthority, Issued]) -> None:
    ca, alice = pki
    assert _load(ca).refusal(alice.cert_path.read_bytes(), dt.datetime.now(dt.UTC)) is None


def test_a_client_of_a_ca_without_a_crl_is_refused(
    pki: tuple[CertificateAuthority, Issued], tmp_path: Path
) -> None:
    ca, _alice = pki
    other = CertificateAuthority(tmp_path / "other", name="Other CA")
    stranger = other.client("s", "s")
    revocations = _load(ca, ca.crl("only-ours"))
    refusal = revocations.refusal(stranger.cert_path.read_bytes(), dt.datetime.now(dt.UTC))
    assert refusal is not None and refusal.reason == REVOCATION_UNKNOWN
    with pytest.raises(ConfigurationError, match="no CRL for client CA CN=Other CA"):
        _load(ca, ca.crl("only-ours"), cas=[ca.certificate, other.certificate])


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not-a-crl", "not a CRL (PEM or DER)"),
        ("other-issuer", "issued by CN=Other CA,O=Signer Tests, which is not a certificate in"),
        ("twice", "a second CRL for CN=Signer Test Client CA"),
        ("missing", "cannot read it"),
    ],
)
def test_crls_that_cannot_be_trusted_are_refused(
    pki: tuple[CertificateAuthority, Issued], tmp_path: Path, case: str, message: str
) -> None:
    ca, alice = pki
    if case == "not-a-crl":
        paths = [alice.cert_path]
    elif case == "other-issuer":
        paths = [CertificateAuthority(tmp_path / "o", name="Other CA").crl("o")]
    elif case == "twice":
        paths = [ca.crl("a"), ca.crl("b")]
    else:
        paths = [tmp_path / "nowhere.crl"]
    with pytest.raises(ConfigurationError, match=r"^tls\.crls ") as refused:
        _load(ca, *paths)
    assert message in str(refused.value)
