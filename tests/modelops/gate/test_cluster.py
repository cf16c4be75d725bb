"""The in-cluster load generator's gate side (`modelops gate --stack kind --generator cluster`), offline: the
arguments a load's master gets, the URL mapping, and one load driven through the real kubernetes client against
the recording fake API server (tests/modelops/targets/conftest.py). No Locust runs in a cluster here: there is no
API server on our machines (stacks/RUNNING.md says how to run it for real)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from typer.testing import CliRunner

from loadtests.cluster_master import pack
from modelops.cli import app
from modelops.errors import DeploymentError, ExitStatus, UsageError
from modelops.gate.cluster import ClusterGenerator, in_cluster_args, require_cluster_generator
from modelops.gate.loadgen import LoadSpec
from stacks import locust
from stacks.config import load_stack_config
from tests.modelops.targets import conftest as kube_fake
from tests.modelops.targets.conftest import FakeKubeApi

fake_kube_api = kube_fake.kube_api  # the fixture `kube_api`: a recording fake API server
NS = "modelops"
POOL_URLS = {"blue": "http://127.0.0.1:8081", "green": "http://127.0.0.1:8082"}
SPEC = LoadSpec(users=32, spawn_rate=32, duration_s=20, warmup_s=3, rate=100)


def enabled_settings(**generator: object):
    return load_stack_config("kind").with_overrides(kind={"load_generator": {"enabled": True, **generator}})


@pytest.fixture
def generator(fake_kube_api: tuple[FakeKubeApi, str]) -> Iterator[ClusterGenerator]:
    api_client = k8s.ApiClient(k8s.Configuration(host=fake_kube_api[1]))
    try:
        yield ClusterGenerator(enabled_settings(workers=3), api_client, POOL_URLS, poll_s=0.01, clock=lambda: 1234.0)
    finally:
        api_client.close()


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


# ------------------------------------------------------------------------------------------------ arguments
def test_a_master_writes_its_outputs_and_reads_the_loads_files_where_its_pod_mounts_them(tmp_path: Path) -> None:
    golden = tmp_path / "golden.json"
    golden.write_text('{"rows": [[1.0]], "labels": [0]}')
    spec = LoadSpec(users=4, spawn_rate=4, duration_s=5, golden_file=golden, shape="StepLoad",
                    extra_env={"MODELOPS_STEP_USERS": "4,8"}, processes=2)  # fmt: skip
    args, env, files = in_cluster_args("http://bento-green.modelops.svc.cluster.local:80", spec, "smoke")
    assert option(args, "--csv") == f"{locust.OUT_DIR}/smoke"
    assert option(args, "--meta-file") == f"{locust.OUT_DIR}/smoke.meta.json"
    assert option(args, "--golden-file") == f"{locust.RUN_DIR}/golden.json"
    assert files == {"golden.json": golden.read_text()}
    assert env == {"MODELOPS_STEP_USERS": "4,8", "MODELOPS_SHAPE": "StepLoad"}
    assert "--processes" not in args, "in the cluster the worker pods are the processes"


def test_the_master_job_expects_every_worker_and_runs_through_the_results_wrapper() -> None:
    settings = enabled_settings(workers=3).kind.load_generator
    args, env, _ = in_cluster_args(locust.candidate_url("green", NS), SPEC, "slo")
    job = locust.master_job(NS, locust.job_name("slo", 1234.0), settings, args, env, deadline_s=300)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["python", f"{locust.FILES_DIR}/cluster_master.py"]
    assert option(command, "--expect-workers") == "3" and "--master" in command and "--headless" in command
    assert option(command, "-H") == "http://bento-green.modelops.svc.cluster.local:80"
    assert job["metadata"]["name"] == "locust-slo-1234"
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 300
    assert job["spec"]["template"]["metadata"]["labels"] == master_service_selector()


def master_service_selector() -> dict[str, str]:
    return locust.master_service(NS)["spec"]["selector"]


def test_the_pool_urls_of_this_machine_map_to_the_pools_in_cluster_services(generator: ClusterGenerator) -> None:
    assert generator.in_cluster("http://127.0.0.1:8082/") == "http://bento-green.modelops.svc.cluster.local:80"
    assert generator.in_cluster("http://bento-blue.modelops.svc:80") == "http://bento-blue.modelops.svc:80"
    with pytest.raises(UsageError, match="not one of the stack's pool_urls"):
        generator.in_cluster("http://203.0.113.7:8080")


@pytest.mark.parametrize(
    ("stack", "changes", "words"),
    [("local", {}, "targets local"), ("kind", {}, "load_generator.enabled: true")],
)
def test_the_cluster_generator_needs_the_kind_stacks_load_generator(stack, changes, words) -> None:
    with pytest.raises(UsageError, match=words):
        require_cluster_generator(load_stack_config(stack))
    require_cluster_generator(enabled_settings())  # enabled: nothing to say


def test_gate_refuses_the_cluster_generator_on_the_local_stack_before_touching_anything() -> None:
    result = CliRunner().invoke(app, ["gate", "--stack", "local", "--generator", "cluster"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert "--generator local" in result.output


# ----------------------------------------------------------------------------------------- one load, faked API
def master_outputs(folder: Path, prefix: str) -> Path:
    """What a master leaves in /out: the meta file with every worker's windows merged, and its exit code."""
    folder.mkdir()
    windows = [[1000.0 + i * 0.5, "single", 50, 0, {"4": 50}] for i in range(4)]
    meta = {"test_start": 1000.0, "stats_reset_at": 1000.0, "window_s": 0.5, "windows": windows, "steps": []}
    (folder / f"{prefix}.meta.json").write_text(json.dumps(meta))
    (folder / f"{prefix}.html").write_text("<html></html>")
    (folder / "exit_code").write_text("0")
    return folder


def route_one_load(api: FakeKubeApi, log: str) -> str:
    job = "locust-slo-1234"
    jobs = f"/apis/batch/v1/namespaces/{NS}/jobs"
    api.route("POST", jobs, {"kind": "Job", "apiVersion": "batch/v1", "metadata": {"name": job}})
    api.route("GET", f"{jobs}/{job}/status", {"status": {"active": 1}}, {"status": {"succeeded": 1}})
    api.route("POST", f"/api/v1/namespaces/{NS}/configmaps", {"kind": "ConfigMap", "metadata": {"name": "x"}})
    api.route("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{locust.WORKERS}/scale", {"kind": "Scale"})
    pod = {"metadata": {"name": f"{job}-abcde"}}
    api.route("GET", f"/api/v1/namespaces/{NS}/pods?labelSelector=job-name={job}", {"kind": "PodList", "items": [pod]})
    api.route("GET", f"/api/v1/namespaces/{NS}/pods/{job}-abcde/log", log)
    return job


def test_a_load_starts_the_master_scales_the_workers_and_reads_the_results_from_its_log(
    generator: ClusterGenerator,
    fake_kube_api: tuple[FakeKubeApi, str],
    tmp_path: Path,
) -> None:
    api = fake_kube_api[0]
    log = "master starting\n" + pack(master_outputs(tmp_path / "out", "slo")) + "\n"
    route_one_load(api, log)

    result = generator.run(POOL_URLS["green"], SPEC, tmp_path / "run", prefix="slo")

    (created,) = [r.body for r in api.sent("POST") if r.path.endswith("/jobs")]
    command = created["spec"]["template"]["spec"]["containers"][0]["command"]
    assert option(command, "-H") == locust.candidate_url("green", NS)
    scales = [r.body["spec"]["replicas"] for r in api.sent("PATCH") if r.path.endswith("/scale")]
    assert scales == [3, 0], "workers up for the load, back to zero after it"
    assert (result.requests, result.failures, result.exit_code, result.processes) == (200, 0, 0, 3)
    assert (tmp_path / "run" / "slo.html").exists() and not (tmp_path / "run" / "exit_code").exists()
    assert result.measured.generator_cpu is None, "the pods' CPU is not sampled from here"


def test_a_master_log_without_results_fails_the_load_and_still_stops_the_workers(
    generator: ClusterGenerator,
    fake_kube_api: tuple[FakeKubeApi, str],
    tmp_path: Path,
) -> None:
    api = fake_kube_api[0]
    route_one_load(api, "Traceback (most recent call last): ...\n")
    with pytest.raises(DeploymentError, match="no results block"):
        generator.run(POOL_URLS["green"], SPEC, tmp_path / "run", prefix="slo")
    scales = [r.body["spec"]["replicas"] for r in api.sent("PATCH") if r.path.endswith("/scale")]
    assert scales == [3, 0]
