"""Right answers before production traffic, on real replicas: a candidate retrained on shuffled labels (built with
`retrain --force`) is rejected by the gate on a first update — v1 live from `up`, nothing logged, no feedback — by the
quality suite (exit 17) on the held-out sets the two models kept, and by the smoke suite's golden rows (exit 10)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from modelops.errors import ExitStatus
from modelops.targets.local import LocalTarget, procs
from stacks.predictions import prediction_log_dir
from tests.modelops.gate.conftest import gate, quick_settings, view

pytestmark = pytest.mark.exclusive  # judges timing on real replicas: runs alone (make test's second phase)


@pytest.fixture(scope="module")
def shuffled_bento(tmp_path_factory, reference_bento) -> tuple[str, list[str]]:
    """A model retrained on wine with its labels shuffled (a broken data pipeline), forced past the retrain check."""
    from bento import train
    from modelops.retrain import LABEL_COLUMN, retrain

    data = train.wine()
    labels = np.random.default_rng(0).permutation(data.y)
    path = tmp_path_factory.mktemp("shuffled") / "shuffled.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*data.feature_names, LABEL_COLUMN])
        for row, label in zip(data.x.tolist(), labels.tolist(), strict=True):
            writer.writerow([*row, data.classes[label]])
    warnings: list[str] = []
    result = retrain(path, seed=2, force=True, warn=warnings.append)
    # The store's newest model is what the next plain `bentos.build()` packs: put a clean one back on top.
    train.save(seed=1)
    return result.bento, warnings


@pytest.fixture(scope="module")
def first_update(tmp_path_factory, reference_bento):
    """v1 live from `up` (one replica): no gate baseline, no logged production traffic, no feedback."""
    state = tmp_path_factory.mktemp("first-update")
    target = LocalTarget(quick_settings(state))
    target.up(reference_bento, replicas=1, workers=1)
    yield state
    target.down()
    assert procs.marked_processes(target.deployment) == []


def test_retrain_force_stores_a_worse_model_only_with_a_loud_warning(shuffled_bento) -> None:
    _, warnings = shuffled_bento
    assert len(warnings) == 1 and "worse than its parent" in warnings[0] and "--force" in warnings[0], warnings


def test_a_candidate_trained_on_shuffled_labels_is_rejected_by_quality_with_no_production_traffic(
    first_update, shuffled_bento, reference_bento
) -> None:
    target = view(first_update)
    logged = list(prediction_log_dir(target.settings).glob("*"))
    assert not any(p.stat().st_size for p in logged if p.is_file()), "a first update: nothing logged"
    summary = gate(target, shuffled_bento[0], first_update / "reports", suites=("quality",))
    assert (summary.verdict, summary.exit_status) == ("reject", ExitStatus.QUALITY_FAILED), summary.reason
    assert "quality" in summary.required_suites, "labelled rows exist (the held-out sets): quality is required"
    quality = summary.suites["quality"]
    assert "live_holdout.paired" in quality.reason and "worse beyond the margin" in quality.reason, quality.reason
    assert quality.measured["live_holdout.paired.live_accuracy"] >= 0.9
    assert quality.measured["live_holdout.paired.candidate_accuracy"] < 0.6
    status = target.status()
    assert (status.bento, status.candidate) == (reference_bento, None), "live untouched, candidate removed"


def test_the_same_candidate_fails_smoke_on_its_golden_rows_true_labels(first_update, shuffled_bento) -> None:
    target = view(first_update)
    summary = gate(target, shuffled_bento[0], first_update / "reports", suites=("smoke", "quality"))
    assert (summary.verdict, summary.exit_status) == ("reject", ExitStatus.SMOKE_FAILED), summary.reason
    smoke = summary.suites["smoke"]
    assert "golden rows" in smoke.reason and smoke.measured["golden_wrong_answers"] > 0, smoke.reason
