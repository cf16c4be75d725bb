"""Loads generated in the cluster: `modelops gate --stack kind --generator cluster`.

For a candidate that outgrows one generator machine, each load runs from Locust in the cluster, next to the
service, instead of a local subprocess. Per load: the load's own files (payloads, golden rows) go into a
ConfigMap, a master Job starts (`locust --master --expect-workers N --headless`, stacks/locust.py), the worker
Deployment the kind stack made (kind.load_generator.enabled) is scaled to N, the Job is awaited, its pod's log is
read and the results block the master printed there (loadtests/cluster_master.py) is unpacked into the run folder,
where :func:`loadgen.parse` reads it as it reads a local run's. The workers go back to zero after every load.

What this cannot measure: the generator's CPU (the pods' CPU is the cluster's; CpuSampler watches local processes).
Such a run's figures carry no generator CPU, so the gate's generator checks do not apply to it; size the workers
(kind.load_generator.workers, cpu_per_worker) with headroom instead.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from loadtests.cluster_master import MissingResultsError, unpack
from modelops.errors import DeploymentError, UsageError
from modelops.gate import loadgen
from modelops.gate.loadgen import LoadResult, LoadSpec, Probe
from modelops.waiting import wait_until
from stacks import locust
from stacks.config import LoadGeneratorSettings, StackConfig

MERGE_PATCH = "application/merge-patch+json"
EXIT_CODE_FILE = "exit_code"  # written by loadtests/cluster_master.py beside Locust's outputs
JOB_MARGIN_S = 120  # beyond the load's own duration and the workers' start: image pulls, Locust's start and stop


def in_cluster_args(url: str, spec: LoadSpec, prefix: str) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(Locust options, environment, run files) of one load for a master pod: output paths and the load's own
    files as the pods see them. The workers need none of it: the master sends them the run's options."""
    files: dict[str, str] = {}
    payload = golden = None
    if spec.payload_file:
        files["payload.json"] = Path(spec.payload_file).read_text()
        payload = f"{locust.RUN_DIR}/payload.json"
    if spec.golden_file:
        files["golden.json"] = Path(spec.golden_file).read_text()
        golden = f"{locust.RUN_DIR}/golden.json"
    args = loadgen.locust_args(url, spec, f"{locust.OUT_DIR}/{prefix}", payload, golden)
    env = dict(spec.extra_env)
    if spec.shape:
        env["MODELOPS_SHAPE"] = spec.shape
    return args, env, files


def require_cluster_generator(settings: StackConfig) -> None:
    if settings.target != "kind" or not settings.kind.load_generator.enabled:
        where = (
            f"the {settings.stack!r} stack targets {settings.target}: the in-cluster generator is the kind stack's"
            if settings.target != "kind"
            else f"set modelops:kind.load_generator.enabled: true in stacks/Pulumi.{settings.stack}.yaml and run "
            f"`pulumi up -s {settings.stack}`"
        )
        raise UsageError(f"--generator cluster needs an in-cluster Locust: {where}; or use --generator local")


@dataclass
class ClusterGenerator:
    """A load runner with :func:`loadgen.run`'s signature whose Locust runs in the cluster."""

    settings: StackConfig
    api_client: k8s.ApiClient
    pool_urls: dict[str, str]  # the stack's pool_urls output: {colour: URL from this machine}
    poll_s: float = 2.0
    clock: Callable[[], float] = time.time
    namespace: str = field(init=False)

    def __post_init__(self) -> None:
        require_cluster_generator(self.settings)
        self.namespace = self.settings.kind.namespace
        self.batch = k8s.BatchV1Api(self.api_client)
        self.core = k8s.CoreV1Api(self.api_client)
        self.apps = k8s.AppsV1Api(self.api_client)

    @property
    def generator(self) -> LoadGeneratorSettings:
        return self.settings.kind.load_generator

    def in_cluster(self, url: str) -> str:
        """The in-cluster URL of the pool the gate would load at ``url`` from this machine."""
        for colour, pool_url in self.pool_urls.items():
            if pool_url.rstrip("/") == url.rstrip("/"):
                return locust.candidate_url(colour, self.namespace)
        if ".svc" in url:
            return url  # already a URL pods resolve
        raise UsageError(
            f"--generator cluster loads a pool through its in-cluster Service, and {url} is not one of the stack's "
            f"pool_urls ({self.pool_urls}): drop --url, or pass the pool's in-cluster URL "
            f"({locust.candidate_url('green', self.namespace)})"
        )

    def run(
        self,
        url: str,
        spec: LoadSpec,
        out_dir: Path,
        prefix: str = "locust",
        timeout: float | None = None,
        budget_probe: Probe | None = None,
    ) -> LoadResult:
        out_dir.mkdir(parents=True, exist_ok=True)
        args, env, files = in_cluster_args(self.in_cluster(url), spec, prefix)
        deadline = spec.warmup_s + spec.duration_s + self.generator.ready_timeout_s + JOB_MARGIN_S
        name = locust.job_name(prefix, self.clock())
        self._run_files(files)
        job = locust.master_job(self.namespace, name, self.generator, args, env, deadline)
        try:
            # The client sends a plain manifest as it is (its models would only be serialized back to this).
            self.batch.create_namespaced_job(self.namespace, cast(k8s.V1Job, job))
            self._scale_workers(self.generator.workers)
            log = self._wait_for_log(name, timeout or deadline + self.poll_s * 2)
        except ApiException as exc:
            raise DeploymentError(
                f"kubernetes refused the load {prefix!r} ({exc.status} {exc.reason}): is the kind stack up with "
                "modelops:kind.load_generator.enabled: true?"
            ) from exc
        finally:
            self._scale_workers(0, quiet=True)
        exit_code = self._unpack(log, out_dir, name)
        return loadgen.parse(url, out_dir, prefix, exit_code, cpu=[], processes=self.generator.workers)

    # -------------------------------------------------------------------------------------------- steps
    def _run_files(self, files: dict[str, str]) -> None:
        body = cast(k8s.V1ConfigMap, locust.run_configmap(self.namespace, files))
        try:
            self.core.replace_namespaced_config_map(locust.RUN_CONFIGMAP, self.namespace, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.core.create_namespaced_config_map(self.namespace, body)

    def _scale_workers(self, replicas: int, quiet: bool = False) -> None:
        try:
            self.apps.patch_namespaced_deployment_scale(
                locust.WORKERS, self.namespace, {"spec": {"replicas": replicas}}, _content_type=MERGE_PATCH
            )
        except ApiException:
            if not quiet:
                raise

    def _finished(self, name: str) -> bool:
        status = self.batch.read_namespaced_job_status(name, self.namespace).status
        return bool(status and ((status.succeeded or 0) > 0 or (status.failed or 0) > 0))

    def _wait_for_log(self, name: str, timeout: float) -> str:
        if not wait_until(lambda: self._finished(name), timeout=timeout, interval=self.poll_s):
            raise DeploymentError(
                f"the load's master Job {name} did not finish within {timeout:g} s: `kubectl -n {self.namespace} "
                f"logs job/{name}` shows why (workers not connecting: check the locust-worker pods)"
            )
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={name}").items
        if not pods:
            raise DeploymentError(f"the master Job {name} finished but its pod is gone: raise locust.JOB_TTL_S")
        pod = (pods[-1].metadata.name if pods[-1].metadata else None) or ""
        return str(self.core.read_namespaced_pod_log(pod, self.namespace, container="master"))

    def _unpack(self, log: str, out_dir: Path, name: str) -> int:
        with tempfile.TemporaryDirectory(prefix="locust-results-") as tmp:
            try:
                names = unpack(log, Path(tmp))
            except MissingResultsError as exc:
                raise DeploymentError(f"master Job {name}: {exc}\n{log[-2000:]}") from None
            exit_file = Path(tmp) / EXIT_CODE_FILE
            exit_code = int(exit_file.read_text()) if exit_file.exists() else 1
            for entry in names:
                if entry != EXIT_CODE_FILE and "/" not in entry:
                    shutil.move(str(Path(tmp) / entry), out_dir / entry)
        return exit_code


def open_cluster_generator(settings: StackConfig, outputs: dict, kubeconfig: str | None = None) -> ClusterGenerator:
    """The generator on the cluster of the stack's kubeconfig context (as the kind driver finds it)."""
    from kubernetes import config

    from stacks import outputs as keys

    try:
        api_client = config.new_client_from_config(config_file=kubeconfig, context=outputs.get(keys.KUBE_CONTEXT))
    except (config.ConfigException, OSError) as exc:
        raise DeploymentError(
            f"cannot load the kubeconfig for context {outputs.get(keys.KUBE_CONTEXT)!r}: {exc}. Run "
            "`pulumi up -s kind` (it writes the context), or set modelops:kind.kubeconfig"
        ) from exc
    return ClusterGenerator(settings, api_client, dict(outputs.get(keys.POOL_URLS) or {}))
