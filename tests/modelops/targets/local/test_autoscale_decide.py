"""The autoscaler's rule on fixed inputs: the HPA formula, tolerance, bounds, and stabilisation windows."""

from __future__ import annotations

import pytest

from modelops.targets.local.autoscale import Policy, Recommendation, decide

POLICY = Policy(metric="in_flight", target=4.0, min_replicas=1, max_replicas=4, tolerance=0.1,
                scale_up_window_s=0.0, scale_down_window_s=10.0)  # fmt: skip


@pytest.mark.parametrize(
    ("current", "metric", "desired"),
    [
        (1, 8.0, 2),  # ceil(1 x 8/4)
        (2, 5.0, 3),  # ceil(2 x 1.25)
        (1, 4.3, 1),  # 7.5 % above target: within the 10 % tolerance
        (2, 3.7, 2),  # 7.5 % below: within the tolerance
        (1, 40.0, 4),  # ceil(10) clamped to max_replicas
    ],
)
def test_scale_out_follows_the_hpa_formula_within_tolerance_and_bounds(current, metric, desired) -> None:
    decision = decide(current, metric, now=100.0, policy=POLICY)
    assert decision.desired == desired, decision.reason


def test_clamping_to_max_says_so() -> None:
    decision = decide(1, 40.0, now=0.0, policy=POLICY)
    assert "clamped to max_replicas 4" in decision.reason


def test_scale_in_waits_for_the_highest_recommendation_of_the_down_window() -> None:
    # 3 replicas recommended 5 s ago; now the load fell (1 in flight each over 3: ceil(3 x 0.25) = 1).
    history = (Recommendation(95.0, 3),)
    held = decide(3, 1.0, now=100.0, policy=POLICY, history=history)
    assert held.desired == 3 and "scale-in held" in held.reason
    # 11 s after that recommendation it has left the 10-s window: scale in.
    released = decide(3, 1.0, now=106.0, policy=POLICY, history=held.recommendations)
    assert released.desired == 1, released.reason


def test_scale_in_steps_down_to_the_highest_recent_recommendation_not_further() -> None:
    history = (Recommendation(95.0, 2),)
    decision = decide(3, 1.0, now=100.0, policy=POLICY, history=history)
    assert decision.desired == 2


def test_scale_out_is_immediate_with_a_zero_up_window_even_after_low_recommendations() -> None:
    history = (Recommendation(99.0, 1), Recommendation(99.5, 1))
    assert decide(1, 12.0, now=100.0, policy=POLICY, history=history).desired == 3


def test_an_up_window_takes_the_lowest_recent_recommendation() -> None:
    cautious = Policy(**{**POLICY.__dict__, "scale_up_window_s": 5.0})
    history = (Recommendation(97.0, 2),)
    decision = decide(1, 16.0, now=100.0, policy=cautious, history=history)
    assert decision.desired == 2 and "scale-out held at 2" in decision.reason


def test_below_min_replicas_scales_up_to_the_floor_even_when_idle() -> None:
    floor = Policy(**{**POLICY.__dict__, "min_replicas": 2})
    assert decide(1, 0.0, now=0.0, policy=floor).desired == 2


def test_no_metric_keeps_the_count_within_bounds() -> None:
    assert decide(3, None, now=0.0, policy=POLICY).desired == 3
    assert decide(6, None, now=0.0, policy=POLICY).desired == 4


def test_windows_forget_recommendations_older_than_the_longest_window() -> None:
    history = (Recommendation(0.0, 4), Recommendation(95.0, 2))
    decision = decide(2, 4.0, now=100.0, policy=POLICY, history=history)
    assert [r.t for r in decision.recommendations] == [95.0, 100.0]


def test_cpu_metric_uses_the_same_formula_on_percent_of_budget() -> None:
    cpu = Policy(metric="cpu", target=70.0, min_replicas=1, max_replicas=5)
    decision = decide(2, 98.0, now=0.0, policy=cpu)
    assert decision.desired == 3 and "% CPU" in decision.reason
