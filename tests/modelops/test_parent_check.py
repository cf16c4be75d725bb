"""A retrained model against its parent: flagged when worse on labelled held-out rows (fixed inputs and real
models), refused by `modelops retrain` unless --force, with nothing stored."""

from __future__ import annotations

import csv

import numpy as np
from typer.testing import CliRunner

from bento import train
from modelops import parent_check
from modelops.cli import app
from modelops.errors import ExitStatus
from modelops.retrain import LABEL_COLUMN


def test_recorded_accuracies_flag_a_confident_drop_beyond_the_margin_only() -> None:
    flagged, said = parent_check.recorded_drop({"accuracy": 0.378, "test_rows": 45}, {"accuracy": 0.978,
                                               "test_rows": 45}, margin=0.03)  # fmt: skip
    assert flagged and "0.378 on 45 rows vs the parent's 0.978" in said
    flagged, _ = parent_check.recorded_drop({"accuracy": 0.933, "test_rows": 45}, {"accuracy": 1.0, "test_rows": 45},
                                            margin=0.03)  # fmt: skip
    assert not flagged, "three rows of two 45-row sets are within chance"
    assert parent_check.recorded_drop({"accuracy": 0.9}, {}, 0.03) is None, "a parent without metrics: nothing to say"


def shuffled(seed: int = 0) -> train.Dataset:
    data = train.wine()
    return train.Dataset(data.x, np.random.default_rng(seed).permutation(data.y), data.feature_names, data.classes,
                         "shuffled")  # fmt: skip


def test_on_the_parents_held_out_rows_shuffled_labels_are_flagged_and_another_seed_is_not() -> None:
    parent, meta = train.train(seed=1)
    bad, _ = train.train(seed=2, data=shuffled())
    flagged, said = parent_check.on_parent_rows(bad, parent, meta["holdout"], meta["classes"], margin=0.03)
    assert flagged and "worse beyond the margin" in said, said
    good, _ = train.train(seed=2)
    flagged, said = parent_check.on_parent_rows(good, parent, meta["holdout"], meta["classes"], margin=0.03)
    assert not flagged, said


def test_retrain_on_shuffled_labels_is_refused_and_stores_nothing(tmp_path, reference_bento) -> None:
    import bentoml

    data = shuffled()
    path = tmp_path / "shuffled.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*data.feature_names, LABEL_COLUMN])
        for row, label in zip(data.x.tolist(), data.y.tolist(), strict=True):
            writer.writerow([*row, data.classes[label]])
    before = {str(m.tag) for m in bentoml.models.list()}
    result = CliRunner().invoke(app, ["retrain", "--data", str(path), "--seed", "2"])
    text = " ".join(result.output.split())
    assert result.exit_code == ExitStatus.QUALITY_FAILED, text
    assert "worse than its parent" in text and "--force" in text and "Nothing was stored or built" in text
    assert {str(m.tag) for m in bentoml.models.list()} == before, "no model stored: `latest` is still the parent"


def test_a_first_model_or_an_unknown_parent_has_nothing_to_be_compared_with(bentoml_home) -> None:
    model, meta = train.train(seed=1)
    assert parent_check.check(model, meta, None) is None
    assert parent_check.check(model, meta, "wine_classifier:nosuchversion") is None
