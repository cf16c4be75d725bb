"""`modelops retrain`: a new model version from a data file, its lineage in the model's metadata (data hash, parent
version, metrics), its bento, and `modelops history` showing that lineage."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from bento.train import MODEL_NAME, wine
from modelops.cli import app
from modelops.errors import UsageError
from modelops.promotion import HistoryFile, record_up
from modelops.retrain import LABEL_COLUMN, file_sha256, lineage_of, parent_model, read_csv
from stacks.config import STACKS_DIR, load_stack_config


def write_csv(path, shift: float = 0.0, drop: str | None = None, rename_class: str | None = None):
    data = wine()
    columns = [c for c in data.feature_names if c != drop] + [LABEL_COLUMN]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row, label in zip(data.x.tolist(), data.y.tolist(), strict=True):
            features = {n: v + (shift if n == "alcohol" else 0.0) for n, v in zip(data.feature_names, row, strict=True)}
            name = rename_class if rename_class and label == 0 else data.classes[label]
            writer.writerow([features[c] for c in columns[:-1]] + [name])
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [({"drop": "alcohol"}, "lacks the column"), ({"rename_class": "class_9"}, "is not one of"), ({}, None)],
)
def test_a_data_file_needs_every_feature_and_known_classes(tmp_path, change, message) -> None:
    path = write_csv(tmp_path / "data.csv", **change)
    data = wine()
    if message is None:
        assert read_csv(path, data.feature_names, data.classes).x.shape == data.x.shape
    else:
        with pytest.raises(UsageError, match=message):
            read_csv(path, data.feature_names, data.classes)


def test_retrain_records_lineage_and_history_shows_it(tmp_path, monkeypatch, reference_bento) -> None:
    data_file = write_csv(tmp_path / "shifted.csv", shift=1.0)
    newest_before = parent_model(MODEL_NAME)  # other tests of the session may have trained later versions
    runner = CliRunner()
    result = runner.invoke(app, ["retrain", "--data", str(data_file), "--seed", "3"])
    assert result.exit_code == 0, result.output
    bento = result.stdout.strip().splitlines()[-1]
    lineage = lineage_of(bento)
    parent = lineage_of(reference_bento)
    assert lineage is not None and parent is not None and newest_before is not None
    assert lineage["data_sha256"] == file_sha256(data_file) and lineage["data_source"] == str(data_file)
    assert lineage["parent"] == newest_before, "the parent is the model version that was newest before"
    assert lineage["model"] not in (parent["model"], newest_before) and lineage["seed"] == 3 and lineage["rows"] == 178
    assert 0 < lineage["metrics"]["accuracy"] <= 1

    settings = load_stack_config("local").model_dump(mode="json")
    settings["local"]["state_dir"] = str(tmp_path / "state")
    config = {f"modelops:{k}": v for k, v in settings.items() if k not in ("stack", "kind", "aws")}
    (tmp_path / "Pulumi.lineage.yaml").write_text(yaml.safe_dump({"config": config}))
    shutil.copy(STACKS_DIR / "Pulumi.local.yaml", tmp_path)
    monkeypatch.setattr("stacks.config.STACKS_DIR", tmp_path)
    histories = HistoryFile(tmp_path / "state" / "lineage" / "history.json")
    record_up(histories, bento)
    shown = runner.invoke(app, ["history", "--stack", "lineage", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["lineage"][bento]["data_sha256"] == file_sha256(data_file)
