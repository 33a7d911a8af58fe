"""The activation use cases in-process, step by step: what bench/activation.py --profile runs.

    SOFTHSM2_CONF=<dir>/env/softhsm2.conf \
    .venv/bin/python bench/profile_activation.py CONFIG IMAGE_ID DEVICES PRE_COMMANDS

Drives ``stream_activations`` and ``sign_pre_command_batch`` (the StreamSignPreCommands path)
in batches of 1,000 in the main thread (cProfile sees only the thread that enabled it): the
CPU per device of both beside the CPU of the token's own signatures measured in the same
process (the in-process, one-thread form of the HSM-ceiling ratio; CPU, not wall time, is
what stays comparable on cores shared with other work), a per-step CPU breakdown (timing
wrappers installed in this process only), then cProfile's top functions by own and
cumulative time. Needs the devices and image of a kept bench/activation.py environment.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import pstats
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from activation_env import BATCH, activation_eui, pre_commands  # bench/ is sys.path[0]

T = TypeVar("T")

# the steps the use cases call, by name, in whichever service module calls them
STEPS = (
    "parse_devices",
    "select_eligible",
    "verified_image",
    "xml_signing_key",
    "build_activate_firmware",
    "prepare_signature",
    "parse_pre_command",
    "check_pre_command",
    "select_keys",
    "pre_command_digest",
    "signed_pre_command",
    "build_signed_pre_command",
)
REPEATS = 3  # plain measurements of each use case and of the token (--repeats)
HSM_SIGNATURES_PER_DEVICE = 3  # the 11.3 XML signature, CS06, the SignedPreCommand XML one


class GcClock:
    """CPU spent in the cyclic garbage collector while on (it runs inside whatever step
    allocates when a generation fills, so the steps below include it)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._start = 0.0

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.process_time()
        else:
            self.seconds += time.process_time() - self._start
            self.collections[info["generation"]] += 1


class Phases:
    """CPU time per step of a use case, without a profiler: this process replaces the
    functions the use case calls (module attributes, and the token/schema instance methods)
    by timing wrappers. The steps wrapped do not nest, so their times add up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        original = getattr(owner, attr)

        def timed(*a: Any, **kw: Any) -> Any:
            t = time.process_time()
            try:
                return original(*a, **kw)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.process_time() - t
                self.calls[name] = self.calls.get(name, 0) + 1

        self._undo.append((owner, attr, original))
        setattr(owner, attr, timed)

    def wrap_built(self, owner: Any, attr: str, name: str) -> None:
        """A factory whose product is the step: the functions it returns are timed."""
        original = getattr(owner, attr)

        def factory(*a: Any, **kw: Any) -> Any:
            product = original(*a, **kw)

            def timed(*pa: Any, **pkw: Any) -> Any:
                t = time.process_time()
                try:
                    return product(*pa, **pkw)
                finally:
                    self.seconds[name] = self.seconds.get(name, 0.0) + time.process_time() - t
                    self.calls[name] = self.calls.get(name, 0) + 1

            return timed

        self._undo.append((owner, attr, original))
        setattr(owner, attr, factory)

    def undo(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()

    def report(self, title: str, n: int, total: float, collector: GcClock) -> None:
        print(f"\n{title}: {n:,} devices, {total / n * 1e6:,.0f} us CPU each (timing wrappers on)")
        rows = [(sec, name, self.calls[name]) for name, sec in self.seconds.items()]
        accounted = sum(r[0] for r in rows)
        rows.append((total - accounted, "(the rest: loop, dataclasses, generators)", n))
        for own, label, calls in sorted(rows, reverse=True):
            print(
                f"  {own / n * 1e6:8,.1f} us/device  {own / total * 100:5.1f} %  "
                f"{label}  [{calls:,} calls]"
            )
        print(
            f"  of which cyclic GC: {collector.seconds / n * 1e6:,.1f} us/device "
            f"(collections by generation: {collector.collections})"
        )


def cpu(fn: Callable[..., T], *a: Any) -> tuple[float, T]:
    """(CPU seconds of this process, result) of one call."""
    t = time.process_time()
    out = fn(*a)
    return time.process_time() - t, out


def profile(
    config: str,
    image_id: str,
    devices: int,
    pre_count: int,
    *,
    freeze: bool,
    plain: bool,
    repeats: int,
) -> None:
    """Plain CPU per device against the token's, a per-step breakdown, then cProfile."""
    import signer.registry.activations as reg_activations
    import signer.registry.audit as reg_audit
    import signer.registry.counters as reg_counters
    import signer.service.activation as act
    import signer.service.precommand_signing as pre_signing
    import signer.service.precommands as pre
    from signer.config import load_config
    from signer.duis.xmldsig import PendingSignature
    from signer.service.activation import ActivationSpec, BuiltActivation
    from signer.service.duis import xml_signing_key
    from signer.service.services import open_services

    svc = open_services(load_config(Path(config)))
    spec = ActivationSpec(image_id=image_id)
    ids = [activation_eui(i) for i in range(devices)]

    def batches() -> Iterator[list[str]]:
        for i in range(0, devices, BATCH):
            yield ids[i : i + BATCH]

    def stream() -> list[tuple[str, int]]:
        return [
            (str(b.device), b.request_id.counter)
            for batch in act.stream_activations(svc, spec, batches())
            for b in batch
            if isinstance(b, BuiltActivation)
        ]

    def sign_all(pres: list[bytes]) -> None:
        """The StreamSignPreCommands path: sign_pre_command_batch, batches of BATCH (the
        pre-commands are the DCC's, made before the clock starts)."""
        for i in range(0, len(pres), BATCH):
            pre.sign_pre_command_batch(svc, pres[i : i + BATCH], accept_unauthenticated=True)

    xml_key = xml_signing_key(svc)[0]
    digests = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(BATCH)]

    stream()  # warm-up: caches, graph, schema
    if freeze:  # what a server that froze its start-up heap would see (gc.freeze)
        gc.collect()
        gc.freeze()
        print(f"\ngc.freeze(): {gc.get_freeze_count():,} objects out of the collector's scans")
    # the token's own CPU inside each run, so the rest is measured in the same run
    in_token = Phases()
    in_token.wrap(svc.token, "sign_digests", "token")

    def outside(fn: Callable[..., T], *a: Any) -> tuple[float, float, T]:
        """(CPU seconds, of which outside the token, result) of one call."""
        before = in_token.seconds.get("token", 0.0)
        t, out = cpu(fn, *a)
        return t, t - (in_token.seconds.get("token", 0.0) - before), out

    runs: list[tuple[float, float, float, float, float]] = []
    for _ in range(repeats):  # alternating, in the same process: the ratio is same-run
        ta, oa, built = outside(stream)
        ts, os_, _ = outside(sign_all, pre_commands(built[:pre_count]))
        th, _ = cpu(svc.token.sign_digests, xml_key, digests)
        runs.append(
            (ta / devices, ts / pre_count, th / len(digests), oa / devices, os_ / pre_count)
        )
    in_token.undo()
    # the least disturbed run of each: other work on shared cores only ever adds CPU time
    # (caches, frequency), so the minimum is the steadiest estimate of the code's own cost
    a, s, h, out_a, out_s = (min(r[k] for r in runs) * 1e6 for k in range(5))
    ratios = sorted(HSM_SIGNATURES_PER_DEVICE * r[2] / (r[0] + r[1]) for r in runs)
    ceiling = HSM_SIGNATURES_PER_DEVICE * h
    print(
        f"\nin-process, one thread, no profiler (CPU, best of {repeats}): stream_activations "
        f"{a:,.0f} us/device, sign_pre_command_batch {s:,.0f} us/pre-command; the token's "
        f"sign_digests {h:,.0f} us/signature (the HSM ceiling: {ceiling:,.0f} us/device)\n"
        f"  outside the token (its CPU taken out of each run): {out_a + out_s:,.0f} us/device "
        f"(11.3 {out_a:,.0f}, pre-command {out_s:,.0f})\n"
        f"  one-thread ratio to the ceiling, 3 x token / (11.3 + pre-command), per run: "
        + ", ".join(f"{r:.2f}x" for r in ratios)
    )

    if plain:
        svc.close()
        return

    def wrapped() -> Phases:
        ph = Phases()
        modules: tuple[ModuleType, ...] = (act, pre, pre_signing)
        for attr in STEPS:
            for module in modules:
                if hasattr(module, attr):
                    ph.wrap(module, attr, attr)
        ph.wrap(PendingSignature, "finish", "PendingSignature.finish (serialise)")
        ph.wrap(reg_counters, "reserve", "counters.reserve")
        if hasattr(act, "activate_firmware_builder"):
            ph.wrap_built(act, "activate_firmware_builder", "build_activate_firmware")
        for insert in ("insert_issued", "insert_campaign_batch"):  # whichever is there
            if hasattr(reg_activations, insert):
                ph.wrap(reg_activations, insert, f"activations.{insert} (INSERT)")
        ph.wrap(reg_activations, "get_many", "activations.get_many (one SELECT per batch)")
        ph.wrap(
            reg_activations,
            "claim_pre_commands",
            "activations.claim_pre_commands (UPDATE + commit)",
        )
        ph.wrap(svc.token, "sign_digests", "HSM sign_digests (one call per key and batch)")
        ph.wrap(reg_audit, "record", "audit.record (one transaction per batch or call)")
        if svc.schema is not None:
            ph.wrap(svc.schema, "validate", "DuisSchema.validate")
        return ph

    ph = wrapped()
    with GcClock() as collector:
        total, built = cpu(stream)
    ph.undo()
    ph.report("=== steps of stream_activations", devices, total, collector)
    ph = wrapped()
    with GcClock() as collector:
        total, _ = cpu(sign_all, pre_commands(built[:pre_count]))
    ph.undo()
    ph.report("=== steps of sign_pre_command_batch", pre_count, total, collector)

    for title, n in (("stream_activations", devices), ("sign_pre_command_batch", pre_count)):
        pres = pre_commands(built[:pre_count])
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        if title == "stream_activations":
            built = stream()
        else:
            sign_all(pres)
        prof.disable()
        wall = time.perf_counter() - t
        print(
            f"\n=== cProfile {title}: {n:,} devices, {wall:,.2f} s under the profiler "
            f"({wall / n * 1e6:,.0f} us each) ==="
        )
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(15)
        stats.sort_stats("cumulative").print_stats(25)
    svc.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("image_id")
    ap.add_argument("devices", type=int)
    ap.add_argument("pre_commands", type=int)
    ap.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() after the warm-up: the cyclic collector then scans only what the "
        "use cases allocate, not the start-up heap",
    )
    ap.add_argument(
        "--plain",
        action="store_true",
        help="only the CPU per device against the token's (no breakdown, no cProfile): "
        "quick enough to alternate two versions of the code on one environment",
    )
    ap.add_argument("--repeats", type=int, default=REPEATS, help=f"plain runs (default {REPEATS})")
    args = ap.parse_args()
    profile(
        args.config,
        args.image_id,
        args.devices,
        args.pre_commands,
        freeze=args.gc_freeze,
        plain=args.plain,
        repeats=args.repeats,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
