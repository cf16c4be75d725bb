"""The model's input contract: the largest magnitude a feature value may have for the model to compute with it.

JSON numbers are float64, but a model may compute in a narrower type: scikit-learn's trees and forests cast their
input to float32, so a finite 1e39 becomes inf inside ``predict`` and the call raises. The bound is therefore a
property of the model, found by asking the model itself (at training, recorded in its metadata; at load time for a
model saved before the contract existed): the widest float type whose extreme values the model predicts on.

Shared by bento/train.py (records it) and bento/service.py (enforces it); needs only numpy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Widest first: the first type whose extremes the model accepts is the one it computes in.
CANDIDATE_DTYPES = (np.float64, np.float32, np.float16)


class NoInputRangeError(ValueError):
    """The model refuses even float16's extremes: it is not a plain numeric model."""


def probe_input_dtype(predict: Callable[[np.ndarray], object], n_features: int) -> tuple[str, float]:
    """(dtype name, bound): the widest candidate float type whose ±max the model predicts on without error.

    Rows probed: every feature at +max, every feature at -max, and alternating signs — a model that computes in a
    narrower type overflows to ±inf on at least one of them and raises (scikit-learn: "Input X contains infinity or
    a value too large for dtype('float32')").
    """
    for dtype in CANDIDATE_DTYPES:
        bound = float(np.finfo(dtype).max)
        signs = np.ones(n_features)
        signs[1::2] = -1.0
        rows = np.vstack([np.full(n_features, bound), np.full(n_features, -bound), signs * bound])
        try:
            with np.errstate(all="ignore"):
                predict(rows.astype(np.float64))
        except (ValueError, FloatingPointError, OverflowError):
            continue
        return np.dtype(dtype).name, bound
    raise NoInputRangeError(
        "the model cannot predict on any float range (float64, float32, float16 extremes all raise): "
        "check that it takes numeric rows"
    )


def out_of_range(rows: np.ndarray, bound: float) -> list[tuple[int, int, float]]:
    """(row, feature, value) of every value whose magnitude exceeds ``bound``, row-major order."""
    bad = np.argwhere(np.abs(rows) > bound)
    return [(int(r), int(f), float(rows[r, f])) for r, f in bad]
