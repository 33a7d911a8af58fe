"""Placeholder: the role policy (replaced by the authorisation work)."""

from __future__ import annotations

from pathlib import Path

import grpc

from signer.api.handlers import Continuation, Handler, ServerInterceptor, wrap


class Policy:
    @classmethod
    def load(cls, path: Path) -> Policy:
        return cls()


class AuthInterceptor(ServerInterceptor):
    def __init__(self, policy: Policy | None) -> None:
        self.policy = policy

    def intercept_service(self, continuation: Continuation,
                          details: grpc.HandlerCallDetails) -> Handler | None:
        return wrap(continuation(details), details, lambda rpc, behavior: behavior)
