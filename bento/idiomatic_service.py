"""The BentoML service a user would write for the same model, for the peer table (`modelops bench --peer`).

What BentoML's documentation shows for a scikit-learn model: load it in ``__init__``, one ``@bentoml.api`` with
adaptive batching (``batchable=True``) taking and returning NumPy arrays, every other setting left at its default
(access log on, BentoML's batching dispatcher, its JSON handling). Two endpoints with the same code, differing only
in the model call, so the peer table separates what the serving path gains from what the compile gains:
  /predict        the framework's own predict_proba
  /predict_onnx   the compiled model the build proved equivalent (ONNX Runtime), when the build chose it
Not production code: built into its own bento (bentofile.idiomatic.yaml) by the benchmark only.
"""

from __future__ import annotations

from pathlib import Path

import bentoml
import numpy as np
from pinning import served_model

MODEL = bentoml.models.BentoModel(served_model())
ONNX_FILE = "modelops-accelerated.onnx"  # bento/served.py: ACCELERATED_FILE (this service stays self-contained)


@bentoml.service(name="idiomatic_bench", workers=1)
class IdiomaticBench:
    model_ref = MODEL

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(MODEL.resolve())
        path = Path(MODEL.resolve().path) / ONNX_FILE
        self.session = None
        if path.is_file():
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])

    @bentoml.api(batchable=True)
    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(rows)

    @bentoml.api(batchable=True)
    def predict_onnx(self, rows: np.ndarray) -> np.ndarray:
        if self.session is None:
            raise bentoml.exceptions.NotFound("this model was not compiled at build: no ONNX model to serve")
        name = self.session.get_inputs()[0].name
        probabilities = self.session.get_outputs()[1].name
        return self.session.run([probabilities], {name: rows.astype(np.float32)})[0]
