"""The service's Prometheus metrics, defined once; every layer counts into these.

Names follow go-grpc-prometheus for the gRPC family so existing dashboards and alerts work
(``grpc_code`` carries Go's spelling of the status code: ``OK``, ``Canceled``,
``InvalidArgument``...); the ``signer_`` family is ours. Label values are bounded sets
(methods, codes, key labels, reasons, check names), never device or image IDs, so a campaign
of 50,000 devices adds no series. Definitions only: the gRPC family and the refusals are
counted in ``signer.api`` (``metrics_interceptor``, ``outcome``, which bounds reason labels);
metrics read at scrape time (HSM up, key expiry, build info) are in
``signer.api.metrics_collector``: they call use cases, which this shared module may not.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# gRPC server family (go-grpc-prometheus names and labels)
_GRPC_LABELS = ["grpc_type", "grpc_service", "grpc_method"]
GRPC_STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", _GRPC_LABELS)
GRPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, whatever their status code.",
    [*_GRPC_LABELS, "grpc_code"],
)
GRPC_HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of an RPC to its status.",
    _GRPC_LABELS,
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
GRPC_MSG_RECEIVED = Counter(
    "grpc_server_msg_received_total", "Request messages received on the server.", _GRPC_LABELS
)
GRPC_MSG_SENT = Counter(
    "grpc_server_msg_sent_total", "Response messages sent by the server.", _GRPC_LABELS
)

# signing and checking
SIGNATURES = Counter(
    "signer_signatures_total",
    "Signatures returned by the HSM and recorded in the audit trail.",
    ["key", "purpose"],
)
HSM_OPERATION_SECONDS = Histogram(
    "signer_hsm_operation_seconds",
    "Duration of PKCS#11 operations under the token lock, recovery and retry included.",
    ["operation"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5),
)
HSM_ERRORS = Counter(
    "signer_hsm_errors_total",
    "PKCS#11 failures by class: transient (recovered and retried), login (PIN refused), "
    "other (not retried), down (the token was marked down), fail_fast (a call refused "
    "without touching the token while it is down).",
    ["error"],
)
VERIFICATIONS = Counter(
    "signer_verifications_total",
    "Checks made on manufacturer deliveries, pass or fail.",
    ["check", "result"],
)
REFUSALS = Counter(
    "signer_refusals_total",
    "Devices and pre-commands refused, by machine-readable reason code.",
    ["reason"],
)

# clients: who was refused before any use case ran, and what the TLS layer can tell
AUTH_DENIED = Counter(
    "signer_auth_denied_total",
    "Calls refused by the transport before any use case ran, by reason: no_certificate, "
    "revoked, revocation_unknown (no current CRL for the certificate's issuer), "
    "permission_denied (the role policy).",
    ["reason"],
)
TLS_HANDSHAKES = Counter(
    "signer_tls_handshakes_total",
    "TLS handshakes begun (one per new client connection); those refused are also in "
    "signer_tls_handshake_failures_total.",
)
TLS_HANDSHAKE_FAILURES = Counter(
    "signer_tls_handshake_failures_total",
    "TLS handshakes refused, by reason: no_certificate, certificate_verify_failed "
    "(untrusted or expired, ...), not_tls (plaintext or HTTP to the TLS port), other; read "
    "from the line gRPC core logs for each (not counted under GRPC_VERBOSITY=ERROR).",
    ["reason"],
)
RELOADS = Counter(
    "signer_reloads_total",
    "SIGHUP reloads of the policy, CRLs and TLS files, by result (ok, failed: the "
    "previous configuration was kept).",
    ["result"],
)

#: every value of signer_auth_denied_total{reason}
AUTH_DENIAL_REASONS = ("no_certificate", "revoked", "revocation_unknown", "permission_denied")
#: every value of signer_tls_handshake_failures_total{reason}
TLS_HANDSHAKE_FAILURE_REASONS = ("no_certificate", "certificate_verify_failed", "not_tls", "other")
#: every value of signer_hsm_errors_total{error}
HSM_ERROR_CLASSES = ("transient", "login", "other", "down", "fail_fast")
#: the checks VerifyManufacturer makes, in order
VERIFICATION_CHECKS = ("structure", "manufacturer_signature", "hash", "cpl")

for _error in HSM_ERROR_CLASSES:  # present at 0, so the first error shows in increase()
    HSM_ERRORS.labels(error=_error)
for _reason in AUTH_DENIAL_REASONS:
    AUTH_DENIED.labels(reason=_reason)
for _reason in TLS_HANDSHAKE_FAILURE_REASONS:
    TLS_HANDSHAKE_FAILURES.labels(reason=_reason)
for _result in ("ok", "failed"):
    RELOADS.labels(result=_result)
for _check in VERIFICATION_CHECKS:
    for _verdict in ("pass", "fail"):
        VERIFICATIONS.labels(check=_check, result=_verdict)
