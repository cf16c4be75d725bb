"""report.html: the gate run for people — plots first, derived only from summary.json (and, when the canary ran,
canary.json beside it). One self-contained file: every plot is inline SVG (modelops/gate/charts.py), so the page can
be mailed or attached to a ticket whole; Locust's own reports and summary.json are links beside it.

The page is a list of sections (``SECTIONS``): each is a function from the run's record to a :class:`Section`, or
None when the run holds nothing for it (a run without a canary, without regression …). A suite that needs a section
of its own adds one function and its place in ``SECTIONS``; nothing here judges — every verdict, interval and
threshold drawn is one the summary holds.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure
from pydantic import BaseModel, ValidationError

from modelops.canary import CANARY_FILE
from modelops.gate import charts, report_resources
from modelops.gate.summary import REPORT_FILE, SUITES, SuiteResult, Summary
from modelops.promotion import CanaryStep

COLOURS = charts.COLOURS
e = html.escape


class CanaryRecord(BaseModel):
    """canary.json, as modelops/canary.py writes it (CanaryOutcome.to_dict): the outcome and every judged step."""

    promoted: bool
    exit_status: int
    reason: str
    steps: list[CanaryStep] = []


@dataclass(frozen=True)
class Run:
    """What the report is drawn from: the summary, and the canary's record when one ran."""

    summary: Summary
    canary: CanaryRecord | None = None
    canary_error: str | None = None  # canary.json exists but could not be read

    @property
    def slo_p95_ms(self) -> float | None:
        value = self.summary.settings.get("slo", {}).get("p95_ms")
        return float(value) if value else None

    def suites(self) -> list[tuple[str, SuiteResult]]:
        """The suites that ran, in the order they run (any the report does not know yet last)."""
        known = [(name, self.summary.suites[name]) for name in SUITES if name in self.summary.suites]
        return known + [(n, s) for n, s in self.summary.suites.items() if n not in SUITES]


@dataclass(frozen=True)
class Plot:
    name: str  # the <figure>'s id in the page: plot-<name>
    caption: str
    svg: str


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    plots: list[Plot] = field(default_factory=list)
    body: str = ""  # HTML after the plots: notes, tables


def render(summary: Summary, run_dir: Path) -> Path:
    run = read_run(summary, run_dir)
    with charts.style():
        sections = [section for make in SECTIONS if (section := make(run)) is not None]
    path = run_dir / REPORT_FILE
    path.write_text(_page(summary, sections))
    return path


def read_run(summary: Summary, run_dir: Path) -> Run:
    path = run_dir / CANARY_FILE
    if not path.exists():
        return Run(summary)
    try:
        return Run(summary, CanaryRecord.model_validate_json(path.read_text()))
    except (OSError, ValidationError) as exc:
        # The run's verdict stands without it: say what is missing instead of failing the whole report.
        return Run(summary, canary_error=f"{path.name} could not be read ({type(exc).__name__}): {exc}")


def _plot(name: str, caption: str, fig: Figure | None) -> Plot | None:
    return None if fig is None else Plot(name, caption, charts.to_svg(fig, caption))


def _section(name: str, title: str, *plots: Plot | None, body: str = "") -> Section | None:
    drawn = [p for p in plots if p is not None]
    return Section(name, title, drawn, body) if drawn or body else None


# ------------------------------------------------------------------------------------------------ sections
def latency_section(run: Run) -> Section | None:
    return _section("latency", "Latency per suite", _plot(
        "latency", "p50, p95 and p99 of each suite's whole measured load, against the p95 SLO",
        charts.latency_per_suite(run.suites(), run.slo_p95_ms)))  # fmt: skip


def capacity_section(run: Run) -> Section | None:
    with_steps = [(n, s) for n, s in run.suites() if s.steps]
    caption = ("Every step of the step loads (round 1): p95 against good req/s, one curve per configuration, labelled "
               "with its users. Filled: the step met the SLO (p95, p99 and errors) and counts as capacity; hollow: "
               "outside the SLO, or after the first step that was; x: distorted (the generator or the machine was the "
               "limit). The red line is the p95 SLO.")  # fmt: skip
    return _section("capacity", "Capacity within the SLO: p95 against good req/s",
                    _plot("p95-vs-rps", caption, charts.p95_against_rps(with_steps, run.slo_p95_ms)))  # fmt: skip


def scaling_views(summary: Summary) -> list[charts.ScalingView]:
    """The scaling suites' ratios as the judge recorded them (measured: the median over the rounds and its interval;
    None where a ratio was not measured — summary.scaling reads those as 0)."""
    views = []
    horizontal, vertical = summary.suites.get("horizontal"), summary.suites.get("vertical")
    replicas, workers = summary.scaling.horizontal.replicas, summary.scaling.vertical.workers
    if horizontal is not None and replicas:
        ratios = [charts.Ratio(n, *_estimate(horizontal, f"efficiency_{n}"), bound=1.0) for n in replicas[1:]]
        views.append(charts.ScalingView("horizontal", "replicas", replicas, horizontal, ratios,
                                        horizontal.thresholds.get("min_efficiency"), "E(N)"))  # fmt: skip
    if vertical is not None and len(workers) > 1:
        # The judge records one vertical ratio: the last worker count's against the first's.
        ratios = [charts.Ratio(workers[-1], *_estimate(vertical, "ratio"), bound=workers[-1] / workers[0])]
        views.append(charts.ScalingView("vertical", "workers", workers, vertical, ratios,
                                        vertical.thresholds.get("min_vertical_ratio"), "vertical ratio"))  # fmt: skip
    return views


def _estimate(suite: SuiteResult, key: str) -> tuple[float | None, list[float]]:
    low, high = suite.measured.get(f"{key}_low"), suite.measured.get(f"{key}_high")
    return suite.measured.get(key), [low, high] if low is not None and high is not None else []


def scaling_section(run: Run) -> Section | None:
    caption = ("Horizontal and vertical side by side. Top: good req/s at the compared step (the first "
               "configuration's most loaded step within the SLO, users scaled with the configuration), one line per "
               "round on fresh processes; dotted, each round's physical bound (linear from the first configuration). "
               "Bottom: the ratio the verdict was judged on — its median over the rounds with its interval — against "
               "the threshold and the physical bound (an interval wholly above the bound measured noise).")  # fmt: skip
    views = scaling_views(run.summary)
    reasons = "".join(f"<p><b>{e(v.suite)}</b> ({_status(v.result.status)}): {e(v.result.reason)}</p>" for v in views)
    return _section("scaling", "Scaling: horizontal and vertical, round by round",
                    _plot("scaling", caption, charts.scaling(views)), body=reasons)  # fmt: skip


def candidate_vs_live_section(run: Run) -> Section | None:
    regression, quality = run.summary.suites.get("regression"), run.summary.suites.get("quality")
    plots = []
    body = ""
    if regression is not None:
        caption = ("Regression: the candidate and the live version, each on fresh processes of its own, measured "
                   "beside each other in every round at the compared step; right, the ratios' medians with their "
                   "intervals against the limits.")  # fmt: skip
        plots.append(_plot("regression", caption, charts.regression(regression, run.slo_p95_ms)))
        body += f"<p><b>regression</b> ({_status(regression.status)}): {e(regression.reason)}</p>"
    if quality is not None:
        caption = (
            "Quality: every labelled set both versions answered — each one's accuracy with its interval, and "
            "the paired difference (McNemar) with its interval against the margin, which is what is judged."
        )
        plots.append(_plot("quality", caption, charts.quality_sets(quality)))
        body += f"<p><b>quality</b> ({_status(quality.status)}): {e(quality.reason)}</p>"
    return _section("candidate-vs-live", "Candidate against live", *plots, body=body)


def canary_section(run: Run) -> Section | None:
    if run.canary_error:
        return _section("canary", "Canary", body=f"<p>{e(run.canary_error)}</p>")
    record = run.canary
    if record is None:
        return None
    settings = run.summary.settings.get("canary", {})
    caption = (
        "The canary's steps of live traffic: the candidate's share, each colour's p95 and error ratio, and the "
        "one-sided tests' p-values against alpha (a step fails when a test is significant and the practical "
        "threshold is crossed). Figures per step: its intervals' totals and its last interval's tests."
    )
    fig = charts.canary(record.steps, settings.get("alpha"), settings.get("max_error_ratio"))
    rows = "".join(
        f"<tr><td>{s.weight} %</td><td>{_status('pass' if s.passed else 'fail')}</td><td>{e(s.source)}</td>"
        f"<td>{_num(s.measured.get('intervals_passed'))} / {_num(s.measured.get('intervals_failed'))} / "
        f"{_num(s.measured.get('intervals_inconclusive'))}</td>"
        f"<td>{_num(s.measured.get('candidate_errors'))} / {_num(s.measured.get('candidate_requests'))}</td>"
        f"<td>{_num(s.measured.get('live_errors'))} / {_num(s.measured.get('live_requests'))}</td>"
        f"<td>{_num(s.measured.get('candidate_p95_ms'))}</td><td>{_num(s.measured.get('live_p95_ms'))}</td>"
        f"<td>{_num(s.measured.get('errors_p'), '{:.2g}')}</td><td>{_num(s.measured.get('latency_p'), '{:.2g}')}</td>"
        f"<td>{e('; '.join(s.reasons))}</td></tr>"
        for s in record.steps
    )
    outcome = "promoted" if record.promoted else f"rolled back (exit {record.exit_status})"
    body = (f"<p><b>Outcome:</b> {e(outcome)}: {e(record.reason)}</p><table><tr><th>share</th><th>step</th>"
            "<th>source</th><th>intervals passed / failed / inconclusive</th><th>candidate errors / requests</th>"
            "<th>live errors / requests</th><th>candidate p95 ms</th><th>live p95 ms</th><th>errors p</th>"
            f"<th>latency p</th><th>breaches</th></tr>{rows}</table>")  # fmt: skip
    return _section("canary", "Canary: live traffic, step by step", _plot("canary", caption, fig), body=body)


def per_second_section(run: Run) -> Section | None:
    failover = run.summary.suites.get("failover")
    killed = failover.measured.get("killed_at_s") if failover else None
    caption = "Good req/s and p95 of every second of each suite's measured load (the failover's kill marked)."
    return _section("per-second", "Second by second", _plot("per-second", caption,
                                                              charts.per_second(run.suites(), killed)))  # fmt: skip


def resources_section(run: Run) -> Section | None:
    caption = ("Memory (RSS of all its processes) and open file descriptors of every candidate replica process, "
               "suite after suite: the soak's verdict projects this trend to the memory limit")  # fmt: skip
    return _section("resources", "Memory and open files", _plot("resources", caption,
                                                                 report_resources.plot(run.summary)))  # fmt: skip


def autoscale_section(run: Run) -> Section | None:
    suite = run.summary.suites.get("autoscale")
    if suite is None:
        return None
    caption = "The candidate pool's replicas (in the pool, and serving) and its good req/s through the ramp."
    return _section("autoscale", "Autoscale", _plot("autoscale", caption, charts.autoscale(suite)))


def suites_section(run: Run) -> Section:
    rows = []
    for name, suite in run.suites():
        links = " ".join(f'<a href="{e(r)}">{e(r)}</a>' for r in suite.locust_reports)
        rows.append(
            f"<tr><td>{e(name)}</td><td>{_status(suite.status)}</td>"
            f"<td>{_num(suite.rps)}</td><td>{_num(suite.p50_ms)}</td><td>{_num(suite.p95_ms)}</td>"
            f"<td>{_num(suite.p99_ms)}</td><td>{_num(suite.error_ratio, '{:.3%}')}</td><td>{suite.requests}</td>"
            f"<td>{e(suite.reason)}</td><td>{links}</td></tr>"
        )
    return Section("suites", "Suites", body="<table><tr><th>suite</th><th>status</th><th>req/s</th><th>p50 ms</th>"
                   "<th>p95 ms</th><th>p99 ms</th><th>errors</th><th>requests</th><th>reason</th><th>Locust report</th>"
                   f"</tr>{''.join(rows)}</table>")  # fmt: skip


def steps_section(run: Run) -> Section | None:
    rows = []
    for name, suite in run.suites():
        for label, steps in suite.steps.items():
            within = suite.within_slo.get(label)
            for i, st in enumerate(steps):
                met = "" if within is None else "yes" if i < within else "no"
                rows.append(
                    f"<tr><td>{e(name)}</td><td>{e(label)}</td><td>{st.users}</td><td>{_num(st.rps)}</td>"
                    f"<td>{_num(st.p95_ms)}</td><td>{_num(st.p99_ms)}</td><td>{st.errors} / {st.requests}</td>"
                    f"<td>{met}</td><td>{_num(st.generator_load, '{:.2f}')}</td>"
                    f"<td>{_num(st.machine_idle, '{:.2f}')}</td><td>{_num(st.throttled, '{:.0%}')}</td>"
                    f"<td>{e(st.distorted or '')}</td></tr>"
                )
    if not rows:
        return None
    return Section("steps", "Steps (each from its own window; req/s counts good answers only)", body=(
        "<table><tr><th>suite</th><th>curve</th><th>users</th><th>good req/s</th><th>p95 ms</th><th>p99 ms</th>"
        "<th>errors</th><th>met the SLO</th><th>generator load (cores)</th><th>machine idle (cores)</th>"
        f"<th>replicas at budget</th><th>not the candidate's because</th></tr>{''.join(rows)}</table>"))  # fmt: skip


def cpu_section(run: Run) -> Section | None:
    rows = [
        f"<tr><td>{e(name)}</td><td>{e(w.label)}</td><td>{w.processes}</td>"
        f"<td>{_num(w.generator_load, '{:.2f}')}</td><td>{_num(w.generator_wait, '{:.0%}')}</td>"
        f"<td>{_num(w.generator_cpu, '{:.2f}')}</td><td>{_num(w.machine_idle, '{:.2f}')}</td></tr>"
        for name, suite in run.suites()
        for w in suite.cpu
    ]
    if not rows:
        return None
    return Section("cpu", "Load generator and machine CPU", body=(
        "<p>Sampled every 0.5 s: the busiest Locust process's load (CPU used + time waiting for a CPU), its wait, all "
        "Locust processes' CPU, and the machine's idle cores. A saturated or starved generator makes a suite "
        "inconclusive.</p><table><tr><th>suite</th><th>run</th><th>Locust processes</th><th>generator load</th>"
        f"<th>generator wait</th><th>generator CPU</th><th>machine idle</th></tr>{''.join(rows)}</table>"))  # fmt: skip


def capacity_plan_section(run: Run) -> Section:
    plan = run.summary.capacity_plan
    rows = "".join(
        f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in plan.model_dump().items() if k != "notes"
    ) + "".join(f"<tr><td>note</td><td>{e(n)}</td></tr>" for n in plan.notes)
    return Section("capacity-plan", "Capacity plan", body=f"<table>{rows}</table>")


# The page, top to bottom. A suite with a section of its own (e.g. plan, soak) adds its function here.
SECTIONS: list[Callable[[Run], Section | None]] = [
    latency_section,
    capacity_section,
    scaling_section,
    candidate_vs_live_section,
    canary_section,
    per_second_section,
    resources_section,
    autoscale_section,
    suites_section,
    steps_section,
    cpu_section,
    capacity_plan_section,
]


# ---------------------------------------------------------------------------------------------------- page
def _num(value: float | int | None, fmt: str = "{:.0f}") -> str:
    return "" if value is None else fmt.format(value)


def _status(status: str) -> str:
    return f"<b style='color:{COLOURS.get(status, COLOURS['inconclusive'])}'>{e(status)}</b>"


def _html(section: Section) -> str:
    plots = "".join(
        f'<figure class="plot" id="plot-{e(p.name)}">{p.svg}<figcaption>{e(p.caption)}</figcaption></figure>'
        for p in section.plots
    )
    return f'<section id="{e(section.name)}"><h2>{e(section.title)}</h2>{plots}{section.body}</section>\n'


def _page(summary: Summary, sections: list[Section]) -> str:
    verdict_colour = {"promote": COLOURS["pass"], "reject": COLOURS["fail"]}.get(
        summary.verdict, COLOURS["inconclusive"]
    )
    contents = " · ".join(f'<a href="#{e(s.name)}">{e(s.title.split(":")[0])}</a>' for s in sections)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>modelops gate {e(summary.run_id)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}td,th{{padding:4px 8px;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}}table{{border-collapse:collapse}}figure{{margin:1em 0 2em}}
figcaption{{color:#424242;font-size:0.9em;max-width:60em}}</style></head><body>
<h1>Gate run {e(summary.run_id)}: <span style="color:{verdict_colour}">{e(summary.verdict.upper())}</span></h1>
<p><b>Candidate</b> {e(summary.candidate)} &nbsp; <b>live baseline</b> {e(str(summary.baseline))} &nbsp;
<b>target</b> {e(summary.target)} ({e(summary.stack)}) &nbsp; <b>exit status</b> {summary.exit_status}</p>
<p><b>Why:</b> {e(summary.reason)}</p>
<p>Required for a promotion: {e(", ".join(summary.required_suites))}.</p>
<p>CPU budgets: {e(summary.cpu_budgets)}. Promoted: {"yes" if summary.promoted else "no"}.
Machine-readable: <a href="summary.json">summary.json</a>.</p>
<nav>{contents}</nav>
{"".join(_html(s) for s in sections)}</body></html>
"""
