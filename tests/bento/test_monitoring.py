"""A bento the user wrote keeps its own code and gets the prediction log with one line (bento/monitoring.py): its
production requests are logged under the client's request id and its model, synthetic load is not, and
`modelops drift` judges the log against the reference recorded with --profile-only."""

from __future__ import annotations

import shutil
from pathlib import Path

import bentoml
import httpx
import numpy as np
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from bento.prediction_log import SYNTHETIC_HEADER, read_window
from modelops import bentos, modelbuild
from modelops.monitor import synthetic
from modelops.monitor.drift import INCONCLUSIVE
from modelops.monitor.drift_report import run_drift_check, store_reference
from modelops.waiting import wait_until
from tests.conftest import local_settings
from tests.modelops.test_modelbuild import write_csv

BENTO = Path(__file__).resolve().parents[2] / "bento"
# The user's service: their own API shape (a list of labels), their own code, and the one line.
SERVICE = """
import bentoml
import numpy as np
from monitoring import log_prediction

MODEL = bentoml.models.BentoModel("{tag}")


@bentoml.service(name="own_iris")
class OwnIris:
    model_ref = MODEL

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(MODEL.resolve())

    @bentoml.api
    def classify(self, rows: list[list[float]], ctx: bentoml.Context) -> list[str]:
        labels = [str(c) for c in self.model.predict(np.asarray(rows))]
        log_prediction(ctx, rows, labels)
        return labels
"""


def test_own_bento_logs_production_requests_with_one_line_and_drift_reads_them(tmp_path, make_target) -> None:
    data = load_iris()
    tag = str(bentoml.sklearn.save_model("own_iris_model", DecisionTreeClassifier().fit(data.data, data.target)).tag)
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    reference = write_csv(tmp_path / "iris.csv", names, data.data, data.target)
    modelbuild.build_model(tag, reference=reference, profile_only=True)
    folder = tmp_path / "own"
    folder.mkdir()
    (folder / "service.py").write_text(SERVICE.format(tag=tag))
    for module in ("monitoring.py", "prediction_log.py", "pinning.py"):
        shutil.copy(BENTO / module, folder / module)
    (folder / "bentofile.yaml").write_text(
        'service: "service:OwnIris"\ninclude: ["service.py", "monitoring.py", "prediction_log.py", "pinning.py"]\n'
    )
    bento = bentos.build(bento_dir=folder, record=False, env={})
    target = make_target()
    url = target.up(bento, replicas=1, workers=1).replicas[0].url
    rows = data.data.tolist()  # 150 rows the model knows: more than a drift chunk (monitor.drift.min_chunk_rows)
    answer = httpx.post(f"{url}/classify", json={"rows": rows}, headers={"x-request-id": "mine-1"}, timeout=30)
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "mine-1", answer.text
    secret = synthetic.read(target.dir)
    marked = {SYNTHETIC_HEADER: secret, "x-request-id": "gate-1"}
    assert httpx.post(f"{url}/classify", json={"rows": rows[:2]}, headers=marked, timeout=30).status_code == 200
    forged = {SYNTHETIC_HEADER: "not-the-secret", "x-request-id": "forged-1"}
    assert httpx.post(f"{url}/classify", json={"rows": rows[:2]}, headers=forged, timeout=30).status_code == 200
    assert wait_until(lambda: len(read_window(target.prediction_log_dir).rows) >= len(rows) + 2, timeout=10)
    logged = read_window(target.prediction_log_dir).rows
    assert {r.request_id for r in logged} == {"mine-1", "forged-1"}, "synthetic with the secret only is left out"
    logged = [r for r in logged if r.request_id == "mine-1"]
    assert {r.model_version for r in logged} == {tag} and [r.prediction for r in logged] == answer.json()
    monitor = local_settings(tmp_path).monitor
    report = run_drift_check(target.prediction_log_dir, monitor, store_reference, window=len(rows))
    assert report.status != INCONCLUSIVE, report.reason
    assert report.model_version == tag and [f.feature for f in report.features] == names
    assert np.isfinite([f.shift_sd for f in report.features]).all()
