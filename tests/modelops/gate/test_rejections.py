"""Every way the gate refuses a candidate, on real replicas: each rejection with its own exit code, inconclusive
runs that never promote, and the command line's refusals. v1 stays live and untouched throughout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml
from typer.testing import CliRunner

from modelops.cli import app
from modelops.errors import ExitStatus
from modelops.gate.run import history_file
from modelops.gate.summary import Summary
from modelops.locking import LOCK_FILE
from modelops.targets.local import LocalTarget, cgroups, procs
from stacks.config import STACKS_DIR
from tests.fixtures.queueing import build_queueing
from tests.modelops.gate.conftest import gate, quick_settings, view
from tests.traffic import log_production_traffic

pytestmark = pytest.mark.exclusive  # judges timing on real replicas: runs alone (make test's second phase)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, reference_bento):
    """v1 live (one replica), shared by this module's gate runs; each test views it with its own settings."""
    state = tmp_path_factory.mktemp("rejections")
    target = LocalTarget(quick_settings(state))
    target.up(reference_bento, replicas=1, workers=1)
    yield state
    target.down()
    assert procs.marked_processes(target.deployment) == []


@pytest.fixture
def rejected(deployment, reference_bento):
    """Run a gate that must leave the live v1 untouched; the candidate's replicas misbehave as ``fault`` says."""

    def run(candidate: str, suites: tuple[str, ...], fault: str = "", **changes: dict) -> Summary:
        os.environ["MODELOPS_TEST_FAULT"] = fault  # read by the faulty bento's replicas when they start
        options = changes.pop("run", {})
        target = view(deployment, **changes)
        try:
            summary = gate(target, candidate, deployment / "reports", suites=suites, **options)
        finally:
            os.environ.pop("MODELOPS_TEST_FAULT", None)
        status = target.status()
        assert (status.bento, status.candidate) == (reference_bento, None), "live untouched, candidate removed"
        assert not summary.promoted
        return summary

    return run


def outcome(summary: Summary) -> tuple[str, int]:
    return summary.verdict, summary.exit_status


def test_a_candidate_failing_requests_is_rejected_by_the_smoke_suite(rejected, faulty_bento) -> None:
    summary = rejected(faulty_bento, ("smoke", "slo"), fault="errors")
    assert outcome(summary) == ("reject", ExitStatus.SMOKE_FAILED), summary.reason
    assert "slo" not in summary.suites, "a broken candidate is not measured further"


def test_a_slow_candidate_is_rejected_by_the_slo_suite(rejected, faulty_bento) -> None:
    summary = rejected(faulty_bento, ("slo",), fault="slow", slo={"p95_ms": 100, "p99_ms": 200})
    assert outcome(summary) == ("reject", ExitStatus.SLO_FAILED), summary.reason
    assert "p95" in summary.suites["slo"].reason and summary.suites["slo"].p95_ms >= 300


def test_a_candidate_erroring_under_load_has_no_capacity_and_fails_horizontal(rejected, faulty_bento) -> None:
    # Fast and clean at light load (smoke passes); answers 503 beyond 3 requests in flight: every step errs.
    summary = rejected(faulty_bento, ("smoke", "horizontal"), fault="overload")
    assert summary.suites["smoke"].status == "pass", summary.suites["smoke"].reason
    assert outcome(summary) == ("reject", ExitStatus.HORIZONTAL_FAILED), summary.reason
    assert "no clean step" in summary.suites["horizontal"].reason
    horizontal = summary.suites["horizontal"]
    assert all(s.error_ratio > 0.001 for s in horizontal.steps["replicas=1"]), "it errs at every step"
    assert horizontal.measured["rps_1"] == 0, "answered 503s are not capacity: no clean throughput at all"


@pytest.fixture(scope="module")
def queueing_bento(tmp_path_factory, bentoml_home) -> str:
    return build_queueing(tmp_path_factory.mktemp("queueing"))


def test_a_candidate_fast_at_light_load_but_slow_with_requests_in_flight_fails_horizontal(
    rejected, queueing_bento
) -> None:
    # One lock per replica, 25 ms per request (tests/fixtures/queueing.py). The slo suite's light load (10 req/s,
    # a quarter of a request in flight, for 6 s: enough requests at that rate) sees ~25 ms and passes; the step
    # load's first step (4 users in flight) queues ~100 ms. Before capacity was read within the SLO this candidate
    # was promoted ("no clean step met the latency SLO: no capacity can be planned", exit 0). p95 75 ms is tighter
    # than the shipped 250 ms only so that the quick steps (4 users, not the shipped 8) cross it; p99 300 ms leaves
    # the light load's tail to the machine.
    light = {"users": 2, "target_rps": 10, "duration_s": 6}
    summary = rejected(queueing_bento, ("smoke", "slo", "horizontal"), slo={"p95_ms": 75, "p99_ms": 300}, gate=light)
    assert summary.suites["slo"].status == "pass", summary.suites["slo"].reason
    assert outcome(summary) == ("reject", ExitStatus.HORIZONTAL_FAILED), summary.reason
    horizontal = summary.suites["horizontal"]
    first = horizontal.steps["replicas=1"][0]
    assert first.users == 4 and first.p95_ms > 75 and first.errors == 0, "correct answers, only too slow"
    assert f"no step met the latency SLO: the first step (4 users) had p95 {first.p95_ms:.0f} ms > 75 ms" in (
        horizontal.reason
    )
    assert summary.capacity_plan.rps_per_replica_at_slo is None, "no capacity is planned from a failed curve"


def test_a_candidate_that_cannot_use_a_second_worker_fails_vertical(rejected, faulty_bento) -> None:
    # Each request holds a lock its replica's workers share: two workers serve no more than one.
    summary = rejected(faulty_bento, ("vertical",), fault="serial", gate={"min_vertical_ratio": 1.3})
    assert outcome(summary) == ("reject", ExitStatus.VERTICAL_FAILED), summary.reason
    assert summary.suites["vertical"].measured["ratio"] < 1.3


def test_a_candidate_answering_unlike_the_live_version_on_its_logged_traffic_fails_quality(
    rejected, deployment, reference_bento, faulty_bento
) -> None:
    model = log_production_traffic(view(deployment), reference_bento, 120)
    summary = rejected(faulty_bento, ("smoke", "quality"))
    assert summary.suites["smoke"].status == "pass"
    assert outcome(summary) == ("reject", ExitStatus.QUALITY_FAILED), summary.reason
    quality = summary.suites["quality"]
    assert quality.measured["rows"] >= 100 and quality.measured["agreement"] == 0.0, quality.measured
    assert "agrees with the live version on 0.0%" in quality.reason
    assert "quality" in summary.required_suites, f"{model} has logged traffic: quality is required"


def test_a_replica_not_taken_out_in_time_fails_failover(rejected, candidate_bento) -> None:
    # HAProxy needs two failed checks 1 s apart: a 50 ms limit cannot be met, and the measured time says so.
    summary = rejected(candidate_bento, ("failover",), gate={"failover_max_detection_s": 0.05})
    assert outcome(summary) == ("reject", ExitStatus.FAILOVER_FAILED), summary.reason
    assert summary.suites["failover"].measured["detection_s"] > 0.05
    assert summary.suites["failover"].measured["replicas"] == 2, "at least two replicas at the deploy shape"


def test_a_candidate_one_client_can_crash_a_request_of_fails_robustness(rejected, faulty_bento) -> None:
    summary = rejected(faulty_bento, ("smoke", "robustness"), fault="fragile")
    assert summary.suites["smoke"].status == "pass", "well-formed traffic is served"
    assert outcome(summary) == ("reject", ExitStatus.ROBUSTNESS_FAILED), summary.reason
    robustness = summary.suites["robustness"]
    assert robustness.measured["hostile_failures"] > 0 and "hostile requests got a 5xx" in robustness.reason
    assert robustness.measured["fuzz_cases"] > 0


def test_a_starved_load_generator_makes_the_run_inconclusive_never_a_verdict(rejected, candidate_bento, tmp_path):
    budgets = cgroups.probe()
    if not budgets.enabled:
        pytest.skip(f"needs a cgroup CPU budget for the load generator: {budgets.reason}")
    name = f"modelops-test-generator-{os.getpid()}"
    # 5 % of a core (100-ms periods: 5 ms each) for a load that needs many times that: Locust waits for CPU. (At
    # 2 % the test took 55 s, most of it Locust importing; the verdict was the same.)
    procs_file = budgets.create(name, 0.05, period_us=100_000)
    try:
        summary = rejected(candidate_bento, ("slo",), gate={"users": 32, "target_rps": 400},
                           run={"generator_cgroup": procs_file})  # fmt: skip
    finally:
        budgets.remove(name)
    assert outcome(summary) == ("inconclusive", ExitStatus.INCONCLUSIVE), summary.reason
    slo = summary.suites["slo"]
    assert slo.status == "inconclusive" and "the load generator was s" in slo.reason, slo.reason
    cpu = slo.cpu[0]
    assert cpu.generator_load >= 0.85 or cpu.generator_wait >= 0.3, f"the samples that justify it: {cpu}"


def test_too_few_requests_make_the_suite_inconclusive(rejected, candidate_bento) -> None:
    summary = rejected(candidate_bento, ("slo",), gate={"min_requests": 1_000_000})
    assert outcome(summary) == ("inconclusive", ExitStatus.INCONCLUSIVE)
    assert "min_requests" in summary.suites["slo"].reason


def test_a_partial_run_of_a_good_candidate_is_never_promoted(rejected, candidate_bento) -> None:
    summary = rejected(candidate_bento, ("smoke",))
    assert summary.suites["smoke"].status == "pass"
    assert outcome(summary) == ("inconclusive", ExitStatus.INCONCLUSIVE)
    missing = [name for name in summary.required_suites if name != "smoke"]
    assert {"slo", "failover", "robustness", "vertical", "horizontal"} <= set(missing)
    assert f"partial run: {', '.join(missing)} did not run" in summary.reason


# ------------------------------------------------------------------------------------------- the command line
@pytest.fixture
def stack_file(deployment, tmp_path, monkeypatch):
    """A stack file for the command line that points at the shared deployment, with the quick settings."""
    settings = view(deployment).settings.model_dump(mode="json")
    settings["local"]["state_dir"] = str(deployment)
    config = {f"modelops:{k}": v for k, v in settings.items() if k not in ("stack", "kind", "aws")}
    (tmp_path / "Pulumi.quick.yaml").write_text(yaml.safe_dump({"config": config}))
    shutil.copy(STACKS_DIR / "Pulumi.local.yaml", tmp_path)  # what the tests' own settings start from
    monkeypatch.setattr("stacks.config.STACKS_DIR", tmp_path)
    # The deployment lives in <state>/local; the command line finds <state_dir>/<stack>: link the stack's name.
    link = deployment / "quick"
    if not link.exists():
        link.symlink_to(deployment / "local")
    return "quick"


@pytest.mark.parametrize("suites", ["", ",", " , "])
def test_gate_with_no_suite_selected_is_a_usage_error(stack_file, suites) -> None:
    result = CliRunner().invoke(app, ["gate", "--stack", stack_file, "--suites", suites])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert "no suite selected" in " ".join(result.output.split())


def test_the_command_lines_exit_code_is_the_summarys(stack_file, candidate_bento, reference_bento) -> None:
    """With --json the summary is all of stdout (a real gate run: Locust and the replicas print nothing there)."""
    result = CliRunner().invoke(
        app, ["gate", "--stack", stack_file, "--candidate", candidate_bento, "--suites", "smoke", "--json"]
    )
    text = " ".join(result.stderr.split())
    assert result.exit_code == ExitStatus.INCONCLUSIVE, text
    assert "verdict: inconclusive (exit 20)" in text and "partial run" in text
    shown = Summary.model_validate_json(result.stdout)
    assert (shown.verdict, shown.exit_status, shown.candidate) == ("inconclusive", 20, candidate_bento)


HOLD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from modelops.locking import stack_lock
    with stack_lock(Path(sys.argv[1]), "modelops gate --candidate other"):
        print("holding", flush=True)
        sys.stdin.readline()  # until the test closes our stdin
    """
)


def test_a_second_gate_on_the_same_stack_is_refused_naming_the_holder(stack_file, deployment, candidate_bento):
    target = view(deployment)
    lock_dir = history_file(target.settings).path.parent
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "holding"
        result = CliRunner().invoke(app, ["gate", "--stack", stack_file, "--candidate", candidate_bento])
        text = " ".join(result.output.split())
        assert result.exit_code == ExitStatus.STACK_BUSY, text
        assert f"pid {holder.pid}" in text and "modelops gate --candidate other" in text and LOCK_FILE in text
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    assert target.status().candidate is None, "the refused gate deployed nothing"
