"""`modelops monitor`: figures from replicas' /metrics differenced over an interval, the p95 anomaly rule of the
live view, and the command against a real deployment started with `modelops up --monitoring` (real Prometheus)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from modelops.cli import app
from modelops.gate.run import history_file
from modelops.monitor import service
from modelops.monitor.live import ColourView, Counters, Figures, P95History, Snapshot, parse_metrics
from modelops.targets.local import LocalTarget, procs
from stacks.config import STACKS_DIR, load_stack_config
from tests.fixtures.faulty import build_faulty
from tests.traffic import Traffic

METRICS = """\
# TYPE bentoml_service_request_total counter
bentoml_service_request_total{endpoint="/predict",http_response_code="200",service_name="s"} 90.0
bentoml_service_request_total{endpoint="/predict",http_response_code="500",service_name="s"} 10.0
bentoml_service_request_total{endpoint="/readyz",http_response_code="200",service_name="s"} 7.0
# TYPE bentoml_service_request_duration_seconds histogram
bentoml_service_request_duration_seconds_bucket{endpoint="/predict",http_response_code="200",le="0.025"} 90.0
bentoml_service_request_duration_seconds_bucket{endpoint="/predict",http_response_code="200",le="+Inf"} 90.0
bentoml_service_request_duration_seconds_bucket{endpoint="/predict",http_response_code="500",le="0.025"} 0.0
bentoml_service_request_duration_seconds_bucket{endpoint="/predict",http_response_code="500",le="+Inf"} 10.0
"""


def test_predict_counters_merge_response_codes_and_ignore_other_endpoints() -> None:
    counters = parse_metrics(METRICS)
    assert (counters.requests, counters.errors) == (100.0, 10.0)
    assert counters.buckets == {0.025: 90.0, math.inf: 100.0}


def test_figures_are_the_intervals_not_since_start() -> None:
    before = Counters(1000, 5, {0.025: 1000, math.inf: 1000})
    after = Counters(1100, 5, {0.025: 1000, 0.5: 1100, math.inf: 1100})  # 100 slow requests in the interval
    figures = Figures.of(after.minus(before), seconds=2.0)
    assert (figures.rps, figures.errors) == (50.0, 0)
    assert figures.p50_ms is not None and figures.p50_ms > 25, "the interval's requests were all slow"


def snapshot_with_p95(p95: float) -> Snapshot:
    figures = Figures(rps=10, errors=0, p50_ms=p95 / 2, p95_ms=p95, p99_ms=p95)
    return Snapshot(0, 2, "local", "", "", [ColourView("blue", "b", 100, True, figures)], [], None, None, None, "",
                    None, {})  # fmt: skip


@pytest.mark.parametrize(("last", "flagged"), [(400.0, True), (22.0, False)])
def test_live_view_flags_a_p95_spike_against_its_own_history_and_not_noise(last, flagged) -> None:
    history = P95History(window=10, threshold=6.0)
    for p95 in [20, 21, 19, 22, 20, 18, 21, 20, 19, 21, 20]:
        assert not history.add(snapshot_with_p95(p95)).startswith("flagged")
    assert history.add(snapshot_with_p95(last)).startswith("flagged") is flagged


@pytest.fixture
def monitored_stack(tmp_path, monkeypatch, bentoml_home):
    """A stack file whose deployment lives in tmp_path; torn down (and checked) after the test."""
    settings = load_stack_config("local").model_dump(mode="json")
    settings["local"].update(state_dir=str(tmp_path / "state"), ready_timeout_s=90)
    settings["deploy"]["replicas"] = 1
    settings["monitor"]["scrape_interval_s"] = 1
    config = {f"modelops:{k}": v for k, v in settings.items() if k not in ("stack", "kind", "aws")}
    (tmp_path / "Pulumi.mon.yaml").write_text(yaml.safe_dump({"config": config}))
    shutil.copy(STACKS_DIR / "Pulumi.local.yaml", tmp_path)
    monkeypatch.setattr("stacks.config.STACKS_DIR", tmp_path)
    target = LocalTarget(load_stack_config("mon", stacks_dir=tmp_path))
    try:
        yield target, build_faulty(tmp_path)
    finally:
        service.stop(history_file(target.settings).path.parent)
        target.down()
        assert procs.marked_processes(target.deployment) == [], "processes left behind"


@pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="prometheus is not installed: run `make setup` (Debian's prometheus package)",
)
def test_monitor_once_json_reports_live_figures_and_prometheus_alerts_of_a_real_deployment(monitored_stack) -> None:
    target, bento = monitored_stack
    runner = CliRunner()
    up = runner.invoke(app, ["up", "--stack", "mon", "--bento", bento, "--monitoring"])
    assert up.exit_code == 0, up.output
    state_dir = history_file(target.settings).path.parent
    prometheus = service.running_prometheus(state_dir)
    assert prometheus, f"`up --monitoring` started no answering Prometheus: see {state_dir / 'monitoring'}"
    with Traffic(target.status().url, {"rows": [[1.0]]}, clients=4):
        result = runner.invoke(app, ["monitor", "--stack", "mon", "--once", "--json", "--interval", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    live = next(c for c in data["colours"] if c["live"])
    assert live["figures"]["rps"] > 10 and live["figures"]["errors"] == 0, live
    assert 0 < live["figures"]["p50_ms"] <= live["figures"]["p95_ms"] <= live["figures"]["p99_ms"], live
    assert [r["name"] for r in data["replicas"]] == ["blue-1"] and data["replicas"][0]["in_rotation"] is True
    assert data["balancer"]["rps"] > 10 and data["balancer"]["errors_5xx"] == 0
    assert data["prometheus"] == prometheus and isinstance(data["alerts"], list), data["sources"]
    record = service.load(state_dir)
    down = runner.invoke(app, ["down", "--stack", "mon"])
    assert down.exit_code == 0 and "prometheus on port" in down.output, down.output
    assert record is not None and not record.proc.alive(), "`down` left Prometheus running"
