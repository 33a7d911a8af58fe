"""The activation as a Supplier drives it over gRPC: SR 11.3 streams, then CS06 pre-commands.

Every call checks what came back (no refusal, one result per device) before its time counts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from activation_env import BATCH, EuiOf, activation_eui, pre_commands  # bench/ is sys.path[0]
from harness import RawHsm, Stub, in_parallel

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.gbcs.precommand import parse_pre_command, sign_pre_command


@dataclass
class Sent:
    """What a campaign's request generator has sent, and whether it stopped at the limit."""

    devices: int = 0
    capped: bool = False


@dataclass
class Pacing:
    """At most ``window`` batches ahead of the results received, stopping at ``stop_at``."""

    window: threading.Semaphore
    closed: threading.Event = field(default_factory=threading.Event)
    stop_at: float = float("inf")
    sent: Sent = field(default_factory=Sent)


def campaign_messages(
    image_id: str, eui_of: EuiOf, n: int, pacing: Pacing | None = None
) -> Iterator[pb.ActivationCampaignRequest]:
    """The activation, then batches of BATCH device IDs generated as gRPC asks for them.

    With ``pacing``, a batch goes out only when the consumer has released a slot (it releases
    one per BATCH results), so at most that many batches are in flight: the client never runs
    ahead of the server, and stopping at ``stop_at`` stops the campaign promptly."""
    yield pb.ActivationCampaignRequest(activation=pb.ActivationSpec(image_id=image_id))
    for start in range(0, n, BATCH):
        while pacing is not None and not pacing.window.acquire(timeout=0.5):
            if pacing.closed.is_set():
                return
        if pacing is not None and time.perf_counter() >= pacing.stop_at:
            pacing.sent.capped = True
            return
        ids = [eui_of(i) for i in range(start, min(n, start + BATCH))]
        if pacing is not None:
            pacing.sent.devices += len(ids)
        yield pb.ActivationCampaignRequest(devices=pb.DeviceBatch(device_ids=ids))


def stream_activation(
    client: Stub, image_id: str, n: int, ids: list[str] | None = None
) -> tuple[float, list[tuple[str, int]]]:
    """(seconds, [(device, counter)]) of one StreamActivation of the first n devices (or of
    ``ids``)."""
    out: list[tuple[str, int]] = []
    eui_of = activation_eui if ids is None else ids.__getitem__
    t = time.perf_counter()
    results = (
        r
        for b in client.StreamActivation(campaign_messages(image_id, eui_of, n))
        for r in b.results
    )
    for r in results:
        if r.WhichOneof("result") != "request":
            raise RuntimeError(
                f"device refused: {r.refused.device_id} {r.refused.reason} {r.refused.detail}"
            )
        out.append((r.request.device_id, int(r.request.request_id.rsplit(":", 1)[1])))
    elapsed = time.perf_counter() - t
    if len(out) != n:
        raise RuntimeError(f"{len(out)} results for {n} devices")
    return elapsed, out


def sign_pre_commands(
    clients: list[Stub], pres: list[bytes]
) -> tuple[float, pb.SignPreCommandResponse]:
    """Seconds to get every pre-command signed over gRPC, one thread per client; and one
    response to check."""
    share = [pres[i :: len(clients)] for i in range(len(clients))]
    sample: list[pb.SignPreCommandResponse] = []

    def worker(r: int) -> None:
        for p in share[r]:
            sample.append(
                clients[r].SignPreCommand(
                    pb.SignPreCommandRequest(pre_command=p, accept_unauthenticated=True)
                )
            )
            del sample[:-1]  # one is enough

    return in_parallel(worker, len(clients)), sample[0]


def stream_sign_pre_commands(client: Stub, pres: list[bytes]) -> float:
    """Seconds to get every pre-command signed through StreamSignPreCommands, in batches."""

    def batches() -> Iterator[pb.PreCommandBatch]:
        for i in range(0, len(pres), BATCH):
            yield pb.PreCommandBatch(pre_commands=pres[i : i + BATCH], accept_unauthenticated=True)

    t = time.perf_counter()
    done = 0
    for message in client.StreamSignPreCommands(batches()):
        for r in message.results:
            if r.WhichOneof("result") != "signed":
                raise RuntimeError(f"pre-command refused: {r.refused.reason}")
            done += 1
    elapsed = time.perf_counter() - t
    if done != len(pres):
        raise RuntimeError(f"{done} results for {len(pres)} pre-commands")
    return elapsed


def activate_and_sign(clients: list[Stub], image_id: str, n: int) -> tuple[float, float]:
    """(Ta, Ts) of the whole activation of the first n devices spread over the replicas
    behind ``clients``: device i goes to replica i mod R; each replica gets one
    StreamActivation at the same time (Ta ends when the last one does), then one
    StreamSignPreCommands of the pre-commands answering its own requests (Ts)."""
    ids = [activation_eui(i) for i in range(n)]
    shares = [ids[r :: len(clients)] for r in range(len(clients))]
    built: list[list[tuple[str, int]]] = [[] for _ in clients]

    def activate(r: int) -> None:
        built[r] = stream_activation(clients[r], image_id, len(shares[r]), shares[r])[1]

    ta = in_parallel(activate, len(clients))
    pres = [pre_commands(b) for b in built]
    ts = in_parallel(lambda r: stream_sign_pre_commands(clients[r], pres[r]), len(clients))
    return ta, ts


def pure_sign(raw: RawHsm, pres: list[bytes]) -> float:
    """Seconds for parse_pre_command + sign_pre_command (SHA-256 + CKM_ECDSA in the token
    via python-pkcs11) of every pre-command, one thread."""
    t = time.perf_counter()
    for p in pres:
        signed = sign_pre_command(parse_pre_command(p), raw.sign)
    elapsed = time.perf_counter() - t
    assert len(signed) == len(pres[-1]) + 65  # APDU || 0x40 || r||s
    return elapsed
