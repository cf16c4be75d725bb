"""The anomaly rule's false alarms over a simulated day of normal traffic (modelops/monitor/anomaly_day.py): the
shipped settings stay within one a day; a rule without its for:, event minimum and threshold margin does not."""

from __future__ import annotations

from typer.testing import CliRunner

from modelops.cli import app
from modelops.monitor.anomaly_day import simulate
from stacks.config import load_stack_config

SETTINGS = load_stack_config("local")


def test_the_shipped_rule_raises_at_most_one_false_alarm_in_a_simulated_day() -> None:
    day = simulate(SETTINGS, rate=10.0, days=1.0, seed=7)
    assert day.false_alarms <= 1, day.signals
    assert {s.signal for s in day.signals} == {"p95", "5xx_ratio", "4xx_ratio", "traffic_drop", "class_mix"}


def test_the_old_rule_shape_would_page_on_noise() -> None:
    """No hold, one event enough, a threshold of 3: the measurement sees it false-alarm (the count can fail)."""
    loose = SETTINGS.with_overrides(monitor={"anomaly_for_s": 0, "anomaly_min_events": 1, "anomaly_threshold": 3.0})
    assert simulate(loose, rate=10.0, days=1.0, seed=7).false_alarms > 10


def test_the_command_prints_the_count_per_signal() -> None:
    result = CliRunner().invoke(app, ["monitor", "--calibrate", "--days", "0.2", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert '"false_alarms"' in result.output and '"traffic_drop"' in result.output
