"""Each chart of the gate report draws what the summary holds — checked on the drawn artists against the known
figures of a run made by the judge (tests/modelops/gate/report_runs.py), in milliseconds."""

from __future__ import annotations

import re

import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from modelops.gate import charts, judge
from modelops.gate.report import scaling_views
from modelops.gate.summary import Step, SuiteResult
from tests.modelops.gate import report_runs as runs

SLO_P95 = runs.SLO.p95_ms  # 250 ms


@pytest.fixture(scope="module")
def summary():
    return runs.full_summary()


def line(ax: Axes, gid: str | None = None, label: str | None = None) -> Line2D:
    found = [
        x for x in ax.get_lines() if (gid is None or x.get_gid() == gid) and (label is None or x.get_label() == label)
    ]
    assert len(found) == 1, f"one line {gid or label!r} in {ax.get_title()!r}: {[x.get_gid() for x in ax.get_lines()]}"
    return found[0]


def xy(drawn: Line2D) -> list[tuple[float, float]]:
    return list(zip(map(float, drawn.get_xdata()), map(float, drawn.get_ydata()), strict=True))  # type: ignore[arg-type]


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]  # type: ignore[attr-defined]


def hline_levels(ax: Axes) -> set[float]:
    """The heights of the short horizontal segments (hlines) drawn in ``ax``."""
    segments = [seg for c in ax.collections if isinstance(c, LineCollection) for seg in c.get_segments()]
    return {round(float(seg[0][1]), 6) for seg in segments if len(seg) == 2 and seg[0][1] == seg[1][1]}


# ---------------------------------------------------------------------------------------- p95 against req/s
def test_the_p95_chart_fills_the_steps_that_met_the_slo_and_leaves_the_rest_hollow_under_the_slo_line(summary):
    fig = charts.p95_against_rps(list(summary.suites.items()), SLO_P95)
    horizontal, vertical = fig.axes[:2]
    assert horizontal.get_title().startswith("horizontal") and vertical.get_title().startswith("vertical")
    met, beyond = line(horizontal, "met replicas=1"), line(horizontal, "beyond replicas=1")
    assert xy(met) == [(r, p) for _, r, p in runs.HORIZONTAL_1[:3]], "the judge's within_slo: 3 steps met the SLO"
    assert xy(beyond) == [(250.0, 400.0)], "64 users broke the 250-ms SLO"
    assert met.get_markerfacecolor() != "white" and beyond.get_markerfacecolor() == "white", "filled vs hollow"
    assert xy(line(horizontal, "distorted replicas=2")) == [(490.0, 120.0)], "the saturated generator's step"
    assert xy(line(vertical, "beyond workers=1")) == [(150.0, 300.0)]
    slo = line(horizontal, label=f"p95 SLO {SLO_P95:g} ms")
    assert set(slo.get_ydata()) == {SLO_P95}  # type: ignore[arg-type]
    assert horizontal.get_xlabel() == "good req/s (successful answers per second)"
    assert fig.axes[0].get_ylabel() == "p95 latency (ms)"


def test_the_p95_chart_draws_no_step_as_met_when_none_met_the_slo_and_sorts_none_for_an_older_summary() -> None:
    steps = {"replicas=1": [runs.step(8, 50.0, 300.0), runs.step(16, 60.0, 600.0)]}
    failed = SuiteResult(status="fail", reason="no step met the SLO", steps=steps, within_slo={"replicas=1": 0})
    ax = charts.p95_against_rps([("horizontal", failed)], SLO_P95).axes[0]
    assert xy(line(ax, "met replicas=1")) == [] and len(xy(line(ax, "beyond replicas=1"))) == 2
    older = SuiteResult(status="pass", reason="ok", steps=steps)  # written before within_slo existed
    ax = charts.p95_against_rps([("horizontal", older)], SLO_P95).axes[0]
    assert len(xy(line(ax, "unjudged replicas=1"))) == 2
    assert not [x for x in ax.get_lines() if str(x.get_gid()).startswith(("met", "beyond"))]


@pytest.mark.parametrize(
    ("p95s", "slo", "scale"),
    [((40.0, 5000.0), 250.0, "log"), ((5.0, 12.0), 2000.0, "log"), ((20.0, 400.0), 250.0, "linear")],
    ids=["a-step-far-past-the-slo", "an-slo-far-above-every-step", "steps-around-the-slo"],
)
def test_the_p95_axis_turns_logarithmic_only_when_a_linear_one_would_squeeze_the_steps(p95s, slo, scale) -> None:
    steps = {"replicas=1": [runs.step(8, 50.0, p95s[0]), runs.step(16, 60.0, p95s[1])]}
    suite = SuiteResult(status="pass", reason="ok", steps=steps, within_slo={"replicas=1": 1})
    ax = charts.p95_against_rps([("horizontal", suite)], slo).axes[0]
    assert ax.get_yscale() == scale and ("log scale" in ax.get_ylabel()) == (scale == "log")


# ---------------------------------------------------------------------------------------------- scaling
def test_the_scaling_chart_draws_every_round_at_the_compared_step_and_each_ratio_with_interval_and_bound(summary):
    fig = charts.scaling(scaling_views(summary))
    h_rounds, v_rounds, h_ratio, v_ratio = fig.axes
    # Compared at 32 users per replica: 1 replica at 32 users, 2 replicas at 64, in each round.
    expected = [(runs.HORIZONTAL_1[2][1], runs.HORIZONTAL_2[2][1])] + [(r1, r2) for (r1, _), (r2, _), _ in runs.LATER]
    for number, (one, two) in enumerate(expected, start=1):
        assert xy(line(h_rounds, label=f"round {number}")) == [(1.0, one), (2.0, two)], f"round {number}"
    assert xy(line(v_rounds, label="round 2")) == [(1.0, 125.0), (2.0, 240.0)]
    cases = [(h_ratio, "horizontal", "efficiency_2", 1.0, runs.GATE.min_efficiency),
             (v_ratio, "vertical", "ratio", 2.0, runs.GATE.min_vertical_ratio)]  # fmt: skip
    for ax, suite, key, bound, threshold in cases:
        m = summary.suites[suite].measured
        assert f"{m[key]:.2f} [{m[key + '_low']:.2f}, {m[key + '_high']:.2f}]" in texts(fig), suite
        assert {bound, threshold} <= hline_levels(ax), f"{suite}: the physical bound and the threshold"
        assert f"threshold {threshold:g}" in ax.get_legend_handles_labels()[1]
        assert "ratio" in ax.get_ylabel() and ax.get_xlabel().startswith(("replicas", "workers"))


@pytest.mark.parametrize(("compared", "value", "first"), [(32, 2, 1), (16, 3, 1), (8, 4, 2), (5, 3, 2), (1, 1, 4)])
def test_the_compared_step_of_a_configuration_is_found_at_the_users_the_suites_gave_it(compared, value, first) -> None:
    assert charts.users_at(compared, value, first) == judge._users(compared, value, first)


def test_a_round_whose_compared_step_was_distorted_is_left_out_of_the_scaling_chart(summary) -> None:
    view = scaling_views(summary)[0]
    rounds = [dict(r) for r in view.result.rounds]
    rounds[1]["replicas=2"] = [runs.step(64, 455.0, 105.0, distorted=runs.DISTORTED)]
    edited = view.result.model_copy(update={"rounds": rounds})
    seen = charts.compared_rps(charts.ScalingView(view.suite, view.unit, view.values, edited, view.ratios,
                                                  view.threshold, view.figure))  # fmt: skip
    assert seen[1] == {1: 235.0} and seen[2] == {1: 245.0, 2: 470.0}


# ----------------------------------------------------------------------------------- candidate against live
def test_the_regression_chart_sets_candidate_and_live_side_by_side_in_every_round(summary):
    regression = summary.suites["regression"]
    fig = charts.regression(regression, SLO_P95)
    rps_ax, p95_ax, ratio_ax = fig.axes
    heights = [round(p.get_height(), 6) for p in rps_ax.patches]
    assert heights[:3] == [240.0, 235.0, 245.0], "the candidate's 1 replica at 32 users, rounds 1-3"
    assert heights[3:] == [runs.LIVE_1[1], 250.0, 240.0], "the live version beside it"
    assert [round(p.get_height(), 6) for p in p95_ax.patches][3:] == [runs.LIVE_1[2], 80.0, 92.0]
    m = regression.measured
    assert f"{m['capacity_ratio']:.2f} [{m['capacity_ratio_low']:.2f}, {m['capacity_ratio_high']:.2f}]" in texts(fig)
    assert {0.8, 1.3} <= hline_levels(ratio_ax), "limits: 1 - max_rps_drop, 1 + max_p95_rise"
    assert ratio_ax.get_ylabel() == "ratio candidate / live (x)" and rps_ax.get_ylabel() == "good req/s"


def test_the_quality_chart_shows_each_versions_accuracy_with_its_interval_and_the_paired_difference(summary):
    quality = summary.suites["quality"]
    fig = charts.quality_sets(quality)
    accuracy_ax, delta_ax = fig.axes
    ticks = [t.get_text() for t in accuracy_ax.get_xticklabels()]
    assert ticks == ["candidate's held-out rows\n(45 rows)", "live version's held-out rows\n(45 rows)"]
    drawn = sorted(round(float(y), 6) for x in accuracy_ax.get_lines() for y in x.get_ydata()  # type: ignore[union-attr]
                   if x.get_marker() == "o")  # fmt: skip
    m = quality.measured
    want = [m[f"{s}.paired.{who}_accuracy"] for s in ("candidate_holdout", "live_holdout")
            for who in ("candidate", "live")]  # fmt: skip
    assert drawn == sorted(round(100 * v, 6) for v in want)
    margin = quality.thresholds["max_accuracy_drop"]
    assert set(line(delta_ax, label=f"margin -{100 * margin:g} points").get_ydata()) == {-100 * margin}  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------------- canary
def test_the_canary_timeline_draws_each_step_its_share_figures_and_p_values_against_alpha() -> None:
    outcome = runs.canary_outcome(rolled_back=True)
    fig = charts.canary(outcome.steps, runs.SETTINGS.canary.alpha, runs.SETTINGS.canary.max_error_ratio)
    share_ax, p95_ax, _, p_ax = fig.axes
    shown = texts(fig)
    assert any(t.startswith("10 %: passed") for t in shown) and any(t.startswith("50 %: FAILED") for t in shown)
    candidate = xy(line(p95_ax, label="candidate"))
    assert [y for _, y in candidate] == [s.measured["candidate_p95_ms"] for s in outcome.steps]
    assert set(line(p_ax, label=f"alpha {runs.SETTINGS.canary.alpha:g} (below: significant)").get_ydata()) == {0.01}  # type: ignore[arg-type]
    latency_p = outcome.steps[1].measured["latency_p"]
    assert latency_p < charts.P_FLOOR and p_ax.get_ylim()[0] < charts.P_FLOOR, "a tiny p-value stays on the axis"
    assert f"p = {latency_p:.1e}" in texts(fig), "drawn at the axis' floor, labelled with its value"
    assert p_ax.get_xlabel() == "seconds since the first shift" and share_ax.get_ylabel() == "candidate's share (%)"


def test_the_autoscale_chart_steps_the_pool_through_the_ramp_beside_the_load() -> None:
    suite = runs.autoscale_suite()
    fig = charts.autoscale(suite)
    load, count = fig.axes
    pool = line(count, label="replicas in the pool")
    assert [float(y) for y in pool.get_ydata()] == [float(p["replicas"]) for p in suite.timeline]  # type: ignore[union-attr]
    assert load.get_ylabel() == "good req/s" and count.get_ylabel() == "replicas"


# ------------------------------------------------------------------------------------------ absent parts, SVG
def test_every_chart_draws_nothing_when_its_part_of_the_summary_is_absent() -> None:
    empty = SuiteResult(status="skipped", reason="not run")
    assert charts.p95_against_rps([("slo", empty)], SLO_P95) is None
    assert charts.scaling([]) is None
    assert charts.regression(SuiteResult(status="inconclusive", reason="run horizontal too"), SLO_P95) is None
    assert charts.quality_sets(empty) is None
    assert charts.canary([], 0.01, 0.01) is None
    assert charts.latency_per_suite([("smoke", empty)], SLO_P95) is None
    assert charts.per_second([("smoke", empty)], None) is None
    assert charts.autoscale(empty) is None


def test_inline_svg_keeps_text_as_text_and_no_two_plots_share_an_id(summary) -> None:
    one = charts.to_svg(charts.p95_against_rps(list(summary.suites.items()), SLO_P95), "p95 <against> req/s")
    two = charts.to_svg(charts.latency_per_suite(list(summary.suites.items()), SLO_P95), "latency")
    assert re.search(r"<text[^>]*>p95 latency \(ms\)</text>", one), "axis labels are <text>, not glyph outlines"
    assert f"p95 SLO {SLO_P95:g} ms" in one
    root = one[: one.index(">")]
    assert 'aria-label="p95 &lt;against&gt; req/s"' in root and " width=" not in root and "viewBox" in root
    ids = re.findall(r' id="([^"]+)"', one) + re.findall(r' id="([^"]+)"', two)
    assert len(ids) == len(set(ids)), "ids repeated across two inline SVGs"
    referenced = set(re.findall(r'(?:url\(#|href="#)([\w-]+)', one))
    assert referenced, "clip paths and markers are referenced by id"
    assert referenced <= set(re.findall(r' id="([^"]+)"', one)), "every reference still finds its element"


def test_a_step_without_a_p95_is_left_off_the_latency_axes() -> None:
    steps = {"replicas=1": [Step(users=8, rps=0.0, p95_ms=None, errors=10, requests=10), runs.step(16, 60.0, 50.0)]}
    suite = SuiteResult(status="fail", reason="errors", steps=steps, within_slo={"replicas=1": 0})
    ax = charts.p95_against_rps([("horizontal", suite)], SLO_P95).axes[0]
    assert xy(line(ax, "beyond replicas=1")) == [(60.0, 50.0)]


def test_a_judged_figure_is_drawn_with_its_interval_limit_and_bound_or_said_not_measured() -> None:
    fig, (ax,) = charts.new_figure(1, 1, 3.0)
    charts.judged_panel(ax, [charts.Judged("E(2)", 0.9, 0.85, 0.95, limit=0.7, limit_label="threshold 0.7", bound=1.0),
                             charts.Judged("E(3)", None, limit=0.7, limit_label="threshold 0.7", bound=1.0),
                             charts.Judged("hours", None, limit=0.7, missing="never")],
                        "inconclusive", "E(N)")  # fmt: skip
    assert {0.7, 1.0} <= hline_levels(ax)
    assert "0.90 [0.85, 0.95]" in texts(fig) and "not measured" in texts(fig) and "never" in texts(fig)
    labels = ax.get_legend_handles_labels()[1]
    assert sorted(labels) == ["E(N) (inconclusive)", "limit 0.7", "physical bound", "threshold 0.7"], "one per kind"
