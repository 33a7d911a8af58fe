"""deploy/k8s: every manifest valid for a pinned Kubernetes version (offline), and consistent
with what the service reads: its configuration, its ports, its files, its user."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from signer.api.auth import Policy
from signer.api.server import LINGER
from signer.config import load_config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/k8s"
#: the Kubernetes version the manifests are validated against (kubernetes-validate's schemas)
KUBERNETES_VERSION = "1.34.0"
#: kinds kubernetes-validate has no schema for; checked by hand below
CUSTOM_KINDS = {"ServiceMonitor"}


def _resources() -> dict[str, dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    out: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            out[doc["kind"]] = doc
    return out


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    return _resources()


def _validator() -> str:
    found = shutil.which("kubernetes-validate") or str(
        Path(sys.executable).with_name("kubernetes-validate")
    )
    if not Path(found).exists():
        if os.environ.get("CI"):
            pytest.fail("kubernetes-validate is missing (pip install kubernetes-validate)")
        pytest.skip("kubernetes-validate is not installed")
    return found


def test_the_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    present = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == present


def test_every_manifest_validates_strictly(k8s: dict[str, dict[str, Any]]) -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    builtin = [
        K8S / n for n in listed if yaml.safe_load((K8S / n).read_text())["kind"] not in CUSTOM_KINDS
    ]
    done = subprocess.run(
        [_validator(), "--strict", "-k", KUBERNETES_VERSION, *map(str, builtin)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" passed ") == len(builtin), done.stdout


def test_strict_validation_catches_a_misspelt_field(tmp_path: Path) -> None:
    """The control: the validator is strict, so the test above can fail."""
    broken = (K8S / "deployment.yaml").read_text().replace("readinessProbe:", "readynessProbe:")
    (tmp_path / "deployment.yaml").write_text(broken)
    done = subprocess.run(
        [_validator(), "--strict", "-k", KUBERNETES_VERSION, str(tmp_path / "deployment.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0


def _pod(k8s: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return dict(k8s["Deployment"]["spec"]["template"]["spec"])


def _container(k8s: dict[str, dict[str, Any]], name: str = "signer") -> dict[str, Any]:
    pod = _pod(k8s)
    [found] = [c for c in pod["containers"] + pod["initContainers"] if c["name"] == name]
    return dict(found)


def _port(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def config(k8s: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The ConfigMap's signer.toml as the service loads it, the database URL from the env."""
    path = tmp_path_factory.mktemp("k8s") / "signer.toml"
    path.write_text(k8s["ConfigMap"]["data"]["signer.toml"])
    return load_config(path, {"SIGNER_DATABASE_URL": "postgresql+psycopg://u:p@db/signer"})


def test_the_configuration_loads_and_is_production(
    config: Any, tmp_path: Path, k8s: dict[str, dict[str, Any]]
) -> None:
    assert not config.dev_mode and config.tls is not None
    assert config.cpl_mode == "strict" and config.schema_dir is not None
    assert config.smki_issuers and config.pinned_time is None
    assert config.database_url.startswith("postgresql+psycopg://")
    policy = tmp_path / "policy.toml"
    policy.write_text(k8s["ConfigMap"]["data"]["policy.toml"])
    assert Policy.load(policy).clients  # the service's own loader accepts it


def test_ports_agree_between_config_container_probes_and_service(
    config: Any, k8s: dict[str, dict[str, Any]]
) -> None:
    ports = {p["name"]: p["containerPort"] for p in _container(k8s)["ports"]}
    assert ports["grpc"] == _port(config.listen)
    assert ports["metrics"] == _port(config.metrics_listen)
    assert ports["health"] == _port(config.health_listen)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert _container(k8s)[probe]["grpc"]["port"] == ports["health"], probe
    service = {p["name"]: p["targetPort"] for p in k8s["Service"]["spec"]["ports"]}
    assert service == {"grpc": "grpc", "metrics": "metrics"}  # no health port for clients


def test_every_file_the_configuration_names_is_mounted(
    config: Any, k8s: dict[str, dict[str, Any]]
) -> None:
    mounts = {m["mountPath"]: m["name"] for m in _container(k8s)["volumeMounts"]}
    volumes = {v["name"]: v for v in _pod(k8s)["volumes"]}

    def volume_of(path: Path) -> dict[str, Any]:
        best = max((m for m in mounts if str(path).startswith(m + "/")), key=len)
        return dict(volumes[mounts[best]])

    assert config.token.pin.file is not None
    assert volume_of(config.token.pin.file)["secret"]["secretName"] == "signer-pin"
    for path in (config.tls.cert, config.tls.key, config.tls.client_ca):
        assert volume_of(path)["secret"]["secretName"] == "signer-tls"
    assert volume_of(config.tls.policy)["configMap"]["name"] == "signer-config"
    assert volume_of(config.schema_dir / "x.xsd")["configMap"]["name"] == "signer-duis-schema"
    assert volume_of(config.smki_issuers[0])["configMap"]["name"] == "signer-smki-issuers"
    assert "emptyDir" in volume_of(Path(config.token.module))  # filled by the vendor's image
    for secret in ("signer-pin", "signer-tls"):
        [v] = [v for v in volumes.values() if v.get("secret", {}).get("secretName") == secret]
        assert v["secret"]["defaultMode"] == 0o400
    # the migration runs with the same configuration and files
    assert _container(k8s, "migrate")["volumeMounts"] == _container(k8s)["volumeMounts"]
    assert _container(k8s, "migrate")["args"][:2] == ["db", "upgrade"]


def test_pods_run_as_the_images_non_root_user_read_only(k8s: dict[str, dict[str, Any]]) -> None:
    pod = _pod(k8s)
    found = re.search(r"--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert found is not None, "the Dockerfile names the service user's uid"
    uid = int(found.group(1))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["automountServiceAccountToken"] is False
    for c in pod["containers"] + pod["initContainers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert "limits" in c["resources"] and "requests" in c["resources"]


def test_shutdown_fits_in_the_grace_period(config: Any, k8s: dict[str, dict[str, Any]]) -> None:
    assert _pod(k8s)["terminationGracePeriodSeconds"] > config.shutdown_grace + LINGER


def test_only_back_office_reaches_grpc_and_only_prometheus_reaches_metrics(
    k8s: dict[str, dict[str, Any]],
) -> None:
    rules = k8s["NetworkPolicy"]["spec"]["ingress"]
    by_port = {r["ports"][0]["port"]: r["from"] for r in rules}
    assert set(by_port) == {50051, 9464}
    assert by_port[50051] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "back-office"}}}
    ]
    [prometheus] = by_port[9464]
    assert prometheus["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    assert set(k8s["NetworkPolicy"]["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_the_service_monitor_scrapes_the_services_metrics_port(
    k8s: dict[str, dict[str, Any]],
) -> None:
    """kubernetes-validate has no schema for the Prometheus Operator's CRD: checked here."""
    monitor = k8s["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    selector = monitor["spec"]["selector"]["matchLabels"]
    labels = k8s["Service"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in selector.items())
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in k8s["Service"]["spec"]["ports"]}
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
