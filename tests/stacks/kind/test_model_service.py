"""stacks/kind/model_service.py: restricted namespace, blue/green Deployments, live Service, HPA, PDB, policy."""

from __future__ import annotations

import json

import pytest

from stacks import outputs
from stacks.cache import CACHE_VARIABLES, cache_env
from stacks.capacity import CAPACITY_PLAN, CPU_SECONDS_PER_REQUEST, RPS_PER_VCPU_AT_SLO
from stacks.config import CacheSettings
from stacks.images import balancer_idle_timeout_s
from stacks.kind import IN_FLIGHT_METRIC, hpa_cpu_target, hpa_metric
from stacks.kind.cluster import kind_config
from stacks.kind.model_service import (
    COLOUR_LABEL,
    COLOURS,
    CONTAINER_PORT,
    PRESTOP_S,
    deployment_name,
)
from stacks.threads import THREAD_VARIABLES, thread_env
from tests.stacks.conftest import CACHE_ON
from tests.stacks.plans import PLANNED_HPA_TARGET, gate_summary, write_history

colours = pytest.mark.parametrize("colour", COLOURS)


def deployment(rendering, settings, colour: str) -> dict:
    return rendering.kubernetes("Deployment", deployment_name(colour), settings.kind.namespace)


def container(rendering, settings, colour: str) -> dict:
    (only,) = deployment(rendering, settings, colour)["spec"]["template"]["spec"]["containers"]
    return only


def test_namespace_enforces_restricted_pss(kind_rendering, kind_settings) -> None:
    labels = kind_rendering.kubernetes("Namespace", kind_settings.kind.namespace)["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted", labels


def test_nothing_lands_in_the_default_namespace(kind_rendering) -> None:
    for path in (kind_rendering.directory / "kubernetes").glob("*.yaml"):
        assert "namespace: default" not in path.read_text(), path.name


@colours
def test_deployment_has_no_replicas_field(kind_rendering, kind_settings, colour) -> None:
    assert "replicas" not in deployment(kind_rendering, kind_settings, colour)["spec"], "the HPA owns replicas"


@colours
def test_deployment_probes_livez_and_readyz(kind_rendering, kind_settings, colour) -> None:
    probes = container(kind_rendering, kind_settings, colour)
    assert probes["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert probes["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert all(probes[p]["httpGet"]["port"] == "http" for p in ("livenessProbe", "readinessProbe", "startupProbe"))


@colours
def test_requests_equal_limits_from_the_deploy_settings(kind_rendering, kind_settings, colour) -> None:
    resources = container(kind_rendering, kind_settings, colour)["resources"]
    expected = {"cpu": f"{round(kind_settings.deploy.cpu_per_replica * 1000)}m", "memory": "1024Mi"}
    assert resources == {"requests": expected, "limits": expected}


@colours
def test_container_runs_restricted(kind_rendering, kind_settings, colour) -> None:
    ctx = container(kind_rendering, kind_settings, colour)["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"] == {"drop": ["ALL"]}
    pod = deployment(kind_rendering, kind_settings, colour)["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True


@colours
def test_bentoml_writes_only_to_an_emptydir(kind_rendering, kind_settings, colour) -> None:
    pod = deployment(kind_rendering, kind_settings, colour)["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    (mount,) = pod["containers"][0]["volumeMounts"]
    (volume,) = pod["volumes"]
    assert volume["name"] == mount["name"] and "emptyDir" in volume
    assert env["BENTOML_HOME"].startswith(mount["mountPath"] + "/") and env["HOME"] == mount["mountPath"]


@colours
def test_pod_does_not_mount_a_service_account_token(kind_rendering, kind_settings, colour) -> None:
    pod = deployment(kind_rendering, kind_settings, colour)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] != "default"


@colours
def test_rolling_update_never_lowers_capacity(kind_rendering, kind_settings, colour) -> None:
    strategy = deployment(kind_rendering, kind_settings, colour)["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 0


@colours
def test_prestop_drains_before_termination(kind_rendering, kind_settings, colour) -> None:
    pod = deployment(kind_rendering, kind_settings, colour)["spec"]["template"]["spec"]
    assert pod["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": PRESTOP_S}}
    assert pod["terminationGracePeriodSeconds"] > PRESTOP_S + kind_settings.limits.request_timeout_s


@colours
def test_replicas_spread_across_nodes(kind_rendering, kind_settings, colour) -> None:
    dep = deployment(kind_rendering, kind_settings, colour)
    (spread,) = dep["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["maxSkew"] == 1
    assert spread["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]


@colours
def test_image_is_used_if_present_and_workers_timeout_body_limit_reach_bentoml(kind_rendering, kind_settings, colour):
    c = container(kind_rendering, kind_settings, colour)
    assert c["image"] == kind_rendering.outputs[outputs.IMAGE] and c["imagePullPolicy"] == "IfNotPresent"
    assert c["ports"] == [{"containerPort": CONTAINER_PORT, "name": "http", "protocol": "TCP"}]
    env = {e["name"]: e["value"] for e in c["env"]}
    (service,) = json.loads(env["BENTOML_CONFIG_OVERRIDES"])["services"].values()
    assert service == {"workers": kind_settings.deploy.workers, "traffic": {"timeout": 10}}
    assert env["MODELOPS_MAX_BODY_BYTES"] == str(kind_settings.limits.max_body_bytes)


@colours
def test_the_server_keeps_idle_connections_longer_than_a_balancer_would(kind_rendering, kind_settings, colour) -> None:
    args = container(kind_rendering, kind_settings, colour)["args"]
    # The image's entrypoint turns leading flags into `bentoml serve FLAGS BENTO`.
    assert args[0] == "--timeout-keep-alive"
    assert int(args[1]) > balancer_idle_timeout_s(kind_settings.limits.request_timeout_s)


@colours
def test_a_later_pulumi_up_leaves_the_running_bento_workers_and_budget_to_promotion(kind_rendering, colour) -> None:
    deployment_record = kind_rendering.one("kubernetes:apps/v1:Deployment", f"model-{colour}")
    # At levels pulumi-kubernetes' server-side apply resolves: a map (annotations), a whole list element (the
    # container); paths inside the element (containers[0].image) are not honoured (pulumi/pulumi#15412).
    assert deployment_record["ignore_changes"] == [
        "spec.template.metadata.annotations",
        "spec.template.spec.containers[0]",
    ]
    assert not [p for p in deployment_record["ignore_changes"] if "]." in p]


@colours
def test_pulumi_wins_back_the_hpa_range_the_driver_pins_for_a_gate(kind_rendering, colour) -> None:
    hpa = kind_rendering.kubernetes("HorizontalPodAutoscaler", f"bento-{colour}", "modelops")
    assert hpa["metadata"]["annotations"]["pulumi.com/patchForce"] == "true"
    deployment = kind_rendering.kubernetes("Deployment", f"bento-{colour}", "modelops")
    # Not on the Deployments: Pulumi forcing its creation-time image back would swap the live bento.
    assert "pulumi.com/patchForce" not in deployment["metadata"].get("annotations", {})


@colours
def test_every_pod_s_thread_pools_follow_its_cpu_budget_per_worker(kind_rendering, kind_settings, colour) -> None:
    env = {e["name"]: e["value"] for e in container(kind_rendering, kind_settings, colour)["env"]}
    deploy = kind_settings.deploy
    expected = thread_env(deploy.cpu_per_replica / deploy.workers)
    assert {name: env.get(name) for name in THREAD_VARIABLES} == expected


@colours
@pytest.mark.parametrize(
    ("rendering", "cache"), [("kind_rendering", CacheSettings()), ("kind_planned", CacheSettings(**CACHE_ON))]
)
def test_every_pod_gets_the_stack_s_prediction_cache_settings(request, rendering, cache, kind_settings, colour) -> None:
    rendered = request.getfixturevalue(rendering)
    env = {e["name"]: e["value"] for e in container(rendered, kind_settings, colour)["env"]}
    assert {name: env.get(name) for name in CACHE_VARIABLES} == cache_env(cache), f"{rendering}: {colour} pods"


@pytest.mark.parametrize(("cpu", "workers", "threads"), [(0.5, 1, "1"), (4, 1, "4"), (4, 2, "2"), (3, 2, "1")])
def test_thread_env_gives_each_worker_the_whole_cores_of_its_share(cpu, workers, threads) -> None:
    assert thread_env(cpu / workers) == dict.fromkeys(THREAD_VARIABLES, threads)


def test_live_service_is_a_nodeport_that_selects_the_live_colour(kind_rendering, kind_settings) -> None:
    name = kind_rendering.outputs[outputs.SERVICE_NAME]
    service = kind_rendering.kubernetes("Service", name, kind_settings.kind.namespace)
    (port,) = service["spec"]["ports"]
    assert service["spec"]["type"] == "NodePort" and port["nodePort"] == kind_settings.kind.node_port
    assert port["targetPort"] == "http"
    assert service["spec"]["selector"][COLOUR_LABEL] == kind_settings.kind.live_colour


def test_service_selector_belongs_to_promotion_after_creation(kind_rendering) -> None:
    assert kind_rendering.one("kubernetes:core/v1:Service", "model-live")["ignore_changes"] == ["spec.selector"]


@colours
def test_each_colour_is_reachable_on_its_own_nodeport_service(kind_rendering, kind_settings, colour) -> None:
    service = kind_rendering.kubernetes("Service", deployment_name(colour), kind_settings.kind.namespace)
    (port,) = service["spec"]["ports"]
    assert service["spec"]["type"] == "NodePort" and service["spec"]["selector"][COLOUR_LABEL] == colour
    assert port["nodePort"] == getattr(kind_settings.kind.pool_node_ports, colour) and port["targetPort"] == "http"


@colours
def test_pool_url_is_the_host_port_kind_maps_to_the_colour_s_node_port(kind_rendering, kind_settings, colour) -> None:
    host_port = getattr(kind_settings.kind.pool_host_ports, colour)
    assert kind_rendering.outputs[outputs.POOL_URLS][colour] == f"http://127.0.0.1:{host_port}"
    (node,) = kind_config(kind_settings.kind)["nodes"]
    mapped = {m["containerPort"]: m["hostPort"] for m in node["extraPortMappings"]}
    assert mapped[getattr(kind_settings.kind.pool_node_ports, colour)] == host_port


@colours
def test_hpa_scales_its_colour_within_the_settings(kind_rendering, kind_settings, colour) -> None:
    name = kind_rendering.outputs[outputs.HPA_NAMES][colour]
    hpa = kind_rendering.kubernetes("HorizontalPodAutoscaler", name, kind_settings.kind.namespace)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert name == kind_rendering.outputs[outputs.DEPLOYMENT_NAMES][colour]
    spec = hpa["spec"]
    deploy, autoscale = kind_settings.deploy, kind_settings.autoscale
    assert (spec["minReplicas"], spec["maxReplicas"]) == (deploy.min_replicas, deploy.max_replicas)
    (metric,) = spec["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    windows = (spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"],
               spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"])  # fmt: skip
    assert windows == (autoscale.scale_up_window_s, autoscale.scale_down_window_s)


def test_in_flight_autoscaling_gives_the_hpa_a_pods_metric_and_warns_it_needs_an_adapter(kind_settings, capsys):
    settings = kind_settings.with_overrides(autoscale={"metric": "in_flight", "target": 4.5})
    metric = hpa_metric(settings)
    assert metric == {
        "type": "Pods",
        "pods": {"metric": {"name": IN_FLIGHT_METRIC}, "target": {"type": "AverageValue", "averageValue": "4500m"}},
    }
    assert "custom-metrics adapter" in capsys.readouterr().err


def hpa_target(rendering, settings, colour) -> int:
    hpa = rendering.kubernetes("HorizontalPodAutoscaler", deployment_name(colour), settings.kind.namespace)
    return hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]


@colours
def test_hpa_cpu_target_comes_from_the_plan_of_the_promoted_version(kind_planned, kind_settings, colour) -> None:
    assert hpa_target(kind_planned, kind_settings, colour) == PLANNED_HPA_TARGET


@colours
def test_without_a_promotion_the_hpa_keeps_the_setting_and_says_why(kind_rendering, kind_settings, colour) -> None:
    assert hpa_target(kind_rendering, kind_settings, colour) == round(kind_settings.autoscale.target)
    assert any("no promotion history" in w and "autoscale.target" in w for w in kind_rendering.warnings())


@colours
def test_another_stack_s_gate_run_never_sizes_the_hpa(kind_other_stack, kind_settings, colour) -> None:
    assert hpa_target(kind_other_stack, kind_settings, colour) == round(kind_settings.autoscale.target)
    assert any("stack is 'kind-staging', not 'kind'" in w for w in kind_other_stack.warnings())


@pytest.mark.parametrize(
    ("plan", "expected", "warning"),
    [
        # Far above 100 % is valid (utilization is of the CPU request): no [30, 90] clamp any more.
        ({RPS_PER_VCPU_AT_SLO: 50.0, CPU_SECONDS_PER_REQUEST: 0.05}, 175, None),
        # Below what Kubernetes accepts: clamped to 1 % with a warning.
        ({RPS_PER_VCPU_AT_SLO: 1.0, CPU_SECONDS_PER_REQUEST: 0.001}, 1, "below what Kubernetes accepts"),
        # Not measured: the setting.
        ({RPS_PER_VCPU_AT_SLO: 50.0, CPU_SECONDS_PER_REQUEST: None}, None, "could not measure them"),
    ],
)
def test_hpa_cpu_target_from_the_plan_is_only_clamped_to_what_kubernetes_accepts(
    kind_settings, tmp_path, capsys, plan, expected, warning
) -> None:
    write_history(tmp_path, "kind", gate_summary("kind", "kind", **{CAPACITY_PLAN: plan}))
    target = hpa_cpu_target(kind_settings, work_dir=tmp_path)
    assert target == (round(kind_settings.autoscale.target) if expected is None else expected)
    # Outside the engine pulumi.log.warn prints "warning: ..." to stderr.
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert (warning is None and warned == []) or (warning is not None and any(warning in w for w in warned)), warned


@colours
def test_disruption_budget_keeps_all_but_one_pod(kind_rendering, kind_settings, colour) -> None:
    pdb = kind_rendering.kubernetes("PodDisruptionBudget", deployment_name(colour), kind_settings.kind.namespace)
    dep = deployment(kind_rendering, kind_settings, colour)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == dep["spec"]["selector"]


def test_network_policy_admits_the_model_port_and_lets_out_only_dns(kind_rendering, kind_settings) -> None:
    policy = kind_rendering.kubernetes("NetworkPolicy", "bento", kind_settings.kind.namespace)["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [{"ports": [{"port": CONTAINER_PORT, "protocol": "TCP"}]}]
    (egress,) = policy["egress"]
    assert {p["port"] for p in egress["ports"]} == {53}
    assert egress["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    pod_labels = deployment(kind_rendering, kind_settings, "blue")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
