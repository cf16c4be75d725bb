"""Benchmark-only service: an OpenMP model (HistGradientBoosting, bento/train_hgb.py), one request per model call.

`modelops bench` serves it at half a core twice — once with the replica's thread variables (OMP_NUM_THREADS & co.,
stacks/threads.py) removed, once with them set from the budget — to show what thread pools sized to the machine
instead of the budget cost. Self-contained (its own model, its own input schema): it does not load the reference
model.
"""

from __future__ import annotations

from typing import Annotated, cast

import bentoml
import numpy as np
from bentoml.validators import ContentType
from guard import RequestGuard
from pinning import pinned_model
from pydantic import BaseModel, Field

MODEL = bentoml.models.BentoModel(pinned_model("wine_hgb"))  # the version the bento was built with
MAX_ROWS = 1000
MAX_BODY_BYTES = 1024 * 1024
_METADATA = MODEL.resolve().info.metadata
FEATURES: list[str] = list(_METADATA["feature_names"])
CLASSES: list[str] = list(_METADATA["classes"])
_EXAMPLE_ROWS = _METADATA.get("golden", {}).get("rows", [])[:2]

FiniteNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Row = Annotated[list[FiniteNumber], Field(min_length=len(FEATURES), max_length=len(FEATURES))]
Rows = Annotated[
    list[Row],
    Field(min_length=1, max_length=MAX_ROWS, examples=[_EXAMPLE_ROWS] if _EXAMPLE_ROWS else None),
]


class Prediction(BaseModel):
    label: str
    probabilities: dict[str, float]


Predictions = Annotated[list[Prediction], ContentType("application/json")]


@bentoml.service(name="wine_hgb_bench", workers=1, traffic={"timeout": 30}, logging={"access": {"enabled": False}})
class WineHgbBench:
    model_ref = MODEL

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(MODEL.resolve())

    @bentoml.api
    def predict(self, rows: Rows) -> Predictions:
        proba = self.model.predict_proba(np.asarray(rows, dtype=np.float64))
        return [
            Prediction(label=CLASSES[int(i)], probabilities=dict(zip(CLASSES, map(float, p), strict=True)))
            for i, p in zip(proba.argmax(axis=1), proba, strict=True)
        ]


# @bentoml.service made the class a bentoml Service; mypy does not apply class decorators.
cast("bentoml.Service[WineHgbBench]", WineHgbBench).add_asgi_middleware(RequestGuard, max_body_bytes=MAX_BODY_BYTES)
