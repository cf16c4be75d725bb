"""The promotion gate on real replicas with short runs: verdicts, exit codes, outputs, promotion and rollback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
from bs4 import BeautifulSoup

from modelops.errors import ExitStatus
from modelops.gate.run import history_file, run_gate
from modelops.gate.summary import REPORT_FILE, SUMMARY_FILE, Summary
from modelops.promotion import reconcile, rollback, switch
from modelops.targets.local import LocalTarget, procs
from modelops.ui import Steps
from tests.conftest import local_settings
from tests.fixtures.faulty import build_faulty
from tests.traffic import Traffic

# Short, permissive settings: these tests check the gate's mechanics and decisions, not this machine's speed.
QUICK = {
    "deploy": {"replicas": 1},
    "slo": {"p95_ms": 2000, "p99_ms": 4000, "max_error_ratio": 0.001, "min_rps": 5},
    "gate": {
        "users": 8, "spawn_rate": 8, "duration_s": 3, "warmup_s": 1, "min_requests": 20, "target_rps": 40,
        "step_users": [2, 8], "step_seconds": 2, "smoke_users": 2, "smoke_seconds": 2,
        "min_efficiency": 0.2, "min_vertical_ratio": 0.3, "failover_max_error_ratio": 0.02,
    },
}  # fmt: skip


def quick_settings(state_dir: Path, **changes: dict):
    merged = {k: {**v, **changes.pop(k, {})} for k, v in QUICK.items()}
    return local_settings(state_dir, **merged, **changes)


@pytest.fixture(scope="session")
def candidate_bento(reference_bento: str) -> str:
    """v2 of the reference model: another seed, another bento."""
    from bento import train
    from modelops import bentos

    train.save(seed=2)
    return bentos.build()


@pytest.fixture(scope="module")
def faulty_bento(tmp_path_factory, bentoml_home) -> str:
    return build_faulty(tmp_path_factory.mktemp("faulty"))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, reference_bento):
    """v1 live (one replica), shared by the module's gate runs; each test views it with its own settings."""
    state = tmp_path_factory.mktemp("gate")
    target = LocalTarget(quick_settings(state), state_dir=state / "local")
    target.up(reference_bento, replicas=1, workers=1)
    yield state
    target.down()
    assert procs.marked_processes(target.deployment) == []


def view(state: Path, **changes: dict) -> LocalTarget:
    """The shared deployment, seen with these settings (same state dir, so the same processes)."""
    return LocalTarget(quick_settings(state, **changes), state_dir=state / "local")


def gate(target: LocalTarget, candidate: str, reports: Path, **kwargs) -> Summary:
    return run_gate(target, target.settings, candidate, Steps(), reports=reports, **kwargs)


@pytest.fixture(scope="module")
def rejected(deployment):
    """Gate runs that must leave the live v1 untouched, each with the candidate and settings of its case."""

    def run(candidate: str, suites: tuple[str, ...], fault: str = "", **changes: dict) -> tuple[Summary, LocalTarget]:
        os.environ["MODELOPS_TEST_FAULT"] = fault  # read by the faulty bento's replicas when they start
        try:
            target = view(deployment, **changes)
            return gate(target, candidate, deployment / "reports", suites=suites), target
        finally:
            os.environ.pop("MODELOPS_TEST_FAULT", None)

    return run


def test_a_slow_candidate_is_rejected_by_the_slo_gate_with_its_exit_code(rejected, faulty_bento, reference_bento):
    summary, target = rejected(faulty_bento, ("smoke", "slo"), fault="slow", slo={"p95_ms": 100, "p99_ms": 200})
    assert (summary.verdict, summary.exit_status) == ("reject", ExitStatus.SLO_FAILED), summary.reason
    assert "p95" in summary.suites["slo"].reason
    assert target.status().bento == reference_bento and target.status().candidate is None, "live untouched"


def test_a_candidate_with_an_error_rate_is_rejected(rejected, faulty_bento, reference_bento) -> None:
    summary, target = rejected(faulty_bento, ("slo",), fault="errors")
    assert (summary.verdict, summary.exit_status) == ("reject", ExitStatus.SLO_FAILED), summary.reason
    assert summary.suites["slo"].error_ratio > 0.1
    assert "error ratio" in summary.suites["slo"].reason
    assert target.status().bento == reference_bento and target.status().candidate is None


def test_too_few_requests_make_the_suite_inconclusive(rejected, candidate_bento, reference_bento) -> None:
    summary, target = rejected(candidate_bento, ("slo",), gate={"min_requests": 1_000_000})
    assert summary.candidate == candidate_bento
    assert (summary.verdict, summary.exit_status) == ("inconclusive", ExitStatus.INCONCLUSIVE)
    assert "min_requests" in summary.suites["slo"].reason
    assert target.status().bento == reference_bento and target.status().candidate is None, "not promoted"


@pytest.fixture(scope="module")
def promoted(deployment, rejected, candidate_bento) -> tuple[Summary, LocalTarget, Path]:
    """The full gate on v2 (runs after the rejections above, which leave v1 live): every suite, then promotion."""
    target = view(deployment)
    return gate(target, candidate_bento, deployment / "reports"), target, deployment / "reports"


def test_a_good_candidate_passes_every_suite_and_is_promoted(promoted, candidate_bento, reference_bento) -> None:
    summary, target, _ = promoted
    assert summary.verdict == "promote", {n: (s.status, s.reason) for n, s in summary.suites.items()}
    assert summary.exit_status == ExitStatus.OK
    assert [n for n, s in summary.suites.items() if s.status == "pass"] == [
        "smoke", "slo", "horizontal", "vertical", "failover"
    ]  # fmt: skip
    assert summary.suites["regression"].status == "skipped", "v1 was deployed by up, not promoted: no baseline"
    assert summary.suites["smoke"].measured["golden_checks"] > 0
    assert summary.scaling.horizontal.replicas == [1, 2] and len(summary.scaling.horizontal.efficiency) == 2
    assert summary.scaling.vertical.workers == [1, 2] and summary.scaling.vertical.ratio > 0
    assert summary.suites["failover"].measured["detection_s"] is not None
    status = target.status()
    assert status.bento == candidate_bento, "promoted: the candidate is live"
    assert status.candidate is None, "the old version was drained and stopped"
    assert len(status.replicas) == 1 and all(r.healthy for r in status.replicas)
    last = history_file(target, target.settings).load().entries[-1]
    assert (last.action, last.state, last.bento, last.previous) == ("promote", "done", candidate_bento, reference_bento)
    assert last.summary and Path(last.summary).name == SUMMARY_FILE


def test_the_capacity_plan_follows_from_the_measured_curve(promoted) -> None:
    summary = promoted[0]
    plan = summary.capacity_plan
    assert plan.rps_per_replica_at_slo > 0 and plan.recommended_min_replicas >= 2
    assert plan.recommended_max_replicas >= plan.recommended_min_replicas
    assert plan.asg_target_requests_per_target_per_minute == pytest.approx(plan.rps_per_replica_at_slo * 0.7 * 60, 0.01)
    assert plan.hpa_target_cpu_utilization is not None, "the local target measures CPU"


def test_summary_json_matches_its_schema_and_the_report_renders(promoted) -> None:
    summary, _, reports = promoted
    run_dir = reports / summary.run_id
    data = json.loads((run_dir / SUMMARY_FILE).read_text())
    jsonschema.validate(data, Summary.model_json_schema())
    for key in ("verdict", "exit_status", "candidate", "baseline", "target", "suites", "scaling", "capacity_plan"):
        assert key in data, key
    for field in ("status", "rps", "p50_ms", "p95_ms", "p99_ms", "error_ratio", "requests", "thresholds", "reason"):
        assert field in data["suites"]["slo"], field
    assert (reports / "latest").resolve() == run_dir.resolve()
    page = BeautifulSoup((run_dir / REPORT_FILE).read_text(), "html.parser")
    assert summary.verdict.upper() in page.h1.text
    images = [img["src"] for img in page.find_all("img")]
    assert {"scaling.png", "latency.png", "timeline.png"} <= set(images)
    assert all((run_dir / src).stat().st_size > 1000 for src in images), "plots were written"
    links = [a["href"] for a in page.find_all("a") if a["href"].endswith(".html")]
    assert "slo.html" in links and all((run_dir / href).exists() for href in links), "Locust's own reports linked"


def test_the_next_candidate_is_compared_with_the_promoted_baseline(promoted, reference_bento) -> None:
    summary, target, reports = promoted
    again = gate(target, reference_bento, reports, suites=("slo", "regression"), promote=False)
    regression = again.suites["regression"]
    assert regression.status in ("pass", "fail") and again.baseline == summary.candidate
    assert again.baseline_summary == str(reports / summary.run_id / SUMMARY_FILE)
    assert regression.measured["baseline_rps_per_replica"] == pytest.approx(summary.suites["slo"].rps)
    assert target.status().candidate is None, "not promoted (promote=False): the candidate was removed"


@pytest.fixture
def live(tmp_path, reference_bento):
    """v1 live (one replica) in this test's own deployment; always torn down."""
    target = LocalTarget(quick_settings(tmp_path / "state"))
    target.up(reference_bento, replicas=1, workers=1)
    yield target
    target.down()
    assert procs.marked_processes(target.deployment) == []


def test_promotion_and_rollback_under_load_fail_no_request(live, candidate_bento, reference_bento) -> None:
    target = live
    histories = history_file(target, target.settings)
    target.deploy_candidate(candidate_bento, replicas=1, workers=1)
    url = target.status().url
    body = {"rows": [[13.2, 3.9, 2.3, 17.5, 103.0, 2.6, 2.6, 0.3, 1.7, 4.4, 0.8, 3.0, 680.0]]}
    with Traffic(url, body, clients=8) as traffic:
        traffic.wait_for(100)
        switch(target, histories, "promote", candidate_bento, None)
        traffic.wait_for(200)
        assert target.status().bento == candidate_bento
        rollback(target, histories)
        traffic.wait_for(200)
    assert traffic.failed == 0, f"failed requests across promote + rollback: {dict(traffic.failures)}"
    assert target.status().bento == reference_bento, "rolled back"
    actions = [(e.action, e.state, e.bento) for e in histories.load().entries]
    assert actions == [("promote", "done", candidate_bento), ("rollback", "done", reference_bento)]


PROMOTE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from modelops.gate.run import history_file
    from modelops.promotion import switch
    from modelops.targets.local import LocalTarget
    from tests.conftest import local_settings
    target = LocalTarget(local_settings(Path(sys.argv[1])))
    switch(target, history_file(target, target.settings), "promote", sys.argv[2], None)
    """
)


@pytest.mark.parametrize(
    ("point", "expected_live"),
    [
        ("promote:after-intent", "old"),
        ("promote:after-switch", "new"),
        ("promote:after-record", "new"),
        ("promote:after-retire", "new"),
    ],
)
def test_sigkill_during_promotion_leaves_one_version_live_and_history_consistent(
    point, expected_live, tmp_path, reference_bento, candidate_bento
) -> None:
    state_dir = tmp_path / "state"
    target = LocalTarget(local_settings(state_dir))
    try:
        target.up(reference_bento, replicas=1, workers=1)
        target.deploy_candidate(candidate_bento, replicas=1, workers=1)
        env = {**os.environ, "MODELOPS_FAILPOINT": point}
        done = subprocess.run([sys.executable, "-c", PROMOTE, str(state_dir), candidate_bento], env=env, check=False)
        assert done.returncode == -signal.SIGKILL, f"the promoting process was not killed at {point}"
        live = target.status().bento
        assert live == {"old": reference_bento, "new": candidate_bento}[expected_live]
        entries = reconcile(history_file(target, target.settings), live).entries
        assert entries[-1].state == ("aborted" if expected_live == "old" else "done")
        assert [e.bento for e in entries if e.state == "done"][-1:] == ([live] if expected_live == "new" else [])
    finally:
        target.down()
        assert procs.marked_processes(target.deployment) == []
