"""HSM recovery on a real SoftHSM2 token: the token vanishes mid-run and comes back.

The outage runs in a child process with its own SOFTHSM2_CONF and token directory: the
PKCS#11 module is loaded once per process and recovery re-initialises it, which would drop
the sessions of the other test modules' tokens here. The child makes its token unreachable
by renaming the token's directory. Measured on SoftHSM2 2.6.1: from then on a signature with
an existing handle fails with ObjectHandleInvalid, an object search silently finds nothing,
C_GetTokenInfo fails with GeneralError, and the token stays broken even after the directory
is back until the module is re-initialised; after a re-initialisation without the directory
the label is not found at all. Every signature the child gets is checked against the public
key of the key it asked for, and every call must either return such a signature or raise
HsmUnavailable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

ROOT = Path(__file__).resolve().parents[2]
LABEL = "recovery-test"
OTHER_LABEL = "recovery-other"  # same module, same process, never made unreachable
PIN = "rec-pin-7305"


def _verifies(public_key: ec.EllipticCurvePublicKey, digest: bytes, raw: bytes) -> bool:
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public_key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return False
    return True


# -- the child process -------------------------------------------------------------------


def _scenario(module: str, workdir: Path) -> dict[str, Any]:
    from signer.errors import HsmUnavailable, NotFound
    from signer.hsm.pin import Pin
    from signer.hsm.token import RECOVERY_INTERVAL, Token, TokenKey
    from signer.metrics import HSM_ERROR_CLASSES
    from signer.smki.issuance import issue_certificate

    pin = Pin((workdir / "user.pin").read_text().strip())
    token = Token(module, LABEL, pin)
    token.open()
    other = Token(module, OTHER_LABEL, pin)
    other.open()
    key_a = token.generate_key("rec-a")
    key_b = token.generate_key("rec-b")
    doomed = token.generate_key("rec-doomed")
    key_o = other.generate_key("other")
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "recovery test")])
    now = dt.datetime.now(dt.UTC)
    cert = issue_certificate(
        subject=name,
        issuer=name,
        public_key=key_a.public_key,
        serial=1,
        not_before=now,
        not_after=now + dt.timedelta(days=1),
        extensions=[],
        sign_digest=lambda d: token.sign_digest(key_a, d),
    )
    key_a = token.store_certificate(key_a, cert)

    results: list[tuple[str, str, bytes, str, bytes, float, float]] = []
    other_results: list[tuple[bytes, str, bytes]] = []
    unexpected: list[str] = []
    stop = threading.Event()
    started = time.monotonic()

    def work(i: int) -> None:
        keys = [key_a, key_b]
        j = 0
        while not stop.is_set():
            key = keys[(i + j) % 2]
            digest = hashlib.sha256(f"{i}-{j}".encode()).digest()
            t0 = time.monotonic()
            try:
                if j % 40 == 0:
                    token.keys(refresh=True)
                raw = token.sign_digest(key, digest)
                outcome, detail = "signed", raw
            except HsmUnavailable as exc:
                outcome, detail = "unavailable", str(exc).encode()
            except BaseException as exc:
                outcome, detail = "other", repr(exc).encode()
            t1 = time.monotonic()
            results.append(
                (key.label, key.key_id.hex(), digest, outcome, detail, t0 - started, t1 - t0)
            )
            j += 1
            time.sleep(0.002)

    def work_other() -> None:
        j = 0
        while not stop.is_set():
            digest = hashlib.sha256(f"other-{j}".encode()).digest()
            try:
                other_results.append((digest, "signed", other.sign_digest(key_o, digest)))
            except BaseException as exc:
                other_results.append((digest, "error", repr(exc).encode()))
            j += 1
            time.sleep(0.005)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    threads.append(threading.Thread(target=work_other))
    for t in threads:
        t.start()

    time.sleep(0.6)
    token_dir = next(
        p
        for p in (workdir / "tokens").iterdir()
        if (p / "token.object").exists() and _holds(p, LABEL)
    )
    away = workdir / "away"
    generation_before = token._session.module.generation
    os.rename(token_dir, away)
    down_at = time.monotonic() - started
    time.sleep(0.4)
    status_down = token.status()
    probe_down = token.probe()
    time.sleep(2.2)
    os.rename(away, token_dir)
    restored_at = time.monotonic() - started
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not token.status()[0]:
        time.sleep(0.02)
    time.sleep(0.6)
    stop.set()
    for t in threads:
        t.join()
    status_up = token.status()
    probe_up = token.probe()
    reinitialisations = token._session.module.generation - generation_before

    # a key that disappears (destroyed by another process) is NotFound, never another key's
    subprocess.run(
        [sys.executable, "-c", _DESTROY, module, LABEL, "rec-doomed", str(workdir / "user.pin")],
        check=True,
        timeout=60,
    )
    doomed_outcome = "no error"
    try:
        token.sign_digest(doomed, hashlib.sha256(b"doomed").digest())
    except NotFound:
        doomed_outcome = "NotFound"
    except BaseException as exc:
        doomed_outcome = repr(exc)
    after = hashlib.sha256(b"after").digest()
    after_ok = _verifies(key_a.public_key, after, token.sign_digest(key_a, after))
    token.close()
    other.close()

    public: dict[str, TokenKey] = {k.key_id.hex(): k for k in (key_a, key_b)}
    bad = [
        r[0]
        for r in results
        if r[3] == "signed" and not _verifies(public[r[1]].public_key, r[2], r[4])
    ]
    unexpected += [r[4].decode() for r in results if r[3] == "other"]
    failing = [r for r in results if r[3] == "unavailable"]
    signed_after = [r[5] for r in results if r[3] == "signed" and r[5] > restored_at]
    other_bad = [
        d
        for d, o, raw in other_results
        if o == "signed" and not _verifies(key_o.public_key, d, raw)
    ]
    return {
        "calls": len(results),
        "signed": sum(1 for r in results if r[3] == "signed"),
        "unavailable": len(failing),
        "unexpected": unexpected[:10],
        "wrong_signatures": len(bad),
        "signed_before_outage": sum(1 for r in results if r[3] == "signed" and r[5] < down_at),
        "signed_during_outage": sum(
            1 for r in results if r[3] == "signed" and down_at + 0.1 < r[5] < restored_at
        ),
        "signed_after_restore": len(signed_after),
        "back_after": (min(signed_after) - restored_at) if signed_after else None,
        "failing_max": max((r[6] for r in failing), default=0.0),
        "failing_median": statistics.median([r[6] for r in failing]) if failing else 0.0,
        "unavailable_messages": sorted({r[4].decode().split(":")[0] for r in failing}),
        "down_seconds": restored_at - down_at,
        "reinitialisations": reinitialisations,
        "recovery_interval": RECOVERY_INTERVAL,
        "status_down": list(status_down),
        "probe_down": probe_down,
        "status_up": list(status_up),
        "probe_up": probe_up,
        "doomed": doomed_outcome,
        "after_ok": after_ok,
        "other_calls": len(other_results),
        "other_errors": [o.decode() for _, r, o in other_results if r == "error"][:5],
        "other_wrong": len(other_bad),
        "logins": _LOGINS[0],
        "errors": {c: _sample("signer_hsm_errors_total", error=c) for c in HSM_ERROR_CLASSES},
        "timed": {
            op: _sample("signer_hsm_operation_seconds_count", operation=op)
            for op in ("sign", "login", "reinitialize")
        },
    }


def _sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


_LOGINS = [0]

_DESTROY = """
import sys, pkcs11
lib = pkcs11.lib(sys.argv[1])
with lib.get_token(token_label=sys.argv[2]).open(user_pin=open(sys.argv[4]).read().strip(),
                                                  rw=True) as s:
    for obj in list(s.get_objects({pkcs11.Attribute.LABEL: sys.argv[3]})):
        obj.destroy()
"""


def _holds(token_dir: Path, label: str) -> bool:
    return label.encode() in (token_dir / "token.object").read_bytes()


def _child_main(module: str, workdir: str) -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from signer.hsm import session as session_mod

    real_login = session_mod._login

    def counting_login(token: Any, pin: Any) -> Any:
        _LOGINS[0] += 1
        return real_login(token, pin)

    session_mod._login = counting_login
    print(json.dumps(_scenario(module, Path(workdir))))


# -- the tests -----------------------------------------------------------------------------


def _make_tokens(workdir: Path) -> dict[str, str]:
    (workdir / "tokens").mkdir()
    conf = workdir / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {workdir / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\n"
    )
    (workdir / "user.pin").write_text(PIN + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNER_")}
    env["SOFTHSM2_CONF"] = str(conf)
    env["PYTHONPATH"] = str(ROOT)
    for label in (LABEL, OTHER_LABEL):
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--so-pin",
                "so-pin-5521",
                "--pin",
                PIN,
            ],
            check=True,
            capture_output=True,
            env=env,
        )
    return env


def test_token_vanishes_mid_run_and_the_service_comes_back(tmp_path: Path) -> None:
    from tests.support.hsm import MODULE

    env = _make_tokens(tmp_path)
    proc = subprocess.run(
        [sys.executable, __file__, MODULE, str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    log = proc.stderr
    print(json.dumps(r, indent=1))

    # every call either returned a signature by the key asked for, or HsmUnavailable
    assert r["unexpected"] == []
    assert r["wrong_signatures"] == 0
    assert r["signed"] + r["unavailable"] == r["calls"]
    assert r["signed_before_outage"] > 0
    assert r["unavailable"] > 0
    assert r["signed_during_outage"] == 0
    # while down, calls fail fast (generous bounds: this machine is slow)
    assert r["failing_max"] < 0.5
    assert r["failing_median"] < 0.05
    # rate-limited: about one module re-initialisation per interval while down
    assert 2 <= r["reinitialisations"] <= r["down_seconds"] / r["recovery_interval"] + 3
    assert r["status_down"][0] is False and r["status_down"][1]
    assert r["probe_down"] is False
    # back without a restart, within about one interval of the token's return
    assert r["signed_after_restore"] > 0
    assert r["back_after"] < r["recovery_interval"] + 1.5
    assert r["status_up"] == [True, "ok"] and r["probe_up"] is True
    # a key gone after recovery is NotFound, and the others still sign
    assert r["doomed"] == "NotFound"
    assert r["after_ok"] is True
    # another token of the same module lost its session to the re-initialisations, but
    # reopened it without failing a call, and never signed with a stale handle
    assert r["other_calls"] > 0 and r["other_errors"] == [] and r["other_wrong"] == 0
    # logged in again after each successful recovery only, and never said the PIN
    assert r["logins"] >= 3
    # the metrics saw it: transient failures, the token marked down, calls refused fast;
    # each re-initialisation and login timed; every signature timed
    errors, timed = r["errors"], r["timed"]
    assert errors["transient"] >= 1 and errors["down"] >= 1
    assert 1 <= errors["fail_fast"] <= r["unavailable"] + 1  # + the probe while down
    assert errors["login"] == 0 and errors["other"] == 0
    assert timed["reinitialize"] == r["reinitialisations"]
    assert timed["login"] >= r["logins"]
    assert timed["sign"] >= r["signed"] + r["other_calls"]
    assert "re-initialising PKCS#11 module" in log and "recovered" in log
    assert PIN not in log and PIN not in proc.stdout


def test_wrong_pin_is_fatal_and_never_retried(hsm, monkeypatch: pytest.MonkeyPatch) -> None:
    from signer.errors import HsmLoginFailed
    from signer.hsm import session as session_mod
    from signer.hsm.pin import Pin
    from signer.hsm.token import RECOVERY_INTERVAL, Token
    from tests.support.hsm import MODULE, SPARE_TOKEN_LABEL

    logins: list[str] = []
    real_login = session_mod._login

    def counting_login(token: Any, pin: Any) -> Any:
        logins.append(token.label)
        return real_login(token, pin)

    monkeypatch.setattr(session_mod, "_login", counting_login)
    errors_before = {c: _sample("signer_hsm_errors_total", error=c) for c in ("login", "fail_fast")}
    token = Token(MODULE, SPARE_TOKEN_LABEL, Pin("wrong-pin"))
    with pytest.raises(HsmLoginFailed, match="refused the PIN"):
        token.open()
    assert logins == [SPARE_TOKEN_LABEL]
    up, reason = token.status()
    assert up is False and "refused the PIN" in reason
    time.sleep(RECOVERY_INTERVAL + 0.1)  # past the rate limit: still no second login
    for call in (token.open, lambda: token.keys(refresh=True), token.protection):
        t0 = time.monotonic()
        with pytest.raises(HsmLoginFailed):
            call()
        assert time.monotonic() - t0 < 0.5
    assert token.probe() is False
    assert logins == [SPARE_TOKEN_LABEL]
    assert {
        c: _sample("signer_hsm_errors_total", error=c) - b for c, b in errors_before.items()
    } == {"login": 1, "fail_fast": 4}


if __name__ == "__main__":
    _child_main(sys.argv[1], sys.argv[2])
