"""The compiled form of a tree ensemble, run by ONNX Runtime: the serving side of the build's acceleration step.

``modelops build`` converts the model (skl2onnx for scikit-learn, onnxmltools for XGBoost and LightGBM), proves the
compiled model equivalent on held-out rows, measures both and keeps the compiled one only when it is faster
(modelops/acceleration.py). The file travels in the model's directory (bento/served.py: ACCELERATED_FILE); this
module loads it with one session per worker.

Threads: one intra-op thread unless OMP_NUM_THREADS says more — a replica's CPU budget is its workers (the
deployment sets OMP_NUM_THREADS from the budget, stacks/threads.py), and ONNX Runtime would otherwise start one
thread per visible core. Providers: ONNX Runtime's CUDA provider when the installed onnxruntime has it (the
``onnxruntime-gpu`` wheel on a GPU replica, deploy.accelerator: nvidia), else the CPU provider.

Imported inside the bento only when the build chose ONNX Runtime: needs numpy and onnxruntime.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
CLASSIFICATION = "classification"  # bento/served.py's task name (not imported: served imports this module lazily)


def session(path: Path | str, threads: int | None = None):
    """An ONNX Runtime session for ``path``, sized to the worker's CPU budget."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or max(1, int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    available = ort.get_available_providers()
    providers = [p for p in (CUDA, CPU) if p in available]
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def onnx_predict(
    path: Path | str, task: str, n_classes: int, threads: int | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """The compiled model as the served predict: probabilities (rows, classes) or values (rows,), float64.

    The converters emit (label, probabilities) for a classifier and (variable,) for a regressor; the input is
    float32 (the trees compare in float32, as scikit-learn's, XGBoost's and LightGBM's do)."""
    run = session(path, threads)
    name = run.get_inputs()[0].name
    outputs = run.get_outputs()
    wanted = outputs[1].name if task == CLASSIFICATION else outputs[0].name

    def predict(rows: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # the input contract bounds values to float32's range before this
            x = np.asarray(rows, dtype=np.float32)
        (result,) = run.run([wanted], {name: x})
        result = np.asarray(result, dtype=np.float64)
        if task == CLASSIFICATION:
            if result.shape != (len(rows), n_classes):
                raise ValueError(
                    f"the compiled model returned shape {result.shape}, expected ({len(rows)}, {n_classes})"
                )
            return result
        return result.reshape(len(rows))

    return predict
