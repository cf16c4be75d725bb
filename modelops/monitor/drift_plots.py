"""The drift report's plots, drawn from the report's JSON model alone: every signal that moved, its CUSUM over the
chunks against the threshold h; per feature, the recent rows' histogram over the training sample's; the predicted
class shares with their intervals. SVG with text kept as text (axis labels, legends and titles are readable,
searchable and checked by the tests), embedded in the page as data URIs so that the report stays one file."""

from __future__ import annotations

import base64
import io
import time
from datetime import datetime

import matplotlib
from matplotlib import dates
from matplotlib.figure import Figure

from modelops.monitor.drift import DriftReport, FeatureView

REFERENCE_COLOUR, RECENT_COLOUR, THRESHOLD_COLOUR = "#9e9e9e", "#1565c0", "#c62828"
MAX_LINES = 8  # signals drawn on the CUSUM plot at most (the most-moved first)
MIN_MOVE = 0.25  # a signal "moved" when its CUSUM reached this share of h (else: nothing worth a line)


def _svg(fig: Figure, title: str) -> str:
    buffer = io.StringIO()
    # Text as <text>, not glyph paths: readable at any zoom, and the labels can be found in the file.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "modelops-drift"}):
        fig.savefig(buffer, format="svg", metadata={"Title": title, "Date": None})
    return buffer.getvalue()


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def moved_signals(report: DriftReport) -> list[str]:
    """Signals drifted after any chunk, else those whose CUSUM reached MIN_MOVE x h, most moved first."""
    h = float(report.thresholds.get("h", 0.0)) or 1.0
    ever = {name for c in report.chunks for name in c.drifted}
    ranked = sorted(report.signals, key=lambda s: s.max_cusum, reverse=True)
    chosen = [s.signal for s in ranked if s.signal in ever] or [s.signal for s in ranked if s.max_cusum >= MIN_MOVE * h]
    return chosen[:MAX_LINES]


def cusum_plot(report: DriftReport) -> str | None:
    """CUSUM per moved signal over the chunks (x: when each chunk closed), the threshold h as a line."""
    names = moved_signals(report)
    if not report.chunks or not names:
        return None
    h = float(report.thresholds["h"])
    when = dates.date2num([datetime.fromtimestamp(c.closes) for c in report.chunks])
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for name in names:
        ax.plot(when, [c.statistics[name] for c in report.chunks], marker="o", markersize=3, label=name)
    ax.axhline(
        h,
        color=THRESHOLD_COLOUR,
        linestyle="--",
        label=f"threshold h = {h:.2f} ({report.thresholds['max_false_alarms_per_day']:g} false alarm/day)",
    )
    provisional = [(w, c) for w, c in zip(when, report.chunks, strict=True) if c.provisional]
    for w, _chunk in provisional:
        ax.axvline(w, color=REFERENCE_COLOUR, linestyle=":", label="this view's look now (not yet the monitor's)")
    ax.xaxis_date()
    ax.set_xlabel(f"chunk closed at (local time, {time.strftime('%Z')})")
    ax.set_ylabel("CUSUM statistic (sd x sqrt(rows))")
    top = max([h, *(c.statistics[n] for c in report.chunks for n in names)])
    ax.set_ylim(0, top * 1.15)
    ax.set_title(f"Drift detector over {len(report.chunks)} chunk(s): signals that moved")
    # Beside the axes, not on them: the lines it would hide are the point of the plot.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.autofmt_xdate()
    return _svg(fig, "CUSUM per signal over chunks")


def feature_plot(feature: FeatureView, recent_rows: int, reference_rows: int) -> str:
    """Share of rows per bin: the recent rows (filled) over the training sample (outline), common bins."""
    fig = Figure(figsize=(4.6, 3.0), layout="constrained")
    ax = fig.add_subplot()
    recent_total = max(sum(feature.recent_counts), 1)
    reference_total = max(sum(feature.reference_counts), 1)
    ax.stairs(
        [c / recent_total for c in feature.recent_counts],
        feature.bins,
        fill=True,
        alpha=0.55,
        color=RECENT_COLOUR,
        label=f"recent ({recent_rows} logged rows)",
    )
    ax.stairs(
        [c / reference_total for c in feature.reference_counts],
        feature.bins,
        color="#424242",
        linewidth=1.5,
        label=f"reference (training, {reference_rows} rows)",
    )
    ax.set_xlabel(f"{feature.feature} (value as logged)")
    ax.set_ylabel("share of rows per bin")
    ax.set_title(
        f"{feature.feature}: shift {feature.shift_sd:+.2f} sd [{feature.shift_low:+.2f}, {feature.shift_high:+.2f}]",
        fontsize="medium",
    )
    ax.legend(fontsize="x-small")
    return _svg(fig, f"{feature.feature}: recent vs reference")


def classes_plot(report: DriftReport) -> str | None:
    if not report.classes:
        return None
    fig = Figure(figsize=(4.6, 3.0), layout="constrained")
    ax = fig.add_subplot()
    x = range(len(report.classes))
    width = 0.38

    def bars(offset: float, shares: list[float], lows: list[float], highs: list[float], colour: str, label: str):
        errors = [
            [s - lo for s, lo in zip(shares, lows, strict=True)],
            [hi - s for s, hi in zip(shares, highs, strict=True)],
        ]
        ax.bar([i + offset for i in x], shares, width, yerr=errors, capsize=3, color=colour, label=label)

    c = report.classes
    bars(
        -width / 2,
        [v.reference_share for v in c],
        [v.reference_low for v in c],
        [v.reference_high for v in c],
        REFERENCE_COLOUR,
        f"reference (training, {report.reference_rows} rows)",
    )
    bars(
        width / 2,
        [v.recent_share for v in c],
        [v.recent_low for v in c],
        [v.recent_high for v in c],
        RECENT_COLOUR,
        f"recent ({report.recent_rows} logged rows)",
    )
    ax.set_xticks(list(x), [v.name for v in c])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("share of predictions (95 % interval)")
    ax.set_ylim(0, 1)
    ax.set_title("Predicted class shares", fontsize="medium")
    ax.legend(fontsize="x-small")
    return _svg(fig, "predicted class shares: recent vs reference")
