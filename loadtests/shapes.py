"""Load shapes for Locust, configured through environment variables so they work headless and from modelops.

StepLoad   users rise in equal steps and hold each step; the step where req/s stops growing is the knee
           (MODELOPS_STEP_USERS=8,16,32,64  MODELOPS_STEP_SECONDS=5  MODELOPS_STEP_WARMUP=0)
Spike      a base load, a spike, and back (MODELOPS_SPIKE=base,peak,seconds_each)
Ramp       phases of users, each held its own seconds (MODELOPS_RAMP_USERS=2,16,2  MODELOPS_RAMP_SECONDS=5,30,30):
           past one replica's capacity and back, for the gate's autoscale suite

Select one with MODELOPS_SHAPE=StepLoad (loadtests/locustfile.py imports it then). Run alone:
    MODELOPS_SHAPE=StepLoad locust -f loadtests/locustfile.py -H URL --headless
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from locust import LoadTestShape

# Called with (epoch seconds, users) when a step begins: the locustfile records when each step started, so that a
# step's figures are computed over its own window.
STEP_LISTENERS: list[Callable[[float, int], None]] = []


def step_plan(users: list[int], seconds: float) -> list[tuple[float, int]]:
    """[(end_time, users)] for each step."""
    return [((i + 1) * seconds, u) for i, u in enumerate(users)]


def _ints(name: str, default: str) -> list[int]:
    return [int(v) for v in os.environ.get(name, default).split(",") if v.strip()]


class StepLoad(LoadTestShape):
    """Hold each user count for MODELOPS_STEP_SECONDS, then stop. MODELOPS_STEP_WARMUP seconds at the first step's
    users come first and belong to no step: a replica started just before the load answers its first requests
    slowly (lazy imports, caches, the first model calls), which would otherwise be charged to the first step."""

    def __init__(self) -> None:
        super().__init__()
        self.warmup = float(os.environ.get("MODELOPS_STEP_WARMUP", "0"))
        self.plan = step_plan(
            _ints("MODELOPS_STEP_USERS", "8,16,32,64"), float(os.environ.get("MODELOPS_STEP_SECONDS", "5"))
        )
        self._current = -1

    def tick(self) -> tuple[int, float] | None:
        now = self.get_run_time() - self.warmup
        if now < 0:
            users = self.plan[0][1]
            return users, float(users)
        for index, (end, users) in enumerate(self.plan):
            if now < end:
                if index != self._current:
                    self._current = index
                    for listener in STEP_LISTENERS:
                        listener(time.time(), users)
                return users, float(users)  # spawn a whole step at once: steps are short
        return None


class Spike(LoadTestShape):
    """base users, then peak users, then base again, each for the same number of seconds."""

    def __init__(self) -> None:
        super().__init__()
        base, peak, seconds = _ints("MODELOPS_SPIKE", "8,64,10")
        self.plan = step_plan([base, peak, base], float(seconds))

    def tick(self) -> tuple[int, float] | None:
        now = self.get_run_time()
        for end, users in self.plan:
            if now < end:
                return users, float(max(users, 1))
        return None


class Ramp(LoadTestShape):
    """MODELOPS_RAMP_USERS[i] users for MODELOPS_RAMP_SECONDS[i] seconds, phase after phase, then stop. Each phase
    start is reported to STEP_LISTENERS, so the gate knows when the peak began."""

    def __init__(self) -> None:
        super().__init__()
        users = _ints("MODELOPS_RAMP_USERS", "2,16,2")
        seconds = [float(v) for v in os.environ.get("MODELOPS_RAMP_SECONDS", "5,30,30").split(",") if v.strip()]
        if len(users) != len(seconds):
            raise ValueError(f"MODELOPS_RAMP_USERS {users} and MODELOPS_RAMP_SECONDS {seconds} need one value each")
        ends = [sum(seconds[: i + 1]) for i in range(len(seconds))]
        self.plan = list(zip(ends, users, strict=True))
        self._current = -1

    def tick(self) -> tuple[int, float] | None:
        now = self.get_run_time()
        for index, (end, users) in enumerate(self.plan):
            if now < end:
                if index != self._current:
                    self._current = index
                    for listener in STEP_LISTENERS:
                        listener(time.time(), users)
                return users, float(users)  # the whole phase at once: the load jumps past a replica's capacity
        return None
