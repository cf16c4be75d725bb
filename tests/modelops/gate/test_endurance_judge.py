"""The plan and soak rules on fixed inputs with real spread (latencies drawn from a log-normal, memory and open files
with noise and steps, as real samplers see them): each rule passes once, fails once, and says when it cannot tell."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelops.gate import endurance_judge
from modelops.gate.capacity import Limits
from modelops.gate.endurance import EnduranceRun, PlannedLoad, planned_load
from modelops.gate.endurance_judge import growing_memory, judge_plan, judge_soak
from modelops.gate.loadgen import CpuSample, LoadResult, Sends, Window, figures
from modelops.gate.summary import CapacityPlan
from modelops.monitor.resources import MB, Sample
from stacks.config import GateSettings, SloSettings, load_stack_config

GATE = GateSettings(soak_s=180, plan_s=30)
SLO = SloSettings(p95_ms=100, p99_ms=200, max_error_ratio=0.001, min_rps=10)
LIMITS = Limits(max_generator_load=0.85, min_idle_cpu=0.1, max_generator_wait=0.3)
MEMORY_LIMIT_MB = 1024.0
START = 1000.0
RATE = 100.0  # req/s offered to 2 replicas: 50 each
LOAD = PlannedLoad(rate=RATE, per_replica=RATE / 2, replicas=2, users=50, from_plan=True, source="the plan",
                   rps_per_replica_at_slo=RATE / 2 / 0.7)  # fmt: skip


def latencies(rng: np.random.Generator, n: int, median_ms: float, spread: float = 0.35) -> dict[int, int]:
    """n latencies around ``median_ms`` (log-normal: a long right tail, like a server's)."""
    drawn = np.maximum(1, np.round(rng.lognormal(math.log(median_ms), spread, n))).astype(int)
    values, counts = np.unique(drawn, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def result(
    seconds: float,
    median_ms=lambda t: 10.0,
    rate: float = RATE,
    failed_every: int = 0,
    generator_load: float = 0.2,
    start: float = START,
    seed: int = 1,
    late_every: int = 0,
    prefix: str = "soak",
) -> LoadResult:
    """``seconds`` of open-loop load at ``rate``; ``median_ms(t)`` the median latency t seconds in."""
    rng = np.random.default_rng(seed)
    per_window = int(rate / 2)
    windows, sends, cpu = [], [], []
    for i in range(int(seconds * 2)):
        t = start + i / 2
        failed = per_window // failed_every if failed_every else 0
        windows.append(Window(t=t, kind="single", ok=per_window - failed, failed=failed,
                              latencies=latencies(rng, per_window, median_ms(t - start))))  # fmt: skip
        late = per_window // late_every if late_every else 0
        sends.append(Sends(t=t, sends=per_window, late=late, behind=late, most_late_ms=30.0 if late else 0.0))
        cpu.append(CpuSample(t=t + 0.5, generator_cpu=0.1, generator_load=generator_load, machine_idle=1.0))
    end = start + seconds
    return LoadResult(url="u", prefix=prefix, out_dir="", exit_code=0, processes=1, started=start - 2,
                      measured_from=start, windows=windows, window_s=0.5, steps_started=[], cpu=cpu, golden_checks=0,
                      cpu_warning=False, failure_messages={},
                      measured=figures(windows, 0.5, cpu, start, end, sends=sends), sends=sends)  # fmt: skip


def samples(
    seconds: float,
    rss_mb=lambda requests: 300.0,
    fds=lambda requests: 40,
    fd_limit: int = 1024,
    seed: int = 2,
    replicas: tuple[str, ...] = ("green-1", "green-2"),
    rss_sd_mb: float = 0.7,
) -> list[Sample]:
    """One sample a second per replica; ``rss_mb(r)``/``fds(r)`` their level after r requests served by it, plus
    noise: RSS by about a megabyte (sd 0.7 MB by default: allocations and frees between samples; the reference
    model's replicas moved far less), descriptors with connections (±3)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(int(seconds) + 1):
        served = i * RATE / len(replicas)
        for n, name in enumerate(replicas):
            rss = rss_mb(served) + float(rng.normal(0.0, rss_sd_mb))
            open_fds = max(1, int(fds(served)) + int(rng.integers(-3, 4)))
            out.append(Sample(t=START + i, replica=name, pid=100 + n, rss_bytes=int(rss * MB), fds=open_fds + 10,
                              processes=2, most_fds=open_fds, fd_limit=fd_limit))  # fmt: skip
    return out


def soak(results: list[LoadResult], sampled: list[Sample], **changes) -> EnduranceRun:
    pids = {"green-1": 100, "green-2": 101}
    run = EnduranceRun(load=LOAD, results=results, samples=sampled, replicas_at_start=pids,
                       replicas_at_end=dict(pids), soak_s=180, plan_s=30)  # fmt: skip
    for key, value in changes.items():
        setattr(run, key, value)
    return run


def judged(run: EnduranceRun, gate: GateSettings = GATE):
    return judge_soak(run, SLO, gate, LIMITS, MEMORY_LIMIT_MB)


# ------------------------------------------------------------------------------------------------------ plan
def test_the_planned_load_is_the_plans_headroom_times_capacity_at_the_slo_times_the_deploy_replicas() -> None:
    settings = load_stack_config("local")
    load = planned_load(CapacityPlan(rps_per_replica_at_slo=700.0), settings)
    assert load.from_plan and load.replicas == settings.deploy.replicas == 2
    assert load.per_replica == pytest.approx(0.7 * 700) and load.rate == pytest.approx(2 * 0.7 * 700)
    # Users enough that each one's period is at least the p99 SLO (500 ms locally): 980 req/s x 0.5 s.
    assert load.users == 490


def test_without_a_capacity_plan_the_load_is_the_configured_production_load() -> None:
    settings = load_stack_config("local")
    load = planned_load(CapacityPlan(notes=["no horizontal"]), settings)
    assert not load.from_plan and load.rate == settings.gate.target_rps
    assert "gate.target_rps" in load.source


def plan_run(load: PlannedLoad = LOAD, **kwargs) -> EnduranceRun:
    return EnduranceRun(load=load, results=[result(30, prefix="plan", **kwargs)], plan_s=30, soak_s=180)


def test_the_plan_passes_when_its_load_is_carried_within_the_slo() -> None:
    verdict = judge_plan(plan_run(late_every=50), SLO, GATE, LIMITS)
    assert verdict.status == "pass", verdict.reason
    assert verdict.measured["offered_rps"] == RATE and verdict.measured["carried"] == pytest.approx(1.0)
    assert verdict.measured["late_sends"] == 60, "one send in 50 was late: counted and reported"
    assert verdict.p95_ms is not None and 10 < verdict.p95_ms < 100


def test_the_plan_fails_when_its_load_misses_the_latency_slo() -> None:
    verdict = judge_plan(plan_run(median_ms=lambda t: 80.0), SLO, GATE, LIMITS)
    assert verdict.status == "fail", verdict.reason
    assert "p95" in verdict.reason and "at the planned load" in verdict.reason


def test_the_plan_fails_when_requests_fail_at_its_load() -> None:
    verdict = judge_plan(plan_run(failed_every=10), SLO, GATE, LIMITS)
    assert verdict.status == "fail" and "error ratio" in verdict.reason, verdict.reason


def test_the_plan_fails_when_the_pool_does_not_carry_its_load() -> None:
    # Offered 100 req/s, 60 answered: the rest still queued when the run ended.
    verdict = judge_plan(plan_run(rate=60.0), SLO, GATE, LIMITS)
    assert verdict.status == "fail" and "carried 60 good req/s of 100" in verdict.reason, verdict.reason


def test_the_plan_is_inconclusive_without_a_capacity_plan() -> None:
    load = PlannedLoad(rate=RATE, per_replica=50, replicas=2, users=32, from_plan=False, source="gate.target_rps")
    verdict = judge_plan(plan_run(load), SLO, GATE, LIMITS)
    assert verdict.status == "inconclusive" and "no capacity plan" in verdict.reason


def test_the_plan_is_inconclusive_when_the_generator_was_the_limit() -> None:
    verdict = judge_plan(plan_run(median_ms=lambda t: 80.0, generator_load=0.95), SLO, GATE, LIMITS)
    assert verdict.status == "inconclusive" and "saturated" in verdict.reason, verdict.reason
    assert "it also measured: p95" in verdict.reason


# ---------------------------------------------------------------------------------------------- soak: memory
def test_a_replica_whose_memory_stays_flat_passes_the_soak() -> None:
    verdict = judged(soak([result(180)], samples(180)))
    assert verdict.status == "pass", verdict.reason
    assert verdict.measured["hours_to_memory_limit_low"] is None or verdict.measured["hours_to_memory_limit_low"] > 24
    assert "memory:" in verdict.reason and "open files:" in verdict.reason


def test_a_replica_that_keeps_memory_for_every_request_fails_the_soak() -> None:
    # 64 KB a request: at 50 req/s a replica grows 11 GB an hour.
    leak = samples(180, rss_mb=lambda served: 300.0 + served * 64 / 1024)
    verdict = judged(soak([result(180)], leak))
    assert verdict.status == "fail", verdict.reason
    assert "memory:" in verdict.reason and "reaches its limit within 24 h" in verdict.reason
    assert verdict.measured["hours_to_memory_limit"] < 1
    assert verdict.measured["rss_growth_kb_per_1000"] == pytest.approx(64 * 1000, rel=0.05)


def test_memory_growth_whose_interval_spans_the_horizon_is_inconclusive() -> None:
    # 1.5 MB over 9,000 requests a replica, under about 1 MB of noise: the point estimate says about a day to the
    # limit, and the interval includes both much less and much more.
    creep = samples(180, rss_mb=lambda served: 300.0 + served * 0.168 / 1000)
    verdict = judged(soak([result(180)], creep))
    assert verdict.status == "inconclusive", verdict.reason
    assert "the interval spans 24 h" in verdict.reason
    low, high = verdict.measured["hours_to_memory_limit_low"], verdict.measured["hours_to_memory_limit_high"]
    assert low is not None and low < 24 and (high is None or high > 24), verdict.measured


def test_a_longer_horizon_turns_a_slow_leak_into_a_failure() -> None:
    # 1 MB per 1,000 requests: about 4 h to the limit at 50 req/s; a 24-h horizon fails it, a 1-h one passes it.
    slow = samples(180, rss_mb=lambda served: 300.0 + served / 1000)
    assert judged(soak([result(180)], slow)).status == "fail"
    assert judged(soak([result(180)], slow), GateSettings(min_hours_to_memory_limit=1)).status == "pass"


def test_memory_that_steps_up_once_and_stays_is_a_level_shift_not_a_leak() -> None:
    # 100 KB of noise (the reference model's RSS moved less than that over minutes).
    # +40 MB at once 80 s in (more requests in flight after a slowdown): the robust slope hardly sees a single step.
    step = samples(180, rss_mb=lambda served: 300.0 if served < 4000 else 340.0, rss_sd_mb=0.1)
    assert judged(soak([result(180)], step)).status == "pass"
    # +100 MB over the first two minutes (a cache filling to its bound), flat for the last: a fit over the last two
    # thirds alone would call it a leak; over the last third it has stopped.
    filling = samples(180, rss_mb=lambda served: 300.0 + 100.0 * min(served, 6000) / 6000, rss_sd_mb=0.1)
    verdict = judged(soak([result(180)], filling))
    assert verdict.status == "pass", verdict.reason
    assert "levelled off" in verdict.reason
    # The same rise, still going at the end, is a leak.
    ramp = samples(180, rss_mb=lambda served: 300.0 + 100.0 * served / 6000, rss_sd_mb=0.1)
    assert judged(soak([result(180)], ramp)).status == "fail"


def test_growth_that_more_requests_in_flight_can_hold_is_not_called_a_leak() -> None:
    # Latency (so requests in flight) rises across the soak, from 1.0 to 2.7 a replica in its first and last third;
    # memory rises 3 MB with it, less than 1.7 more requests in flight can hold (2 x the 1-MB body limit each): the
    # trend cannot be told from the load's own change. The slowdown rule judges what happened.
    slowing = result(180, median_ms=lambda t: 10.0 + 50.0 * t / 180)
    rising = samples(180, rss_mb=lambda served: 300.0 + 3 * served / 9000, rss_sd_mb=0.1)
    verdict = judged(soak([slowing], rising))
    assert "grew with its load, not shown to be a leak (requests in flight rose from 1.0 to 2.7" in verdict.reason, (
        verdict.reason
    )
    assert verdict.status == "fail" and "slowed down while serving" in verdict.reason
    # The same growth at a steady load is a leak...
    assert "reaches its limit" in judged(soak([result(180)], rising)).reason
    # ...and so is one that outgrows what the new requests in flight can hold (64 KB a request: 280 MB).
    leak = samples(180, rss_mb=lambda served: 300.0 + served * 64 / 1024)
    assert "memory: green-1" in judged(soak([slowing], leak)).reason.split("reaches its limit")[0]


def test_open_files_that_keep_growing_fail_the_soak() -> None:
    # One descriptor every 50 requests, against a 1,024 limit: an hour at most.
    leak = samples(180, fds=lambda served: 40 + served / 50)
    verdict = judged(soak([result(180)], leak))
    assert verdict.status == "fail" and "open files:" in verdict.reason, verdict.reason
    assert verdict.measured["fd_growth_per_1000"] == pytest.approx(20, rel=0.1)


def test_a_replica_lost_during_the_soak_fails_it() -> None:
    verdict = judged(soak([result(180)], samples(180), replicas_at_end={"green-1": 100, "green-2": 999}))
    assert verdict.status == "fail" and "green-2 (pid 101)" in verdict.reason, verdict.reason


def test_memory_not_measured_on_a_target_leaves_the_soak_inconclusive() -> None:
    run = soak([result(180)], [], resources_note="the kind target's replicas are not processes of this machine")
    verdict = judged(run)
    assert verdict.status == "inconclusive" and "not measured" in verdict.reason


# --------------------------------------------------------------------------------------------- soak: latency
def test_a_candidate_that_slows_down_while_serving_fails_the_soak() -> None:
    # 8 ms median for two minutes, then 40 ms: within the SLO (100 ms) all along, 5x slower at the end.
    tired = result(180, median_ms=lambda t: 8.0 if t < 120 else 40.0)
    verdict = judged(soak([tired], samples(180)))
    assert verdict.status == "fail", verdict.reason
    assert "slowed down while serving" in verdict.reason
    m = verdict.measured
    assert m["p95_ratio_low"] > 1.5 and m["p95_last_ms"] - m["p95_first_ms"] > 10, m


def test_a_steady_candidate_passes_the_first_versus_last_minute_comparison() -> None:
    verdict = judged(soak([result(180, median_ms=lambda t: 12.0)], samples(180)))
    assert verdict.status == "pass", verdict.reason
    assert verdict.measured["p95_ratio_low"] < 1 < verdict.measured["p95_ratio_high"], verdict.measured


def test_a_rise_below_the_noise_floor_in_ms_is_not_a_slowdown() -> None:
    # 3 -> 5 ms: x1.7, more than the 50 % tolerance, but 2 ms is noise on a shared machine.
    run = soak([result(180, median_ms=lambda t: 3.0 if t < 90 else 5.0, seed=4)], samples(180))
    verdict = judged(run)
    assert verdict.status == "pass", verdict.reason
    assert verdict.measured["p95_ratio"] > 1.5


def test_a_rise_the_spread_cannot_place_is_inconclusive() -> None:
    # A few requests a second with a wide spread: the first and last minute's p95 cannot be told apart from x1.5.
    noisy = result(180, median_ms=lambda t: 30.0 if t < 90 else 45.0, rate=8.0, seed=5)
    verdict = judged(soak([noisy], samples(180)))
    assert verdict.status == "inconclusive", verdict.reason
    assert "the interval spans the limits" in verdict.reason


def test_a_candidate_beyond_the_slo_in_the_last_minute_fails_the_soak() -> None:
    verdict = judged(soak([result(180, median_ms=lambda t: 60.0 if t < 120 else 150.0)], samples(180)))
    assert verdict.status == "fail" and "in the last 60 s" in verdict.reason, verdict.reason


def test_latency_is_not_judged_when_the_generator_was_the_limit() -> None:
    tired = result(180, median_ms=lambda t: 8.0 if t < 120 else 40.0, generator_load=0.95)
    verdict = judged(soak([tired], samples(180)))
    assert verdict.status == "inconclusive" and "latency not judged" in verdict.reason, verdict.reason


def test_the_soak_spans_the_plans_run_and_its_own() -> None:
    # The plan's 30 s, a gap while Locust starts again, the soak's 150 s: one timeline, first minute in the plan.
    plan = result(30, median_ms=lambda t: 8.0, prefix="plan")
    rest = result(150, median_ms=lambda t: 8.0 if t < 90 else 40.0, start=START + 33, seed=3)
    verdict = judged(soak([plan, rest], samples(183)))
    assert verdict.status == "fail" and "slowed down" in verdict.reason, verdict.reason
    assert verdict.measured["seconds"] == pytest.approx(183, abs=1)


# -------------------------------------------------------------------------------------- robustness: memory
def test_robustness_flags_a_replica_whose_memory_keeps_growing() -> None:
    leak = samples(20, rss_mb=lambda served: 300.0 + served * 64 / 1024, replicas=("green-1",))
    assert "green-1" in growing_memory(leak, [result(20)], GATE, MEMORY_LIMIT_MB)


def test_robustness_does_not_flag_a_flat_replica() -> None:
    flat = samples(20, replicas=("green-1",))
    assert growing_memory(flat, [result(20)], GATE, MEMORY_LIMIT_MB) == ""


def test_the_bootstrap_interval_is_the_same_every_time() -> None:
    run = soak([result(180, median_ms=lambda t: 12.0)], samples(180))
    first = endurance_judge.degradation(endurance_judge.span(run.results), 60)
    again = endurance_judge.degradation(endurance_judge.span(run.results), 60)
    assert first == again


def robustness(memory: list[Sample]):
    from modelops.gate import judge
    from modelops.gate.fuzz import FuzzResult
    from modelops.gate.suites import RobustnessRun

    good = result(20, rate=100.0)
    hostile = [Window(t=START + i / 2, kind="hostile", ok=5, failed=0, latencies={3: 5}) for i in range(40)]
    mixed = LoadResult(**{**good.__dict__, "windows": good.windows + hostile})
    fuzz = FuzzResult(url="u", command=["schemathesis"], exit_code=0, cases=500, server_errors=0, failures=0,
                      first_failures=[], duration_s=10, report="", complete=True)  # fmt: skip
    run = RobustnessRun(result=mixed, fuzz=fuzz, fuzz_error=None, lost=[], memory=memory)
    return judge.judge_robustness(run, GateSettings(target_rps=100), MEMORY_LIMIT_MB)


def test_robustness_fails_a_replica_whose_memory_keeps_growing_though_its_pid_stayed() -> None:
    leak = samples(20, rss_mb=lambda served: 300.0 + served * 64 / 1024, replicas=("green-1",))
    verdict = robustness(leak)
    assert verdict.status == "fail" and "memory kept growing: memory: green-1" in verdict.reason, verdict.reason


def test_robustness_passes_replicas_whose_memory_stays_flat() -> None:
    verdict = robustness(samples(20, replicas=("green-1",), rss_sd_mb=0.1))
    assert verdict.status == "pass", verdict.reason


def test_a_short_soak_still_compares_its_first_and_last_seconds_in_enough_blocks() -> None:
    # 15 s: 5 s a side, in half-second blocks (10 a side), not 2-s ones (2 or 3 a side, an interval that says nothing).
    steady = endurance_judge.span([result(15, median_ms=lambda t: 12.0, seed=6)])
    slowed = endurance_judge.degradation(steady, 5.0)
    assert endurance_judge._slowing(slowed, GATE)[0] == "pass", slowed
    assert slowed.ratio_high is not None and slowed.ratio_high < 1.5
