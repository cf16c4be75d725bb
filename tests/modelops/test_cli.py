"""The command line: every command documents itself; bad settings stop with the key, the allowed values, the file."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from modelops.cli import COMMAND_CODES, app
from modelops.errors import ExitStatus

COMMANDS = [c.name or c.callback.__name__ for c in app.registered_commands]


def test_modelops_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output, f"`modelops --help` does not list {name}"


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and len(result.output.splitlines()) > 4


def test_console_script_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "modelops.cli", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "modelops" in done.stdout.lower()


def test_invalid_setting_exits_with_usage_status_naming_key_allowed_values_and_file(tmp_path, monkeypatch) -> None:
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "Pulumi.local.yaml").write_text(
        "config:\n  modelops:target: local\n  modelops:deploy:\n    replicas: 0\n"
    )
    monkeypatch.setattr("stacks.config.STACKS_DIR", stacks)
    result = CliRunner().invoke(app, ["config", "--stack", "local"], catch_exceptions=False)
    assert result.exit_code == ExitStatus.USAGE
    message = " ".join(result.output.split())
    assert "modelops:deploy.replicas" in message
    assert ">= 1, <= 32" in message
    assert "Pulumi.local.yaml" in message


def test_unknown_stack_lists_the_stacks_there_are() -> None:
    result = CliRunner().invoke(app, ["config", "--stack", "nosuch"])
    assert result.exit_code == ExitStatus.USAGE
    assert "no stack named 'nosuch'" in result.output and "local" in result.output


@pytest.mark.parametrize(
    ("args", "words"),
    [(["--scenario", "sideways"], "'sideways' is not one of 'normal', 'shifted'"), (["--requests", "0"], "--requests")],
)
def test_traffic_refuses_an_unknown_scenario_or_no_requests_before_touching_the_deployment(args, words) -> None:
    result = CliRunner().invoke(app, ["traffic", *args])
    assert result.exit_code == 2 and words in " ".join(result.output.replace("│", " ").split()), result.output


def test_up_autoscale_on_kind_says_the_hpa_applies_the_same_definition() -> None:
    result = CliRunner().invoke(app, ["up", "--stack", "kind", "--autoscale"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert "the HPA scales the pools from modelops:deploy.min_replicas/max_replicas" in " ".join(result.output.split())


def test_version_prints_the_versions_of_modelops_and_what_it_drives() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    for name in ("modelops", "bentoml", "locust", "Python"):
        assert name in result.output, f"`modelops --version` does not name {name}: {result.output}"


def test_help_lists_every_exit_code() -> None:
    result = CliRunner().invoke(app, ["--help"])
    text = " ".join(result.output.split())  # rich wraps the epilog to the terminal's width
    for status in ExitStatus:
        assert f"{status.value} {status.name.lower().replace('_', ' ')}" in text, status


def test_the_stack_can_come_from_modelops_stack() -> None:
    result = CliRunner().invoke(app, ["config"], env={"MODELOPS_STACK": "no-such-stack"})
    assert result.exit_code == ExitStatus.USAGE
    assert "no stack named 'no-such-stack'" in result.output


def test_labels_add_then_quality_shows_estimated_beside_realised_accuracy(tmp_path, monkeypatch) -> None:
    import modelops.cli
    import stacks.predictions
    from bento.prediction_log import PredictionLogger
    from modelops.monitor import concept

    with PredictionLogger(tmp_path / "log", "w", "m:1", classes=["a", "b"]) as log:
        for i in range(40):
            log.log(f"order-{i % 20}", [[1.0]], ["a"], [[0.8, 0.2]], prediction_id=f"p-{i}")  # client ids repeat
    labels = tmp_path / "labels.jsonl"
    lines = [{"prediction_id": f"p-{i}", "label": "a" if i % 5 else "b"} for i in range(30)]
    lines.append({"request_id": "order-3", "label": "a"})  # two requests used order-3: refused
    labels.write_text("".join(json.dumps(line) + "\n" for line in lines))
    monkeypatch.setattr(modelops.cli, "prediction_log_dir", lambda _settings: tmp_path / "log")
    monkeypatch.setattr(stacks.predictions, "labels_db", lambda _settings: tmp_path / "labels.sqlite")

    added = CliRunner().invoke(app, ["labels", "add", str(labels)], catch_exceptions=False)
    assert added.exit_code == 0, added.output
    said = " ".join(added.output.split())  # rich wraps lines at the terminal's width
    assert "30 labels stored" in said and "1 by a request id several requests used" in said
    prom = tmp_path / "concept.prom"
    shown = CliRunner().invoke(app, ["quality", "--json", "--prom", str(prom)], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    [status] = json.loads(shown.output)
    assert status["labelled_rows"] == 30 and status["realised"]["value"] == pytest.approx(0.8)
    assert status["estimated"]["value"] == pytest.approx(0.8), "uncalibrated: the mean confidence"
    assert f'{concept.REALISED}{{model_version="m:1"}} 0.8' in prom.read_text()


# ------------------------------------------------------------------------------------------------ choices, exit codes
def _help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.replace("│", " ").split())  # rich boxes and wraps the options


CHOICES = [("gate", "--generator", ("local", "cluster")), ("traffic", "--scenario", ("normal", "shifted")),
           ("bench", "--peer", ("mlserver",))]  # fmt: skip


@pytest.mark.parametrize(("command", "option", "choices"), CHOICES)
def test_an_option_with_fixed_values_lists_them_in_help_and_refuses_another_naming_them(command, option, choices):
    assert f"{option} <{'|'.join(choices)}>" in _help(command)

    result = CliRunner().invoke(app, [command, option, "sideways"])

    assert result.exit_code == ExitStatus.USAGE, result.output
    named = ", ".join(repr(c) for c in choices)
    assert f"'sideways' is not one of {named}" in " ".join(result.output.replace("│", " ").split())


def test_the_scenario_choices_are_the_scenarios_traffic_can_make() -> None:
    from typing import get_args

    from modelops.cli import Scenario
    from modelops.monitor.traffic import Kind

    assert get_args(Scenario) == get_args(Kind)


def test_canary_is_a_flag_pair_and_the_old_on_off_value_is_refused() -> None:
    assert "--canary --no-canary" in _help("gate")
    result = CliRunner().invoke(app, ["gate", "--canary", "on"])
    assert result.exit_code == ExitStatus.USAGE and "unexpected extra argument" in result.output


@pytest.mark.parametrize("command", sorted(COMMAND_CODES))
def test_a_command_whose_exit_code_means_something_names_its_own_codes_in_help(command) -> None:
    text = _help(command)
    epilog = text[text.index("Exit codes:") :]
    for status in ExitStatus:
        named = f"{status.value} {status.name.lower().replace('_', ' ')}"
        listed = re.search(rf"(?:: |; ){named}(?:;|$| )", epilog) is not None
        assert listed == (status in COMMAND_CODES[command]), f"`modelops {command} --help` and {status!r}: {epilog}"


def test_the_codes_in_help_cover_every_code_the_commands_exit_with() -> None:
    from modelops.gate.summary import FAILED_STATUS
    from modelops.locking import StackBusyError
    from modelops.monitor.drift_report import EXIT_STATUS
    from modelops.retrain import RetrainRefusedError

    assert set(FAILED_STATUS.values()) | {ExitStatus.INCONCLUSIVE, ExitStatus.CANARY_ROLLED_BACK} <= set(
        COMMAND_CODES["gate"]
    )
    assert set(EXIT_STATUS.values()) <= set(COMMAND_CODES["drift"])
    assert RetrainRefusedError.exit_status in COMMAND_CODES["retrain"]
    for command in ("up", "down", "gate", "rollback", "abort"):  # they take the stack's operation lock
        assert StackBusyError.exit_status in COMMAND_CODES[command], command


# ---------------------------------------------------------------------------------------------------------- --json
@pytest.fixture(scope="module")
def wine_reference():
    """The reference wine model trained in-process (a small forest: drift statistics do not depend on its size)."""
    from bento.train import train
    from modelops.monitor.drift import reference_from_metadata

    model, metadata = train(seed=1, n_estimators=10)
    classes = metadata["classes"]

    def predict(rows):
        return [classes[i] for i in model.predict(rows)]

    return metadata, predict, reference_from_metadata(metadata, predict)


def test_drift_json_prints_the_report_alone_on_stdout_and_keeps_the_exit_code(tmp_path, monkeypatch, wine_reference):
    """The reference comes from the model trained here instead of the BentoML store; the check itself is the real
    one, on 300 logged rows (0.2 s apart) whose alcohol is 3 training standard deviations high."""
    import numpy as np

    from bento.prediction_log import PredictionLogger
    from modelops.monitor import drift_report
    from modelops.monitor.calibrate import heldout_rows
    from modelops.monitor.drift import DriftReport

    metadata, predict, reference = wine_reference
    monkeypatch.setattr(drift_report, "store_reference", lambda _version: reference)
    rows = heldout_rows(metadata)[np.random.default_rng(0).integers(0, 45, 300)]
    rows[:, 0] += 3 * np.std(metadata["reference_stats"]["alcohol"]["sample"])
    ticks = iter(1_700_000_000.0 + 0.2 * i for i in range(len(rows)))
    with PredictionLogger(tmp_path / "log", "w", model_version="wine_classifier:t", clock=lambda: next(ticks)) as log:
        for i, (row, label) in enumerate(zip(rows.tolist(), predict(rows), strict=True)):
            log.log(f"r-{i}", [row], [label])

    args = ["drift", "--log", str(tmp_path / "log"), "--out", str(tmp_path / "out"), "--json"]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == ExitStatus.DRIFT_DETECTED, result.output
    report = DriftReport.model_validate(json.loads(result.stdout))
    assert report.status == "drift" and "alcohol" in report.drifted_features, report.reason
    assert report == DriftReport.model_validate_json((tmp_path / "out" / "drift.json").read_text())
    assert "report:" in result.stderr and "drift.html" in result.stderr


def test_drift_json_of_an_empty_log_is_the_inconclusive_report_with_exit_20(tmp_path) -> None:
    args = ["drift", "--log", str(tmp_path / "none"), "--out", str(tmp_path / "out"), "--json"]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == ExitStatus.INCONCLUSIVE, result.output
    shown = json.loads(result.stdout)
    assert shown["status"] == "inconclusive" and shown["rows"] == 0 and "log_dir" in shown["reason"]


def test_bench_json_prints_the_results_file_s_content_instead_of_the_tables(tmp_path, monkeypatch) -> None:
    """run_bench is replaced by the summary its own bookkeeping (summarise) makes of fixed rounds: the replicas and
    Locust runs of a real bench take minutes, and this is about what the command prints."""
    from dataclasses import asdict
    from types import SimpleNamespace

    import modelops.bench
    from modelops.bench.core import BenchOptions, summarise

    def measured(rps: float) -> SimpleNamespace:
        return SimpleNamespace(rps=rps, p50_ms=30.0, p95_ms=60.0, p99_ms=70.0, failures=0, requests=int(rps * 15),
                               cpu_warning=False, measured=SimpleNamespace(generator_load=0.4))  # fmt: skip

    figures = {"noop": (1000, 1010), "naive": (120, 125), "batched": (1100, 1110), "logged": (1090, 1095),
               "direct_half": (550, 545), "haproxy_half": (545, 540)}  # fmt: skip
    results = {name: {i: measured(r) for i, r in enumerate(rps, start=1)} for name, rps in figures.items()}
    path = tmp_path / "bench.json"

    def run_bench(_settings, options, _steps):
        summary = summarise(results, options, {}, "off (test)", rounds_run=2)
        summary["time_budget_spent"] = ""
        path.write_text(json.dumps(summary, indent=2))
        return {**summary, "path": str(path)}

    monkeypatch.setattr(modelops.bench, "run_bench", run_bench)
    result = CliRunner().invoke(app, ["bench", "--no-omp", "--rounds", "2", "--json"])

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert {k: v for k, v in shown.items() if k != "path"} == json.loads(path.read_text())
    assert shown["options"] == json.loads(json.dumps(asdict(BenchOptions(rounds=2, omp=False))))
    assert f"results:{path}" in "".join(result.stderr.split())  # rich wraps long paths anywhere
    tables = CliRunner().invoke(app, ["bench", "--no-omp", "--rounds", "2"])
    assert tables.exit_code == 0 and f"results:{path}" in "".join(tables.stdout.split()), "without --json: tables"
    with pytest.raises(json.JSONDecodeError):
        json.loads(tables.stdout)
