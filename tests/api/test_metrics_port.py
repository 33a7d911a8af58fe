"""The metrics port serves /metrics and nothing else: no path of it looks like a health
endpoint (health is the gRPC health service, `signer health`)."""

from __future__ import annotations

import http.client

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import Running


def request(running: Running, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    assert running.server.metrics is not None
    host, port = running.server.metrics.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def samples(body: bytes) -> set[str]:
    return {s.name for f in text_string_to_metric_families(body.decode()) for s in f.samples}


def test_metrics_is_prometheus_text_and_takes_a_query_string(running: Running) -> None:
    status, headers, body = request(running, "GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    assert {"signer_build_info", "signer_hsm_up"} <= samples(body)
    status, _headers, body = request(running, "GET", "/metrics?name[]=signer_hsm_up")
    assert status == 200 and samples(body) == {"signer_hsm_up"}


def test_head_on_metrics_has_the_headers_and_no_body(running: Running) -> None:
    status, headers, body = request(running, "HEAD", "/metrics")
    assert status == 200 and body == b""
    assert headers["content-type"].startswith("text/plain; version=0.0.4")


@pytest.mark.parametrize("path", ["/", "/healthz", "/health", "/metrics/x", "/metrics/", "/x"])
def test_every_other_path_is_not_found_and_names_the_health_check(
    running: Running, path: str
) -> None:
    status, headers, body = request(running, "GET", path)
    assert status == 404
    assert headers["content-type"] == "text/plain; charset=utf-8"
    text = body.decode()
    assert "serves /metrics only" in text and "gRPC health service (signer health)" in text


def test_head_elsewhere_is_not_found_without_a_body(running: Running) -> None:
    status, headers, body = request(running, "HEAD", "/healthz")
    assert (status, body) == (404, b"")
    assert int(headers["content-length"]) > 0  # the length a GET's body would have


def test_other_methods_on_metrics_are_not_allowed(running: Running) -> None:
    status, headers, _body = request(running, "POST", "/metrics")
    assert status == 405 and headers["allow"] == "GET, HEAD"
