"""The service's Prometheus metrics, defined once; every layer counts into these.

Names follow go-grpc-prometheus for the gRPC family so existing dashboards and alerts work;
the ``signer_`` family is ours. Label values are bounded sets (methods, codes, key labels,
reasons), never device or image IDs.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# gRPC server family (go-grpc-prometheus names and labels)
GRPC_STARTED = Counter(
    "grpc_server_started_total", "RPCs started on the server.",
    ["grpc_type", "grpc_service", "grpc_method"])
GRPC_HANDLED = Counter(
    "grpc_server_handled_total", "RPCs completed on the server, whatever their status code.",
    ["grpc_type", "grpc_service", "grpc_method", "grpc_code"])
GRPC_HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds", "Time from the start of an RPC to its status.",
    ["grpc_type", "grpc_service", "grpc_method"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))

# signing and checking
SIGNATURES = Counter(
    "signer_signatures_total", "Signatures returned by the HSM and recorded in the audit trail.",
    ["key", "purpose"])
HSM_OPERATION_SECONDS = Histogram(
    "signer_hsm_operation_seconds", "Duration of PKCS#11 operations, retries included.",
    ["operation"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5))
HSM_ERRORS = Counter(
    "signer_hsm_errors_total", "PKCS#11 failures by class (transient, fatal, login, down).",
    ["error"])
VERIFICATIONS = Counter(
    "signer_verifications_total", "Checks made on inputs before anything is signed.",
    ["check", "result"])
REFUSALS = Counter(
    "signer_refusals_total", "Devices or requests refused, by reason code.", ["reason"])
