"""The Kubernetes target driver (kind, or any cluster): the official client against what `pulumi up -s kind` made.

The stack makes, per colour, a Deployment (no ``replicas``: its HPA owns the count), an HPA, a PDB and a NodePort
Service named like the Deployment (kind maps it to a host port: the stack output ``pool_urls``); and one NodePort
Service whose selector's colour label picks the live pool.
This driver patches those objects and reads them back; `pulumi destroy -s kind` removes them.

Traffic cannot be split by weight: a Service selects pods, and kube-proxy balances over all of them. So
:meth:`KubernetesTarget.shift` accepts 0 (nothing moves) or 100 (the candidate becomes live) and refuses the rest.
Weighted canaries need a mesh or a Gateway API HTTPRoute with backend weights, which the kind stack does not run.

Server-side apply with the field manager ``modelops`` (:data:`FIELD_MANAGER`) for every field the driver owns: the
live Service's selector and previous-colour annotation, each HPA's range, and per Deployment the bento annotation
and the container's image, env and resources. Each apply restates every field the driver owns on that object (what
it omits, it would give up, and the API server would delete a field nobody owns any more). ``force``: the driver
takes these fields over from Pulumi's field manager after creation; the stack ignores them (Deployments) or wins
them back when it changes them (the HPAs carry ``pulumi.com/patchForce``: the declared range is Pulumi's). A merge
patch would leave the fields to the client's default manager with an Update operation, and the next `pulumi up`
that changes the range would fail with a field conflict. Only the scale subresource keeps a JSON merge patch:
replicas is the HPA controller's, never Pulumi's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from modelops.errors import DeploymentError, NotDeployedError, UsageError
from modelops.targets.base import (
    Colour,
    CpuBudgets,
    KilledReplica,
    Pool,
    PoolStatus,
    ReplicaStatus,
    TargetStatus,
    other,
)
from modelops.targets.common import ScalingRange, api_errors, by_colour, check_weight, colour_of
from modelops.targets.outputs import (
    BENTOML_OVERRIDES_ENV,
    check_outputs,
    image_for,
    with_workers,
    workers_from_override,
)
from modelops.waiting import wait_until
from stacks import outputs as keys
from stacks.names import APP, COLOUR_LABEL, COLOURS, CONTAINER_PORT, SERVICE_PORT, cpu_quantity
from stacks.threads import THREAD_VARIABLES, thread_env

REQUIRED_OUTPUTS = (keys.ENDPOINT_URL, keys.NAMESPACE, keys.SERVICE_NAME, keys.DEPLOYMENT_NAMES)

PREVIOUS_ANNOTATION = "modelops/previous-colour"  # on the live Service: the colour it selected before the last switch
BENTO_ANNOTATION = "modelops/bento"  # on a Deployment's pod template: the bento its pods serve

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"  # server-side apply (JSON is YAML)
FIELD_MANAGER = "modelops"


def _describe_kube_error(action: str, exc: Exception) -> str | None:
    if isinstance(exc, ApiException):
        return f"kubernetes {action} failed: {exc.status} {exc.reason}: {_api_message(exc)}"
    if isinstance(exc, HTTPError):
        return (
            f"kubernetes {action} failed, the API server is unreachable ({exc}): is the cluster running and the "
            "kubeconfig context right?"
        )
    return None


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        return str(exc.body or "")


def _count(value: int | None) -> int:
    return value or 0


def _name(obj: k8s.V1Pod | k8s.V1Deployment) -> str:
    """``metadata.name`` of an object read from the API server (which always sets it; its models type it optional)."""
    return (obj.metadata.name if obj.metadata else None) or ""


_kube_errors = api_errors(_describe_kube_error)


class KubernetesTarget:
    """The Target interface over blue/green Deployments behind one Service whose selector picks the live colour."""

    name = "kind"

    def __init__(
        self,
        outputs: dict[str, Any],
        api_client: k8s.ApiClient,
        *,
        timeout_s: float = 300.0,
        poll_s: float = 2.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.outputs = check_outputs(outputs, REQUIRED_OUTPUTS, source="the kind stack outputs", stack="kind")
        self.progress: Callable[[str], None] = lambda _message: None
        self._wall_clock = wall_clock
        self.namespace: str = outputs[keys.NAMESPACE]
        self.service_name: str = outputs[keys.SERVICE_NAME]
        self.deployments = by_colour(outputs, keys.DEPLOYMENT_NAMES)
        hpas = outputs.get(keys.HPA_NAMES) or {}
        self.hpas: dict[Colour, str] = {c: str(hpas[c]) for c in COLOURS if hpas.get(c)}
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.apps = k8s.AppsV1Api(api_client)
        self.core = k8s.CoreV1Api(api_client)
        self.autoscaling = k8s.AutoscalingV2Api(api_client)
        self.discovery = k8s.DiscoveryV1Api(api_client)

    @classmethod
    def from_kubeconfig(
        cls, outputs: dict[str, Any], kubeconfig: str | None = None, **options: Any
    ) -> KubernetesTarget:
        """A driver on the cluster of the stack's kubeconfig context (``kube_context`` output)."""
        from kubernetes import config

        try:
            api_client = config.new_client_from_config(config_file=kubeconfig, context=outputs.get(keys.KUBE_CONTEXT))
        except (config.ConfigException, OSError) as exc:
            raise DeploymentError(
                f"cannot load the kubeconfig for context {outputs.get(keys.KUBE_CONTEXT)!r}: {exc}. Run "
                "`pulumi up -s kind` (it writes the context), or set modelops:kind.kubeconfig"
            ) from exc
        return cls(outputs, api_client, **options)

    # ---------------------------------------------------------------- reading

    @_kube_errors("status")
    def status(self) -> TargetStatus:
        live = self._live(self._service())
        serving = self._ready_endpoints()
        pools: dict[str, PoolStatus] = {colour: self._pool_status(colour, live, serving) for colour in COLOURS}
        return TargetStatus(
            target=self.name,
            url=self.outputs[keys.ENDPOINT_URL],
            bento=pools[live].bento,
            live=live,
            pools=pools,
        )

    # ---------------------------------------------------------------- the Target operations

    @_kube_errors("up")
    def up(self, bento: str, replicas: int, workers: int) -> TargetStatus:
        """Run ``bento`` in the live pool. Refuses to swap the bento of a live pool that is serving (that would
        skip the gate): use deploy_candidate + shift(100) for a new bento, resize for other workers."""
        live = self._live(self._service())
        current = self._pool_status(live, live)
        if (current.bento, current.workers) != (bento, workers) and current.replicas:
            raise DeploymentError(
                f"the live {live} pool already serves {current.bento or 'an unknown bento'} with "
                f"{current.workers or '?'} worker(s) in {len(current.replicas)} pod(s): put {bento} live with "
                "deploy_candidate then shift(100), or change workers with resize"
            )
        if (current.bento, current.workers) != (bento, workers):
            self._set_bento(live, bento, workers, image_for(bento, self.outputs))
        self._scale(live, replicas)
        return self.status()

    @_kube_errors("down")
    def down(self) -> None:
        """Both pools to zero pods. The Deployments, Services and HPAs stay: `pulumi destroy -s kind` removes them."""
        for colour in COLOURS:
            self._set_replicas(colour, 0)
        for colour in COLOURS:
            self._wait_rollout(colour, 0)

    @_kube_errors("scale")
    def scale(self, replicas: int, pool: Pool = "candidate") -> PoolStatus:
        """Run exactly ``replicas`` pods in the pool.

        With an HPA, the Deployment's replica count is the HPA's to set: patching the Deployment alone would be
        undone at the HPA's next sync. So the HPA's range is pinned to [replicas, replicas] (what a measurement
        needs: a fixed count; release_scaling restores the declared range) and the scale subresource set
        too, because an HPA never scales a Deployment up from 0. Scaling to 0 leaves the HPA alone: its
        minReplicas cannot be 0, and it does nothing while the Deployment has 0 replicas."""
        colour = self._colour_of(pool)
        self._scale(colour, replicas)
        return self._pool_status(colour, self._live(self._service()))

    @_kube_errors("resize")
    def resize(self, workers: int, cpu: float | None = None, pool: Pool = "candidate") -> PoolStatus:
        """Vertical: ``workers`` BentoML workers per pod and, when given, ``cpu`` cores as request = limit.

        Other settings in the container's BENTOML_CONFIG_OVERRIDES (the request timeout) stay; memory stays. The
        Deployment rolls its pods (the stack allows one extra pod, none unavailable) and the call returns when
        every pod runs the new template and is ready."""
        if cpu is not None and not 0 < cpu <= 64:
            raise UsageError(f"cpu must be between 0 and 64 cores, got {cpu!r}")
        colour = self._colour_of(pool)
        deployment = self._deployment(colour)
        container = self._container(deployment)
        bento = self._bento_of(deployment) or str(self.outputs.get(keys.BENTO) or "")
        overrides = with_workers(_env(container, BENTOML_OVERRIDES_ENV), bento, workers)
        budget = cpu if cpu is not None else _cpu_limit(container)
        threads = thread_env(budget / workers) if budget else {}
        resources = None
        if cpu is not None:
            quantity = cpu_quantity(cpu)
            resources = {"requests": {"cpu": quantity}, "limits": {"cpu": quantity}}
        self._apply_template(colour, deployment, overrides=overrides, threads=threads, resources=resources)
        self._wait_rollout(colour, _count(deployment.spec.replicas))
        return self._pool_status(colour, self._live(self._service()))

    @_kube_errors("deploy_candidate")
    def deploy_candidate(self, bento: str, replicas: int, workers: int, image: str | None = None) -> PoolStatus:
        """Run ``bento`` in ``replicas`` pods of the colour that is not live; the live Service is untouched.

        ``image`` defaults to what `bentoml containerize` tags it (``<name>:<version>``, loaded into the kind node
        by stacks/kind/image.sh)."""
        live = self._live(self._service())
        colour = other(live)
        self._set_bento(colour, bento, workers, image or image_for(bento, self.outputs))
        self._scale(colour, replicas)
        return self._pool_status(colour, live)

    @_kube_errors("remove_candidate")
    def remove_candidate(self) -> None:
        colour = other(self._live(self._service()))
        self._set_replicas(colour, 0)
        self._wait_rollout(colour, 0)

    def abort(self) -> None:
        """The candidate out: a Service selects one colour, so a candidate never holds a share of live traffic short
        of a switch (shift(0) would change nothing); its pods go to zero, each draining first."""
        self.remove_candidate()

    def retire_previous(self) -> None:
        """After a switch: the pool that lost the traffic goes to zero pods. Each pod drains first (preStop
        sleep, then BentoML's graceful shutdown within the stack's termination grace period)."""
        self.remove_candidate()

    @_kube_errors("shift")
    def shift(self, weight: int) -> TargetStatus:
        """0: nothing moves. 100: the Service selects the candidate colour, which becomes live. A Service cannot
        weight its pods, so anything between is refused rather than rounded (a "10 % canary" rounded to 0 or 100
        would make the gate believe it tested something it did not)."""
        check_weight(weight)
        if weight not in (0, 100):
            raise UsageError(
                f"a Kubernetes Service cannot send {weight} % of traffic to one pool: it selects pods, and "
                "kube-proxy balances over all of them. Use shift(100) to switch, shift(0) to stay (weighted "
                "canaries need a service mesh or Gateway API HTTPRoute weights)"
            )
        service = self._service()
        live = self._live(service)
        if weight == 100:
            declared = ScalingRange.from_outputs(self.outputs, "kind")  # before any change
            self._switch(live, other(live), "shift traffic to it")
            # The new live pool autoscales as the stack declares (a gate left its HPA pinned): every promotion and
            # rollback (deploy_candidate + shift(100)) ends so.
            self._patch_hpa(other(live), _hpa_range(declared))
        return self.status()

    @_kube_errors("kill_replica")
    def kill_replica(self, pool: Pool = "candidate") -> KilledReplica:
        """Delete one pod of the pool at once (grace period 0: the process is killed, as a crashed node would);
        the Deployment starts a replacement. A plain delete, not an eviction: the PDB does not stop a crash."""
        colour = self._colour_of(pool)
        replicas = self._replicas(colour, self._deployment(colour))
        if not replicas:
            raise NotDeployedError(f"the {colour} pool (Deployment {self.deployments[colour]}) has no pod to kill")
        victim = next((r for r in replicas if r.healthy), replicas[0])
        # Stamped right before the call: the failover suite measures from the moment the kill left.
        killed_at = self._wall_clock()
        self.core.delete_namespaced_pod(victim.name, self.namespace, grace_period_seconds=0)
        return KilledReplica(name=victim.name, url=victim.url, killed_at=killed_at)

    def cpu_seconds(self, pool: Pool = "candidate") -> float | None:
        """Not measurable through the API: metrics-server gives a recent rate per pod, not a CPU-time counter."""
        return None

    def cpu_throttling(self, pool: Pool = "candidate") -> tuple[int, int] | None:
        """Not readable from here: the pods' cgroup cpu.stat (nr_periods, nr_throttled) is not exposed by the
        Kubernetes API."""
        return None

    def firing_alarms(self, pool: Pool) -> list[str]:
        """A kind cluster has no platform alarms (the stack installs no Prometheus); the canary reads a
        Prometheus where one runs."""
        return []

    def cpu_budgets(self) -> CpuBudgets:
        return CpuBudgets(enforced=True, note="each pod has a CPU limit (request = limit, stacks/kind)")

    def balancer_retries(self, pool: Pool = "candidate") -> tuple[int, int] | None:
        """A Service (kube-proxy) does not retry a request, so it has nothing to count: nothing is hidden either."""
        return None

    @_kube_errors("hold_scaling")
    def hold_scaling(self) -> None:
        """For the gate: pin the candidate's HPA to the pod count it has now, so the autoscaler does not change the
        pool being measured (scale() pins it too, at the count it sets). :meth:`release_scaling` undoes it."""
        colour = other(self._live(self._service()))
        replicas = _count(self._deployment(colour).spec.replicas)
        if replicas > 0:
            self._pin_hpa(colour, replicas)

    @_kube_errors("release_scaling")
    def release_scaling(self) -> None:
        """Both HPAs back to the range the stack declares (stack output scaling_range). Idempotent. A Deployment at
        0 pods stays there: an HPA does not scale a Deployment up from 0."""
        declared = ScalingRange.from_outputs(self.outputs, "kind")
        for colour in COLOURS:
            self._patch_hpa(colour, _hpa_range(declared))

    # ---------------------------------------------------------------- internals: the Service

    def _service(self) -> k8s.V1Service:
        return self.core.read_namespaced_service(self.service_name, self.namespace)

    def _live(self, service: k8s.V1Service) -> Colour:
        selector = service.spec.selector if service.spec else None
        colour = (selector or {}).get(COLOUR_LABEL)
        if colour not in COLOURS:
            raise DeploymentError(
                f"Service {self.namespace}/{self.service_name} does not select a colour (selector "
                f"{selector}, expected {COLOUR_LABEL}: blue or green): run `pulumi up -s kind`"
            )
        return colour

    def _colour_of(self, pool: Pool) -> Colour:
        return colour_of(pool, self._live(self._service()))

    def _switch(self, live: Colour, to: Colour, purpose: str) -> None:
        status = self._deployment(to).status
        if not _count(status.ready_replicas if status else None):
            raise DeploymentError(
                f"the {to} pool (Deployment {self.deployments[to]}) has no ready pod, so it cannot {purpose}: "
                "deploy_candidate or scale it up first"
            )
        # A Service's selector is an atomic map: the apply restates it whole, the app labels with the new colour.
        current = self._service().spec
        selector = dict((current.selector if current else None) or {})
        self._apply(
            self.core.patch_namespaced_service,
            self.service_name,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": self.service_name,
                    "namespace": self.namespace,
                    "annotations": {PREVIOUS_ANNOTATION: live},
                },
                "spec": {"selector": {**selector, COLOUR_LABEL: to}},
            },
        )
        self._wait_endpoints(to)

    def _wait_endpoints(self, colour: Colour) -> None:
        """Block until the Service's EndpointSlices list ready pods of ``colour`` only: then kube-proxy routes to
        them, and the switch has taken effect."""
        wanted = {r.name for r in self._replicas(colour, self._deployment(colour))}
        ready: set[str] = set()

        def switched() -> bool:
            ready.clear()
            ready.update(self._ready_endpoints())
            return bool(ready) and ready <= wanted

        if not wait_until(switched, self.timeout_s, self.poll_s):
            raise DeploymentError(
                f"Service {self.service_name} still routes to {sorted(ready - wanted) or 'no pod'} "
                f"{self.timeout_s:g} s after selecting {colour}: see `kubectl -n {self.namespace} get "
                f"endpointslices -l kubernetes.io/service-name={self.service_name}`"
            )

    def _ready_endpoints(self) -> set[str]:
        """Names of the pods the live Service routes to: the ready endpoints of its EndpointSlices."""
        slices = self.discovery.list_namespaced_endpoint_slice(
            self.namespace, label_selector=f"kubernetes.io/service-name={self.service_name}"
        ).items
        return {
            endpoint.target_ref.name
            for piece in slices
            for endpoint in piece.endpoints or []
            if endpoint.target_ref is not None
            and endpoint.target_ref.name is not None  # an endpoint names its pod; one that does not matches none
            and (endpoint.conditions is None or endpoint.conditions.ready)
        }

    # ---------------------------------------------------------------- internals: Deployments

    def _deployment(self, colour: Colour) -> k8s.V1Deployment:
        return self.apps.read_namespaced_deployment(self.deployments[colour], self.namespace)

    def _container(self, deployment: k8s.V1Deployment) -> k8s.V1Container:
        pod_spec = deployment.spec.template.spec
        containers = pod_spec.containers if pod_spec else []
        found = next((c for c in containers if c.name == APP), None)
        if found is None:
            names = ", ".join(c.name for c in containers)
            raise DeploymentError(
                f"Deployment {_name(deployment)} has no container named {APP!r} (it has {names}): "
                "run `pulumi up -s kind`"
            )
        return found

    def _bento_of(self, deployment: k8s.V1Deployment) -> str:
        annotations = deployment.spec.template.metadata.annotations if deployment.spec.template.metadata else None
        bento = (annotations or {}).get(BENTO_ANNOTATION)
        if bento:
            return bento
        # A Deployment as the stack made it runs the stack's image: that is the stack's bento.
        stack_image = self.outputs.get(keys.IMAGE)
        return self.outputs.get(keys.BENTO, "") if self._container(deployment).image == stack_image else ""

    def _pool_status(self, colour: Colour, live: Colour, serving: set[str] | None = None) -> PoolStatus:
        deployment = self._deployment(colour)
        container = self._container(deployment)
        return PoolStatus(
            colour=colour,
            bento=self._bento_of(deployment),
            url=self._pool_url(colour),
            replicas=self._replicas(colour, deployment, serving),
            workers=workers_from_override(_env(container, BENTOML_OVERRIDES_ENV)) or 0,
            weight=100 if colour == live else 0,
        )

    def _pool_url(self, colour: Colour) -> str:
        """This pool alone: its own Service (named like its Deployment) through the host port kind maps to it
        (stack output pool_urls). Outputs without pool_urls (a stack made before they existed) give the in-cluster
        name, which this machine reaches only through `kubectl -n <namespace> port-forward svc/<name> <port>:80`."""
        own = (self.outputs.get(keys.POOL_URLS) or {}).get(colour)
        if own:
            return str(own)
        return f"http://{self.deployments[colour]}.{self.namespace}.svc:{SERVICE_PORT}"

    def _replicas(
        self, colour: Colour, deployment: k8s.V1Deployment, serving: set[str] | None = None
    ) -> list[ReplicaStatus]:
        labels = deployment.spec.selector.match_labels or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        port = next((p.container_port for p in self._container(deployment).ports or []), CONTAINER_PORT)
        return [
            ReplicaStatus(
                name=_name(pod),
                url=f"http://{pod.status.pod_ip}:{port}" if pod.status and pod.status.pod_ip else "",
                # A terminating pod stays listed, not healthy, until it is gone: a killed replica is visible while
                # it leaves the Service's endpoints.
                healthy=_ready(pod) and (pod.metadata is None or pod.metadata.deletion_timestamp is None),
                # The live Service's own view: kube-proxy sends requests to its ready endpoints.
                in_rotation=None if serving is None else _name(pod) in serving,
            )
            for pod in sorted(pods, key=_name)
        ]

    def _apply_template(
        self,
        colour: Colour,
        deployment: k8s.V1Deployment,
        *,
        bento: str | None = None,
        image: str | None = None,
        overrides: str | None = None,
        threads: dict[str, str] | None = None,
        resources: dict[str, Any] | None = None,
    ) -> None:
        """Server-side apply of every pod-template field the driver owns, changed where given, else as they are."""
        container = self._container(deployment)
        current_threads = {e.name: e.value for e in container.env or [] if e.name in THREAD_VARIABLES}
        env = [
            {"name": BENTOML_OVERRIDES_ENV, "value": overrides or _env(container, BENTOML_OVERRIDES_ENV) or ""},
            *({"name": k, "value": v} for k, v in sorted((threads or current_threads).items())),
        ]
        owned: dict[str, Any] = {"name": container.name, "image": image or container.image, "env": env}
        current_resources = _resources(container)
        if resources is not None or current_resources:
            owned["resources"] = _merge_resources(current_resources, resources or {})
        self._apply(
            self.apps.patch_namespaced_deployment,
            self.deployments[colour],
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": self.deployments[colour], "namespace": self.namespace},
                "spec": {
                    "template": {
                        "metadata": {"annotations": {BENTO_ANNOTATION: bento or self._bento_of(deployment)}},
                        "spec": {"containers": [owned]},
                    }
                },
            },
        )

    def _apply(self, patch: Callable[..., Any], name: str, body: dict[str, Any]) -> Any:
        return patch(name, self.namespace, body, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY_PATCH)

    def _set_bento(self, colour: Colour, bento: str, workers: int, image: str) -> None:
        deployment = self._deployment(colour)
        container = self._container(deployment)
        overrides = with_workers(_env(container, BENTOML_OVERRIDES_ENV), bento, workers)
        self._apply_template(colour, deployment, bento=bento, image=image, overrides=overrides)

    def _scale(self, colour: Colour, replicas: int) -> None:
        self._set_replicas(colour, replicas)
        self._wait_rollout(colour, replicas)

    def _set_replicas(self, colour: Colour, replicas: int) -> None:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= 1000:
            raise UsageError(f"replicas must be a whole number from 0 to 1000, got {replicas!r}")
        if replicas > 0:
            self._pin_hpa(colour, replicas)
        self.apps.patch_namespaced_deployment_scale(
            self.deployments[colour], self.namespace, {"spec": {"replicas": replicas}}, _content_type=MERGE_PATCH
        )

    def _pin_hpa(self, colour: Colour, replicas: int) -> None:
        self._patch_hpa(colour, {"spec": {"minReplicas": replicas, "maxReplicas": replicas}})

    def _patch_hpa(self, colour: Colour, patch: dict[str, Any]) -> None:
        hpa = self.hpas.get(colour)
        if not hpa:
            return
        body = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": hpa, "namespace": self.namespace},
            **patch,
        }
        try:
            self._apply(self.autoscaling.patch_namespaced_horizontal_pod_autoscaler, hpa, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            # The HPA was removed: the Deployment's own count is then the only one.

    def _wait_rollout(self, colour: Colour, replicas: int) -> None:
        """Block until the Deployment has exactly ``replicas`` pods, all from its current template and ready (the
        condition `kubectl rollout status` waits for), polling with a deadline."""
        name = self.deployments[colour]
        seen: dict[str, Any] = {}

        def settled() -> bool:
            deployment = self._deployment(colour)
            status = deployment.status or k8s.V1DeploymentStatus()
            seen["counts"] = {
                "updated": _count(status.updated_replicas),
                "ready": _count(status.ready_replicas),
                "available": _count(status.available_replicas),
                "total": _count(status.replicas),
            }
            seen["stalled"] = next(
                (
                    c
                    for c in status.conditions or []
                    if c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded"
                ),
                None,
            )
            generation = deployment.metadata.generation if deployment.metadata else None
            observed = _count(status.observed_generation) >= _count(generation)
            seen["done"] = (
                observed and _count(deployment.spec.replicas) == replicas and set(seen["counts"].values()) == {replicas}
            )
            return seen["done"] or seen["stalled"] is not None

        if wait_until(settled, self.timeout_s, self.poll_s) and seen["done"]:
            return
        stalled = seen["stalled"]
        why = f"its progress deadline passed ({stalled.message})" if stalled else f"{self.timeout_s:g} s passed"
        shown = ", ".join(f"{k} {v}" for k, v in seen["counts"].items())
        raise DeploymentError(
            f"Deployment {self.namespace}/{name} did not reach {replicas} ready pod(s) ({shown}): {why}. "
            f"See `kubectl -n {self.namespace} rollout status deployment/{name}` and "
            f"`kubectl -n {self.namespace} describe pods -l {COLOUR_LABEL}={colour}`"
        )


def _hpa_range(declared: ScalingRange) -> dict[str, Any]:
    # An HPA's minReplicas cannot be 0.
    return {"spec": {"minReplicas": max(1, declared.min), "maxReplicas": declared.max}}


def _cpu_limit(container: k8s.V1Container) -> float | None:
    """The container's CPU limit in cores ("500m", "2"), None without one."""
    limit = ((container.resources.limits if container.resources else None) or {}).get("cpu")
    if not limit:
        return None
    return int(limit[:-1]) / 1000 if str(limit).endswith("m") else float(limit)


def _resources(container: k8s.V1Container) -> dict[str, dict[str, str]]:
    """The container's requests and limits as the API returns them (quantities as strings)."""
    found = container.resources
    if found is None:
        return {}
    return {k: dict(v) for k, v in (("requests", found.requests), ("limits", found.limits)) if v}


def _merge_resources(current: dict[str, dict[str, str]], changes: dict[str, dict[str, str]]) -> dict[str, Any]:
    kinds = [k for k in ("requests", "limits") if k in current or k in changes]
    return {k: {**current.get(k, {}), **changes.get(k, {})} for k in kinds}


def _env(container: k8s.V1Container, name: str) -> str | None:
    return next((e.value for e in container.env or [] if e.name == name), None)


def _ready(pod: k8s.V1Pod) -> bool:
    conditions = pod.status.conditions if pod.status else None
    return any(c.type == "Ready" and c.status == "True" for c in conditions or [])
