"""Benchmark-only service: the production predict path beside its unbatched twin and a no-op floor.

Built into its own bento (bentofile.bench.yaml) by `modelops bench`; the production service stays clean.
  /predict        the production code path (Classifier.serve: contract check + the batcher), as in service.py
  /predict_naive  the same model call, one request at a time (no batching)
  /noop           same input validation, no model: the framework's floor for this payload
"""

from __future__ import annotations

from typing import cast

import bentoml
from service import MAX_BODY_BYTES, MODEL, SETTINGS, Classifier, Prediction, Predictions, RequestGuard, Rows


@bentoml.service(name="wine_bench", **SETTINGS)
class WineBench:
    model_ref = MODEL

    def __init__(self) -> None:
        self.classifier = Classifier()

    @bentoml.api
    async def predict(self, rows: Rows) -> Predictions:
        return await self.classifier.serve(rows)

    @bentoml.api
    def predict_naive(self, rows: Rows) -> Predictions:
        return self.classifier.predict(rows)

    @bentoml.api
    def noop(self, rows: Rows) -> Predictions:
        return [NOOP] * len(rows)  # same response shape, no model: what the framework costs on its own


NOOP = Prediction(label="none", probabilities={})


# @bentoml.service made the class a bentoml Service; mypy does not apply class decorators.
cast("bentoml.Service[WineBench]", WineBench).add_asgi_middleware(RequestGuard, max_body_bytes=MAX_BODY_BYTES)
