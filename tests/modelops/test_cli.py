"""The command line: every command documents itself; bad settings stop with the key, the allowed values, the file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from modelops.cli import app
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
