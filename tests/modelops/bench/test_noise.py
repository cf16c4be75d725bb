"""The bench's noise rules on fixed numbers: each verdict shown reached and not reached."""

from __future__ import annotations

import pytest

from modelops.bench.noise import Goal, compare, judge, spread

AT_LEAST_90 = Goal.at_least(0.90)
HAPROXY = Goal.at_least(0.97)  # overhead <= 3 %: via HAProxy / direct >= 0.97


def test_a_ratio_whose_whole_spread_clears_the_goal_is_met() -> None:
    result = compare([1000, 1010, 990], [1020, 1000, 1005], AT_LEAST_90)
    assert result.verdict == "met", result
    assert result.low >= 0.90 and result.low <= result.value <= result.high


def test_a_ratio_whose_whole_spread_is_below_the_goal_is_missed() -> None:
    result = compare([800, 810, 790], [1020, 1000, 1005], AT_LEAST_90)
    assert result.verdict == "missed", result
    assert result.high < 0.90


def test_a_ratio_whose_spread_straddles_the_goal_is_inconclusive_not_met() -> None:
    # The case: direct 300-334 req/s, through HAProxy 309-380; the point estimate alone would read "met".
    result = compare([380, 309, 330], [300, 334, 310], HAPROXY)
    assert result.verdict == "inconclusive", result
    assert result.value >= 0.97, "the median alone would have said met"
    assert result.low < 0.97 < result.high


def test_a_single_round_is_inconclusive_however_clear_it_looks() -> None:
    assert compare([2000], [1000], AT_LEAST_90).verdict == "inconclusive"
    assert compare([2000, 2001], [1000, 1000], AT_LEAST_90).verdict == "met"


def test_at_most_goals_are_met_below_and_missed_above() -> None:
    p95 = Goal.at_most(100)
    assert spread([60, 72, 65], p95).verdict == "met"
    assert spread([120, 130, 125], p95).verdict == "missed"
    assert spread([90, 130, 95], p95).verdict == "inconclusive"


def test_the_interval_is_the_rounds_min_max_with_few_rounds_and_narrows_with_more() -> None:
    few = spread([0.95, 1.00, 1.05])
    assert (few.low, few.high) == (0.95, 1.05)
    many = spread([0.95, 1.00, 1.05, 0.99, 1.01, 1.00, 0.98, 1.02, 1.00, 1.01])
    assert 0.95 < many.low <= many.value <= many.high < 1.05, many


def test_more_rounds_can_turn_inconclusive_into_met() -> None:
    goal = Goal.at_least(0.97)
    rounds = [0.96, 1.00, 1.01]
    assert spread(rounds, goal).verdict == "inconclusive"
    more = [*rounds, 1.00, 0.99, 1.01, 1.00, 0.995, 1.005, 1.0, 0.99, 1.01]
    assert spread(more, goal).verdict == "met"


def test_the_same_rounds_always_give_the_same_interval() -> None:
    values = [0.9, 1.1, 1.0, 0.95, 1.05, 1.02, 0.98]
    assert spread(values).to_dict() == spread(values).to_dict()


def test_without_a_goal_there_is_a_spread_but_no_verdict() -> None:
    result = compare([900, 950], [100, 110])
    assert result.verdict is None and result.conclusive
    assert result.rounds == 2 and result.samples == (9.0, 950 / 110)


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [(0.91, 0.99, "met"), (0.80, 0.89, "missed"), (0.85, 0.95, "inconclusive"), (0.90, 0.90, "met")],
)
def test_judge_puts_the_threshold_against_the_interval(low, high, verdict) -> None:
    assert judge(low, high, AT_LEAST_90, rounds=3) == verdict


def test_unpaired_rounds_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="pass only the rounds in which both were measured"):
        compare([1, 2, 3], [1, 2])


def test_a_zero_denominator_is_refused() -> None:
    with pytest.raises(ValueError, match="denominator must be positive"):
        compare([1, 2], [1, 0])
