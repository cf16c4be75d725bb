"""The gate report's charts: matplotlib figures drawn from the parts of summary.json (and canary.json) they show.

Nothing here judges. Which steps met the SLO, each ratio's interval, the thresholds, every verdict: the summary holds
them (written once, by the judge); a chart only draws them. The few things computed here are geometry: where a
physical bound lies (E(N) = 1; a vertical ratio equal to the ratio of workers), which step of a round was the
compared one (users scaled as the suites scale them).

Every chart has axis labels with units, a legend and a size readable at the report's width; each function returns a
Figure, or None when its part of the summary is absent (a run without that suite). :func:`to_svg` turns a Figure
into inline SVG with real <text> (searchable, and checkable in tests), so the report stays one self-contained file.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from modelops.gate.rounds import LIVE
from modelops.gate.summary import Step, SuiteResult
from modelops.promotion import CanaryStep

COLOURS = {"pass": "#2e7d32", "fail": "#c62828", "inconclusive": "#ef6c00", "skipped": "#757575"}
SLO_COLOUR = "#c62828"
THRESHOLD_COLOUR = "#ef6c00"
BOUND_COLOUR = "#424242"
CANDIDATE_COLOUR = "#1565c0"
LIVE_COLOUR = "#8d6e63"
# One colour per configuration or round (matplotlib's tab10, the most distinguishable ten).
SERIES = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
# The p-value axis ends here: a test far past alpha (1e-115) would squash the rest; such a point is labelled.
P_FLOOR = 1e-12
WIDTH = 11.0  # inches: the report's 1200-px column at 100 % zoom
# Text sizes in points at that width: readable without zooming.
STYLE: dict = {"font.size": 10.0, "axes.titlesize": 11.0, "axes.labelsize": 10.0, "legend.fontsize": 8.5,
         "xtick.labelsize": 9.0, "ytick.labelsize": 9.0, "svg.fonttype": "none"}  # fmt: skip
# On a linear axis from 0, a p95 far past the SLO (5000 ms past 250) squeezes every step within it into a sliver, and
# an SLO far above every p95 (2000 ms over p95s of 100) squeezes them all: then the latency axis is logarithmic.
LOG_PAST_SLO = 4.0
LOG_UNDER_SLO = 8.0
# The scaling suites and the unit of their configurations (summary.Scaling holds the same two).
SCALING_UNITS = {"horizontal": "replicas", "vertical": "workers"}
# The quality suite's labelled sets, as measured keys name them (modelops/gate/judge.py: "<source>.<rule>.<figure>").
SET_NAMES = {
    "quality_data": "gate.quality_data",
    "production": "labelled production rows",
    "candidate_holdout": "candidate's held-out rows",
    "live_holdout": "live version's held-out rows",
}


def new_figure(rows: int, cols: int, height: float, width: float = WIDTH, **kw) -> tuple[Figure, list[Axes]]:
    """A figure without pyplot's global state (nothing to close, safe in threads); its axes as a flat list."""
    fig = Figure(figsize=(width, height), layout="constrained")
    grid = fig.subplots(rows, cols, squeeze=False, **kw)
    return fig, [ax for row in grid for ax in row]


def legend_below(ax: Axes, handles: list | None = None, ncol: int = 2) -> None:
    """The legend under the axes: inside, it hides whatever lies in its corner (a limit line, a curve past its
    knee)."""
    ax.legend(handles=handles or ax.get_legend_handles_labels()[0], loc="upper center", bbox_to_anchor=(0.5, -0.14),
              ncol=ncol)  # fmt: skip


# Matplotlib numbers its structural elements (figure_1, axes_1, line2d_1 …) in every SVG it writes: several SVGs in
# one page would repeat those ids (invalid HTML). Nothing refers to them: clip paths and markers use hashed ids.
_NUMBERED_ID = re.compile(r' id="[A-Za-z][\w.]*_\d+"')


def to_svg(fig: Figure, title: str) -> str:
    """The figure as an inline <svg> element: text kept as text, scaled to the page's width, ``title`` for screen
    readers."""
    buf = io.StringIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": None}):
        fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = _NUMBERED_ID.sub("", svg)
    head_end = svg.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", svg[:head_end])
    size = f"width:100%;height:auto;max-width:{fig.get_figwidth():g}in"
    head += f' role="img" aria-label="{html.escape(title)}" style="{size}"'
    return head + svg[head_end:]


def style() -> AbstractContextManager:
    """Draw and save inside this: the report's text sizes (matplotlib reads them when a text is made)."""
    return rc_context(STYLE)


# ------------------------------------------------------------------------------------ p95 against good req/s
def _legend_markers() -> list[Line2D]:
    return [
        Line2D([], [], ls="", marker="o", color="black", label="step met the SLO (capacity)"),
        Line2D([], [], ls="", marker="o", mfc="white", color="black", label="step outside the SLO (or after it)"),
        Line2D([], [], ls="", marker="x", color="#616161", ms=8, label="distorted: not the candidate's figure"),
    ]


def p95_against_rps(suites: Sequence[tuple[str, SuiteResult]], slo_p95_ms: float | None) -> Figure | None:
    """One panel per suite with step loads: p95 (ms) against good req/s of every step, one curve per configuration.
    Steps that met the SLO are filled, the rest hollow (the summary's ``within_slo``); the SLO's p95 a red line."""
    drawn = [(name, suite) for name, suite in suites if any(suite.steps.values())]
    if not drawn:
        return None
    # The scaling suites first, horizontal then vertical (as the scaling chart below), whatever order they ran in.
    drawn.sort(key=lambda item: list(SCALING_UNITS).index(item[0]) if item[0] in SCALING_UNITS else len(SCALING_UNITS))
    fig, axes = new_figure(1, len(drawn), 5.2, sharey=True)
    p95s = [s.p95_ms for _, suite in drawn for steps in suite.steps.values() for s in steps if s.p95_ms]
    logarithmic = _squeezed(p95s, slo_p95_ms)
    for ax, (name, suite) in zip(axes, drawn, strict=True):
        for colour, (label, steps) in zip(SERIES * 3, suite.steps.items(), strict=False):
            _p95_curve(ax, label, steps, suite.within_slo.get(label), colour)
        if slo_p95_ms:
            ax.axhline(slo_p95_ms, color=SLO_COLOUR, ls="--", lw=1.5, label=f"p95 SLO {slo_p95_ms:g} ms")
        ax.set_title(f"{name}: p95 against good req/s, step by step")
        ax.set_xlabel("good req/s (successful answers per second)")
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        legend_below(ax, [*ax.get_legend_handles_labels()[0], *_legend_markers()])
    axes[0].set_ylabel("p95 latency (ms" + (", log scale)" if logarithmic else ")"))
    if logarithmic:
        axes[0].set_yscale("log")
    else:
        axes[0].set_ylim(bottom=0)
    return fig


def _squeezed(p95s: Sequence[float], slo_ms: float | None) -> bool:
    if not p95s or not slo_ms:
        return False
    return max(p95s) > LOG_PAST_SLO * slo_ms or slo_ms > LOG_UNDER_SLO * max(p95s)


def _p95_curve(ax: Axes, label: str, steps: list[Step], within: int | None, colour: str) -> None:
    points = [(i, s) for i, s in enumerate(steps) if s.p95_ms is not None]
    if not points:
        return
    ax.plot([s.rps for _, s in points], [_nan(s.p95_ms) for _, s in points], "-", color=colour, lw=1.2, label=label)
    groups: list[tuple[str, list[Step], dict[str, Any]]]
    if within is None:  # a summary from before the judge recorded it: the steps are drawn, not sorted
        groups = [("unjudged", [s for _, s in points], {"marker": "D", "ms": 4})]
    else:
        met, beyond = [s for i, s in points if i < within], [s for i, s in points if i >= within]
        groups = [("met", met, {"marker": "o", "ms": 6}), ("beyond", beyond, {"marker": "o", "ms": 6, "mfc": "white"})]
    for kind, chosen, style in groups:
        ax.plot([s.rps for s in chosen], [_nan(s.p95_ms) for s in chosen], ls="", color=colour, gid=f"{kind} {label}",
                **style)  # fmt: skip
    distorted = [s for _, s in points if s.distorted]
    ax.plot([s.rps for s in distorted], [_nan(s.p95_ms) for s in distorted], "x", color="#616161", ms=9,
            gid=f"distorted {label}")  # fmt: skip
    for _, s in points:
        ax.annotate(f"{s.users}u", (s.rps, s.p95_ms or 0), textcoords="offset points", xytext=(4, 4), fontsize=7.5,
                    color=colour)  # fmt: skip


# ---------------------------------------------------------------------------------- judged figures, intervals
@dataclass(frozen=True)
class Judged:
    """One figure a verdict was judged on, as the summary holds it: its value, its interval, the limit it was judged
    against (and which side passes), and a physical bound where one exists. Any suite's interval-judged figures
    (scaling ratios, regression ratios, a soak's projections …) draw with :func:`judged_panel`."""

    label: str  # under the x axis
    value: float | None
    low: float | None = None
    high: float | None = None
    limit: float | None = None
    limit_label: str = ""  # e.g. "threshold 0.7", "at least 0.80"
    bound: float | None = None  # a physical bound (E(N) = 1 …), drawn dashed
    missing: str = "not measured"  # said where ``value`` is None (a projection that never reaches its limit: "never")


def judged_panel(ax: Axes, rows: Sequence[Judged], status: str, what: str) -> None:
    """Each row at its own x: its value with its interval (coloured by the suite's status), its limit as a short
    dash-dot line, its physical bound dashed, the numbers written beside it. ``what`` names the points in the
    legend."""
    colour = COLOURS.get(status, CANDIDATE_COLOUR)
    seen: set[str] = set()

    def once(label: str) -> str:  # one legend entry per kind of line
        fresh = label not in seen
        seen.add(label)
        return label if fresh else "_nolegend_"

    for x, row in enumerate(rows):
        if row.bound is not None:
            ax.hlines(row.bound, x - 0.3, x + 0.3, color=BOUND_COLOUR, lw=2, ls="--", label=once("physical bound"))
        if row.limit is not None:
            ax.hlines(row.limit, x - 0.35, x + 0.35, color=THRESHOLD_COLOUR, lw=2, ls="-.",
                      label=once(row.limit_label or f"limit {row.limit:g}"))  # fmt: skip
        if row.value is None:
            ax.annotate(row.missing, (x, row.limit or row.bound or 0.0), ha="center", va="top", xytext=(0, -8),
                        textcoords="offset points")  # fmt: skip
            continue
        if row.low is not None and row.high is not None:
            yerr = [[max(0.0, row.value - row.low)], [max(0.0, row.high - row.value)]]
            text = f"{row.value:.2f} [{row.low:.2f}, {row.high:.2f}]"
        else:
            yerr, text = None, f"{row.value:.2f} (no interval)"
        ax.errorbar([x], [row.value], yerr=yerr, fmt="o", color=colour, ms=8, capsize=8, lw=2,
                    label=once(f"{what} ({status})"))  # fmt: skip
        ax.annotate(text, (x, row.value), textcoords="offset points", xytext=(12, -4), fontsize=8.5)
    ax.set_xticks(range(len(rows)), [r.label for r in rows])
    ax.set_xlim(-0.7, len(rows) - 0.3 + 0.5)
    heights = [v for r in rows for v in (r.value, r.high, r.limit, r.bound) if v is not None]
    if heights and min(heights) >= 0:
        ax.set_ylim(0, 1.2 * max(heights))
    ax.grid(alpha=0.3, axis="y")
    legend_below(ax)


# ----------------------------------------------------------------------------------------------- scaling
@dataclass(frozen=True)
class Ratio:
    """A larger configuration's ratio as the summary holds it: the median over rounds and its interval."""

    value: int  # replicas or workers
    point: float | None
    interval: list[float]  # [low, high], or [] when the summary has none
    bound: float  # the physical bound: E(N) = 1; a vertical ratio = this configuration's workers / the first's


@dataclass(frozen=True)
class ScalingView:
    suite: str  # "horizontal" | "vertical"
    unit: str  # "replicas" | "workers"
    values: list[int]
    result: SuiteResult
    ratios: list[Ratio]
    threshold: float | None
    figure: str  # what the ratio is called: "E(N)" or "vertical ratio"


def users_at(compared: int, value: int, first: int) -> int:
    """A configuration's users at the compared step: N replicas (or w workers) get N/first times the first's users,
    as Suites.step_spec scales them (modelops/gate/judge.py: ``_users``)."""
    return max(1, round(compared * value / first))


def compared_rps(view: ScalingView) -> list[dict[int, float]]:
    """Per round, each configuration's good req/s at the compared step (a round that did not run it, or ran it
    distorted, leaves it out: the judge left it out too)."""
    compared = view.result.measured.get("compared_users")
    if not compared or not view.values:
        return []
    out = []
    for curves in view.result.rounds:
        seen = {}
        for value in view.values:
            users = users_at(int(compared), value, view.values[0])
            step = next((s for s in curves.get(f"{view.unit}={value}", []) if s.users == users), None)
            if step is not None and not step.distorted:
                seen[value] = step.rps
        out.append(seen)
    return out


def scaling(views: Sequence[ScalingView]) -> Figure | None:
    """One column per scaling suite. Top: good req/s at the compared step per configuration, a line per round, with
    the physical bound (linear from the first configuration). Bottom: each ratio's median over the rounds with its
    interval, the threshold and the physical bound — the figures the verdict was judged on."""
    views = [v for v in views if v.ratios or v.result.rounds]
    if not views:
        return None
    fig, axes = new_figure(2, len(views), 8.0, width=WIDTH if len(views) > 1 else WIDTH * 0.62)
    for col, view in enumerate(views):
        _rounds_panel(axes[col], view)
        _ratio_panel(axes[len(views) + col], view)
    return fig


def _rounds_panel(ax: Axes, view: ScalingView) -> None:
    per_round = compared_rps(view)
    first = view.values[0] if view.values else 1
    for number, (colour, seen) in enumerate(zip(SERIES, per_round, strict=False), start=1):
        xs = [v for v in view.values if v in seen]
        ax.plot(xs, [seen[v] for v in xs], "o-", color=colour, label=f"round {number}")
        if first in seen:
            ax.plot(view.values, [seen[first] * v / first for v in view.values], ":", color=colour, lw=1, alpha=0.8)
    ax.plot([], [], ":", color=BOUND_COLOUR, label=f"physical bound: linear from {first} {view.unit} (each round)")
    users = view.result.measured.get("compared_users")
    at = f" (compared step: {users:.0f} users per {first} {view.unit}, scaled)" if users else ""
    ax.set_title(f"{view.suite}: good req/s per round")
    ax.set_xlabel(f"{view.unit}{at}")
    ax.set_ylabel("good req/s")
    ax.set_xticks(view.values)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")


def _ratio_panel(ax: Axes, view: ScalingView) -> None:
    first = view.values[0] if view.values else 1
    label = f"threshold {view.threshold:g}" if view.threshold is not None else ""
    rows = [Judged(f"{r.value} {view.unit}", r.point, r.interval[0] if r.interval else None,
                   r.interval[1] if r.interval else None, limit=view.threshold, limit_label=label, bound=r.bound)
            for r in view.ratios]  # fmt: skip
    judged_panel(ax, rows, view.result.status, f"{view.figure}: median and interval over the rounds")
    ax.set_xlabel(f"{view.unit} (against {first})")
    ax.set_ylabel(f"{view.figure} (ratio, x)")
    ax.set_title(f"{view.suite}: {view.figure} with its interval")


# ------------------------------------------------------------------------------------ candidate against live
def regression(result: SuiteResult, slo_p95_ms: float | None) -> Figure | None:
    """The candidate and the live version measured beside it in the same run: good req/s and p95 of both at the
    compared step in every round, and the two ratios' intervals against their limits."""
    measured, thresholds = result.measured, result.thresholds
    users = measured.get("compared_users")
    pairs = []
    for curves in result.rounds:
        live_label = next((k for k in curves if k.startswith(LIVE)), None)
        mine = live_label.removeprefix(LIVE) if live_label else None
        cand = next((s for s in curves.get(mine or "", []) if s.users == users), None) if users else None
        live = next((s for s in curves.get(live_label or "", []) if s.users == users), None) if users else None
        pairs.append((cand, live))
    if not any(c and lv for c, lv in pairs) and measured.get("capacity_ratio") is None:
        return None
    fig, axes = new_figure(1, 3, 4.2)
    rps_ax, p95_ax, ratio_ax = axes
    xs = list(range(1, len(pairs) + 1))
    width = 0.38
    for offset, colour, name, index in ((-width / 2, CANDIDATE_COLOUR, "candidate", 0),
                                        (width / 2, LIVE_COLOUR, "live", 1)):  # fmt: skip
        steps = [p[index] for p in pairs]
        rps_ax.bar([x + offset for x in xs], [s.rps if s else 0 for s in steps], width, color=colour, label=name)
        p95_ax.bar([x + offset for x in xs], [(s.p95_ms or 0) if s else 0 for s in steps], width, color=colour,
                   label=name)  # fmt: skip
    at = f" at {users:.0f} users, 1 replica each" if users else ""
    rps_ax.set(title=f"good req/s per round{at}", xlabel="round", ylabel="good req/s", xticks=xs)
    if slo_p95_ms:
        p95_ax.axhline(slo_p95_ms, color=SLO_COLOUR, ls="--", label=f"p95 SLO {slo_p95_ms:g} ms")
    p95_ax.set(title="p95 per round", xlabel="round", ylabel="p95 latency (ms)", xticks=xs)
    max_drop, max_rise = thresholds.get("max_rps_drop"), thresholds.get("max_p95_rise")
    judged_panel(ratio_ax, [
        Judged("good req/s\ncandidate / live", measured.get("capacity_ratio"), measured.get("capacity_ratio_low"),
               measured.get("capacity_ratio_high"), limit=None if max_drop is None else 1 - max_drop,
               limit_label=f"limit: at least {1 - (max_drop or 0):.2f}"),
        Judged("p95\ncandidate / live", _plus_one(measured.get("p95_rise")), _plus_one(measured.get("p95_rise_low")),
               _plus_one(measured.get("p95_rise_high")), limit=None if max_rise is None else 1 + max_rise,
               limit_label=f"limit: at most {1 + (max_rise or 0):.2f}"),
    ], result.status, "median and interval over the rounds")  # fmt: skip
    ratio_ax.axhline(1.0, color="#9e9e9e", lw=1, label="equal (1.0)")
    ratio_ax.set(title="ratios over the rounds", ylabel="ratio candidate / live (x)")
    legend_below(ratio_ax, ncol=1)
    for ax in (rps_ax, p95_ax):
        ax.grid(alpha=0.3, axis="y")
        legend_below(ax, ncol=1)
    return fig


def _plus_one(value: float | None) -> float | None:
    return None if value is None else 1 + value


def quality_sets(result: SuiteResult) -> Figure | None:
    """Every labelled set both versions answered: each one's accuracy with its interval side by side, and the
    paired difference's interval against the margin (the figure the verdict rests on). A regressor's sets: mean
    absolute errors and the ratio's interval."""
    measured = result.measured
    sources = [k.split(".")[0] for k in measured if k.endswith(".paired.rows")]
    classified = [s for s in sources if measured.get(f"{s}.paired.candidate_accuracy") is not None]
    regressed = [s for s in sources if measured.get(f"{s}.paired.mae_ratio") is not None]
    if not classified and not regressed:
        return None
    panels = (2 if classified else 0) + (1 if regressed else 0)
    fig, axes = new_figure(1, panels, 4.2)
    margin = result.thresholds.get("max_accuracy_drop")
    colour = COLOURS.get(result.status, CANDIDATE_COLOUR)
    if classified:
        accuracy_ax, delta_ax = axes[0], axes[1]
        for x, source in enumerate(classified):
            for offset, who, tint in ((-0.15, "candidate", CANDIDATE_COLOUR), (0.15, "live", LIVE_COLOUR)):
                point = measured[f"{source}.paired.{who}_accuracy"] or 0.0
                low, high = (
                    measured.get(f"{source}.paired.{who}_accuracy_low"),
                    measured.get(f"{source}.paired.{who}_accuracy_high"),
                )
                yerr = [[point - low], [high - point]] if low is not None and high is not None else None
                accuracy_ax.errorbar([x + offset], [100 * point], yerr=None if yerr is None else
                                     [[100 * v for v in side] for side in yerr], fmt="o", color=tint, ms=7,
                                     capsize=6, label=who if x == 0 else None)  # fmt: skip
            delta = measured.get(f"{source}.paired.delta")
            low, high = measured.get(f"{source}.paired.delta_low"), measured.get(f"{source}.paired.delta_high")
            if delta is not None:
                yerr = [[100 * (delta - low)], [100 * (high - delta)]] if low is not None and high is not None else None
                delta_ax.errorbar([x], [100 * delta], yerr=yerr, fmt="o", color=colour, ms=8, capsize=8, lw=2,
                                  label=f"difference and interval ({result.status})" if x == 0 else None)  # fmt: skip
        ticks = [_set_label(measured, s) for s in classified]
        accuracy_ax.set_xticks(range(len(classified)), ticks)
        accuracy_ax.set(title="accuracy of each version, same rows", ylabel="accuracy (%)")
        lows = [measured.get(f"{s}.paired.{who}_accuracy_low") for s in classified for who in ("candidate", "live")]
        accuracy_ax.set_ylim(max(0.0, 100 * min(v for v in lows if v is not None) - 10) if any(lows) else 0, 102)
        accuracy_ax.set_xlim(-0.6, len(classified) - 0.4)
        if margin is not None:
            delta_ax.axhline(-100 * margin, color=THRESHOLD_COLOUR, ls="-.", label=f"margin -{100 * margin:g} points")
        delta_ax.axhline(0, color="#9e9e9e", lw=1, label="equal")
        delta_ax.set_xticks(range(len(classified)), ticks)
        delta_ax.set_xlim(-0.6, len(classified) - 0.4)
        delta_ax.set(title="candidate - live (McNemar, paired)", ylabel="accuracy difference (% points)")
    if regressed:
        ax = axes[-1]
        for x, source in enumerate(regressed):
            point = measured[f"{source}.paired.mae_ratio"] or 0.0
            low, high = measured.get(f"{source}.paired.mae_ratio_low"), measured.get(f"{source}.paired.mae_ratio_high")
            yerr = [[point - low], [high - point]] if low is not None and high is not None else None
            ax.errorbar([x], [point], yerr=yerr, fmt="o", color=colour, ms=8, capsize=8,
                        label=f"MAE ratio and interval ({result.status})" if x == 0 else None)  # fmt: skip
        if margin is not None:
            ax.axhline(1 + margin, color=THRESHOLD_COLOUR, ls="-.", label=f"limit {1 + margin:g}")
        ax.set_xticks(range(len(regressed)), [_set_label(measured, s) for s in regressed])
        ax.set_xlim(-0.6, len(regressed) - 0.4)
        ax.set(title="mean absolute error, candidate / live", ylabel="MAE ratio (x)")
    for ax in axes:
        ax.grid(alpha=0.3, axis="y")
        legend_below(ax)
    return fig


def _set_label(measured: dict[str, float | None], source: str) -> str:
    rows = measured.get(f"{source}.paired.rows")
    return SET_NAMES.get(source, source) + (f"\n({rows:.0f} rows)" if rows else "")


# ------------------------------------------------------------------------------------------------- canary
def canary(steps: Sequence[CanaryStep], alpha: float | None, max_error_ratio: float | None) -> Figure | None:
    """The canary's steps on one time axis (seconds since the first shift, each step as long as its intervals
    took): the candidate's share of live traffic, p95 and error ratio of both colours, and the tests' p-values
    against alpha. What canary.json holds per step: its intervals' totals and its last interval's figures."""
    if not steps:
        return None
    fig, axes = new_figure(4, 1, 9.0, sharex=True)
    share_ax, p95_ax, error_ax, p_ax = axes
    starts, ends = [], []
    t = 0.0
    for step in steps:
        seconds = float(step.measured.get("seconds") or 0.0) or 1.0
        starts.append(t)
        t += seconds
        ends.append(t)
    for start, end, step in zip(starts, ends, steps, strict=True):
        colour = COLOURS["pass"] if step.passed else COLOURS["fail"]
        share_ax.fill_between([start, end], 0, step.weight, color=colour, alpha=0.35, step="post")
        share_ax.plot([start, end], [step.weight, step.weight], color=colour, lw=2)
        counts = step.measured
        share_ax.annotate(
            f"{step.weight} %: {'passed' if step.passed else 'FAILED'}\n{counts.get('intervals_passed', 0):.0f} "
            f"passed, {counts.get('intervals_failed', 0):.0f} failed,\n{counts.get('intervals_inconclusive', 0):.0f} "
            "inconclusive intervals",
            ((start + end) / 2, step.weight), ha="center", va="bottom", fontsize=8, xytext=(0, 3),
            textcoords="offset points",
        )  # fmt: skip
    share_ax.plot([], [], color=COLOURS["pass"], lw=6, alpha=0.5, label="step passed")
    share_ax.plot([], [], color=COLOURS["fail"], lw=6, alpha=0.5, label="step failed (rolled back)")
    share_ax.set(title="canary: the candidate's share of live traffic, step by step",
                 ylabel="candidate's share (%)")  # fmt: skip
    share_ax.set_ylim(0, max(s.weight for s in steps) * 1.6 + 5)
    mids = [(a + b) / 2 for a, b in zip(starts, ends, strict=True)]
    for key, who, colour in (("candidate", "candidate", CANDIDATE_COLOUR), ("live", "live", LIVE_COLOUR)):
        p95 = [s.measured.get(f"{key}_p95_ms") for s in steps]
        p95_ax.plot(mids, [v if v is not None else float("nan") for v in p95], "o-", color=colour, label=who)
        ratios = [_ratio(s.measured.get(f"{key}_errors"), s.measured.get(f"{key}_requests")) for s in steps]
        error_ax.plot(mids, [100 * r if r is not None else float("nan") for r in ratios], "o-", color=colour,
                      label=who)  # fmt: skip
    p95_ax.set(ylabel="p95 latency (ms)", title="p95 of each colour (the step's last interval)")
    p95_ax.set_ylim(bottom=0)
    if max_error_ratio is not None:
        error_ax.axhline(100 * max_error_ratio, color=THRESHOLD_COLOUR, ls="-.",
                         label=f"max_error_ratio {100 * max_error_ratio:g} %")  # fmt: skip
    error_ax.set(ylabel="failed requests (%)", title="error ratio of each colour (the step's intervals)")
    error_ax.set_ylim(bottom=0)
    for key, name, marker in (("errors_p", "errors: Fisher p", "s"), ("latency_p", "latency: Mann-Whitney p", "^")):
        values = [s.measured.get(key) for s in steps]
        p_ax.plot(mids, [max(v, P_FLOOR) if v is not None else float("nan") for v in values], marker, ms=8,
                  label=name)  # fmt: skip
        for x, v in zip(mids, values, strict=True):
            if v is not None and v < P_FLOOR:  # drawn at the floor: say so rather than print a made-up height
                p_ax.annotate(f"p = {v:.1e}", (x, P_FLOOR), textcoords="offset points", xytext=(8, 0), fontsize=8)
    if alpha is not None:
        p_ax.axhline(alpha, color=SLO_COLOUR, ls="--", label=f"alpha {alpha:g} (below: significant)")
    p_ax.set_yscale("log")
    shown = [max(v, P_FLOOR) for s in steps for k in ("errors_p", "latency_p") if (v := s.measured.get(k)) is not None]
    p_ax.set_ylim(min([1e-4, alpha or 1.0, *shown]) / 10, 2)
    p_ax.set(ylabel="p-value (log scale)", xlabel="seconds since the first shift",
             title="one-sided tests, candidate worse than live (the step's last interval)")  # fmt: skip
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left" if ax is p_ax else "upper left")
    return fig


def _ratio(errors: float | int | None, requests: float | int | None) -> float | None:
    return None if errors is None or not requests else float(errors) / float(requests)


# ------------------------------------------------------------------------------------- per suite, per second
def latency_per_suite(suites: Sequence[tuple[str, SuiteResult]], slo_p95_ms: float | None) -> Figure | None:
    rows = [(n, s) for n, s in suites if s.p50_ms is not None]
    if not rows:
        return None
    fig, (ax,) = new_figure(1, 1, 3.8)
    width = 0.25
    xs = range(len(rows))
    for i, (key, label) in enumerate((("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99"))):
        ax.bar([x + (i - 1) * width for x in xs], [getattr(s, key) or 0 for _, s in rows], width, label=label,
               color=SERIES[i])  # fmt: skip
    if slo_p95_ms:
        ax.axhline(slo_p95_ms, color=SLO_COLOUR, linestyle="--", label=f"p95 SLO {slo_p95_ms:g} ms")
    ax.set_xticks(list(xs), [n for n, _ in rows])
    logarithmic = _squeezed([v for _, s in rows for v in (s.p50_ms, s.p95_ms, s.p99_ms) if v], slo_p95_ms)
    if logarithmic:
        ax.set_yscale("log")
    ax.set(title="Latency percentiles per suite (the whole measured load)", xlabel="suite",
           ylabel="latency (ms" + (", log scale)" if logarithmic else ")"))  # fmt: skip
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    return fig


def per_second(suites: Sequence[tuple[str, SuiteResult]], killed_at_s: float | None) -> Figure | None:
    series = [(n, s.timeline) for n, s in suites if s.timeline]
    if not series:
        return None
    fig, (top, bottom) = new_figure(2, 1, 5.8)
    for colour, (name, points) in zip(SERIES, series, strict=False):
        top.plot([p["t"] for p in points], [p["rps"] for p in points], color=colour, label=name)
        bottom.plot([p["t"] for p in points], [_nan(p.get("p95_ms")) for p in points], color=colour, label=name)
    if killed_at_s is not None:
        for axis in (top, bottom):
            axis.axvline(killed_at_s, color=SLO_COLOUR, linestyle=":", label="replica killed (failover)")
    top.set(title="good req/s per second (each suite from its own start)", xlabel="seconds since the suite's load "
            "began", ylabel="good req/s")  # fmt: skip
    bottom.set(title="p95 of each second", xlabel="seconds since the suite's load began", ylabel="p95 latency (ms)")
    for ax in (top, bottom):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right")
    return fig


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def autoscale(suite: SuiteResult) -> Figure | None:
    points = [p for p in suite.timeline if p.get("replicas") is not None]
    if not points:
        return None
    fig, (load,) = new_figure(1, 1, 4.0)
    t = [p["t"] for p in points]
    load.plot(t, [p["rps"] for p in points], color=CANDIDATE_COLOUR, label="good req/s")
    load.set(title="Autoscale: replicas and req/s over time", xlabel="seconds since the load began",
             ylabel="good req/s")  # fmt: skip
    count = load.twinx()
    count.step(t, [p["replicas"] for p in points], where="post", color=COLOURS["pass"], label="replicas in the pool")
    count.step(t, [p["serving"] for p in points], where="post", color="#81c784", linestyle="--", label="serving")
    count.set_ylabel("replicas")
    count.set_ylim(0, max(p["replicas"] for p in points) + 1)
    lines = load.get_legend_handles_labels()[0] + count.get_legend_handles_labels()[0]
    load.legend(lines, [str(line.get_label()) for line in lines], loc="upper right")
    load.grid(alpha=0.3)
    return fig
