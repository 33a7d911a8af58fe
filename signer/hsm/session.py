"""A token's logged-in session and its recovery: run one call, recover once, or fail fast.

This is the state machine of the HSM door (like urllib3's pool with its ``Retry``): it owns
the session, the module generation it was opened in, the failure classes and the down/fatal
state. What each failure class means and what recovering does is in docs/hsm.md ("Failures
and recovery"); why a session is never used across generations is under "Handles after a
re-initialisation".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import pkcs11

from signer.errors import HsmLoginFailed, HsmUnavailable, SignerError
from signer.hsm.module import Module
from signer.hsm.pin import Pin
from signer.metrics import HSM_ERRORS, HSM_OPERATION_SECONDS

log = logging.getLogger(__name__)
RECOVERY_INTERVAL = 1.0  # seconds: at most one module re-initialisation per interval
T = TypeVar("T")

# Failures a recovery may cure: the call is retried once after it.
TRANSIENT: tuple[type[pkcs11.PKCS11Error], ...] = (
    pkcs11.DeviceError,
    pkcs11.DeviceMemory,
    pkcs11.DeviceRemoved,
    pkcs11.SessionClosed,
    pkcs11.SessionHandleInvalid,
    pkcs11.TokenNotPresent,
    pkcs11.TokenNotRecognised,
    pkcs11.GeneralError,
    pkcs11.FunctionFailed,
    pkcs11.UserNotLoggedIn,
    pkcs11.ObjectHandleInvalid,
    pkcs11.KeyHandleInvalid,
)
# A handle that died alone (its object destroyed by another process) needs only a rescan.
HANDLE_ERRORS: tuple[type[pkcs11.PKCS11Error], ...] = (
    pkcs11.ObjectHandleInvalid,
    pkcs11.KeyHandleInvalid,
)
# Fatal: another login could lock the PIN.
BAD_PIN: tuple[type[pkcs11.PKCS11Error], ...] = (
    pkcs11.PinIncorrect,
    pkcs11.PinInvalid,
    pkcs11.PinLenRange,
    pkcs11.PinLocked,
)


class SessionObjects(Protocol):
    """What lives and dies with one session: the handles a recovery drops and rescans."""

    @property
    def held(self) -> int:
        """How many object handles are held now."""
        ...

    def rescan(self, session: pkcs11.Session) -> int:
        """Resolve every handle again in ``session`` and keep them; how many keys it found."""
        ...

    def forget(self) -> None:
        """Drop every handle; no PKCS#11 call."""
        ...


class Recoverable(Exception):
    """Internal: a transient failure that a recovery may cure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenSession:
    """The one logged-in session of a token behind its module's lock, recovering from outages."""

    def __init__(self, module: Module, token_label: str, pin: Pin, objects: SessionObjects) -> None:
        self.module = module
        self.token_label = token_label
        self.lock = module.lock
        self._pin = pin
        self._objects = objects
        self._session: pkcs11.Session | None = None
        self._generation: int | None = None  # of the module when the session was opened
        self._wanted = False  # open() was called and close() was not
        self._down: str | None = None  # why the token is unusable right now
        self._retry_at = 0.0  # while down: no recovery attempt before this monotonic time
        self._fatal: str | None = None  # the PIN was refused: down for good
        self._depth = 0  # nesting of run() in the thread that holds the lock

    @property
    def down(self) -> str | None:
        """Why the token is unusable right now, or None: readable without the lock."""
        return self._down

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        """Load the module and log in once for the whole process."""
        self.fail_fast()
        with self.lock:
            self._wanted = True
            self._ensure_session("open")

    def close(self) -> None:
        with self.lock:
            if self._session is not None and self._generation == self.module.generation:
                # a handle of an older generation may be another session's now: never close it
                try:
                    self._session.close()
                except pkcs11.PKCS11Error:
                    pass
            self._wanted = False
            self._generation = None
            self._drop_session()
            if self._fatal is None:
                self._down = None

    def status(self) -> tuple[bool, str]:
        """Up or not, and why: a cheap read that makes no PKCS#11 call."""
        if self._fatal is not None:
            return False, self._fatal
        if self._down is not None:
            return False, self._down
        if not self._wanted:
            return False, "the token session is not open"
        return True, "ok"

    # -- the one place that classifies failures and recovers ---------------------------

    def run(self, what: str, fn: Callable[[pkcs11.Session], T]) -> T:
        """Run fn on the session under the lock; on a transient failure recover, retry once.

        ``what`` names the operation in the metrics and messages: give a literal.
        """
        self.fail_fast()
        with self.lock:
            if self._depth:  # inside another operation: the outer run handles failures
                return fn(self._current())
            self._depth += 1
            started = time.perf_counter()  # under the lock: the HSM's time, not the queue's
            try:
                self._ensure_session(what)
                try:
                    return self._mapped(what, lambda: fn(self._current()))
                except Recoverable as first:
                    self._recover(
                        f"{what} failed: {first.reason}",
                        handles_only=isinstance(first.__cause__, HANDLE_ERRORS),
                    )
                try:
                    return self._mapped(what, lambda: fn(self._current()))
                except Recoverable as second:
                    reason = f"{what} failed again after recovery: {second.reason}"
                    self._mark_down(reason)  # the next try, after the interval, recovers
                    raise HsmUnavailable(reason) from second.__cause__
            finally:
                self._depth -= 1
                _observe(what, started)

    def fail_fast(self) -> None:
        """Without the lock and without PKCS#11: refuse at once while the token is down."""
        if self._fatal is not None:
            HSM_ERRORS.labels(error="fail_fast").inc()
            raise HsmLoginFailed(self._fatal)
        down = self._down
        if down is not None and time.monotonic() < self._retry_at:
            HSM_ERRORS.labels(error="fail_fast").inc()
            raise HsmUnavailable(f"token {self.token_label!r} is down: {down}")

    def _current(self) -> pkcs11.Session:
        if self._session is None:
            raise HsmUnavailable("the token session is not open")
        return self._session

    def _ensure_session(self, what: str) -> None:
        """Under the lock: a session of the module's current generation, or an error."""
        self.fail_fast()  # again: another thread may have failed while this one waited
        if not self._wanted:
            raise HsmUnavailable("the token session is not open")
        if self._session is not None and self._generation == self.module.generation:
            return
        if self._down is None and self._generation is None:
            self._connect_or_raise(what)  # a first open: no session of this module state yet
            return
        self._recover(
            "retrying after the outage"
            if self._down is not None
            else "the PKCS#11 module was re-initialised"
        )

    def _mapped(self, what: str, fn: Callable[[], T]) -> T:
        """Run fn; transient failures become Recoverable, the rest the signer's errors."""
        try:
            return fn()
        except SignerError:
            raise
        except BAD_PIN as exc:
            HSM_ERRORS.labels(error="login").inc()
            raise self._refused(exc) from None
        except TRANSIENT as exc:
            HSM_ERRORS.labels(error="transient").inc()
            raise Recoverable(type(exc).__name__) from exc
        except pkcs11.PKCS11Error as exc:
            HSM_ERRORS.labels(error="other").inc()
            raise HsmUnavailable(f"{what} failed: {type(exc).__name__}") from exc

    def _recover(self, cause: str, *, handles_only: bool = False) -> None:
        """Under the lock: re-initialise the module if need be, log in again, rescan.

        After a handle error, a rescan in the same session comes first; it is trusted unless
        it fails or sees no private key where there were some (a logged-out session sees
        none, and SoftHSM2 without its token directory finds nothing).
        Raises ``HsmUnavailable`` (token down until the interval has passed) or
        ``HsmLoginFailed`` (down for good) when the token cannot be brought back.
        """
        if (
            handles_only
            and self._session is not None
            and self._generation == self.module.generation
        ):
            had = self._objects.held
            try:
                found = self._objects.rescan(self._session)
            except pkcs11.PKCS11Error as exc:
                cause = f"{cause}, then the rescan: {type(exc).__name__}"
            else:
                if found or not had:
                    log.info(
                        "token %r: %s; key handles resolved again by a rescan",
                        self.token_label,
                        cause,
                    )
                    return
                cause = f"{cause}, then the rescan found no key"
        self._drop_session()
        module = self.module
        now = time.monotonic()
        if self._generation == module.generation:  # the failure happened in this state
            if now < module.reinit_at + RECOVERY_INTERVAL:
                reason = f"{cause}; module re-initialised less than {RECOVERY_INTERVAL} s ago"
                self._mark_down(reason, retry_at=module.reinit_at + RECOVERY_INTERVAL)
                raise HsmUnavailable(reason)
            log.warning(
                "token %r: %s; re-initialising PKCS#11 module %s",
                self.token_label,
                cause,
                module.path,
            )
            try:
                with HSM_OPERATION_SECONDS.labels(operation="reinitialize").time():
                    module.reinitialize(now)
            except pkcs11.PKCS11Error as exc:
                reason = f"{cause}; re-initialising the module failed: {type(exc).__name__}"
                self._mark_down(reason)
                raise HsmUnavailable(reason) from exc
        else:
            log.warning("token %r: %s; opening a new session", self.token_label, cause)
        self._retry_at = now + RECOVERY_INTERVAL  # if down: callers fail fast meanwhile
        self._connect_or_raise(f"recovery ({cause})")
        try:
            found = self._mapped("rescan", lambda: self._objects.rescan(self._current()))
        except Recoverable as exc:
            reason = f"recovery ({cause}) failed: rescan: {exc.reason}"
            self._mark_down(reason)
            raise HsmUnavailable(reason) from exc.__cause__
        except HsmLoginFailed:
            raise
        except HsmUnavailable as exc:
            self._mark_down(f"recovery ({cause}) failed: rescan: {exc}")
            raise
        log.info("token %r recovered: session reopened, %d keys", self.token_label, found)

    def _connect_or_raise(self, what: str) -> None:
        """Find the token by label and log in; the failure leaves the token down."""
        try:
            self._connect(what)
        except Recoverable as exc:
            reason = f"{what} failed: {exc.reason}"
            self._mark_down(reason)
            raise HsmUnavailable(reason) from exc.__cause__
        except HsmLoginFailed:
            raise
        except HsmUnavailable as exc:
            self._mark_down(str(exc))
            raise

    def _connect(self, what: str) -> None:
        lib = self.module.load()
        self._generation = self.module.generation

        def find_and_log_in() -> pkcs11.Session:
            try:
                token = lib.get_token(token_label=self.token_label)
            except pkcs11.NoSuchToken:
                raise Recoverable(f"no token labelled {self.token_label!r}") from None
            except pkcs11.MultipleTokensReturned:
                raise HsmUnavailable(f"more than one token labelled {self.token_label!r}") from None
            return _login(token, self._pin)

        with HSM_OPERATION_SECONDS.labels(operation="login").time():
            self._session = self._mapped(what, find_and_log_in)
        self._generation = self.module.generation
        self._down = None
        log.info("logged in to token %r via %s", self.token_label, self.module.path)

    def _refused(self, exc: BaseException) -> HsmLoginFailed:
        """The PIN was refused: down for good, never another login in this process."""
        self._drop_session()
        self._fatal = (
            f"token {self.token_label!r} refused the PIN ({type(exc).__name__}); "
            "not logging in again until the service restarts"
        )
        self._down = self._fatal
        log.error("%s", self._fatal)
        return HsmLoginFailed(self._fatal)

    def _mark_down(self, reason: str, retry_at: float | None = None) -> None:
        """No session until a recovery, and none tried before ``retry_at``."""
        self._drop_session()
        HSM_ERRORS.labels(error="down").inc()
        self._retry_at = time.monotonic() + RECOVERY_INTERVAL if retry_at is None else retry_at
        self._down = reason
        log.warning("token %r is down: %s", self.token_label, reason)

    def _drop_session(self) -> None:
        """Forget the session and every handle from it; no PKCS#11 call."""
        self._session = None
        self._objects.forget()


def _observe(what: str, started: float) -> None:
    """``what`` is one of the literals given to ``TokenSession.run``: a bounded label set."""
    HSM_OPERATION_SECONDS.labels(operation=what.replace(" ", "_")).observe(
        time.perf_counter() - started
    )


def _login(token: pkcs11.Token, pin: Pin) -> pkcs11.Session:
    """The one place that logs in: a read-write session with the user PIN."""
    return token.open(user_pin=pin.reveal(), rw=True)
