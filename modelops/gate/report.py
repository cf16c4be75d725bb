"""report.html: the gate run for people — plots first, derived only from summary.json."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from modelops.gate import report_resources
from modelops.gate.summary import REPORT_FILE, SUITES, Summary

COLOURS = {"pass": "#2e7d32", "fail": "#c62828", "inconclusive": "#ef6c00", "skipped": "#757575"}


def render(summary: Summary, run_dir: Path) -> Path:
    images = [
        img
        for img in (
            _scaling(summary, run_dir),
            _latency(summary, run_dir),
            _timeline(summary, run_dir),
            _autoscale(summary, run_dir),
            report_resources.plot(summary, run_dir),
        )
        if img
    ]
    path = run_dir / REPORT_FILE
    path.write_text(_page(summary, images))
    return path


def _scaling(summary: Summary, run_dir: Path) -> str | None:
    h = summary.scaling.horizontal
    if not h.replicas:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    ideal = [h.rps[0] / h.replicas[0] * n for n in h.replicas] if h.rps else []
    left.plot(h.replicas, h.rps, "o-", label="measured", color="#1565c0")
    left.plot(h.replicas, ideal, "--", label="ideal (linear)", color="#9e9e9e")
    for n, r, e in zip(h.replicas, h.rps, h.efficiency, strict=True):
        left.annotate(f"E={e:.2f}", (n, r), textcoords="offset points", xytext=(5, -12))
    left.set(title="Horizontal: req/s vs replicas", xlabel="replicas", ylabel="req/s", xticks=h.replicas)
    left.legend()
    suite = summary.suites.get("horizontal")
    if suite:
        for name, steps in suite.steps.items():
            right.plot([s.users for s in steps], [s.rps for s in steps], "o-", label=name)
        right.set(title="Step load: req/s per user count (the knee)", xlabel="users", ylabel="req/s")
        right.legend()
    fig.tight_layout()
    return _save(fig, run_dir, "scaling.png")


def _latency(summary: Summary, run_dir: Path) -> str | None:
    rows = [(n, s) for n, s in summary.suites.items() if s.p50_ms is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(11, 3.8))
    width = 0.25
    xs = range(len(rows))
    for i, (key, label) in enumerate((("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99"))):
        ax.bar([x + (i - 1) * width for x in xs], [getattr(s, key) or 0 for _, s in rows], width, label=label)
    slo = summary.settings.get("slo", {})
    if slo.get("p95_ms"):
        ax.axhline(slo["p95_ms"], color="#c62828", linestyle="--", label=f"p95 SLO {slo['p95_ms']:g} ms")
    ax.set_xticks(list(xs), [n for n, _ in rows])
    ax.set(title="Latency percentiles per suite", ylabel="ms")
    ax.legend()
    fig.tight_layout()
    return _save(fig, run_dir, "latency.png")


def _timeline(summary: Summary, run_dir: Path) -> str | None:
    series = [(n, s.timeline) for n, s in summary.suites.items() if s.timeline]
    if not series:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=False)
    for name, points in series:
        top.plot([p["t"] for p in points], [p["rps"] for p in points], label=name)
        bottom.plot([p["t"] for p in points], [p["p95_ms"] for p in points], label=name)
    failover = summary.suites.get("failover")
    killed = failover.measured.get("killed_at_s") if failover else None
    if killed is not None:
        for axis in (top, bottom):
            axis.axvline(killed, color="#c62828", linestyle=":", label="replica killed (failover)")
    top.set(title="good req/s per second (each suite from its own start)", ylabel="req/s")
    bottom.set(title="p95 of each second", xlabel="seconds", ylabel="ms")
    top.legend()
    fig.tight_layout()
    return _save(fig, run_dir, "timeline.png")


def _autoscale(summary: Summary, run_dir: Path) -> str | None:
    suite = summary.suites.get("autoscale")
    points = [p for p in (suite.timeline if suite else []) if p.get("replicas") is not None]
    if not suite or not points:
        return None
    fig, load = plt.subplots(figsize=(11, 4))
    t = [p["t"] for p in points]
    load.plot(t, [p["rps"] for p in points], color="#1565c0", label="good req/s")
    load.set(title="Autoscale: replicas and req/s over time", xlabel="seconds since the load began", ylabel="req/s")
    count = load.twinx()
    count.step(t, [p["replicas"] for p in points], where="post", color="#2e7d32", label="replicas in the pool")
    count.step(t, [p["serving"] for p in points], where="post", color="#81c784", linestyle="--", label="serving")
    count.set_ylabel("replicas")
    count.set_ylim(0, max(p["replicas"] for p in points) + 1)
    lines = load.get_legend_handles_labels()[0] + count.get_legend_handles_labels()[0]
    load.legend(lines, [str(line.get_label()) for line in lines], loc="upper right")
    fig.tight_layout()
    return _save(fig, run_dir, "autoscale.png")


def _save(fig, run_dir: Path, name: str) -> str:
    fig.savefig(run_dir / name, dpi=90)
    plt.close(fig)
    return name


def _num(value: float | None, fmt: str = "{:.0f}") -> str:
    return "" if value is None else fmt.format(value)


def _page(summary: Summary, images: list[str]) -> str:
    e = html.escape
    verdict_colour = {"promote": COLOURS["pass"], "reject": COLOURS["fail"]}.get(
        summary.verdict, COLOURS["inconclusive"]
    )
    rows = []
    cpu_rows = []
    step_rows = []
    for name in SUITES:
        suite = summary.suites.get(name)
        if suite is None:
            continue
        links = " ".join(f'<a href="{e(r)}">{e(r)}</a>' for r in suite.locust_reports)
        rows.append(
            f"<tr><td>{e(name)}</td><td style='color:{COLOURS[suite.status]}'><b>{e(suite.status)}</b></td>"
            f"<td>{_num(suite.rps)}</td><td>{_num(suite.p50_ms)}</td><td>{_num(suite.p95_ms)}</td>"
            f"<td>{_num(suite.p99_ms)}</td><td>{_num(suite.error_ratio, '{:.3%}')}</td><td>{suite.requests}</td>"
            f"<td>{e(suite.reason)}</td><td>{links}</td></tr>"
        )
        for w in suite.cpu:
            cpu_rows.append(
                f"<tr><td>{e(name)}</td><td>{e(w.label)}</td><td>{w.processes}</td>"
                f"<td>{_num(w.generator_load, '{:.2f}')}</td><td>{_num(w.generator_wait, '{:.0%}')}</td>"
                f"<td>{_num(w.generator_cpu, '{:.2f}')}</td>"
                f"<td>{_num(w.machine_idle, '{:.2f}')}</td></tr>"
            )
        for label, steps in suite.steps.items():
            for st in steps:
                step_rows.append(
                    f"<tr><td>{e(name)}</td><td>{e(label)}</td><td>{st.users}</td><td>{_num(st.rps)}</td>"
                    f"<td>{_num(st.p95_ms)}</td><td>{st.errors} / {st.requests}</td>"
                    f"<td>{_num(st.generator_load, '{:.2f}')}</td><td>{_num(st.machine_idle, '{:.2f}')}</td>"
                    f"<td>{_num(st.throttled, '{:.0%}')}</td><td>{e(st.distorted or '')}</td></tr>"
                )
    plan = summary.capacity_plan
    plan_rows = "".join(
        f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in plan.model_dump().items() if k != "notes"
    ) + "".join(f"<tr><td>note</td><td>{e(n)}</td></tr>" for n in plan.notes)
    figures = "".join(f'<p><img src="{e(i)}" alt="{e(i)}" style="max-width:100%"></p>' for i in images)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>modelops gate {e(summary.run_id)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}td,th{{padding:4px 8px;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}}table{{border-collapse:collapse}}</style></head><body>
<h1>Gate run {e(summary.run_id)}: <span style="color:{verdict_colour}">{e(summary.verdict.upper())}</span></h1>
<p><b>Candidate</b> {e(summary.candidate)} &nbsp; <b>live baseline</b> {e(str(summary.baseline))} &nbsp;
<b>target</b> {e(summary.target)} ({e(summary.stack)}) &nbsp; <b>exit status</b> {summary.exit_status}</p>
<p><b>Why:</b> {e(summary.reason)}</p>
<p>Required for a promotion: {e(", ".join(summary.required_suites))}.</p>
<p>CPU budgets: {e(summary.cpu_budgets)}. Promoted: {"yes" if summary.promoted else "no"}.
Machine-readable: <a href="summary.json">summary.json</a>.</p>
{figures}
<h2>Suites</h2>
<table><tr><th>suite</th><th>status</th><th>req/s</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>errors</th>
<th>requests</th><th>reason</th><th>Locust report</th></tr>{"".join(rows)}</table>
<h2>Steps (each from its own window; req/s counts good answers only)</h2>
<table><tr><th>suite</th><th>curve</th><th>users</th><th>good req/s</th><th>p95 ms</th><th>errors</th>
<th>generator load (cores)</th><th>machine idle (cores)</th><th>replicas at budget</th>
<th>not the candidate's because</th></tr>{"".join(step_rows)}</table>
<h2>Load generator and machine CPU</h2>
<p>Sampled every 0.5 s: the busiest Locust process's load (CPU used + time waiting for a CPU), its wait, all Locust
processes' CPU, and the machine's idle cores. A saturated or starved generator makes a suite inconclusive.</p>
<table><tr><th>suite</th><th>run</th><th>Locust processes</th><th>generator load</th><th>generator wait</th>
<th>generator CPU</th><th>machine idle</th></tr>{"".join(cpu_rows)}</table>
<h2>Capacity plan</h2><table>{plan_rows}</table>
</body></html>
"""
