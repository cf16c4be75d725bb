"""Thread pools that follow the CPU budget: one function for the local target, the kind Deployment and the aws boot
script.

OpenMP, MKL, OpenBLAS and numexpr start one thread per *visible* core, not per CPU quota: a worker held to half a
core that runs a HistGradientBoosting model with 2+ threads spends its budget on contention (measured: 33 req/s with
threads unset vs 109 req/s with OMP_NUM_THREADS=1, same bento, same ½-core budget). Every replica's environment
therefore sets the thread count from its budget per worker. Importing this module needs no Pulumi engine.
"""

from __future__ import annotations

import math

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def thread_count(cpu_per_worker: float) -> int:
    """Threads per worker: the whole cores of its budget, at least one."""
    return max(1, math.floor(cpu_per_worker + 1e-9))


def thread_env(cpu_per_worker: float) -> dict[str, str]:
    """The environment variables that hold a worker's native thread pools to its CPU budget."""
    threads = str(thread_count(cpu_per_worker))
    return {name: threads for name in THREAD_VARIABLES}
