"""The in-cluster load generator (kind.load_generator): off in the shipped stack; when enabled, the locustfile
ConfigMap, the master Service, the workers at zero replicas (the gate's to scale) and a NetworkPolicy, rendered by
the real program under mocks. Those objects and the master Job the gate creates per load (stacks/locust.py) pass
kubernetes-validate strict and checkov like the others, every checkov skip with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelops.gate.cluster import in_cluster_args
from modelops.gate.loadgen import LoadSpec
from stacks import locust
from stacks.config import load_stack_config
from stacks.kind.load_generator import locust_files
from tests.stacks.kind.test_policies import KUBERNETES_VERSION, SKIP_ANNOTATION, validate
from tests.stacks.rendering import run_checkov

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NS = "modelops"


def generator_files(rendering) -> list[Path]:
    found = []
    for path in sorted((rendering.directory / "kubernetes").glob("*.yaml")):
        labels = yaml.safe_load(path.read_text())["metadata"].get("labels", {})
        if labels.get("app.kubernetes.io/name") == locust.GENERATOR:
            found.append(path)
    return found


@pytest.fixture(scope="module")
def checked(kind_planned, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The rendered generator objects, plus a master Job as the gate makes it for the slo load, in one folder."""
    folder = tmp_path_factory.mktemp("locust-manifests")
    for path in generator_files(kind_planned):
        (folder / path.name).write_text(path.read_text())
    settings = load_stack_config("kind").with_overrides(kind={"load_generator": {"enabled": True}})
    spec = LoadSpec(users=32, spawn_rate=32, duration_s=20, warmup_s=3, rate=100)
    args, env, _ = in_cluster_args(locust.candidate_url("green", NS), spec, "slo")
    job = locust.master_job(NS, locust.job_name("slo", 0), settings.kind.load_generator, args, env, 300)
    (folder / "master-job.yaml").write_text(yaml.safe_dump(job))
    return sorted(folder.glob("*.yaml"))


def test_the_shipped_kind_stack_renders_no_load_generator(kind_rendering) -> None:
    assert generator_files(kind_rendering) == []


def test_enabled_it_renders_the_locust_files_the_master_service_the_workers_and_a_network_policy(
    kind_planned,
) -> None:
    kinds = sorted(yaml.safe_load(p.read_text())["kind"] for p in generator_files(kind_planned))
    assert kinds == ["ConfigMap", "Deployment", "NetworkPolicy", "Service"]
    files = kind_planned.kubernetes("ConfigMap", locust.FILES_CONFIGMAP, NS)
    assert files["data"] == locust_files(), "the pods run the project's own locustfile, shapes and helpers"
    service = kind_planned.kubernetes("Service", locust.MASTER_SERVICE, NS)
    assert service["spec"]["ports"][0]["port"] == locust.MASTER_PORT


def test_workers_start_at_zero_and_pulumi_leaves_their_count_to_the_gate(kind_planned) -> None:
    workers = kind_planned.kubernetes("Deployment", locust.WORKERS, NS)
    assert workers["spec"]["replicas"] == 0
    command = workers["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--master-host") + 1] == locust.MASTER_SERVICE
    resource = kind_planned.one(DEPLOYMENT, "locust-workers")
    assert resource["ignore_changes"] == ["spec.replicas"]


def test_generator_objects_and_the_master_job_pass_kubernetes_validate_strict(checked) -> None:
    assert len(checked) == 5, checked
    done = validate(checked)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(f"against version {KUBERNETES_VERSION[:4]}") == len(checked), done.stdout


def test_kubernetes_validate_rejects_a_master_job_with_an_unknown_field(checked, tmp_path: Path) -> None:
    job = yaml.safe_load(next(p for p in checked if p.name == "master-job.yaml").read_text())
    job["spec"]["backoffLimitt"] = 0
    broken = tmp_path / "broken-job.yaml"
    broken.write_text(yaml.safe_dump(job))
    assert validate([broken]).returncode != 0


def test_checkov_finds_nothing_unexplained_in_the_generator_objects_and_the_master_job(checked) -> None:
    report = run_checkov(checked[0].parent, "kubernetes")
    failed = [(f["check_id"], f["resource"], f["check_name"]) for f in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    scanned = {c["resource"] for c in report["results"]["passed_checks"]}
    assert {f"Deployment.{NS}.{locust.WORKERS}", f"Job.{NS}.locust-slo-0"} <= scanned, sorted(scanned)
    reasons = set()
    for path in checked:
        obj = yaml.safe_load(path.read_text())
        for key, value in obj["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                match = SKIP_ANNOTATION.match(value)
                assert match, f"{path.name}: {key} must be 'CKV_K8S_n=<reason>', got {value!r}"
                reasons.add((match[1], obj["kind"], obj["metadata"]["name"]))
    skipped = {(s["check_id"], s["resource"].split(".")[0], s["resource"].split(".")[-1])
               for s in report["results"]["skipped_checks"]}  # fmt: skip
    assert skipped == reasons, "every annotation skips a real finding, and nothing is skipped silently"
