"""`modelops drift --calibrate` (the monitor's detector measured): false alarms over simulated normal traffic and
the time to find shifts, on the synthetic model (fast); `modelops alerts` without an Alertmanager says how to start
one."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from modelops.cli import app
from modelops.monitor.calibrate import calibrate_online
from stacks.config import DriftWatchSettings
from tests.modelops.monitor import synthetic


def test_the_calibration_counts_false_alarms_and_times_every_shift_in_both_directions() -> None:
    heldout = synthetic.draw(np.random.default_rng(9), 300)  # rows the reference never saw
    result = calibrate_online(synthetic.reference(), synthetic.predict, heldout, DriftWatchSettings(), rate=5.0,
                              days=0.25, shifts=(1.0, 2.0), counts=(1,))  # fmt: skip
    assert result.day.false_alarms == 0 and result.day.rows > 0.25 * 86_400 * 4
    assert len(result.delays) == 2 * 2 * 4, "2 shifts x 2 directions x 4 features"
    summary = {(row["shift_sd"], row["features"]): row for row in result.summary()}
    assert summary[(2.0, 1)]["found"] == 8 and summary[(2.0, 1)]["median_delay_s"] <= 120
    assert result.thresholds["h"] > 0 and result.thresholds["statistics"] == 15


def test_the_calibration_says_when_a_shift_is_never_found() -> None:
    heldout = synthetic.draw(np.random.default_rng(9), 300)
    tiny = calibrate_online(synthetic.reference(), synthetic.predict, heldout, DriftWatchSettings(), rate=5.0,
                            days=0.05, shifts=(0.01,), counts=(1,))  # fmt: skip
    assert all(d.delay_s is None for d in tiny.delays)
    assert tiny.summary()[0]["found"] == 0 and len(tiny.summary()[0]["missed"]) == 8


def test_alerts_without_an_alertmanager_names_the_command_that_starts_one(tmp_path, monkeypatch) -> None:
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "Pulumi.local.yaml").write_text(
        f"config:\n  modelops:target: local\n  modelops:local:\n    state_dir: {tmp_path / 'state'}\n"
    )
    monkeypatch.setattr("stacks.config.STACKS_DIR", stacks)
    result = CliRunner().invoke(app, ["alerts", "--stack", "local"])
    assert result.exit_code == 1, result.output
    assert "modelops up --stack local --monitoring" in " ".join(result.output.split())
