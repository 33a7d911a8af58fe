"""The minimal signing service the benchmark compares ``signer serve`` against.

One proto-less unary method, ``/bench.Baseline/Sign``: the request is the raw image bytes,
the reply is those bytes followed by a 64-byte raw ECDSA P-256 signature over their SHA-256,
made in the same SoftHSM token through python-pkcs11 directly (``CKM_ECDSA`` over the 32-byte
digest). Every PKCS#11 call sits under one process-wide lock (python-pkcs11 initialises
SoftHSM without OS locking). Nothing else: no database, no checks, no protobuf.

Used for both baselines: ~300 B images at 8 concurrent clients (calls/s) and a 10 MB image
(one round trip: 10 MB in, SHA-256, one HSM signature, 10 MB back).

    python bench/baseline_signer.py --module M --token-label L --pin-file F --key-label K

prints ``READY host:port`` on stdout once it serves; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import threading
from concurrent import futures
from typing import cast

import grpc
import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.types import SignMixin

MAX_MESSAGE = 64 * 1024 * 1024
OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
]
METHOD = "/bench.Baseline/Sign"


def _identity(b: bytes) -> bytes:
    return b


class HsmSigner:
    def __init__(self, module: str, token_label: str, pin: str, key_label: str) -> None:
        self._lock = threading.Lock()
        with self._lock:
            lib = pkcs11.lib(module)
            token = lib.get_token(token_label=token_label)
            self._session = token.open(user_pin=pin)
            self._key = cast(
                SignMixin,
                self._session.get_key(
                    object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.EC, label=key_label
                ),
            )
            assert self._key[Attribute.SIGN]

    def sign(self, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        with self._lock:
            sig: bytes = self._key.sign(digest, mechanism=Mechanism.ECDSA)
        return sig


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--module", required=True)
    ap.add_argument("--token-label", required=True)
    ap.add_argument("--pin-file", required=True)
    ap.add_argument("--key-label", required=True)
    ap.add_argument("--workers", type=int, default=16)  # signer serve's default
    args = ap.parse_args()
    with open(args.pin_file, encoding="utf-8") as f:
        pin = f.read().strip()
    hsm = HsmSigner(args.module, args.token_label, pin, args.key_label)

    def sign(request: bytes, context: grpc.ServicerContext) -> bytes:
        return request + hsm.sign(request)

    handler = grpc.method_handlers_generic_handler(
        "bench.Baseline",
        {
            "Sign": grpc.unary_unary_rpc_method_handler(
                sign, request_deserializer=_identity, response_serializer=_identity
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers), options=OPTIONS)
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"READY 127.0.0.1:{port}", flush=True)
    stopped = threading.Event()

    def _stop(_signum: int, _frame: object) -> None:
        server.stop(1).wait()
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stopped.wait()
    os._exit(0)  # skip PKCS#11 finalisation races at interpreter exit


if __name__ == "__main__":
    sys.exit(main())
