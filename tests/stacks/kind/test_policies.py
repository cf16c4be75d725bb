"""Every rendered Kubernetes object passes the official 1.33 schemas (strict) and checkov's Kubernetes policies;
every checkov skip carries its reason in an annotation; the stack's scripts pass shellcheck."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from stacks.kind.metrics_server import IMAGE as METRICS_SERVER_IMAGE
from tests.stacks.rendering import run_checkov, tool

KUBERNETES_VERSION = "1.33.0"
MIN_PASSED = 200
SKIP_ANNOTATION = re.compile(r"^(CKV2?_K8S_\d+)=(.{20,})$")


def validate(paths: list) -> subprocess.CompletedProcess:
    command = [tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def manifests(kind_rendering) -> list:
    found = sorted((kind_rendering.directory / "kubernetes").glob("*.yaml"))
    assert len(found) >= 20, found
    return found


def test_every_object_passes_kubernetes_validate_strict(manifests) -> None:
    done = validate(manifests)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(f"against version {KUBERNETES_VERSION[:4]}") == len(manifests), done.stdout


def test_kubernetes_validate_rejects_an_unknown_field(manifests, tmp_path) -> None:
    """The check above is not vacuous: strict validation rejects a misspelt field."""
    deployment = next(p for p in manifests if "-deployment-modelops-bento-blue" in p.name)
    obj = yaml.safe_load(deployment.read_text())
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(obj))
    assert validate([broken]).returncode != 0


@pytest.fixture(scope="module")
def report(kind_rendering) -> dict:
    return run_checkov(kind_rendering.directory / "kubernetes", "kubernetes")


def test_checkov_kubernetes_reports_no_failures(report) -> None:
    failed = [(f["check_id"], f["resource"], f["check_name"]) for f in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > MIN_PASSED, report["summary"]
    assert report["summary"]["parsing_errors"] == 0


def test_checkov_scanned_the_model_deployments_and_metrics_server(report) -> None:
    scanned = {c["resource"] for c in report["results"]["passed_checks"]}
    for resource in ("Deployment.modelops.bento-blue", "Deployment.modelops.bento-green",
                     "Deployment.kube-system.metrics-server", "Service.modelops.bento"):  # fmt: skip
        assert resource in scanned, f"checkov ran no check on {resource}: {sorted(scanned)[:20]}"


def test_every_checkov_skip_states_its_reason(report, manifests) -> None:
    reasons = {}
    for path in manifests:
        obj = yaml.safe_load(path.read_text())
        for key, value in obj["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                match = SKIP_ANNOTATION.match(value)
                assert match, f"{path.name}: {key} must be 'CKV_K8S_n=<reason>', got {value!r}"
                reasons[(match[1], obj["kind"], obj["metadata"]["name"])] = match[2]
    skipped = {(s["check_id"], s["resource"].split(".")[0], s["resource"].split(".")[-1]) for s in
               report["results"]["skipped_checks"]}  # fmt: skip
    assert skipped == set(reasons), "every annotation skips a real finding, and nothing is skipped silently"


def test_metrics_server_runs_with_kubelet_insecure_tls_pinned_by_digest(kind_rendering) -> None:
    deployment = kind_rendering.kubernetes("Deployment", "metrics-server", "kube-system")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--kubelet-insecure-tls" in container["args"]
    assert container["image"] == METRICS_SERVER_IMAGE and "@sha256:" in container["image"]
    api = kind_rendering.kubernetes("APIService", "v1beta1.metrics.k8s.io")
    assert api["spec"]["service"] == {"name": "metrics-server", "namespace": "kube-system", "port": 443}


def test_cluster_and_image_scripts_pass_shellcheck(kind_rendering) -> None:
    scripts = sorted((kind_rendering.directory / "scripts").glob("*.sh"))
    expected = {"kind-cluster.create.sh", "kind-cluster.delete.sh", "kind-image-build.create.sh"}
    assert {p.name for p in scripts} == expected
    done = subprocess.run([tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
