"""A good candidate through the whole gate on real replicas: every required suite, the outputs, promotion with zero
failed requests, rollback, crash safety, and the next candidate judged against the promoted baseline."""

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

from modelops.canary import CANARY_FILE
from modelops.errors import ExitStatus
from modelops.gate.capacity import read_curve
from modelops.gate.run import history_file
from modelops.gate.summary import REPORT_FILE, SUMMARY_FILE, Summary
from modelops.promotion import reconcile, rollback, switch
from modelops.targets.local import LocalTarget, procs
from tests.conftest import local_settings
from tests.modelops.gate.conftest import gate, quick_settings, view
from tests.traffic import Traffic, log_production_traffic

# The whole gate measures every scaling comparison in interleaved rounds, each configuration on fresh processes:
# with 3 rounds that is 15 deploys of one or two replicas. On the shared 2-core machine the module fixture's gate
# took over 300 s with 2 rounds (pytest-timeout's default stopped it there), so this module gets 900 s.
pytestmark = [pytest.mark.timeout(900), pytest.mark.exclusive]  # exclusive: judges timing, runs alone

# The gate that must promote measures more than the quick settings' minimum, so that this machine's hiccups less
# often leave a suite inconclusive (the rules say so when the noise is larger than the effect; a promote test should
# depend on luck as little as we can afford). 3 rounds (2 in the quick settings): one round's vertical ratio ranged
# from 1.40 to 2.56 here, and with the rounds' range as the interval (modelops/gate/rounds.py) a third round can
# only widen it. A 30-s soak (15 s): a fresh-clone CI's 15-s soak met two 1-2 s stalls (its load generator sent late
# then too), and its first and last 5 s (p95 68 vs 244 ms, x1.67 to x7.95) and its memory trend spanned the limits:
# inconclusive. With 30 s each side is 10 s and the trend has twice the samples.
PROMOTING = {"rounds": 3, "soak_s": 30}


@pytest.fixture(scope="module")
def promoted(tmp_path_factory, reference_bento, candidate_bento) -> tuple[Summary, LocalTarget, Path]:
    """v1 live (one replica), then the whole gate on v2 and its promotion. Torn down after the module."""
    state = tmp_path_factory.mktemp("promotion")
    target = view(state, gate=PROMOTING)
    target.up(reference_bento, replicas=1, workers=1)
    try:
        log_production_traffic(target, reference_bento, 120)  # v1 served clients: v2 is judged on their rows too
        yield gate(target, candidate_bento, state / "reports"), target, state / "reports"
    finally:
        target.down()
        assert procs.marked_processes(target.deployment) == []


def test_a_good_candidate_passes_every_required_suite_and_is_promoted(promoted, candidate_bento, reference_bento):
    summary, target, _ = promoted
    assert summary.verdict == "promote", {n: (s.status, s.reason) for n, s in summary.suites.items()}
    assert summary.exit_status == ExitStatus.OK and summary.promoted
    assert summary.required_suites == [
        "smoke", "quality", "slo", "failover", "robustness", "vertical", "horizontal", "plan", "soak", "regression",
    ], "v1 is live (by up, not promoted): v2 is compared with it"  # fmt: skip
    assert summary.suites["quality"].measured["agreement"] >= 0.9, "v2 answers v1's logged rows as v1 did"
    assert [n for n, s in summary.suites.items() if s.status == "pass"] == summary.required_suites
    regression = summary.suites["regression"]
    assert regression.measured["rounds"] >= 2 and regression.measured["compared_users"] > 0, "v1 measured beside"
    assert summary.suites["smoke"].measured["golden_checks"] > 0
    status = target.status()
    assert status.bento == candidate_bento, "promoted: the candidate is live"
    assert status.candidate is None, "the old version was drained and stopped"
    assert len(status.replicas) == 1 and all(r.healthy for r in status.replicas), "back to the deploy shape"
    last = history_file(target.settings).load().entries[-1]
    assert (last.action, last.state, last.bento, last.previous) == ("promote", "done", candidate_bento, reference_bento)
    assert last.summary and Path(last.summary).name == SUMMARY_FILE


def test_scaling_figures_are_good_answers_per_step_with_the_cpu_that_justifies_them(promoted) -> None:
    summary = promoted[0]
    horizontal = summary.suites["horizontal"]
    users = {label: [s.users for s in steps] for label, steps in horizontal.steps.items()}
    assert users == {"replicas=1": [4, 16, 32], "replicas=2": [8, 32, 64]}, "the same load per replica"
    for steps in horizontal.steps.values():
        for s in steps:
            assert s.requests > 0 and s.rps <= s.requests, "req/s from the step's own window, successes only"
            assert s.generator_load is not None and s.machine_idle is not None and s.throttled is not None
    assert summary.scaling.horizontal.rps[0] == horizontal.measured["rps_1"] > 0
    assert horizontal.measured["capacity_per_replica"] == max(s.rps for s in horizontal.steps["replicas=1"])
    vertical = summary.suites["vertical"]
    one, two = vertical.steps["workers=1"], vertical.steps["workers=2"]
    assert [s.users for s in two] == [2 * s.users for s in one], "two workers get twice the users"
    assert vertical.measured["rounds"] == len(vertical.rounds) >= 2, "every ratio is measured in interleaved rounds"
    assert vertical.measured["ratio_low"] <= vertical.measured["ratio"] <= vertical.measured["ratio_high"]
    compared = int(vertical.measured["compared_users"])
    assert all(r["workers=2"][-1].users == 2 * compared for r in vertical.rounds[1:]), "later rounds: the compared step"
    failover = summary.suites["failover"]
    assert 0 < failover.measured["detection_s"] <= 5, "HAProxy: two failed checks 1 s apart, from the kill"
    assert failover.measured["replicas"] == 2 and failover.measured["workers"] == 1, "at the deploy shape"
    assert all(w.generator_load is not None for name in summary.suites for w in summary.suites[name].cpu)
    # HAProxy's retries are read per suite (show stat); failover's are recorded, the others count against v2.
    assert all(summary.suites[n].measured["balancer_retries"] is not None for n in ("slo", "failover", "horizontal"))


def test_the_capacity_plan_follows_from_the_measured_curve(promoted) -> None:
    summary = promoted[0]
    plan = summary.capacity_plan
    steps = summary.suites["horizontal"].steps["replicas=1"]
    within = read_curve("replicas=1", steps, promoted[1].settings.slo)
    assert plan.rps_per_replica_at_slo == within.capacity > 0, "the most good req/s of a step within the SLO"
    assert plan.recommended_min_replicas >= 2 and plan.recommended_max_replicas == 2 * plan.recommended_min_replicas
    assert plan.asg_target_requests_per_target_per_minute == pytest.approx(plan.rps_per_replica_at_slo * 0.7 * 60, 0.01)
    assert plan.rps_per_vcpu_at_slo == pytest.approx(plan.rps_per_replica_at_slo / 0.25)
    assert plan.cpu_seconds_per_request > 0, "the local target measures the replicas' CPU"
    expected = round(100 * plan.cpu_seconds_per_request * plan.rps_per_replica_at_slo * 0.7 / 0.25)
    if expected <= 100:
        assert plan.hpa_target_cpu_utilization == expected
    else:  # cheaper per request under load (batching): CPU is no measure of this replica's load
        assert plan.hpa_target_cpu_utilization is None and "no HPA CPU target" in " ".join(plan.notes)


def test_summary_json_matches_its_schema_and_the_report_renders(promoted) -> None:
    summary, _, reports = promoted
    run_dir = reports / summary.run_id
    data = json.loads((run_dir / SUMMARY_FILE).read_text())
    jsonschema.validate(data, Summary.model_json_schema())
    assert Summary.model_validate(data) == summary
    assert (reports / "latest").resolve() == run_dir.resolve()
    page = BeautifulSoup((run_dir / REPORT_FILE).read_text(), "html.parser")
    assert summary.verdict.upper() in page.h1.text
    assert not page.find_all("img"), "one self-contained file: every plot inline"
    plots = {figure["id"] for figure in page.find_all("figure") if figure.find("svg")}
    expected = {"plot-latency", "plot-p95-vs-rps", "plot-scaling", "plot-per-second", "plot-regression", "plot-quality"}
    if (run_dir / CANARY_FILE).exists():
        expected.add("plot-canary")
    assert expected <= plots, plots
    links = [a["href"] for a in page.find_all("a") if a["href"].endswith(".html")]
    assert "slo.html" in links and all((run_dir / href).exists() for href in links), "Locust's own reports linked"
    assert "generator" in page.text and "idle" in page.text, "the CPU evidence is shown"


def test_a_slower_candidate_is_rejected_against_the_live_version_measured_beside_it(promoted, faulty_bento) -> None:
    summary, _, reports = promoted
    target = view(reports.parent)  # the same deployment, with the quick settings
    os.environ["MODELOPS_TEST_FAULT"] = "heavy"  # 4 ms of CPU per request: a fraction of the baseline's capacity
    try:
        again = gate(target, faulty_bento, reports, suites=("slo", "horizontal", "regression"), promote=False)
    finally:
        os.environ.pop("MODELOPS_TEST_FAULT", None)
    assert "regression" in again.required_suites, "a live version exists: the candidate is compared with it"
    assert again.baseline == summary.candidate
    assert again.baseline_summary == str(reports / summary.run_id / SUMMARY_FILE), "kept as history"
    regression = again.suites["regression"]
    assert (again.verdict, again.exit_status) == ("reject", ExitStatus.REGRESSION_FAILED), again.reason
    assert regression.measured["capacity_ratio_high"] < 0.8, "slower in every round than v2 measured beside it"
    assert "history: the live version's gate run" in regression.reason and "not the reference" in regression.reason
    assert target.status().candidate is None and target.status().bento == summary.candidate


def test_a_baseline_stored_under_other_settings_is_history_and_regression_needs_the_live_measured(
    promoted, candidate_bento
) -> None:
    reports = promoted[2]
    other = view(reports.parent, deploy={"cpu_per_replica": 0.4})
    again = gate(other, candidate_bento, reports, suites=("slo", "regression"), promote=False)
    assert again.suites["regression"].status == "inconclusive", "without the horizontal rounds nothing measured v1"
    assert "in the horizontal suite's rounds: run it too" in again.suites["regression"].reason
    assert "under other settings: deploy.cpu_per_replica 0.4 vs 0.25" in again.suites["regression"].reason


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
    histories = history_file(target.settings)
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
    switch(target, history_file(target.settings), "promote", sys.argv[2], None)
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
        entries = reconcile(history_file(target.settings), live).entries
        assert entries[-1].state == ("aborted" if expected_live == "old" else "done")
        assert [e.bento for e in entries if e.state == "done"][-1:] == ([live] if expected_live == "new" else [])
    finally:
        target.down()
        assert procs.marked_processes(target.deployment) == []
