"""Monitoring on kind from the same thresholds as the local target: the kind stack renders a ConfigMap with a
Prometheus configuration (pods found through the Kubernetes API, with the labels the rules expect) and the very rules
file the local target's Prometheus loads, both accepted by promtool."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from stacks.alerting import P95_OVER_SLO, render_alertmanager, render_rules
from stacks.config import load_stack_config
from stacks.kind.monitoring import ALERTMANAGER, ALERTMANAGER_FILE, CONFIG_FILE, CONFIG_MAP, RULES_FILE

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed: run `make setup` (Debian's prometheus package brings it)"
)


@pytest.fixture(scope="module")
def files(kind_rendering) -> dict[str, str]:
    config_maps = [r for r in kind_rendering.of_type("kubernetes:core/v1:ConfigMap")
                   if r["inputs"]["metadata"]["name"] == CONFIG_MAP]  # fmt: skip
    assert len(config_maps) == 1, "one monitoring ConfigMap"
    return config_maps[0]["inputs"]["data"]


def test_the_rules_are_the_local_targets_rules_from_the_kind_stacks_own_thresholds(files) -> None:
    settings = load_stack_config("kind")
    assert yaml.safe_load(files[RULES_FILE]) == render_rules(settings), "one generator, one source of thresholds"
    alerts = {r["alert"]: r for g in yaml.safe_load(files[RULES_FILE])["groups"] for r in g["rules"] if "alert" in r}
    assert f"{settings.slo.p95_ms / 1000:g}" in alerts[P95_OVER_SLO]["expr"], "the kind stack's own p95 SLO"


def test_the_scrape_configuration_labels_each_pod_with_its_replica_and_colour(files) -> None:
    job = yaml.safe_load(files[CONFIG_FILE])["scrape_configs"][0]
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"replica", "colour"} <= targets
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["modelops"]}}]


# Debian's promtool is built without Kubernetes service discovery ("field kubernetes_sd_configs not found"), so
# `promtool check config` cannot parse the scrape configuration here; the rules file it checks fully.
@needs_promtool
def test_promtool_accepts_the_rules_the_config_map_carries(files, tmp_path) -> None:
    (tmp_path / RULES_FILE).write_text(files[RULES_FILE])
    done = subprocess.run([PROMTOOL, "check", "rules", str(tmp_path / RULES_FILE)], capture_output=True, text=True,
                          check=False, timeout=60)  # fmt: skip
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


@needs_promtool
def test_promtool_refuses_rules_with_a_broken_expression(files, tmp_path) -> None:
    rules = yaml.safe_load(files[RULES_FILE])
    rules["groups"][0]["rules"][0]["expr"] = "sum by (x) (rate(requests[1m]"
    (tmp_path / RULES_FILE).write_text(yaml.safe_dump(rules))
    done = subprocess.run([PROMTOOL, "check", "rules", str(tmp_path / RULES_FILE)], capture_output=True, text=True,
                          check=False, timeout=60)  # fmt: skip
    assert done.returncode != 0 and "unclosed" in (done.stdout + done.stderr).lower(), done.stdout + done.stderr


def test_alerts_go_to_an_alertmanager_whose_configuration_routes_pages_and_tickets(files) -> None:
    settings = load_stack_config("kind")
    config = yaml.safe_load(files[CONFIG_FILE])
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [ALERTMANAGER]
    routing = yaml.safe_load(files[ALERTMANAGER_FILE])
    assert routing == render_alertmanager(settings), "the local target's Alertmanager configuration, same source"
    assert {r["receiver"] for r in routing["route"]["routes"]} == {"page", "ticket"}


AMTOOL = shutil.which("amtool")


@pytest.mark.skipif(AMTOOL is None, reason="amtool is not installed: run `make setup` (prometheus-alertmanager)")
@pytest.mark.parametrize("webhook", [None, "https://alerts.example.com/modelops"])
def test_amtool_accepts_the_alertmanager_configuration(tmp_path, webhook) -> None:
    settings = load_stack_config("kind").with_overrides(monitor={"alert_webhook": webhook})
    path = tmp_path / ALERTMANAGER_FILE
    path.write_text(yaml.safe_dump(render_alertmanager(settings)))
    done = subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, text=True, check=False,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr
    assert ("webhook_configs" in path.read_text()) == bool(webhook)


@pytest.mark.skipif(AMTOOL is None, reason="amtool is not installed: run `make setup` (prometheus-alertmanager)")
def test_amtool_refuses_a_route_to_a_receiver_that_does_not_exist(tmp_path) -> None:
    routing = render_alertmanager(load_stack_config("kind"))
    routing["route"]["routes"][0]["receiver"] = "nobody"
    path = tmp_path / ALERTMANAGER_FILE
    path.write_text(yaml.safe_dump(routing))
    done = subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, text=True, check=False,
                          timeout=60)  # fmt: skip
    assert done.returncode != 0 and "nobody" in done.stdout + done.stderr
