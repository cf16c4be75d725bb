"""The served model: any saved tabular model the template can serve, with what the API needs to know about it.

``modelops build --model NAME:TAG`` writes the model's profile into its metadata (modelops/modelbuild.py): the task
(classification or regression), feature names, class labels, the input contract, the drift reference, golden rows
and the build's acceleration decision. This module reads that profile back inside the bento and builds the one
function the service calls on a block of rows:

  classification   rows -> probabilities, shape (rows, classes), columns in the order of ``classes``
  regression       rows -> values, shape (rows,)

Frameworks: models saved with ``bentoml.sklearn``, ``bentoml.xgboost`` or ``bentoml.lightgbm`` whose object has
scikit-learn's ``predict`` (and ``predict_proba`` when it classifies): scikit-learn estimators and pipelines, and
the scikit-learn wrappers of XGBoost and LightGBM (XGBClassifier, LGBMRegressor …).

Imported by the service (inside the bento) and by modelops (drift, build): numpy and the model's framework only.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CLASSIFICATION, REGRESSION = "classification", "regression"
TASKS = (CLASSIFICATION, REGRESSION)
# The frameworks whose saved models the template loads: BentoML module -> loader module name.
FRAMEWORKS = ("bentoml.sklearn", "bentoml.xgboost", "bentoml.lightgbm")
# Metadata keys of the profile (bento/train.py writes the same ones for the reference model).
TASK, FEATURES, CLASSES, CONTRACT, ACCELERATION = "task", "feature_names", "classes", "input_contract", "acceleration"
# The compiled model file, kept in the model's own directory (so every bento built with the model carries it).
ACCELERATED_FILE = "modelops-accelerated.onnx"
ORIGINAL, FLAT_FOREST, ONNXRUNTIME = "original", "flat_forest", "onnxruntime"

Predict = Callable[[np.ndarray], np.ndarray]


class NotServableError(ValueError):
    """The template cannot serve this model. The message names what is missing and how to provide it."""


@dataclass(frozen=True)
class ServedModel:
    """A loaded model and the function the service calls on a block of float64 rows."""

    task: str
    features: list[str]
    classes: list[str]  # empty for regression
    estimator: Any
    predict: Predict  # classification: probabilities (rows, classes); regression: values (rows,)
    accelerator: str  # which implementation ``predict`` runs: original, flat_forest or onnxruntime

    @property
    def classifies(self) -> bool:
        return self.task == CLASSIFICATION


def load_estimator(model: Any) -> Any:
    """The estimator of a BentoML model of one of FRAMEWORKS (``model`` is a ``bentoml.Model``)."""
    import importlib

    module = str(model.info.module)
    if module not in FRAMEWORKS:
        raise NotServableError(
            f"model {model.tag} was saved with {module}: the template serves models saved with "
            f"{', '.join(FRAMEWORKS)}; save it with one of them, or write your own service (docs/your-own-model.md)"
        )
    estimator = importlib.import_module(module).load_model(model)
    if type(estimator).__name__ == "Booster" and type(estimator).__module__.startswith("lightgbm"):
        return LightGBMBooster(estimator)
    if type(estimator).__name__ == "Booster":
        raise NotServableError(
            f"model {model.tag} is a bare XGBoost Booster (no predict on arrays, no classes): save the scikit-learn "
            "wrapper instead (xgboost.XGBClassifier / XGBRegressor) with bentoml.xgboost.save_model"
        )
    return estimator


class LightGBMBooster:
    """scikit-learn's predict / predict_proba over the Booster that ``bentoml.lightgbm.save_model`` stores (it keeps
    the booster of an LGBMClassifier or LGBMRegressor, not the wrapper: class labels are not kept, so they are the
    class indices unless the model's metadata names them)."""

    CLASSIFYING = ("binary", "multiclass", "multiclassova", "softmax", "multiclass_ova", "ova", "ovr", "cross_entropy")
    REGRESSING = ("regression", "regression_l1", "regression_l2", "l1", "l2", "mae", "mse", "rmse", "huber", "fair",
                  "poisson", "quantile", "mape", "gamma", "tweedie")  # fmt: skip

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        objective = str(booster.params.get("objective") or booster.dump_model().get("objective", "")).split(" ")[0]
        self.objective = objective
        self.n_features_in_ = int(booster.num_feature())
        self.feature_names_in_ = np.asarray(booster.feature_name())
        n_classes = int(booster.dump_model().get("num_class", 1))
        if objective in self.CLASSIFYING:
            self.classes_ = np.arange(max(2, n_classes))
            self._estimator_type = "classifier"
        elif objective in self.REGRESSING:
            self._estimator_type = "regressor"
        else:
            raise NotServableError(
                f"LightGBM objective {objective!r} is neither classification nor regression: the template serves "
                f"{', '.join(self.CLASSIFYING + self.REGRESSING)}"
            )

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        if self._estimator_type != "classifier":
            raise AttributeError("a regression booster has no predict_proba")
        p = np.asarray(self.booster.predict(rows), dtype=np.float64)
        return np.column_stack([1.0 - p, p]) if p.ndim == 1 else p

    def predict(self, rows: np.ndarray) -> np.ndarray:
        if self._estimator_type == "classifier":
            return self.classes_[self.predict_proba(rows).argmax(axis=1)]
        return np.asarray(self.booster.predict(rows), dtype=np.float64)


def original_predict(estimator: Any, task: str) -> Predict:
    """The estimator's own call: predict_proba for a classifier, predict (flattened to one value per row) else."""
    if task == CLASSIFICATION:
        return _quiet(estimator.predict_proba)

    call = _quiet(estimator.predict)

    def predict(rows: np.ndarray) -> np.ndarray:
        return np.asarray(call(rows), dtype=np.float64).reshape(len(rows))

    return predict


def _quiet(call: Callable[[np.ndarray], Any]) -> Predict:
    """``call`` without scikit-learn's per-call warning for a model fitted on named columns and given an array: the
    API's feature order is the fitted one (checked at build), so the warning says nothing, and it costs per call."""

    def predict(rows: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            return np.asarray(call(rows))

    return predict


def accelerated_predict(estimator: Any, task: str, accelerator: str, model_dir: Path, n_classes: int) -> Predict:
    """The implementation the build chose and proved equivalent (modelops/acceleration.py)."""
    if accelerator == FLAT_FOREST:
        return _sibling("forest").fast_predict_proba(estimator)
    if accelerator == ONNXRUNTIME:
        return _sibling("accelerate").onnx_predict(model_dir / ACCELERATED_FILE, task, n_classes)
    return original_predict(estimator, task)


def _sibling(name: str) -> Any:
    """A module of bento/: top-level inside a bento (its src/ is the import root), ``bento.NAME`` in modelops."""
    import importlib

    return importlib.import_module(f"{__package__}.{name}" if __package__ else name)


def load(model: Any, accelerate: bool = True) -> ServedModel:
    """The served form of a BentoML model whose metadata holds the profile ``modelops build`` wrote."""
    metadata = model.info.metadata
    missing = [key for key in (TASK, FEATURES) if key not in metadata]
    if missing and CLASSES in metadata and FEATURES in metadata:
        missing = []  # the reference model saved before the task was recorded: a classifier
    if missing:
        raise NotServableError(
            f"model {model.tag} has no serving profile (metadata lacks {missing}): build its bento with "
            f"`modelops build --model {model.tag}`, which inspects the model and records it"
        )
    task = str(metadata.get(TASK, CLASSIFICATION))
    classes = [str(c) for c in metadata.get(CLASSES, [])] if task == CLASSIFICATION else []
    estimator = load_estimator(model)
    chosen = str((metadata.get(ACCELERATION) or {}).get("chosen", ORIGINAL)) if accelerate else ORIGINAL
    predict = accelerated_predict(estimator, task, chosen, Path(model.path), len(classes))
    features = [str(f) for f in metadata[FEATURES]]
    return ServedModel(task, features, classes, estimator, predict, chosen)
