"""Shared by the gate's end-to-end tests: short settings, the candidate bentos, a gate runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.gate.run import run_gate
from modelops.gate.summary import Summary
from modelops.targets.local import LocalTarget
from modelops.ui import Steps
from tests.conftest import local_settings
from tests.fixtures.faulty import build_faulty

# Short runs with permissive SLOs: these tests check the gate's mechanics and decisions, not this machine's speed.
# Steps of 3 s (the first second dropped) from 4 to 32 users: enough for a 1-replica curve to reach its knee.
# min_idle_cpu 0: whether other processes on a shared test machine leave the replicas their budget is not what these
# tests are about (the rule has its own tests: tests/modelops/gate/test_capacity.py, test_judge.py); the load
# generator's own saturation stays guarded (a starved generator's run is tested in test_rejections.py).
# Loosened against the shipped thresholds, and why: min_efficiency 0.2 (shipped 0.7) and min_vertical_ratio 0.3
# (shipped 1.3) — on this shared 2-core machine, with other test sessions beside it, an interval of E(2) or of the
# vertical ratio over 2-3 rounds spans well past either threshold (docs/gate-noise.md; the gate-noise branch report
# has the measured spreads), so a shipped threshold would make the promote test inconclusive, not wrong; the rules
# themselves fail and pass on fixed inputs in test_judge.py / test_rounds.py. p95 2000 ms (shipped 250): the quick
# steps at a quarter core queue past 250 ms on a busy machine. rounds 2 (shipped 3): the least an interval needs,
# each round a fresh deploy per configuration (seconds to tens of seconds each here).
# plan_s 5 s and soak_s 15 s (shipped 30 s and 180 s): the whole gate's mechanics, not a soak's length, are what the
# tests using these settings check; test_endurance.py checks the soak's rules on real replicas. With them
# min_hours_to_memory_limit 1 h (shipped 24 h): 15 s of samples cannot bound a day's projection (a good replica's
# first seconds of creep, +38 KB [13, 52] per 1,000 requests, spanned 24 h here); the leaking candidate reaches
# its limit in 0.1 h either way. And soak_max_p95_rise 1.0 / soak_min_p95_rise_ms 100 (shipped 0.5 / 10 ms): 5 s a
# side cannot bound a 50 % rise on a shared machine (a good replica measured 56 then 60 ms, interval x0.48 to x2.18,
# -31 to +44 ms); the candidate that turns 0.5 s slower fails either way. bound_tolerance 0.15 (shipped 0): at a
# quarter core per worker the reference model's vertical ratio lay wholly above its bound 2 on a quiet machine,
# 2.11 [2.08, 2.21] over 3 rounds, every round above 2, and 2.36 [2.15, 2.56] in a CI run: as far as these runs
# show, a margin of that model at that budget rather than noise (docs/gate-noise.md); the strict rule has its own
# tests (test_rounds.py, test_judge.py).
QUICK = {
    "deploy": {"replicas": 1, "cpu_per_replica": 0.25},
    "slo": {"p95_ms": 2000, "p99_ms": 4000, "max_error_ratio": 0.001, "min_rps": 5},
    "gate": {
        "users": 8, "spawn_rate": 8, "duration_s": 3, "warmup_s": 1, "min_requests": 20, "target_rps": 40,
        "step_users": [4, 16, 32], "step_seconds": 3, "smoke_users": 2, "smoke_seconds": 2,
        "min_efficiency": 0.2, "min_vertical_ratio": 0.3, "failover_max_error_ratio": 0.02, "min_idle_cpu": 0.0,
        "rounds": 2, "plan_s": 5, "soak_s": 15, "min_hours_to_memory_limit": 1, "soak_max_p95_rise": 1.0,
        "soak_min_p95_rise_ms": 100, "bound_tolerance": 0.15,
    },
    # The shipped bake (300 s) and rollback window (600 s) are off: these tests check the gate, and a promotion here
    # retires the old pool at once; the bake and the window have their own tests (tests/modelops/test_bake.py).
    "promotion": {"bake_s": 0, "rollback_window_s": 0},
}  # fmt: skip


def quick_settings(state_dir: Path, **changes: dict):
    merged = {k: {**v, **changes.pop(k, {})} for k, v in QUICK.items()}
    return local_settings(state_dir, **merged, **changes)


def view(state: Path, **changes: dict) -> LocalTarget:
    """A deployment made in ``state``, seen with these settings (same state dir, so the same processes)."""
    return LocalTarget(quick_settings(state, **changes))


def gate(target: LocalTarget, candidate: str, reports: Path, **kwargs) -> Summary:
    return run_gate(target, target.settings, candidate, Steps(), reports=reports, **kwargs)


@pytest.fixture(scope="session")
def candidate_bento(reference_bento: str) -> str:
    """v2 of the reference model: another seed, another bento."""
    from bento import train
    from modelops import bentos

    train.save(seed=2)
    return bentos.build()


@pytest.fixture(scope="session")
def faulty_bento(tmp_path_factory, bentoml_home) -> str:
    return build_faulty(tmp_path_factory.mktemp("faulty"))
