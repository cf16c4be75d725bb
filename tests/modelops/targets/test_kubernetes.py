"""The Kubernetes driver: the requests it sends, through the real kubernetes client, to a recording fake API server.

The fake answers with canned objects shaped like the kind stack's (stacks/kind/model_service.py constants), so
the client really serializes each request and deserializes each answer into its models. What it cannot show is
how a real API server applies a patch; the `cluster` test at the end does that where a cluster is reachable.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from modelops.errors import DeploymentError, NotDeployedError, UsageError
from modelops.targets.base import KilledReplica, Target
from modelops.targets.kubernetes import (
    APPLY_PATCH,
    BENTO_ANNOTATION,
    FIELD_MANAGER,
    MERGE_PATCH,
    PREVIOUS_ANNOTATION,
    KubernetesTarget,
)
from stacks import outputs as keys
from stacks.images import bentoml_overrides
from stacks.names import APP, APP_LABELS, COLOUR_LABEL, CONTAINER_PORT
from stacks.threads import THREAD_VARIABLES, thread_env

from .conftest import SERVICE, STACK_BENTO, FakeKubeApi

NS = "modelops"
STACK_IMAGE = "wine_classifier_service:v1"
NEW_BENTO = "wine_classifier_service:v2"
NAMES = {"blue": "bento-blue", "green": "bento-green"}
DECLARED = {"min": 2, "max": 6}  # the stack's HPA range (scaling_range output)
OUTPUTS = {
    keys.ENDPOINT_URL: "http://127.0.0.1:8080",
    keys.IMAGE: STACK_IMAGE,
    keys.BENTO: STACK_BENTO,
    keys.LIVE_COLOUR: "blue",
    keys.KUBE_CONTEXT: "kind-modelops",
    keys.NAMESPACE: NS,
    keys.SERVICE_NAME: "bento",
    keys.DEPLOYMENT_NAMES: NAMES,
    keys.HPA_NAMES: NAMES,
    keys.SCALING_RANGE: DECLARED,
}
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
SERVICE_PATH = f"/api/v1/namespaces/{NS}/services/bento"
PODS = f"/api/v1/namespaces/{NS}/pods"
HPAS = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers"
SLICES = f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"


# ------------------------------------------------------------------------------------------- canned objects


def hpa_apply(colour: str, minimum: int, maximum: int) -> tuple[str, dict[str, Any]]:
    """The server-side apply the driver sends to pin or restore an HPA's range (and nothing else of it)."""
    return (
        APPLY_PATCH,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": NAMES[colour], "namespace": NS},
            "spec": {"minReplicas": minimum, "maxReplicas": maximum},
        },
    )


def labels(colour: str) -> dict[str, str]:
    return {**APP_LABELS, COLOUR_LABEL: colour}


def deployment(
    colour: str,
    replicas: int = 2,
    ready: int | None = None,
    generation: int = 1,
    observed: int = 1,
    image: str = STACK_IMAGE,
    workers: int = 1,
    bento: str | None = None,
) -> dict[str, Any]:
    """A Deployment as stacks/kind/model_service.py makes it, with a status."""
    ready = replicas if ready is None else ready
    template_meta: dict[str, Any] = {"labels": labels(colour)}
    if bento:
        template_meta["annotations"] = {BENTO_ANNOTATION: bento}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAMES[colour], "namespace": NS, "generation": generation, "labels": labels(colour)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels(colour)},
            "template": {
                "metadata": template_meta,
                "spec": {
                    "containers": [
                        {
                            "name": APP,
                            "image": image,
                            "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
                            "env": [
                                {"name": "BENTOML_HOME", "value": "/tmp/bentoml"},
                                {"name": "BENTOML_CONFIG_OVERRIDES", "value": bentoml_overrides(SERVICE, workers, 10)},
                            ],
                            "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "500m"}},
                        }
                    ]
                },
            },
        },
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": ready,
            "readyReplicas": ready,
            "availableReplicas": ready,
        },
    }


def service(live: str, previous: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "bento", "namespace": NS, "labels": APP_LABELS}
    if previous:
        metadata["annotations"] = {PREVIOUS_ANNOTATION: previous}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"type": "NodePort", "selector": labels(live), "ports": [{"port": 80, "targetPort": "http"}]},
    }


def pod_name(colour: str, index: int) -> str:
    return f"{NAMES[colour]}-7d4b9c-{index}"


def pods_query(colour: str) -> str:
    """The pod list request for a colour's Deployment: its selector's labels, sorted, as the driver sends them."""
    return f"{PODS}?labelSelector=" + ",".join(f"{k}={v}" for k, v in sorted(labels(colour).items()))


def pods(colour: str, count: int, ready: bool = True, deleting: tuple[int, ...] = ()) -> dict[str, Any]:
    items = [
        {
            "metadata": {
                "name": pod_name(colour, i),
                "namespace": NS,
                "labels": labels(colour),
                **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if i in deleting else {}),
            },
            "spec": {"containers": [{"name": APP, "image": STACK_IMAGE}]},
            "status": {
                "podIP": f"10.244.{0 if colour == 'blue' else 1}.{10 + i}",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }
        for i in range(count)
    ]
    return {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}


def scale(colour: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": NAMES[colour], "namespace": NS},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas},
    }


def hpa(colour: str, low: int, high: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": NAMES[colour], "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAMES[colour]},
            "minReplicas": low,
            "maxReplicas": high,
        },
    }


def endpoint_slices(*pod_names: str) -> dict[str, Any]:
    endpoints = [
        {
            "addresses": [f"10.0.0.{i}"],
            "conditions": {"ready": True},
            "targetRef": {"kind": "Pod", "name": name, "namespace": NS},
        }
        for i, name in enumerate(pod_names)
    ]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSliceList",
        "metadata": {},
        "items": [
            {
                "metadata": {"name": "bento-x1", "labels": {"kubernetes.io/service-name": "bento"}},
                "addressType": "IPv4",
                "endpoints": endpoints,
            }
        ],
    }


# ------------------------------------------------------------------------------------------- fixtures


class Cluster:
    """The fake API server's routes for one state of the kind stack."""

    def __init__(self, api: FakeKubeApi) -> None:
        self.api = api

    def pool(self, colour: str, *documents: dict[str, Any], pod_count: int | None = None) -> None:
        """GET answers for a colour's Deployment (served in turn), pods, and the PATCHes it may receive."""
        self.api.route("GET", f"{DEPLOYMENTS}/{NAMES[colour]}", *documents)
        self.api.route("PATCH", f"{DEPLOYMENTS}/{NAMES[colour]}", documents[-1])
        final = documents[-1]["spec"]["replicas"]
        self.api.route("PATCH", f"{DEPLOYMENTS}/{NAMES[colour]}/scale", scale(colour, final))
        self.api.route("PATCH", f"{HPAS}/{NAMES[colour]}", hpa(colour, final or 1, final or 1))
        self.api.route("GET", pods_query(colour), pods(colour, final if pod_count is None else pod_count))

    def live(self, colour: str, previous: str | None = None, after: dict[str, Any] | None = None) -> None:
        self.api.route("GET", SERVICE_PATH, service(colour, previous), *([after] if after else []))
        self.api.route("PATCH", SERVICE_PATH, after or service(colour, previous))
        self.api.route("GET", SLICES, endpoint_slices())  # tests that look at routing set the ready endpoints

    def patches(self, path: str) -> list[Any]:
        return [(r.content_type, r.body) for r in self.api.sent("PATCH") if r.path.split("?")[0] == path]


@pytest.fixture
def cluster(kube_api: tuple[FakeKubeApi, str]) -> Cluster:
    return Cluster(kube_api[0])


@pytest.fixture
def driver(kube_api: tuple[FakeKubeApi, str]) -> Iterator[KubernetesTarget]:
    api_client = k8s.ApiClient(k8s.Configuration(host=kube_api[1]))
    try:
        yield KubernetesTarget(OUTPUTS, api_client, timeout_s=1.0, poll_s=0.01)
    finally:
        api_client.close()


# ------------------------------------------------------------------------------------------- tests


def test_driver_implements_the_target_interface(driver: KubernetesTarget) -> None:
    assert isinstance(driver, Target)


def test_status_reads_the_live_colour_from_the_service_selector_and_pod_readiness(
    driver: KubernetesTarget, cluster: Cluster
) -> None:
    cluster.live("blue")
    cluster.pool("blue", deployment("blue", replicas=2, workers=2))
    cluster.pool("green", deployment("green", replicas=0, image=NEW_BENTO, bento=NEW_BENTO))
    cluster.api.route("GET", SLICES, endpoint_slices(pod_name("blue", 1)))  # pod 0 not (yet) an endpoint

    status = driver.status()

    assert (status.live, status.bento, status.url) == ("blue", STACK_BENTO, "http://127.0.0.1:8080")
    blue, green = status.pools["blue"], status.pools["green"]
    assert (blue.weight, blue.workers, blue.url) == (100, 2, "http://bento-blue.modelops.svc:80")
    assert [(r.name, r.url, r.healthy, r.in_rotation) for r in blue.replicas] == [
        (pod_name("blue", 0), f"http://10.244.0.10:{CONTAINER_PORT}", True, False),
        (pod_name("blue", 1), f"http://10.244.0.11:{CONTAINER_PORT}", True, True),
    ]
    assert (green.weight, green.bento, green.replicas) == (0, NEW_BENTO, [])


def test_status_gives_each_pool_the_host_port_url_of_its_own_service_from_the_outputs(
    kube_api: tuple[FakeKubeApi, str], cluster: Cluster
) -> None:
    pool_urls = {"blue": "http://127.0.0.1:8081", "green": "http://127.0.0.1:8082"}
    cluster.live("green")
    cluster.pool("blue", deployment("blue", replicas=0))
    cluster.pool("green", deployment("green", replicas=2))
    api_client = k8s.ApiClient(k8s.Configuration(host=kube_api[1]))
    try:
        status = KubernetesTarget({**OUTPUTS, keys.POOL_URLS: pool_urls}, api_client).status()
    finally:
        api_client.close()

    assert {c: p.url for c, p in status.pools.items()} == pool_urls
    assert (status.candidate.colour, status.candidate.url) == ("blue", "http://127.0.0.1:8081")


def test_status_reports_a_pod_that_is_not_ready_as_unhealthy(driver: KubernetesTarget, cluster: Cluster) -> None:
    cluster.live("blue")
    cluster.pool("blue", deployment("blue", replicas=1, ready=0))
    cluster.pool("green", deployment("green", replicas=0))
    cluster.api.route("GET", pods_query("blue"), pods("blue", 1, ready=False))

    assert [r.healthy for r in driver.status().pools["blue"].replicas] == [False]


def test_status_keeps_a_terminating_pod_listed_as_unhealthy_and_out_of_rotation(
    driver: KubernetesTarget, cluster: Cluster
) -> None:
    cluster.live("blue")
    cluster.pool("blue", deployment("blue", replicas=2))
    cluster.pool("green", deployment("green", replicas=0))
    cluster.api.route("GET", pods_query("blue"), pods("blue", 2, deleting=(0,)))
    cluster.api.route("GET", SLICES, endpoint_slices(pod_name("blue", 1)))

    replicas = [(r.name, r.healthy, r.in_rotation) for r in driver.status().pools["blue"].replicas]

    assert replicas == [(pod_name("blue", 0), False, False), (pod_name("blue", 1), True, True)]


def test_scale_pins_the_hpa_range_then_sets_the_deployment_scale(driver: KubernetesTarget, cluster: Cluster) -> None:
    cluster.live("blue")
    cluster.pool("green", deployment("green", replicas=3))

    pool = driver.scale(3)

    assert cluster.patches(f"{HPAS}/bento-green") == [hpa_apply("green", 3, 3)]
    assert cluster.patches(f"{DEPLOYMENTS}/bento-green/scale") == [(MERGE_PATCH, {"spec": {"replicas": 3}})]
    order = [r.path.split("?")[0] for r in cluster.api.sent("PATCH")]
    assert order == [f"{HPAS}/bento-green", f"{DEPLOYMENTS}/bento-green/scale"]
    assert (pool.colour, len(pool.replicas)) == ("green", 3)


def test_scale_waits_until_every_pod_of_the_rollout_is_ready(driver: KubernetesTarget, cluster: Cluster) -> None:
    cluster.live("blue")
    cluster.pool(
        "green",
        deployment("green", replicas=0, generation=2, observed=1),  # the patch not seen by the controller yet
        deployment("green", replicas=2, ready=1, generation=2, observed=2),
        deployment("green", replicas=2, ready=2, generation=2, observed=2),
    )

    driver.scale(2)

    reads = [r for r in cluster.api.sent("GET") if r.path == f"{DEPLOYMENTS}/bento-green"]
    assert len(reads) >= 3  # polled through both unready states


def test_scale_to_zero_leaves_the_hpa_alone(driver: KubernetesTarget, cluster: Cluster) -> None:
    cluster.live("blue")
    cluster.pool("green", deployment("green", replicas=0))

    driver.scale(0)

    assert cluster.patches(f"{HPAS}/bento-green") == []
    assert cluster.patches(f"{DEPLOYMENTS}/bento-green/scale") == [(MERGE_PATCH, {"spec": {"replicas": 0}})]


def test_scale_without_an_hpa_scales_the_deployment_alone(driver: KubernetesTarget, cluster: Cluster) -> None:
    cluster.live("blue")
    cluster.pool("green", deployment("green", replicas=2))
    del cluster.api.routes[("PATCH", f"{HPAS}/bento-green")]  # the HPA answers 404

    driver.scale(2)

    assert cluster.patches(f"{DEPLOYMENTS}/bento-green/scale") == [(MERGE_PATCH, {"spec": {"replicas": 2}})]


def test_scale_that_never_becomes_ready_times_out_with_the_counts(driver: KubernetesTarget, cluster: Cluster) -> None:
    cluster.live("blue")
    cluster.pool("green", deployment("green", replicas=2, ready=1))
    driver.timeout_s = 0.2

    with pytest.raises(DeploymentError, match=r"bento-green did not reach 2 ready pod\(s\) \(updated 1, ready 1"):
        driver.scale(2)


@pytest.mark.parametrize("replicas", [-1, 2.5, True])
def test_scale_refuses_a_replica_count_that_is_not_a_whole_number(
    driver: KubernetesTarget, cluster: Cluster, replicas: object
) -> None:
    cluster.live("blue")

    with pytest.raises(UsageError, match="replicas must be a whole number"):
        driver.scale(replicas)  # type: ignore[arg-type]
    assert cluster.api.sent("PATCH") == []


def test_resize_applies_cpu_request_and_limit_and_workers_as_the_modelops_field_manager(
    driver: KubernetesTarget, cluster: Cluster
) -> None:
    cluster.live("blue")
    cluster.pool("green", deployment("green", replicas=2))

    driver.resize(workers=4, cpu=1.5)

    [(content_type, body)] = cluster.patches(f"{DEPLOYMENTS}/bento-green")
    assert content_type == APPLY_PATCH
    (path,) = [r.path for r in cluster.api.sent("PATCH") if r.path.startswith(f"{DEPLOYMENTS}/bento-green?")]
    assert urllib.parse.parse_qs(path.split("?", 1)[1]) == {"fieldManager": [FIELD_MANAGER], "force": ["true"]}
    assert (body["apiVersion"], body["kind"]) == ("apps/v1", "Deployment")
    assert body["metadata"] == {"name": "bento-green", "namespace": NS}
    [container] = body["spec"]["template"]["spec"]["containers"]
    assert container["name"] == APP  # the list's key: only this container's fields are the driver's
    assert container["resources"] == {"requests": {"cpu": "1500m"}, "limits": {"cpu": "1500m"}}
    env = {e["name"]: e["value"] for e in container["env"]}
    # workers changed, the stack's request timeout kept
    overrides = json.loads(env.pop("BENTOML_CONFIG_OVERRIDES"))
    assert overrides == {"services": {SERVICE: {"workers": 4, "traffic": {"timeout": 10}}}}
    # each of the 4 workers has 1.5 / 4 cores: one thread per native pool
    assert env == thread_env(1.5 / 4) == dict.fromkeys(THREAD_VARIABLES, "1")


def test_resize_to_more_cores_per_worker_gives_each_worker_more_threads(
    driver: KubernetesTarget, cluster: Cluster
) -> None:
    cluster.live("blue")
    cluster.pool("green", deployment("green", replicas=2))

    driver.resize(workers=2, cpu=4)

    [(_, body)] = cluster.patches(f"{DEPLOYMENTS}/bento-green")
    env = {e["name"]: e["value"] for e in body["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {name: env[name] for name in THREAD_VARIABLES} == dict.fromkeys(THREAD_VARIABLES, "2")


def test_resize_without_cpu_changes_only_the_workers_and_restates_the_rest_the_driver_owns(
    driver: KubernetesTarget, cluster: Cluster
) -> None:
    """An apply that left out a field the driver owns would give it up, and the API server would delete it."""
    cluster.live("green")
    cluster.pool("blue", deployment("blue", replicas=2, bento=STACK_BENTO))

    driver.resize(workers=2)

    [(_, body)] = cluster.patches(f"{DEPLOYMENTS}/bento-blue")
    [container] = body["spec"]["template"]["spec"]["containers"]
    assert container["image"] == STACK_IMAGE
    assert container["resources"] == {"requests": {"cpu": "500m"}, "limits": {"cpu": "500m"}}
    assert json.loads(container["env"][0]["value"])["services"][SERVICE]["workers"] == 2
    assert body["spec"]["template"]["metadata"] == {"annotations": {BENTO_ANNOTATION: STACK_BENTO}}


def test_deploy_candidate_sets_image_bento_and_workers_then_scales(driver: KubernetesTarget, cluster: Cluster) -> None:
    cluster.live("blue")
    cluster.pool("green", deployment("green", replicas=2, image=NEW_BENTO, bento=NEW_BENTO, workers=3))

    pool = driver.deploy_candidate(NEW_BENTO, replicas=2, workers=3)

    [(content_type, body)] = cluster.patches(f"{DEPLOYMENTS}/bento-green")
    assert content_type == APPLY_PATCH
    template = body["spec"]["template"]
    assert template["metadata"] == {"annotations": {BENTO_ANNOTATION: NEW_BENTO}}
    [container] = template["spec"]["containers"]
    assert (container["name"], container["image"]) == (APP, NEW_BENTO)  # the tag `bentoml containerize` gives it
    assert json.loads(container["env"][0]["value"])["services"][SERVICE]["workers"] == 3
    assert cluster.patches(f"{DEPLOYMENTS}/bento-green/scale") == [(MERGE_PATCH, {"spec": {"replicas": 2}})]
    assert cluster.patches(SERVICE_PATH) == []  # live traffic untouched
    assert (pool.colour, pool.bento, pool.workers) == ("green", NEW_BENTO, 3)


def test_shift_full_weight_selects_green_and_remembers_blue(driver: KubernetesTarget, cluster: Cluster) -> None:
    cluster.live("blue", after=service("green", previous="blue"))
    cluster.pool("blue", deployment("blue"))
    cluster.pool("green", deployment("green", replicas=2))
    cluster.api.route(
        "GET", SLICES, endpoint_slices(pod_name("blue", 0)), endpoint_slices(*map(pod_name, ["green"] * 2, [0, 1]))
    )

    status = driver.shift(100)

    # Server-side apply; the selector is an atomic map, so the whole of it, with the app labels.
    assert cluster.patches(SERVICE_PATH) == [
        (
            APPLY_PATCH,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "bento", "namespace": NS, "annotations": {PREVIOUS_ANNOTATION: "blue"}},
                "spec": {"selector": labels("green")},
            },
        )
    ]
    slice_reads = [r.path for r in cluster.api.sent("GET") if r.path.startswith(SLICES)]
    # The switch waited past the answer that still listed blue's pod (and status read the slices once more).
    assert len(slice_reads) >= 2
    assert urllib.parse.unquote(slice_reads[0]).endswith("?labelSelector=kubernetes.io/service-name=bento")
    assert status.live == "green"
    # The promoted pool autoscales as declared again (a gate left its HPA pinned).
    assert cluster.patches(f"{HPAS}/bento-green") == [hpa_apply("green", DECLARED["min"], DECLARED["max"])]


def test_shift_that_the_endpoints_never_follow_times_out(driver: KubernetesTarget, cluster: Cluster) -> None:
    cluster.live("blue")
    cluster.pool("green", deployment("green", replicas=2))
    cluster.api.route("GET", SLICES, endpoint_slices("bento-blue-7d4b9c-0"))
    driver.timeout_s = 0.2

    with pytest.raises(DeploymentError, match=r"still routes to \['bento-blue-7d4b9c-0'\] 0.2 s after selecting green"):
        driver.shift(100)


@pytest.mark.parametrize("weight", [10, 50, 99])
def test_shift_partial_weight_is_refused_because_a_service_cannot_split_traffic(
    driver: KubernetesTarget, cluster: Cluster, weight: int
) -> None:
    cluster.live("blue")

    with pytest.raises(UsageError, match=f"cannot send {weight} % of traffic to one pool"):
        driver.shift(weight)
    assert cluster.api.sent("PATCH") == []


def test_shift_zero_changes_nothing(driver: KubernetesTarget, cluster: Cluster) -> None:
    cluster.live("blue")
    cluster.pool("blue", deployment("blue"))
    cluster.pool("green", deployment("green"))

    assert driver.shift(0).live == "blue"
    assert cluster.api.sent("PATCH") == []


def test_shift_to_a_candidate_without_ready_pods_is_refused(driver: KubernetesTarget, cluster: Cluster) -> None:
    cluster.live("blue")
    cluster.pool("green", deployment("green", replicas=0))

    with pytest.raises(DeploymentError, match=r"green pool \(Deployment bento-green\) has no ready pod"):
        driver.shift(100)
    assert cluster.api.sent("PATCH") == []


def test_kill_replica_deletes_one_ready_pod_at_once(driver: KubernetesTarget, cluster: Cluster) -> None:
    cluster.live("blue")
    cluster.pool("blue", deployment("blue", replicas=2))
    victim = pod_name("blue", 0)
    cluster.api.route("DELETE", f"{PODS}/{victim}", pods("blue", 1)["items"][0])

    stamped_before: list[int] = []
    driver._wall_clock = lambda: stamped_before.append(len(cluster.api.sent("DELETE"))) or 1234.5

    killed = driver.kill_replica(pool="live")

    [delete] = cluster.api.sent("DELETE")
    assert delete.path == f"{PODS}/{victim}?gracePeriodSeconds=0"
    assert killed == KilledReplica(name=victim, url="http://10.244.0.10:3000", killed_at=1234.5)
    assert stamped_before == [0], "the kill time must be stamped before the delete is sent"


def test_cpu_is_budgeted_by_the_pod_limit_and_cpu_time_is_not_measurable(driver: KubernetesTarget) -> None:
    assert driver.cpu_budgets().enforced is True and "CPU limit" in driver.cpu_budgets().note
    assert driver.cpu_seconds() is None and driver.cpu_throttling() is None


def test_hold_scaling_pins_the_candidate_hpa_at_its_current_pod_count(
    driver: KubernetesTarget, cluster: Cluster
) -> None:
    cluster.live("blue")
    cluster.pool("green", deployment("green", replicas=3))

    driver.hold_scaling()

    assert cluster.patches(f"{HPAS}/bento-green") == [hpa_apply("green", 3, 3)]
    assert cluster.patches(f"{HPAS}/bento-blue") == []  # the live pool keeps autoscaling


def test_release_scaling_puts_both_hpas_back_to_the_declared_range_every_time(
    driver: KubernetesTarget, cluster: Cluster
) -> None:
    cluster.live("blue")
    cluster.pool("green", deployment("green", replicas=3))
    cluster.pool("blue", deployment("blue", replicas=2))
    driver.scale(3)  # the gate pins the candidate: [3, 3]

    driver.release_scaling()
    driver.release_scaling()  # idempotent: the gate also calls it before starting

    for colour in ("blue", "green"):
        declared = hpa_apply(colour, DECLARED["min"], DECLARED["max"])
        restores = [patch for patch in cluster.patches(f"{HPAS}/{NAMES[colour]}") if patch == declared]
        assert len(restores) == 2, f"HPA {NAMES[colour]} was not put back to {declared}"


def test_release_scaling_without_the_declared_range_says_how_to_get_it(kube_api: tuple[FakeKubeApi, str]) -> None:
    outputs = {k: v for k, v in OUTPUTS.items() if k != keys.SCALING_RANGE}
    api_client = k8s.ApiClient(k8s.Configuration(host=kube_api[1]))
    try:
        with pytest.raises(UsageError, match=r"no 'scaling_range'.*pulumi up -s kind"):
            KubernetesTarget(outputs, api_client).release_scaling()
    finally:
        api_client.close()
    assert kube_api[0].sent("PATCH") == []


def test_kill_replica_of_an_empty_pool_says_so(driver: KubernetesTarget, cluster: Cluster) -> None:
    cluster.live("blue")
    cluster.pool("green", deployment("green", replicas=0))

    with pytest.raises(NotDeployedError, match=r"green pool \(Deployment bento-green\) has no pod"):
        driver.kill_replica()


def test_retire_previous_scales_the_pool_that_lost_the_traffic_to_zero(
    driver: KubernetesTarget, cluster: Cluster
) -> None:
    cluster.live("green", previous="blue")
    cluster.pool("blue", deployment("blue", replicas=0))

    driver.retire_previous()

    assert cluster.patches(f"{DEPLOYMENTS}/bento-blue/scale") == [(MERGE_PATCH, {"spec": {"replicas": 0}})]
    assert cluster.patches(SERVICE_PATH) == []


def test_abort_scales_the_candidate_to_zero_and_leaves_the_service_alone(
    driver: KubernetesTarget, cluster: Cluster
) -> None:
    """A Service selects one colour: the candidate never holds a share short of a switch, so abort only removes it."""
    cluster.live("blue")
    cluster.pool("green", deployment("green", replicas=0))

    driver.abort()

    assert cluster.patches(f"{DEPLOYMENTS}/bento-green/scale") == [(MERGE_PATCH, {"spec": {"replicas": 0}})]
    assert cluster.patches(SERVICE_PATH) == []


def test_down_scales_both_deployments_to_zero(driver: KubernetesTarget, cluster: Cluster) -> None:
    cluster.pool("blue", deployment("blue", replicas=0))
    cluster.pool("green", deployment("green", replicas=0))

    driver.down()

    for colour in ("blue", "green"):
        assert cluster.patches(f"{DEPLOYMENTS}/{NAMES[colour]}/scale") == [(MERGE_PATCH, {"spec": {"replicas": 0}})]


def test_api_errors_name_the_operation_and_the_server_s_message(driver: KubernetesTarget, cluster: Cluster) -> None:
    # No routes: the Service answers 404 with a Status document.
    with pytest.raises(DeploymentError, match=r"kubernetes status failed: 404 .*services/bento not found"):
        driver.status()


def test_from_kubeconfig_talks_to_the_cluster_of_the_stack_s_context(
    kube_api: tuple[FakeKubeApi, str], cluster: Cluster, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(  # JSON is YAML: a kubeconfig with a decoy current context and the stack's context
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "elsewhere",
                "clusters": [
                    {"name": "kind", "cluster": {"server": kube_api[1]}},
                    {"name": "other", "cluster": {"server": "http://127.0.0.1:9"}},
                ],
                "users": [{"name": "kind", "user": {"token": "t0ken"}}],
                "contexts": [
                    {"name": "kind-modelops", "context": {"cluster": "kind", "user": "kind"}},
                    {"name": "elsewhere", "context": {"cluster": "other", "user": "kind"}},
                ],
            }
        )
    )
    cluster.live("green")
    cluster.pool("blue", deployment("blue", replicas=0))
    cluster.pool("green", deployment("green", replicas=1))

    target = KubernetesTarget.from_kubeconfig(OUTPUTS, kubeconfig=str(kubeconfig))
    try:
        status = target.status()
    finally:
        target.apps.api_client.close()

    assert status.live == "green" and len(status.pools["green"].replicas) == 1
    assert cluster.api.requests[0].path == SERVICE_PATH


def test_from_kubeconfig_without_a_kubeconfig_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(
        DeploymentError, match=r"cannot load the kubeconfig for context 'kind-modelops'.*pulumi up -s kind"
    ):
        KubernetesTarget.from_kubeconfig(OUTPUTS, kubeconfig=str(tmp_path / "missing"))


def test_an_unreachable_api_server_is_a_deployment_error() -> None:
    api_client = k8s.ApiClient(k8s.Configuration(host="http://127.0.0.1:9"))  # discard port: nothing listens
    api_client.configuration.retries = 0
    try:
        with pytest.raises(DeploymentError, match="API server is unreachable"):
            KubernetesTarget(OUTPUTS, api_client).status()
    finally:
        api_client.close()


# ------------------------------------------------------------------------------------------- a real cluster


@pytest.mark.cluster
def test_on_a_cluster_status_and_a_switch_round_trip() -> None:
    """Against a deployed kind stack: status, then shift(100) + rollback() when the candidate has ready pods, which
    leaves the Service as it found it.

    Uses the kubeconfig (its current context, or the stack's `kube_context`) and MODELOPS_KIND_OUTPUTS, the file of
    `pulumi stack output --json -s kind`."""
    from kubernetes import config
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    from modelops.targets.outputs import load_outputs

    outputs_file = os.environ.get("MODELOPS_KIND_OUTPUTS")
    outputs = load_outputs(Path(outputs_file), stack="kind") if outputs_file else {}
    try:
        api_client = config.new_client_from_config(context=outputs.get(keys.KUBE_CONTEXT))
        k8s.VersionApi(api_client).get_code(_request_timeout=5)
    except (config.ConfigException, OSError, HTTPError, ApiException) as exc:
        pytest.skip(f"no reachable Kubernetes cluster: {type(exc).__name__}: {exc}")
    try:
        if not outputs:
            pytest.skip(
                "a Kubernetes cluster is reachable, but no kind stack is named: set MODELOPS_KIND_OUTPUTS to the "
                "file of `pulumi stack output --json -s kind`"
            )
        target = KubernetesTarget(outputs, api_client, timeout_s=180)
        before = target.status()
        assert before.live in ("blue", "green")
        assert before.replicas and all(r.url for r in before.replicas), before.replicas
        candidate = before.candidate
        if candidate is None or not any(r.healthy for r in candidate.replicas):
            return  # nothing to switch to: status alone was checked
        assert target.shift(100).live == candidate.colour
        assert target.rollback().live == before.live
    finally:
        api_client.close()
