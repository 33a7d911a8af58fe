"""The session's state machine against a fake PKCS#11 library: recover once, or fail fast.

No SoftHSM2 here: the fake library counts logins and re-initialisations and fails on demand,
and the clock is pinned, so each rule of docs/hsm.md ("Failures and recovery") is checked
alone. tests/hsm/test_recovery.py checks the same machine against a real token outage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pkcs11
import pytest

from signer.errors import HsmLoginFailed, HsmUnavailable, NotFound
from signer.hsm import session as session_mod
from signer.hsm.module import Module
from signer.hsm.pin import Pin
from signer.hsm.session import RECOVERY_INTERVAL, TokenSession

LABEL = "fake-token"


class FakeClock:
    """Stands in for the ``time`` module inside signer.hsm.session."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return self.now


class FakeSession:
    def __init__(self, lib: FakeLib, number: int) -> None:
        self.lib = lib
        self.number = number
        self.generation = lib.generation
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeToken:
    def __init__(self, lib: FakeLib, label: str) -> None:
        self.lib = lib
        self.label = label

    def open(self, user_pin: str, rw: bool) -> FakeSession:
        assert rw is True
        self.lib.logins.append(self.label)
        if user_pin != self.lib.pin:
            raise pkcs11.PinIncorrect()
        self.lib.sessions.append(FakeSession(self.lib, len(self.lib.sessions)))
        return self.lib.sessions[-1]


class FakeLib:
    """What TokenSession uses of ``pkcs11.lib``: get_token and reinitialize."""

    def __init__(self) -> None:
        self.pin = "1234"
        self.present = True  # the token is found by its label
        self.generation = 0
        self.reinitialisations = 0
        self.logins: list[str] = []
        self.lookups = 0
        self.sessions: list[FakeSession] = []

    def get_token(self, token_label: str) -> FakeToken:
        self.lookups += 1
        if not self.present:
            raise pkcs11.NoSuchToken()
        return FakeToken(self, token_label)

    def reinitialize(self) -> None:
        self.reinitialisations += 1
        self.generation += 1


class FakeObjects:
    """The key cache as the session sees it: handles held, rescans, forgets."""

    def __init__(self, held: int = 1, found: int = 1) -> None:
        self.held = held
        self.found = found
        self.rescanned_in: list[FakeSession] = []
        self.forgotten = 0

    def rescan(self, session: Any) -> int:
        self.rescanned_in.append(session)
        self.held = self.found
        return self.found

    def forget(self) -> None:
        self.forgotten += 1
        self.held = 0


class Failing:
    """A call that raises the given errors in turn, then returns the session it ran in."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.sessions: list[FakeSession] = []

    def __call__(self, session: Any) -> FakeSession:
        self.sessions.append(session)
        if self.errors:
            raise self.errors.pop(0)
        return cast(FakeSession, session)

    @property
    def calls(self) -> int:
        return len(self.sessions)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(session_mod, "time", fake)
    return fake


@pytest.fixture
def lib() -> FakeLib:
    return FakeLib()


@pytest.fixture
def module(lib: FakeLib) -> Module:
    return Module("fake.so", loader=lambda _path: cast(Any, lib))


def _opened(
    module: Module, objects: FakeObjects | None = None, label: str = LABEL, pin: str = "1234"
) -> TokenSession:
    session = TokenSession(module, label, Pin(pin), objects or FakeObjects())
    session.open()
    return session


def test_a_session_failure_recovers_once_and_retries(
    clock: FakeClock, lib: FakeLib, module: Module
) -> None:
    objects = FakeObjects()
    session = _opened(module, objects)
    call = Failing(pkcs11.SessionHandleInvalid())
    result = session.run("sign", call)
    assert call.calls == 2
    assert lib.reinitialisations == 1 and module.generation == 1
    assert lib.logins == [LABEL, LABEL]
    # the retry ran in the new session, and the keys were rescanned in it first
    assert result is lib.sessions[1] and call.sessions == lib.sessions
    assert objects.rescanned_in == [lib.sessions[1]]
    assert session.status() == (True, "ok")


def test_a_call_that_fails_again_after_recovery_is_down_and_fails_fast(
    clock: FakeClock, lib: FakeLib, module: Module
) -> None:
    session = _opened(module)
    call = Failing(pkcs11.DeviceError(), pkcs11.DeviceError())
    with pytest.raises(HsmUnavailable, match="sign failed again after recovery: DeviceError"):
        session.run("sign", call)
    assert call.calls == 2
    up, reason = session.status()
    assert up is False and "failed again after recovery" in reason

    # while down: refused without touching the library
    lookups, reinits = lib.lookups, lib.reinitialisations
    clock.now += RECOVERY_INTERVAL / 2
    with pytest.raises(HsmUnavailable, match=f"token '{LABEL}' is down"):
        session.run("sign", call)
    assert call.calls == 2 and (lib.lookups, lib.reinitialisations) == (lookups, reinits)

    # after the interval the next call recovers by itself
    clock.now += RECOVERY_INTERVAL
    assert session.run("sign", call) is lib.sessions[-1]
    assert call.calls == 3 and lib.reinitialisations == reinits + 1
    assert session.status() == (True, "ok")


def test_when_recovery_fails_the_call_is_not_retried_and_the_token_is_down(
    clock: FakeClock, lib: FakeLib, module: Module
) -> None:
    session = _opened(module)
    lib.present = False  # after the re-initialisation the label is not found
    call = Failing(pkcs11.TokenNotPresent())
    with pytest.raises(HsmUnavailable, match=f"no token labelled '{LABEL}'"):
        session.run("sign", call)
    assert call.calls == 1 and lib.reinitialisations == 1
    assert session.status()[0] is False
    lookups = lib.lookups
    with pytest.raises(HsmUnavailable, match="is down"):
        session.run("sign", call)
    assert lib.lookups == lookups and call.calls == 1

    lib.present = True
    clock.now += RECOVERY_INTERVAL
    session.run("sign", call)
    assert call.calls == 2 and session.status() == (True, "ok")


def test_errors_a_recovery_cannot_cure_are_reported_not_retried(
    clock: FakeClock, lib: FakeLib, module: Module
) -> None:
    session = _opened(module)
    mechanism = Failing(pkcs11.MechanismInvalid())
    with pytest.raises(HsmUnavailable, match=r"^sign failed: MechanismInvalid$"):
        session.run("sign", mechanism)
    signer_error = Failing(NotFound("no such key"))
    with pytest.raises(NotFound, match="no such key"):
        session.run("find", signer_error)
    not_pkcs11 = Failing(ValueError("bad digest"))
    with pytest.raises(ValueError, match="bad digest"):
        session.run("sign", not_pkcs11)
    assert mechanism.calls == signer_error.calls == not_pkcs11.calls == 1
    assert lib.reinitialisations == 0 and lib.logins == [LABEL]
    assert session.status() == (True, "ok")


def test_a_refused_pin_is_fatal_and_never_tried_again(
    clock: FakeClock, lib: FakeLib, module: Module
) -> None:
    session = TokenSession(module, LABEL, Pin("wrong"), FakeObjects())
    with pytest.raises(HsmLoginFailed, match="refused the PIN"):
        session.open()
    clock.now += 10 * RECOVERY_INTERVAL
    call = Failing()
    for attempt in (session.open, lambda: session.run("sign", call)):
        with pytest.raises(HsmLoginFailed, match="until the service restarts"):
            attempt()
    assert lib.logins == [LABEL] and call.calls == 0
    session.close()
    assert session.status()[0] is False  # closing does not clear a refused PIN


def test_a_dead_handle_is_cured_by_a_rescan_in_the_same_session(
    clock: FakeClock, lib: FakeLib, module: Module
) -> None:
    objects = FakeObjects(held=2, found=1)  # one key destroyed by another process
    session = _opened(module, objects)
    call = Failing(pkcs11.ObjectHandleInvalid())
    assert session.run("sign", call) is lib.sessions[0]
    assert call.calls == 2 and objects.rescanned_in == [lib.sessions[0]]
    assert lib.reinitialisations == 0 and lib.logins == [LABEL]


def test_a_rescan_that_sees_no_key_where_there_were_some_reinitialises(
    clock: FakeClock, lib: FakeLib, module: Module
) -> None:
    objects = FakeObjects(held=2, found=0)  # a logged-out session sees no private key
    session = _opened(module, objects)
    call = Failing(pkcs11.KeyHandleInvalid())
    assert session.run("sign", call) is lib.sessions[1]
    assert objects.rescanned_in == [lib.sessions[0], lib.sessions[1]]
    assert lib.reinitialisations == 1 and lib.logins == [LABEL, LABEL]


def test_re_initialisation_is_rate_limited(clock: FakeClock, lib: FakeLib, module: Module) -> None:
    session = _opened(module)
    session.run("sign", Failing(pkcs11.GeneralError()))
    assert lib.reinitialisations == 1
    clock.now += RECOVERY_INTERVAL / 2
    call = Failing(pkcs11.GeneralError())
    with pytest.raises(HsmUnavailable, match="re-initialised less than"):
        session.run("sign", call)
    assert call.calls == 1 and lib.reinitialisations == 1
    clock.now += RECOVERY_INTERVAL / 2  # the interval counts from the re-initialisation
    session.run("sign", call)
    assert call.calls == 2 and lib.reinitialisations == 2 and module.generation == 2


def test_another_token_of_the_module_never_uses_a_session_of_an_older_generation(
    clock: FakeClock, lib: FakeLib, module: Module
) -> None:
    first = _opened(module, label="first")
    second = _opened(module, label="second")
    stale = lib.sessions[1]
    first.run("sign", Failing(pkcs11.SessionHandleInvalid()))  # re-initialises the module
    assert module.generation == 1

    call = Failing()
    ran_in = second.run("sign", call)
    assert ran_in is not stale and ran_in.generation == 1
    assert lib.reinitialisations == 1  # a new session, not another re-initialisation
    assert lib.logins == ["first", "second", "first", "second"]

    second.close()
    assert ran_in.closed and not stale.closed  # an old handle may be another session's now


def test_a_call_inside_a_call_leaves_failures_to_the_outer_one(
    clock: FakeClock, lib: FakeLib, module: Module
) -> None:
    session = _opened(module)
    inner = Failing(pkcs11.SessionClosed())
    outer_calls: list[Any] = []

    def outer(s: Any) -> Any:
        outer_calls.append(s)
        return session.run("inner", inner)

    result = session.run("outer", outer)
    assert inner.calls == 2 and result is lib.sessions[1]
    assert outer_calls == lib.sessions  # the outer call was retried whole, in the new session
    assert lib.reinitialisations == 1


def test_a_closed_session_refuses_calls(clock: FakeClock, lib: FakeLib, module: Module) -> None:
    session = _opened(module)
    session.close()
    assert lib.sessions[0].closed
    call: Callable[[Any], Any] = Failing()
    with pytest.raises(HsmUnavailable, match="not open"):
        session.run("sign", call)
    assert session.status() == (False, "the token session is not open")
