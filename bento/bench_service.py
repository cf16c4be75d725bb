"""Benchmark-only service: the production predict path beside its unbatched twin and a no-op floor.

Built into its own bento (bentofile.bench.yaml) by `modelops bench`; the production service stays clean.
  /predict        the production code path, as service.py's predict serves the bench's (synthetic, so unlogged)
                  traffic: request id, contract check, the batcher, the answer with its X-Request-Id
  /predict_naive  the same model call, one request at a time (no batching)
  /noop           /predict with the model call taken out (uniform probabilities of the model's shape): async, the
                  same validation, contract check, batcher and response building, so /predict ÷ /noop is what the
                  model costs
  /predict_logged the production path with the prediction log on, every request logged (its overhead)
  /predict_plain  the production path with the framework's own model call instead of the one the build chose
                  (the peer table's "plain" row: the serving path's gain apart from the compile's)
"""

from __future__ import annotations

import os
import tempfile
from typing import cast

import bentoml
import numpy as np
from prediction_log import PredictionLogger, identify, writer_name
from service import (
    CLASSES,
    CLASSIFIES,
    MAX_BODY_BYTES,
    MODEL,
    SETTINGS,
    Predictions,
    Predictor,
    RequestGuard,
    Rows,
    answer,
)

# Where /predict_logged writes (a throwaway directory unless the benchmark names one).
BENCH_LOG_DIR = "MODELOPS_BENCH_LOG_DIR"


class WithoutModel(Predictor):
    """The production Predictor whose model call returns a constant (uniform probabilities, or zeros for a
    regressor) instead of calling the model."""

    def predict_proba(self, rows: np.ndarray | list[list[float]]) -> np.ndarray:
        # The same conversion the model call starts with; the answer is a constant of the model's output shape.
        n = len(np.asarray(rows, dtype=np.float64))
        return np.full((n, len(CLASSES)), 1.0 / len(CLASSES)) if CLASSIFIES else np.zeros(n)


@bentoml.service(name="wine_bench", **SETTINGS)
class WineBench:
    model_ref = MODEL

    def __init__(self) -> None:
        self.classifier = Predictor()
        self.floor = WithoutModel()
        logger = PredictionLogger(
            os.environ.get(BENCH_LOG_DIR) or tempfile.mkdtemp(prefix="modelops-bench-log-"),
            name=writer_name("bench", bentoml.server_context.worker_index),
            model_version=str(MODEL.resolve().tag),
            sample_rate=1.0,
            classes=CLASSES,
        )
        self.logged = Predictor(logger=logger)
        self.plain = Predictor(accelerate=False)

    @staticmethod
    async def respond(classifier: Predictor, rows: list[list[float]], ctx: bentoml.Context):
        """service.py's predict handler, with the classifier to serve with."""
        who = identify(ctx.request.headers)
        result = await classifier.serve(rows, who.request_id if who.logged else None, who.prediction_id)
        return answer(ctx, who.request_id, result, who.prediction_id)

    @bentoml.api
    async def predict(self, rows: Rows, ctx: bentoml.Context) -> Predictions:
        return await self.respond(self.classifier, rows, ctx)

    @bentoml.api
    async def predict_plain(self, rows: Rows, ctx: bentoml.Context) -> Predictions:
        return await self.respond(self.plain, rows, ctx)

    @bentoml.api
    async def noop(self, rows: Rows, ctx: bentoml.Context) -> Predictions:
        return await self.respond(self.floor, rows, ctx)

    @bentoml.api
    async def predict_logged(self, rows: Rows, ctx: bentoml.Context) -> Predictions:
        # As service.py's predict, every request logged (synthetic marker ignored: the log's cost is the point).
        who = identify(ctx.request.headers)
        result = await self.logged.serve(rows, who.request_id, who.prediction_id)
        return answer(ctx, who.request_id, result, who.prediction_id)

    @bentoml.api
    def predict_naive(self, rows: Rows) -> Predictions:
        return self.classifier.predict(rows)


# @bentoml.service made the class a bentoml Service; mypy does not apply class decorators.
cast("bentoml.Service[WineBench]", WineBench).add_asgi_middleware(RequestGuard, max_body_bytes=MAX_BODY_BYTES)
