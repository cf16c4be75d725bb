"""`modelops drift` end to end: read the prediction log as the monitor does, replay the monitor's detector over the
newest model's rows (modelops/monitor/drift_view.py), write drift.json + drift.html.

The JSON file is the :class:`DriftReport` model; the HTML page (with its plots, modelops/monitor/drift_plots.py)
and the exit status are derived from it.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

from bento.prediction_log import log_files
from modelops.errors import BentoNotFoundError, ExitStatus
from modelops.monitor import drift_plots, logread
from modelops.monitor.drift import DRIFT, INCONCLUSIVE, DriftError, DriftReport, Reference, reference_from_metadata
from modelops.monitor.drift_view import judge_log
from stacks.config import MonitorSettings

REPORT_JSON, REPORT_HTML = "drift.json", "drift.html"
EXIT_STATUS = {DRIFT: ExitStatus.DRIFT_DETECTED, INCONCLUSIVE: ExitStatus.INCONCLUSIVE}


def load_model(tag: str) -> tuple[dict, Callable[[np.ndarray], list[str]] | None]:
    """A model from the BentoML store: its metadata and a predict function returning class labels (None for a
    regressor: its predictions have no class shares to compare)."""
    import bentoml  # slow to import: only when a command needs the store

    from modelops.bentos import bentoml_home

    try:
        stored = bentoml.models.get(tag)
    except (bentoml.exceptions.NotFound, ValueError):
        raise BentoNotFoundError(
            f"model {tag!r} is not in {bentoml_home() / 'models'}: build it with `modelops build`, or name the "
            "model that wrote the log with --model TAG (`bentoml models list`)"
        ) from None
    from bento import served

    metadata: dict[str, Any] = dict(stored.info.metadata)  # JSON-like values; "classes" is a list
    if metadata.get(served.TASK) == served.REGRESSION:
        return metadata, None
    # Any framework the service template serves, through the same loader, with the model's own call (the build
    # proved the accelerated one gives the same labels).
    model = served.load(stored, accelerate=False) if served.TASK in metadata else None
    legacy = bentoml.sklearn.load_model(stored) if model is None else None
    classes = [str(c) for c in metadata.get("classes", [])]

    def predict(rows: np.ndarray) -> list[str]:
        x = np.asarray(rows, dtype=float)
        if model is None:  # a reference model saved before the serving profile existed
            return [classes[int(i)] for i in cast(Any, legacy).predict(x)]
        return [classes[int(i)] for i in model.predict(x).argmax(axis=1)]

    return metadata, predict


def store_reference(tag: str) -> Reference:
    metadata, predict = load_model(tag)
    return reference_from_metadata(metadata, predict)


def exit_status(report: DriftReport) -> ExitStatus:
    return EXIT_STATUS.get(report.status, ExitStatus.OK)


def run_drift_check(
    log_dir: Path,
    settings: MonitorSettings,
    load_reference: Callable[[str], Reference],
    window: int | None = None,
    clock: Callable[[], float] = time.time,
) -> DriftReport:
    """The monitor's detector over every row the log holds of the model that wrote the newest row, as of now;
    descriptive figures on the newest ``window`` rows (default ``modelops:monitor.window``).

    ``load_reference(model_version)`` returns that model's reference (the CLI reads the BentoML model store).
    """
    if window is not None:
        settings = settings.model_copy(update={"window": window})
    batch = logread.LogTail(log_dir).read()  # the monitor's own reader, from the start of every file
    if not batch.rows:
        where = f"{log_dir} has no prediction log files" if not log_files(log_dir) else f"{log_dir} holds no records"
        return DriftReport(
            status=INCONCLUSIVE,
            reason=f"{where}: deploy with prediction logging on (modelops:monitor.log_dir) and send traffic",
            rows=0,
        )
    newest = batch.rows[-1].model_version
    # A log spanning a promotion holds two models' rows: judge the live model's only (as the monitor does).
    rows = [r for r in batch.rows if r.model_version == newest]
    report = judge_log(load_reference(newest), rows, settings, now=clock(), model_version=newest)
    others = sorted({r.model_version for r in batch.rows} - {newest})
    if others:
        note = f" (only the rows of {newest}; the log also holds {', '.join(others)})"
        report = report.model_copy(update={"reason": report.reason + note})
    return report


def summary_lines(report: DriftReport, status: ExitStatus) -> list[Any]:
    """What `modelops drift` prints: the verdict, the signals that moved, the descriptive figures (rich renderables)."""
    from rich.table import Table

    colour = {"drift": "red", "no_drift": "green"}.get(report.status, "yellow")
    lines: list[Any] = [f"[bold {colour}]{report.status}[/] (exit {int(status)}) — {report.reason}"]
    moved = set(drift_plots.moved_signals(report))
    if report.signals:
        h = report.thresholds["h"]
        table = Table(
            "signal",
            "CUSUM",
            "h",
            "highest",
            "last chunk mean (sd)",
            "drifted",
            title="the detector's signals that moved (every signal: drift.json)",
        )
        for s in sorted((s for s in report.signals if s.signal in moved), key=lambda s: -s.cusum):
            table.add_row(
                s.signal,
                f"{s.cusum:.2f}",
                f"{h:.2f}",
                f"{s.max_cusum:.2f}",
                f"{s.last_effect_sd:+.2f}",
                "[red]yes[/]" if s.drifted else "no",
            )
        lines.append(table if moved else "no signal's CUSUM moved")
    if report.features:
        table = Table(
            "feature",
            "recent mean",
            "training mean",
            "shift sd [95 %]",
            "KS D",
            "D from sampling",
            title=f"the newest {report.recent_rows} rows against the training sample (descriptive)",
        )
        for f in report.features:
            table.add_row(
                f.feature,
                f"{f.recent_mean:.4g}",
                f"{f.reference_mean:.4g}",
                f"{f.shift_sd:+.2f} [{f.shift_low:+.2f}, {f.shift_high:+.2f}]",
                f"{f.ks_statistic:.3f}",
                f"{f.ks_sampling:.3f}",
            )
        lines.append(table)
    if report.classes:
        shares = ", ".join(
            f"{c.name} {c.recent_share:.0%} [{c.recent_low:.0%}-{c.recent_high:.0%}] (training {c.reference_share:.0%})"
            for c in report.classes
        )
        lines.append(f"predicted classes: {shares}")
    return lines


def write_report(report: DriftReport, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / REPORT_JSON, out_dir / REPORT_HTML
    json_path.write_text(report.model_dump_json(indent=2))
    html_path.write_text(render_html(report))
    return json_path, html_path


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _img(svg: str | None, alt: str) -> str:
    if svg is None:
        return ""
    return f'<img src="{drift_plots.data_uri(svg)}" alt="{html.escape(alt)}">'


def _thresholds(t: dict[str, Any]) -> str:
    if not t:
        return ""
    return (
        f"Detector: CUSUM per signal over chunks of at least {t['min_chunk_rows']} rows cut every "
        f"{t['interval_s']} s; allowance k = {t['allowance']:.3f} sd (reference resolution r = "
        f"{t['resolution']:.3f}, tuned shift {t['shift']:g} sd), threshold h = {t['h']:.2f} for "
        f"{t['max_false_alarms_per_day']:g} false alarm(s) a day over {t['statistics']} statistics "
        "(modelops:monitor.drift)."
    )


def _signals_section(report: DriftReport) -> str:
    if not report.signals:
        return ""
    rows = "".join(
        f"<tr{' class=drifted' if s.drifted else ''}><td>{html.escape(s.signal)}</td><td>{s.cusum:.2f}</td>"
        f"<td>{s.max_cusum:.2f}</td><td>{s.last_effect_sd:+.2f}</td><td>{'yes' if s.drifted else 'no'}</td></tr>"
        for s in sorted(report.signals, key=lambda s: s.cusum, reverse=True)
    )
    plot = _img(drift_plots.cusum_plot(report), "CUSUM per signal over chunks, threshold h")
    return (
        f"<h2>Detector</h2><p>{html.escape(_thresholds(report.thresholds))}</p>{plot}"
        "<table><tr><th>signal</th><th>CUSUM now</th><th>highest</th><th>last chunk mean (sd)</th><th>drifted</th>"
        f"</tr>{rows}</table>"
    )


def _features_section(report: DriftReport) -> str:
    if not report.features:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(f.feature)}</td><td>{f.recent_mean:.4g}</td><td>{f.reference_mean:.4g}</td>"
        f"<td>{f.shift_sd:+.2f} [{f.shift_low:+.2f}, {f.shift_high:+.2f}]</td>"
        f"<td>{f.ks_statistic:.3f}</td><td>{f.ks_sampling:.3f}</td></tr>"
        for f in report.features
    )
    plots = [
        _img(drift_plots.feature_plot(f, report.recent_rows, report.reference_rows), f"{f.feature}: histograms")
        for f in report.features
    ]
    plots.append(_img(drift_plots.classes_plot(report), "predicted class shares, recent vs reference"))
    return (
        f"<h2>The newest {report.recent_rows} rows against the training sample</h2>"
        "<p>Descriptive figures, not verdict rules: the verdict above is the detector's. Shift: recent mean minus "
        "training mean in training standard deviations, with a 95 % interval that counts both samples' errors. "
        "KS D beside the D that sampling alone reaches in 95 % of pairs of samples of these sizes.</p>"
        "<table><tr><th>feature</th><th>recent mean</th><th>training mean</th><th>shift, sd [95 %]</th>"
        f"<th>KS D</th><th>D from sampling (95 %)</th></tr>{rows}</table><div class=plots>{''.join(plots)}</div>"
    )


def _classes_section(report: DriftReport) -> str:
    if not report.classes:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(c.name)}</td><td>{c.recent_share:.1%} [{c.recent_low:.1%}, {c.recent_high:.1%}]</td>"
        f"<td>{c.reference_share:.1%} [{c.reference_low:.1%}, {c.reference_high:.1%}]</td></tr>"
        for c in report.classes
    )
    return (
        "<h2>Predicted classes</h2><table><tr><th>class</th><th>recent [95 %]</th><th>training sample [95 %]</th>"
        f"</tr>{rows}</table>"
    )


def render_html(report: DriftReport) -> str:
    e = html.escape
    colour = {"drift": "#c0392b", "no_drift": "#27ae60"}.get(report.status, "#d68910")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Drift report: {report.status}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}} td,th{{padding:2px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}} table{{border-collapse:collapse;margin:1em 0}}
tr.drifted{{background:#fdecea}} .plots{{display:flex;flex-wrap:wrap;gap:8px}} img{{max-width:100%}}</style></head>
<body>
<h1 style="color:{colour}">{e(report.status.replace("_", " "))}</h1>
<p>{e(report.reason)}</p>
<p>{report.rows} rows of {e(report.model_version or "-")} judged ({report.rows_waiting} waiting for a chunk),
logged {_when(report.first_ts)} to {_when(report.last_ts)}; looked at {_when(report.looked_at)}.</p>
{_signals_section(report)}
{_features_section(report)}
{_classes_section(report)}
</body></html>
"""


__all__ = ["DriftError", "exit_status", "render_html", "run_drift_check", "write_report"]
