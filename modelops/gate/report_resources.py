"""The report's memory and open-files plot: every candidate replica process, suite after suite (the soak's trend is
what its verdict projects), from summary.json alone."""

from __future__ import annotations

from matplotlib.figure import Figure

from modelops.gate import charts
from modelops.gate.summary import SUITES, Summary


def plot(summary: Summary) -> Figure | None:
    """RSS and open descriptors per replica process over the gate run (seconds since the first suite's sample)."""
    rows = [(name, usage) for name in SUITES for usage in (summary.suites[name].resources if name in summary.suites
            else [])]  # fmt: skip
    if not rows:
        return None
    fig, (memory, files) = charts.new_figure(2, 1, 5.8, sharex=True)
    offset = 0.0
    for name in SUITES:
        suite = summary.suites.get(name)
        if suite is None or not suite.resources:
            continue
        length = max((u.series[-1][0] for u in suite.resources if u.series), default=0.0)
        for usage in suite.resources:
            t = [offset + p[0] for p in usage.series]
            label = f"{name}: {usage.replica} (pid {usage.pid})"
            memory.plot(t, [p[1] for p in usage.series], label=label)
            files.plot(t, [p[2] for p in usage.series], label=label)
        memory.axvline(offset, color="#bdbdbd", linestyle=":")
        memory.annotate(name, (offset, 1), xycoords=("data", "axes fraction"), va="top", fontsize=8)
        offset += length + 1
    memory.set(title="Memory of each candidate replica (all its processes), suite after suite", ylabel="RSS, MB")
    files.set(title="Open file descriptors", xlabel="seconds of measuring (suites back to back)", ylabel="fds")
    charts.legend_below(files, ncol=3)
    return fig
