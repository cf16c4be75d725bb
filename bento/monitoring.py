"""Monitoring for a bento you wrote yourself: one line in your service feeds the platform's prediction log.

    from monitoring import log_prediction

    @bentoml.api
    def classify(self, rows: list[list[float]], ctx: bentoml.Context) -> list[str]:
        labels = self.model.predict(rows).tolist()
        log_prediction(ctx, rows, labels)  # the one line
        return labels

Copy this file, prediction_log.py and pinning.py beside your service and list them in your bentofile's ``include``
(docs/your-own-model.md). What you get is what the template's bentos get: a sample of production requests (rows
and predictions) in the stack's prediction log (where the deployment says, MODELOPS_PREDICTION_LOG_DIR; nothing is
written when it says nothing), under the request's ``X-Request-Id`` and a server-side ``X-Prediction-Id`` (both
echoed in the response; labels sent back later join the prediction id), never the gate's or the benchmark's
synthetic load (marked with the deployment's secret), bounded on disk, written off the request path.
`modelops drift` then reads it against the model's reference (`modelops build --model NAME:TAG --reference
FILE.csv --profile-only` records one without building a template bento).

Why not BentoML's own monitoring API (``bentoml.monitor``), checked with bentoml 1.4.40: it works (a with-block and
one ``log_batch`` per feature column, JSON lines under the configured log_path), but its records carry no request
headers, so the gate's synthetic load cannot be told from clients' and would become the drift window; its
request_id is BentoML's trace id, not the client's X-Request-Id that feedback labels name; and its default exporter
rotates daily with no size bound.

Standard library only (plus prediction_log.py and pinning.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from pinning import served_model
from prediction_log import ENV_REPLICA, PREDICTION_ID_HEADER, REQUEST_ID_HEADER, PredictionLogger, identify, writer_name

_LOGGER: list[PredictionLogger | None] = []
_LOCK = threading.Lock()


def _logger(model: str | None) -> PredictionLogger | None:
    """This process's writer, made on first use (after BentoML started the worker: the worker index is known)."""
    with _LOCK:
        if not _LOGGER:
            import bentoml

            name = writer_name(os.environ.get(ENV_REPLICA), bentoml.server_context.worker_index)
            _LOGGER.append(PredictionLogger.from_env(name=name, model_version=model or served_model()))
        return _LOGGER[0]


def log_prediction(
    ctx: Any, rows: Sequence[Sequence[float]], predictions: Sequence[Any], model: str | None = None
) -> str:
    """Log one request's rows and predictions (one per row); returns the request id, also set on the response.

    ``model``: the model tag the drift check compares with (default: the one model the bento packs). Never raises
    on the request path for a log that is off; a row count that differs from the predictions' is a caller's bug.
    """
    who = identify(ctx.request.headers)
    ctx.response.headers[REQUEST_ID_HEADER] = who.request_id
    ctx.response.headers[PREDICTION_ID_HEADER] = who.prediction_id
    if not who.logged:
        return who.request_id
    if len(rows) != len(predictions):
        raise ValueError(f"log_prediction: {len(rows)} rows but {len(predictions)} predictions")
    logger = _logger(model)
    if logger is not None:
        rows_ = [list(map(float, row)) for row in rows]
        logger.log(who.request_id, rows_, [_plain(p) for p in predictions], prediction_id=who.prediction_id)
    return who.request_id


def _plain(prediction: Any) -> Any:
    """A JSON value for the log: numpy scalars and the like as Python numbers, anything else as text."""
    if isinstance(prediction, str | int | float | bool):
        return prediction
    item = getattr(prediction, "item", None)
    return item() if callable(item) else str(prediction)
