"""gate.quality_data: a labelled CSV checked against the candidate's features and classes, every error with its fix;
and which labelled sets exist before any replay."""

from __future__ import annotations

import pytest

from modelops.errors import UsageError
from modelops.gate.labelled import ModelFacts, holdout_set, read_quality_data
from modelops.gate.quality_run import QualityInputs, labelled_sets
from stacks.config import load_stack_config

FACTS = ModelFacts(tag="m:v2", feature_names=["a", "b"], classes=["x", "y"],
                   holdout={"rows": [[1.0, 2.0], [3.0, 4.0]], "labels": ["x", "y"], "right": 2})  # fmt: skip


def write(tmp_path, text: str):
    path = tmp_path / "labelled.csv"
    path.write_text(text)
    return str(path)


def test_a_labelled_csv_in_any_column_order_is_read_in_the_models_feature_order(tmp_path) -> None:
    labelled = read_quality_data(write(tmp_path, "b,class,a\n2,x,1\n4.5,y,3\n"), FACTS, "class")
    assert labelled.rows == [[1.0, 2.0], [3.0, 4.5]] and labelled.labels == ["x", "y"]
    assert labelled.source == "quality_data" and "labelled.csv" in labelled.name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,class\n1,x\n", "lacks the column(s) b: its header needs every feature of the model (a, b) and the label"),
        ("a,b,label\n1,2,x\n", "lacks the column(s) class"),
        ("a,b,class\n1,2,z\n", "line 2: label 'z' is not one of the model's classes (x, y)"),
        ("a,b,class\n1,oops,x\n", "line 2: feature 'b' is 'oops': every feature must be a number"),
        ("a,b,class\n", "holds no rows"),
    ],
)
def test_a_csv_that_does_not_fit_the_model_is_refused_naming_the_setting_and_the_fix(tmp_path, text, message):
    with pytest.raises(UsageError, match=r"modelops:gate\.quality_data") as caught:
        read_quality_data(write(tmp_path, text), FACTS, "class")
    assert message in str(caught.value)


def test_a_missing_file_or_a_model_without_feature_names_is_refused(tmp_path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        read_quality_data(str(tmp_path / "nope.csv"), FACTS, "class")
    with pytest.raises(UsageError, match="declares no feature names"):
        read_quality_data(write(tmp_path, "a,b,class\n1,2,x\n"), None, "class")


def test_the_sets_before_a_replay_are_quality_data_and_both_held_out_sets_unless_the_models_are_one(tmp_path):
    gate = load_stack_config("local").gate.model_copy(update={"quality_data": write(tmp_path, "a,b,class\n1,2,x\n")})
    live = ModelFacts(tag="m:v1", feature_names=["a", "b"], classes=["x", "y"], holdout=FACTS.holdout)
    inputs = QualityInputs(log_dir=tmp_path, window=500, feedback=None, candidate=FACTS, live=live)
    assert [s.source for s in labelled_sets(gate, inputs)] == ["quality_data", "candidate_holdout", "live_holdout"]
    same = QualityInputs(log_dir=tmp_path, window=500, feedback=None, candidate=FACTS, live=FACTS)
    plain = gate.model_copy(update={"quality_data": None})
    assert [s.source for s in labelled_sets(plain, same)] == ["candidate_holdout"], "one model: one held-out set"
    held = holdout_set(FACTS, "candidate_holdout")
    assert held is not None and held.recorded_right == 2 and held.labels == ["x", "y"]
