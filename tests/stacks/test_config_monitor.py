"""The monitoring settings added for the watch (modelops:monitor.alert_webhook, modelops:monitor.drift): each invalid
value names its key and the fix; valid ones pass."""

from __future__ import annotations

import pytest

from stacks.config import ConfigError, load_stack_config


def write_stack(tmp_path, body: str):
    (tmp_path / "Pulumi.t.yaml").write_text("config:\n  modelops:target: local\n" + body)
    return tmp_path


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("  modelops:monitor:\n    alert_webhook: ftp://alerts.example.com/x\n",
         ["modelops:monitor.alert_webhook", "http:// or https://", "Pulumi.t.yaml"]),
        ("  modelops:monitor:\n    alert_webhook: 'https:///nohost'\n", ["modelops:monitor.alert_webhook", "host"]),
        ("  modelops:monitor:\n    drift:\n      max_false_alarms_per_day: 0\n",
         ["modelops:monitor.drift.max_false_alarms_per_day", "> 0"]),
        ("  modelops:monitor:\n    drift:\n      min_chunk_rows: 5\n",
         ["modelops:monitor.drift.min_chunk_rows", ">= 10"]),
        ("  modelops:monitor:\n    drift:\n      pca_variance: 1\n", ["modelops:monitor.drift.pca_variance", "< 1"]),
        ("  modelops:monitor:\n    drift:\n      every: 3\n", ["modelops:monitor.drift.every", "unknown key"]),
    ],
    ids=["webhook-scheme", "webhook-host", "no-false-alarms", "tiny-chunks", "all-variance", "unknown-drift-key"],
)  # fmt: skip
def test_invalid_monitoring_values_name_the_key_and_the_fix(tmp_path, body, words) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_config("t", write_stack(tmp_path, body))
    for word in words:
        assert word in str(caught.value), f"{word!r} missing from: {caught.value}"


def test_a_webhook_and_a_false_alarm_budget_are_accepted(tmp_path) -> None:
    body = (
        "  modelops:monitor:\n    alert_webhook: https://alerts.example.com/modelops\n"
        "    drift:\n      max_false_alarms_per_day: 0.1\n"
    )
    monitor = load_stack_config("t", write_stack(tmp_path, body)).monitor
    assert monitor.alert_webhook == "https://alerts.example.com/modelops"
    assert monitor.drift.max_false_alarms_per_day == 0.1
    assert monitor.drift.min_chunk_rows == 100, "unset keys keep their defaults"


def test_by_default_no_webhook_and_at_most_one_false_drift_alarm_a_day() -> None:
    monitor = load_stack_config("local").monitor
    assert monitor.alert_webhook is None
    assert monitor.drift.max_false_alarms_per_day <= 1
