"""Acceleration as a proven build step: compile the model, prove the compiled form equivalent, measure, choose.

Candidates (each one built from the saved model, never retrained):
  original      the framework's own predict_proba / predict
  flat_forest   a scikit-learn RandomForestClassifier walked as flat arrays (bento/forest.py): bit-exact
  onnxruntime   the model compiled to ONNX (skl2onnx for scikit-learn; onnxmltools for LightGBM and XGBoost) and run
                by ONNX Runtime (bento/accelerate.py), in float32 as the trees themselves compare

A candidate is kept only when it is **proven** on the check rows (the user's reference rows, the golden rows, and
1,000 random rows within the reference's per-feature range, seeded): every predicted label identical to the
original's, and every probability within CLASS_TOLERANCE (regression: every value within REGRESSION_RTOL of the
original's, relative to the largest predicted magnitude, at least 1). Then each proven candidate is timed per
call at 1, 32 and 256 rows (the batch sizes a replica's batcher merges) and the fastest by the sum of those
three medians is chosen — the original when no candidate is faster, when conversion fails, or when equivalence
does not hold. The decision, the figures and the reasons are printed at build and recorded in the model's
metadata ("acceleration").

Why ONNX Runtime and not treelite: treelite 4 no longer compiles models to native code (that moved to tl2cgen,
which needs a C compiler on every build machine), and ONNX Runtime also has the GPU path (its CUDA provider, the
``onnxruntime-gpu`` wheel) for replicas with deploy.accelerator: nvidia.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bento.served import CLASSIFICATION, FLAT_FOREST, ONNXRUNTIME, ORIGINAL, original_predict

CLASS_TOLERANCE = 1e-5  # largest |probability difference| accepted (float32 trees: about 1e-6 measured)
REGRESSION_RTOL = 1e-5  # largest |value difference| / max(1, largest |value|) accepted
BATCH_SIZES = (1, 32, 256)
RANDOM_ROWS = 1000
TIMING_BUDGET_S = 0.4  # per candidate and batch size: enough calls for a stable median, a few seconds per build
MAX_CALLS = 300

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass
class Candidate:
    name: str
    status: str = "pending"  # proven, not_equivalent, failed, slower, chosen
    reason: str = ""
    max_difference: float | None = None
    labels_identical: bool | None = None
    ms_per_call: dict[str, float] = field(default_factory=dict)  # batch size -> median ms per call

    @property
    def score(self) -> float:
        return sum(self.ms_per_call.values()) if self.ms_per_call else float("inf")


@dataclass
class Decision:
    chosen: str
    candidates: list[Candidate]
    check_rows: int
    tolerance: dict[str, float]
    onnx_bytes: bytes | None = None  # the compiled model when chosen (written into the model's directory)

    @property
    def speedup(self) -> float | None:
        """The chosen implementation's speed-up over the original (sum of the per-call medians)."""
        by_name = {c.name: c for c in self.candidates}
        original, chosen = by_name.get(ORIGINAL), by_name.get(self.chosen)
        if original is None or chosen is None or not chosen.ms_per_call or not original.ms_per_call:
            return None
        return original.score / chosen.score

    def record(self) -> dict[str, Any]:
        """What goes into the model's metadata ("acceleration")."""
        return {
            "chosen": self.chosen,
            "speedup": self.speedup,
            "check_rows": self.check_rows,
            "tolerance": self.tolerance,
            "batch_sizes": list(BATCH_SIZES),
            "candidates": [asdict(c) for c in self.candidates],
        }

    def summary(self) -> list[str]:
        """One line per candidate, for the build's output."""
        lines = []
        for c in self.candidates:
            timing = ", ".join(f"{n} rows {ms:.3g} ms" for n, ms in c.ms_per_call.items())
            proof = ""
            if c.max_difference is not None:
                proof = f"; max difference {c.max_difference:.2g}" + (
                    "" if c.labels_identical is None else f", labels {'identical' if c.labels_identical else 'DIFFER'}"
                )
            lines.append(f"{c.name}: {c.status}{' (' + c.reason + ')' if c.reason else ''}{proof}; {timing or '-'}")
        speedup = self.speedup
        lines.append(
            f"serving with {self.chosen}"
            + (f": {speedup:.1f}x the original's speed" if speedup and speedup != 1 else "")
        )
        return lines


# ------------------------------------------------------------------------------------------------ conversion
def to_onnx(estimator: Any, n_features: int, task: str) -> bytes:
    """The estimator compiled to ONNX: probabilities as a plain tensor (no ZipMap), float32 input."""
    estimator = getattr(estimator, "booster", estimator)  # bento/served.py's LightGBMBooster: convert the booster
    module = type(estimator).__module__.split(".")[0]
    if module in ("lightgbm", "xgboost"):
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType

        types = [("input", FloatTensorType([None, n_features]))]
        if module == "lightgbm":
            model = onnxmltools.convert_lightgbm(estimator, initial_types=types, zipmap=False)
        else:
            model = onnxmltools.convert_xgboost(estimator, initial_types=types)
        return model.SerializeToString()
    from skl2onnx import to_onnx as skl_to_onnx

    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    options = {id(final): {"zipmap": False}} if task == CLASSIFICATION else None
    sample = np.zeros((1, n_features), dtype=np.float32)
    return skl_to_onnx(estimator, sample, options=options).SerializeToString()


def flat_forest(estimator: Any) -> Predict | None:
    from sklearn.ensemble import RandomForestClassifier

    if not isinstance(estimator, RandomForestClassifier) or getattr(estimator, "n_outputs_", 1) != 1:
        return None
    from bento.forest import fast_predict_proba

    return fast_predict_proba(estimator)


# ----------------------------------------------------------------------------------------------- proof + timing
def check_rows(reference: np.ndarray, seed: int = 0) -> np.ndarray:
    """The reference rows and RANDOM_ROWS random rows within their per-feature range (seeded)."""
    rng = np.random.default_rng(seed)
    low, high = reference.min(axis=0), reference.max(axis=0)
    spread = np.where(high > low, high - low, np.maximum(np.abs(high), 1.0))
    random = rng.uniform(low - 0.1 * spread, high + 0.1 * spread, size=(RANDOM_ROWS, reference.shape[1]))
    return np.vstack([reference, random]).astype(np.float64)


def prove(original: np.ndarray, candidate: np.ndarray, task: str) -> tuple[bool, float, bool | None, str]:
    """(equivalent, max difference, labels identical, reason when not)."""
    if candidate.shape != original.shape:
        return False, float("inf"), None, f"output shape {candidate.shape}, the original's is {original.shape}"
    if not np.isfinite(candidate).all():
        return False, float("inf"), None, "non-finite outputs"
    if task == CLASSIFICATION:
        difference = float(np.abs(candidate - original).max(initial=0.0))
        identical = bool((candidate.argmax(axis=1) == original.argmax(axis=1)).all())
        if not identical:
            differ = int((candidate.argmax(axis=1) != original.argmax(axis=1)).sum())
            return False, difference, False, f"{differ} predicted labels differ"
        if difference > CLASS_TOLERANCE:
            return False, difference, True, f"probabilities differ by {difference:.2g} > {CLASS_TOLERANCE:g}"
        return True, difference, True, ""
    # Relative to the predictions' scale, not to each value: a float32 sum of trees errs in proportion to the
    # size of the leaf values, so a prediction near zero among large ones carries the same absolute error.
    scale = max(1.0, float(np.abs(original).max(initial=0.0)))
    difference = float(np.abs(candidate - original).max(initial=0.0)) / scale
    if difference > REGRESSION_RTOL:
        return False, difference, None, f"values differ by {difference:.2g} (relative) > {REGRESSION_RTOL:g}"
    return True, difference, None, ""


def time_per_call(
    predict: Predict, rows: np.ndarray, clock: Callable[[], float] = time.perf_counter
) -> dict[str, float]:
    """Median ms per call at each of BATCH_SIZES rows (a warm-up call first)."""
    timings = {}
    for size in BATCH_SIZES:
        block = np.resize(rows, (size, rows.shape[1]))
        predict(block)
        samples: list[float] = []
        deadline = clock() + TIMING_BUDGET_S
        while len(samples) < MAX_CALLS and (len(samples) < 5 or clock() < deadline):
            start = clock()
            predict(block)
            samples.append(clock() - start)
        timings[str(size)] = 1000 * statistics.median(samples)
    return timings


def choose(candidates: list[Candidate]) -> Candidate:
    """The fastest proven candidate (the original when it is fastest: candidates[0] is the original, proven by
    definition); marks it chosen and the other proven ones slower."""
    proven = [c for c in candidates if c.status == "proven"]
    best = min(proven, key=lambda c: c.score)  # min keeps the first of equals: the original wins a tie
    for c in proven:
        c.status = "chosen" if c is best else "slower"
    return best


def decide(estimator: Any, task: str, n_features: int, rows: np.ndarray, n_classes: int) -> Decision:
    """Build, prove and time every candidate for ``estimator``; choose the fastest proven one.

    Timed with every native thread pool (OpenMP, BLAS) held to one thread, and ONNX Runtime's session at one
    intra-op thread: what a replica's worker runs with at a one-core budget (stacks/threads.py). Unbounded, a
    LightGBM model would be timed with a thread per core of the build machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _decide(estimator, task, n_features, rows, n_classes)


def _decide(estimator: Any, task: str, n_features: int, rows: np.ndarray, n_classes: int) -> Decision:
    from bento.accelerate import onnx_predict

    original = original_predict(estimator, task)
    expected = np.asarray(original(rows), dtype=np.float64)
    baseline = Candidate(ORIGINAL, status="proven", ms_per_call=time_per_call(original, rows))
    candidates = [baseline]
    onnx_bytes: bytes | None = None
    builders: list[tuple[str, Callable[[], Predict | None]]] = []
    if task == CLASSIFICATION:
        builders.append((FLAT_FOREST, lambda: flat_forest(estimator)))

    def compiled() -> Predict:
        nonlocal onnx_bytes
        onnx_bytes = to_onnx(estimator, n_features, task)
        import tempfile

        with tempfile.TemporaryDirectory(prefix="modelops-onnx-") as folder:
            path = Path(folder) / "model.onnx"
            path.write_bytes(onnx_bytes)
            # One thread: see decide(). The session has read the file when this returns: the folder may go.
            return onnx_predict(path, task, n_classes, threads=1)

    builders.append((ONNXRUNTIME, compiled))
    for name, build in builders:
        candidate = Candidate(name)
        try:
            predict = build()
        except Exception as exc:  # a converter that cannot take this model: recorded, the original serves
            candidate.status, candidate.reason = "failed", f"{type(exc).__name__}: {str(exc)[:200]}"
            candidates.append(candidate)
            continue
        if predict is None:
            continue  # not applicable to this model (the flat forest takes random forests only)
        try:
            got = np.asarray(predict(rows), dtype=np.float64)
        except Exception as exc:
            candidate.status, candidate.reason = "failed", f"{type(exc).__name__}: {str(exc)[:200]}"
            candidates.append(candidate)
            continue
        ok, difference, identical, reason = prove(expected, got, task)
        candidate.max_difference, candidate.labels_identical = difference, identical
        if not ok:
            candidate.status, candidate.reason = "not_equivalent", reason
        else:
            candidate.status = "proven"
            candidate.ms_per_call = time_per_call(predict, rows)
        candidates.append(candidate)
    best = choose(candidates)
    tolerance = {"probability_abs": CLASS_TOLERANCE} if task == CLASSIFICATION else {"value_rel": REGRESSION_RTOL}
    return Decision(
        chosen=best.name,
        candidates=candidates,
        check_rows=len(rows),
        tolerance=tolerance,
        onnx_bytes=onnx_bytes if best.name == ONNXRUNTIME else None,
    )
