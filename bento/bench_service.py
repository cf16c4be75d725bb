"""Benchmark-only service: the production predict path beside its unbatched twin and a no-op floor.

Built into its own bento (bentofile.bench.yaml) by `modelops bench`; the production service stays clean.
  /predict        the production code path (Classifier.serve: contract check + the batcher), as in service.py
  /predict_naive  the same model call, one request at a time (no batching)
  /noop           same input validation, no model: the framework's floor for this payload
  /predict_logged the production path with the prediction log on, every request logged (its overhead)
"""

from __future__ import annotations

import os
import tempfile
from typing import cast

import bentoml
from prediction_log import PredictionLogger, request_identity, writer_name
from service import MAX_BODY_BYTES, MODEL, SETTINGS, Classifier, Prediction, Predictions, RequestGuard, Rows, answer

# Where /predict_logged writes (a throwaway directory unless the benchmark names one).
BENCH_LOG_DIR = "MODELOPS_BENCH_LOG_DIR"


@bentoml.service(name="wine_bench", **SETTINGS)
class WineBench:
    model_ref = MODEL

    def __init__(self) -> None:
        self.classifier = Classifier()
        logger = PredictionLogger(
            os.environ.get(BENCH_LOG_DIR) or tempfile.mkdtemp(prefix="modelops-bench-log-"),
            name=writer_name("bench", bentoml.server_context.worker_index),
            model_version=str(MODEL.resolve().tag),
            sample_rate=1.0,
        )
        self.logged = Classifier(logger=logger)

    @bentoml.api
    async def predict(self, rows: Rows) -> Predictions:
        return await self.classifier.serve(rows)

    @bentoml.api
    async def predict_logged(self, rows: Rows, ctx: bentoml.Context) -> Predictions:
        # As service.py's predict, every request logged (synthetic marker ignored: the log's cost is the point).
        request_id, _ = request_identity(ctx.request.headers)
        return answer(ctx, request_id, await self.logged.serve(rows, request_id))

    @bentoml.api
    def predict_naive(self, rows: Rows) -> Predictions:
        return self.classifier.predict(rows)

    @bentoml.api
    def noop(self, rows: Rows) -> Predictions:
        return [NOOP] * len(rows)  # same response shape, no model: what the framework costs on its own


NOOP = Prediction(label="none", probabilities={})


# @bentoml.service made the class a bentoml Service; mypy does not apply class decorators.
cast("bentoml.Service[WineBench]", WineBench).add_asgi_middleware(RequestGuard, max_body_bytes=MAX_BODY_BYTES)
