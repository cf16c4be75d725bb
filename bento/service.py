"""The service template: a typed, validated prediction API over any saved tabular model, with batching in which one
request can never fail another (bento/batching.py).

One template, many models: the model is the one `modelops build --model NAME:TAG` names (bento/pinning.py:
served_model; the reference wine classifier when none is named). Everything about it — task (classification or
regression), feature names, class labels, example rows, the range of values it can compute with, the accelerated
implementation the build proved — comes from the model's metadata (modelops/modelbuild.py writes it; bento/served.py
reads it), so the API schema published at /docs.json declares exactly what a request must hold, and a value the
model cannot take is refused with a 422 before it reaches it.

Answers, one per row: a classifier's ``{"label": ..., "probabilities": {class: p}}``, a regressor's ``{"value": x}``.

Limits (environment, so an operator can tune a replica without rebuilding the bento):
  MODELOPS_MAX_BODY_BYTES   largest request body, default 1 MiB (413 above it; HAProxy enforces the same limit)
  MODELOPS_CACHE_*          the opt-in prediction cache (bento/cache.py), off unless MODELOPS_CACHE_ENABLED=true

Prediction log (bento/prediction_log.py; on when the deployment sets MODELOPS_PREDICTION_LOG_DIR, from
modelops:monitor): a sample of each request's rows and predicted labels, with the model version and the request id,
written off the request path as rotated JSONL, with each row's class probabilities. Every response carries
``X-Request-Id`` (the client's own, when it sent a plain one) and ``X-Prediction-Id`` (the server's own, unique):
ground-truth labels sent back later refer to the prediction id. Requests marked ``X-Modelops-Synthetic`` with the
deployment's secret (the gate's and the benchmark's load) are not logged; the marker without it is ignored.
"""

from __future__ import annotations

import gc
import json
import os
from typing import Annotated, cast

import bentoml
import numpy as np
from batching import Batcher, request_timeout_s
from bentoml.exceptions import UnprocessableEntity
from bentoml.validators import ContentType
from cache import from_env as cache_from_env
from contract import out_of_range, probe_input_dtype
from guard import RequestGuard
from pinning import served_model
from prediction_log import (
    ENV_REPLICA,
    PREDICTION_ID_HEADER,
    REQUEST_ID_HEADER,
    PredictionLogger,
    identify,
    process_metrics,
    writer_name,
)
from pydantic import BaseModel, Field
from served import CLASSIFICATION, load
from starlette.responses import JSONResponse, Response

MODEL = bentoml.models.BentoModel(served_model())
MODEL_NAME = MODEL.tag.name
MAX_ROWS = 1000
MAX_BATCH_ROWS = 2 * MAX_ROWS  # rows merged into one model call at most (a request larger than that goes alone)
MAX_BODY_BYTES = int(os.environ.get("MODELOPS_MAX_BODY_BYTES", str(1024 * 1024)))

_METADATA = MODEL.resolve().info.metadata
FEATURES: list[str] = list(_METADATA["feature_names"])
TASK = str(_METADATA.get("task", CLASSIFICATION))
CLASSIFIES = TASK == CLASSIFICATION
CLASSES: list[str] = list(_METADATA["classes"]) if CLASSIFIES else []
_EXAMPLE_ROWS = _METADATA.get("golden", {}).get("rows", [])[:2]
SHOWN_VIOLATIONS = 10  # out-of-range values listed in a 422's detail (the message counts them all)

# strict: "1.5" and true are not numbers; allow_inf_nan=False: NaN, Infinity and 1e400 are refused with a 400.
FiniteNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Row = Annotated[
    list[FiniteNumber],
    Field(
        min_length=len(FEATURES),
        max_length=len(FEATURES),
        description="one sample: " + ", ".join(FEATURES),
    ),
]
Rows = Annotated[
    list[Row],
    Field(
        min_length=1,
        max_length=MAX_ROWS,
        description=f"1..{MAX_ROWS} rows of exactly {len(FEATURES)} finite numbers",
        examples=[_EXAMPLE_ROWS] if _EXAMPLE_ROWS else None,
    ),
]


class ClassPrediction(BaseModel):
    label: str = Field(description="the predicted class: one of " + ", ".join(CLASSES))
    probabilities: dict[str, float] = Field(description="probability of each class")


class ValuePrediction(BaseModel):
    value: float = Field(description=f"the predicted value of {MODEL_NAME}")


Prediction = ClassPrediction if CLASSIFIES else ValuePrediction


# The declared content type spares BentoML from deriving it from the output's JSON schema on every response
# (profiled: a fifth of a worker's CPU went into regenerating that schema per request). The item type is the
# served model's (chosen at import from its task): a static checker cannot follow that choice.
Predictions = Annotated[list[Prediction], ContentType("application/json")]  # type: ignore[valid-type]
# One answered row, as the batcher returns it: the label (or a regressor's value), its JSON, its class probabilities.
Answered = tuple[str | float, str, list[float] | None]


class InputOutOfRange(UnprocessableEntity):
    """A request holds values the model cannot compute with, or the model raised on this request's rows alone."""

    def __init__(self, message: str, detail: list[dict]) -> None:
        super().__init__(message)
        self.detail = detail

    def response(self) -> JSONResponse:
        # Returned, not raised: BentoML 1.4 answers a raised 4xx BentoMLException with a one-element *list*
        # [{"error": ...}] (and logs a traceback per request); this keeps the {"error", "detail"} shape of its own
        # validation errors and of the request guard's, at no logging cost under a flood of bad requests.
        return JSONResponse({"error": str(self), "detail": self.detail}, status_code=self.error_code.value)


def input_contract(predict, n_features: int) -> tuple[str, float]:
    """(dtype, largest |value|) the model computes with: recorded at build (or training); probed from the model
    itself for a model saved before it was recorded."""
    recorded = _METADATA.get("input_contract")
    if recorded:
        return str(recorded["dtype"]), float(recorded["max_abs"])
    return probe_input_dtype(predict, n_features)


class Predictor:
    """The model and its prediction logic, shared by the production service and the benchmark service."""

    def __init__(self, logger: PredictionLogger | None = None, accelerate: bool = True) -> None:
        # The implementation the build proved equivalent and chose (bento/served.py): the framework's own call, the
        # flat forest or the ONNX Runtime session.
        self.served = load(MODEL.resolve(), accelerate=accelerate)
        self.model = self.served.estimator
        self.logger = logger
        self.dtype, self.max_abs = input_contract(self.served.predict, len(FEATURES))
        self.batcher: Batcher[Answered] = Batcher(self.predict_json, max_rows=MAX_BATCH_ROWS)
        # Opt-in cache in front of the batcher, keyed by this model version: never another version's answer.
        self.version = str(MODEL.resolve().tag)
        self.cache = cache_from_env(os.environ)
        self.predict_valid = (
            self.batcher.submit if self.cache is None else self.cache.front(self.version, self.batcher.submit)
        )
        # Garbage collection was the latency tail: each full collection walked the whole heap (framework, model)
        # and stalled every in-flight request. Everything loaded so far lives as long as the process, so move it
        # out of the collector's reach, and collect the young generation less often (per request garbage is
        # small). Measured at 64 concurrent users on one replica: requests over 100 ms fell from 7 % to 0.1 %.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 50)

    def predict(self, rows: np.ndarray | list[list[float]]) -> list[ClassPrediction] | list[ValuePrediction]:
        out = self.predict_proba(rows)
        if not CLASSIFIES:
            return [ValuePrediction(value=float(v)) for v in out]
        return [
            ClassPrediction(label=CLASSES[int(i)], probabilities=dict(zip(CLASSES, map(float, p), strict=True)))
            for i, p in zip(out.argmax(axis=1), out, strict=True)
        ]

    def predict_json(self, rows: np.ndarray) -> list[Answered]:
        """Each row's (label or value, prediction as a JSON object of the Prediction schema, class probabilities or
        None for a regressor), encoded in the batcher's thread."""
        out = self.predict_proba(rows)
        if not CLASSIFIES:
            return [(v, '{"value":' + repr(v) + "}", None) for v in out.tolist()]
        return [
            (CLASSES[i], _LABEL_PREFIX[i] + ",".join(map(str.__add__, _PROBABILITY_KEYS, map(repr, p))) + "}}", p)
            for i, p in zip(out.argmax(axis=1).tolist(), out.tolist(), strict=True)
        ]

    def predict_proba(self, rows: np.ndarray | list[list[float]]) -> np.ndarray:
        """The model call alone (the benchmark's no-op floor replaces just this): a classifier's probabilities,
        a regressor's values."""
        return self.served.predict(np.asarray(rows, dtype=np.float64))

    def check(self, rows: list[list[float]]) -> np.ndarray:
        """The rows as an array, or InputOutOfRange naming each value beyond what the model can compute with."""
        array = np.asarray(rows, dtype=np.float64)
        bad = out_of_range(array, self.max_abs)
        if not bad:
            return array
        row, feature, value = bad[0]
        more = f" (and {len(bad) - 1} more values)" if len(bad) > 1 else ""
        message = (
            f"row {row}, feature {FEATURES[feature]!r} (index {feature}): {value:g} is outside the range the model "
            f"computes in ({self.dtype}: |x| <= {self.max_abs:g}){more}: send values within it"
        )
        detail = [
            {"row": r, "feature": FEATURES[f], "index": f, "value": v, "bound": self.max_abs, "dtype": self.dtype}
            for r, f, v in bad[:SHOWN_VIOLATIONS]
        ]
        raise InputOutOfRange(message, detail)

    async def serve(
        self, rows: list[list[float]], request_id: str | None = None, prediction_id: str | None = None
    ) -> Response:
        """The production predict path: contract check, then the cache if enabled (only valid rows reach it), then
        the batcher (one bad request never fails others); the answered request goes to the prediction log when
        there is one and a ``request_id`` is given.

        The answer is the Predictions JSON, encoded here rather than by BentoML: its output path builds a pydantic
        model per row and streams the body in chunks, each through every middleware's send (profiled: about a
        fifth of a replica's CPU at 64 users); one body with a Content-Length is one send.
        """
        try:
            array = self.check(rows)
            predictions = await self.predict_valid(array)
            if self.logger is not None and request_id is not None:
                probabilities = [p[2] for p in predictions] if CLASSIFIES else None
                self.logger.log(request_id, array, [p[0] for p in predictions], probabilities, prediction_id)
            return Response("[" + ",".join(p[1] for p in predictions) + "]", media_type="application/json")
        except InputOutOfRange as exc:
            return exc.response()
        except (ValueError, FloatingPointError) as exc:
            # Raised by the model on this request's rows alone (the batcher isolated it): the input's fault.
            return InputOutOfRange(f"the model cannot predict these rows: {exc}", []).response()


def answer(ctx: bentoml.Context, request_id: str, result: Response, prediction_id: str | None = None):
    """The result with the request (and prediction) id in its headers. BentoML gives a handler that takes a context
    the context's status code, even for a Response it returns: an error response's own status goes into the context."""
    ctx.response.headers[REQUEST_ID_HEADER] = request_id
    if prediction_id is not None:
        ctx.response.headers[PREDICTION_ID_HEADER] = prediction_id
    ctx.response.status_code = result.status_code
    return result


def prediction_logger() -> PredictionLogger | None:
    """This worker's prediction log writer, as the deployment's environment asks (None: logging is off)."""
    name = writer_name(os.environ.get(ENV_REPLICA), bentoml.server_context.worker_index)
    return PredictionLogger.from_env(
        name=name, model_version=str(MODEL.resolve().tag), classes=CLASSES, metrics=process_metrics
    )


# The JSON of a Prediction, in pieces made once: '{"label":"<class>","probabilities":{' per class, '"<class>":' per
# probability. Floats are written with repr (the shortest text that reads back as the same float, as pydantic does).
_LABEL_PREFIX = [f'{{"label":{json.dumps(c)},"probabilities":{{' for c in CLASSES]
_PROBABILITY_KEYS = [json.dumps(c) + ":" for c in CLASSES]

# Service settings shared with the benchmark service, so that it measures this configuration. Access logs are off:
# they cost throughput, and the load balancer in front sees every request anyway. The API routes are left out of
# BentoML's OpenTelemetry middleware: at BentoML's default sample rate (0) it records nothing, yet it opened a span per
# request and wrapped every send (profiled: about a tenth of a replica's CPU at 64 users); requests are named by our
# own X-Request-Id. To trace them, set tracing (exporter, sample_rate, excluded_urls) in BENTOML_CONFIG.
TRACING_EXCLUDED = ["/predict", "/noop"]
SETTINGS = {
    "workers": 1,
    "traffic": {"timeout": 30},
    "logging": {"access": {"enabled": False}},
    "tracing": {"excluded_urls": TRACING_EXCLUDED},
}


REQUEST_TIMEOUT_S = request_timeout_s(float(SETTINGS["traffic"]["timeout"]))  # type: ignore[index]


@bentoml.service(name=f"{MODEL_NAME}_service", **SETTINGS)
class ModelService:
    model_ref = MODEL

    def __init__(self) -> None:
        self.predictor = Predictor(logger=prediction_logger())

    @bentoml.on_shutdown
    def close_log(self) -> None:
        """On a clean stop (SIGTERM), everything queued for the prediction log is written, fsynced and closed."""
        if self.predictor.logger is not None:
            self.predictor.logger.close()

    async def __is_ready__(self) -> bool:
        """/readyz: also false while the model thread is stuck past the request timeout (bento/batching.py)."""
        return self.predictor.batcher.responsive(REQUEST_TIMEOUT_S)

    @bentoml.api
    async def predict(self, rows: Rows, ctx: bentoml.Context) -> Predictions:
        """Predict each row (a class with its probabilities, or a value). The response holds one prediction per row,
        in order, and its ``X-Request-Id`` header names the request (send your own plain id of up to 64 characters
        to choose it); ``X-Prediction-Id`` is the server's unique id of it, which labels sent back later refer to."""
        who = identify(ctx.request.headers)
        result = await self.predictor.serve(rows, who.request_id if who.logged else None, who.prediction_id)
        # BentoML builds the response schema from the annotation; a Response (the encoded predictions, or an error)
        # it passes through as is.
        return answer(ctx, who.request_id, result, who.prediction_id)


# @bentoml.service made the class a bentoml Service; mypy does not apply class decorators.
cast("bentoml.Service[ModelService]", ModelService).add_asgi_middleware(RequestGuard, max_body_bytes=MAX_BODY_BYTES)
