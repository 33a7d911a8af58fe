"""The activation use cases in-process, step by step: what bench/activation.py --profile runs.

    SOFTHSM2_CONF=<dir>/env/softhsm2.conf \
    .venv/bin/python bench/profile_activation.py CONFIG IMAGE_ID DEVICES PRE_COMMANDS

Drives ``stream_activations`` and ``sign_pre_command_batch`` (the StreamSignPreCommands path)
in batches of 1,000 in the main thread (cProfile sees only the thread that enabled it): plain
rates, a per-step wall-time breakdown (timing wrappers installed in this process only), then
cProfile's top functions by own and cumulative time. Needs the devices and image of a kept
bench/activation.py environment.
"""

from __future__ import annotations

import argparse
import cProfile
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


class Phases:
    """Wall time per step of a use case, without a profiler: this process replaces the
    functions the use case calls (module attributes, and the token/schema instance methods)
    by timing wrappers. The steps wrapped do not nest, so their times add up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        original = getattr(owner, attr)

        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
                self.calls[name] = self.calls.get(name, 0) + 1

        self._undo.append((owner, attr, original))
        setattr(owner, attr, timed)

    def undo(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()

    def report(self, title: str, n: int, total: float) -> None:
        print(
            f"\n{title}: {n:,} devices, {total / n * 1e6:,.0f} us each (wall, timing wrappers on)"
        )
        rows = [(sec, name, self.calls[name]) for name, sec in self.seconds.items()]
        accounted = sum(r[0] for r in rows)
        rows.append((total - accounted, "(the rest: loop, dataclasses, generators)", n))
        for own, label, calls in sorted(rows, reverse=True):
            print(
                f"  {own / n * 1e6:8,.1f} us/device  {own / total * 100:5.1f} %  "
                f"{label}  [{calls:,} calls]"
            )


def timed(fn: Callable[..., T], *a: Any) -> tuple[float, T]:
    t = time.perf_counter()
    out = fn(*a)
    return time.perf_counter() - t, out


def profile(config: str, image_id: str, devices: int, pre_count: int) -> None:
    """Plain timing, a per-step breakdown, then cProfile, of both use cases."""
    import signer.registry.activations as reg_activations
    import signer.registry.audit as reg_audit
    import signer.registry.counters as reg_counters
    import signer.service.activation as act
    import signer.service.precommands as pre
    from signer.config import load_config
    from signer.duis.xmldsig import PendingSignature
    from signer.service.activation import ActivationSpec, BuiltActivation
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

    def sign_all(built: list[tuple[str, int]]) -> None:
        """The StreamSignPreCommands path: sign_pre_command_batch, batches of BATCH."""
        pres = pre_commands(built[:pre_count])
        for i in range(0, len(pres), BATCH):
            pre.sign_pre_command_batch(svc, pres[i : i + BATCH], accept_unauthenticated=True)

    stream()  # warm-up: caches, graph, schema
    plain, built = timed(stream)
    plain_pre, _ = timed(sign_all, built)
    print(
        f"\nin-process, no profiler: stream_activations {devices / plain:,.0f} devices/s "
        f"({plain / devices * 1e6:,.0f} us/device); sign_pre_command_batch "
        f"{pre_count / plain_pre:,.0f}/s ({plain_pre / pre_count * 1e6:,.0f} us each)"
    )

    def wrapped() -> Phases:
        ph = Phases()
        modules: tuple[ModuleType, ...] = (act, pre)
        for attr in STEPS:
            for module in modules:
                if hasattr(module, attr):
                    ph.wrap(module, attr, attr)
        ph.wrap(PendingSignature, "finish", "PendingSignature.finish (serialise)")
        ph.wrap(reg_counters, "reserve", "counters.reserve")
        ph.wrap(reg_activations, "insert_issued", "activations.insert_issued (INSERT)")
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
    total, built = timed(stream)
    ph.undo()
    ph.report("=== steps of stream_activations", devices, total)
    ph = wrapped()
    total, _ = timed(sign_all, built)
    ph.undo()
    ph.report("=== steps of sign_pre_command_batch", pre_count, total)

    for title, n in (("stream_activations", devices), ("sign_pre_command_batch", pre_count)):
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        if title == "stream_activations":
            built = stream()
        else:
            sign_all(built)
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
    args = ap.parse_args()
    profile(args.config, args.image_id, args.devices, args.pre_commands)
    return 0


if __name__ == "__main__":
    sys.exit(main())
