"""Drift check end to end: read the prediction log, load the reference, compare, write drift.json + drift.html.

The JSON file is the :class:`DriftReport` model; the HTML page and the exit status are derived from it.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from bento.prediction_log import read_window
from modelops.errors import BentoNotFoundError, ExitStatus
from modelops.monitor.drift import (
    DRIFT,
    INCONCLUSIVE,
    DriftError,
    DriftReport,
    Reference,
    check_drift,
    reference_from_metadata,
)
from modelops.monitor.rules import DRIFT_METRIC
from stacks.config import MonitorSettings

REPORT_JSON, REPORT_HTML, REPORT_METRICS = "drift.json", "drift.html", "drift.prom"
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
) -> DriftReport:
    """Compare the last ``window`` logged rows with the reference of the model that wrote the newest of them.

    ``load_reference(model_version)`` returns that model's reference (the CLI reads the BentoML model store).
    """
    n = window or settings.window
    if n < settings.min_rows:
        settings = settings.model_copy(update={"min_rows": n})  # --window smaller than min_rows: the user's call
    logged = read_window(log_dir, n)
    versions = {r.model_version for r in logged.rows}
    if not logged.rows:
        where = f"{log_dir} has no prediction log files" if not logged.files else f"{log_dir} holds no records"
        return DriftReport(
            status=INCONCLUSIVE,
            reason=f"{where}: deploy with prediction logging on (modelops:monitor.log_dir) and send traffic",
            rows=0,
            thresholds={},
        )
    newest = logged.rows[-1].model_version
    rows = [r for r in logged.rows if r.model_version == newest]
    # A window spanning a promotion mixes two models' outputs: compare only the live model's rows.
    reference = load_reference(newest)
    report = check_drift(
        reference,
        np.asarray([r.features for r in rows], dtype=float),
        [r.prediction for r in rows],
        settings.model_copy(update={"window": n}),
        model_version=newest,
        first_ts=rows[0].ts,
        last_ts=rows[-1].ts,
    )
    if len(versions) > 1:
        others = ", ".join(sorted(versions - {newest}))
        note = f" (only the {len(rows)} rows of {newest}; the window also held {others})"
        report = report.model_copy(update={"reason": report.reason + note})
    return report


def write_report(report: DriftReport, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / REPORT_JSON, out_dir / REPORT_HTML
    json_path.write_text(report.model_dump_json(indent=2))
    html_path.write_text(render_html(report))
    if report.model_version and report.status != INCONCLUSIVE:
        (out_dir / REPORT_METRICS).write_text(render_metrics(report))
    return json_path, html_path


def render_metrics(report: DriftReport) -> str:
    """The verdict in Prometheus' text format, for the DriftDetected alert (rules.DRIFT_METRIC)."""
    version = report.model_version.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f"# HELP {DRIFT_METRIC} 1 when the last drift check of this model found drift, else 0.\n"
        f"# TYPE {DRIFT_METRIC} gauge\n"
        f'{DRIFT_METRIC}{{model_version="{version}"}} {int(report.status == DRIFT)}\n'
    )


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _bars(shares: Sequence[float], reference: Sequence[float]) -> str:
    """Inline SVG: window share (filled) over reference share (outline) per bin."""
    width, height, gap = 12, 40, 3
    top = max([*shares, *reference, 1e-9])
    parts = []
    for i, (w, r) in enumerate(zip(shares, reference, strict=True)):
        x = i * (width + gap)
        hw, hr = height * w / top, height * r / top
        parts.append(f'<rect x="{x}" y="{height - hw:.1f}" width="{width}" height="{hw:.1f}" fill="#4c78a8"/>')
        parts.append(
            f'<rect x="{x}" y="{height - hr:.1f}" width="{width}" height="{hr:.1f}" fill="none" stroke="#e45756"/>'
        )
    return f'<svg width="{len(shares) * (width + gap)}" height="{height}">{"".join(parts)}</svg>'


def render_html(report: DriftReport) -> str:
    colour = {"drift": "#c0392b", "no_drift": "#27ae60"}.get(report.status, "#d68910")
    rows = []
    for f in report.features:
        total = max(sum(f.window_counts), 1)
        style = ' style="background:#fdecea"' if f.drifted else ""
        rows.append(
            f"<tr{style}><td>{html.escape(f.feature)}</td><td>{f.psi:.3f}</td><td>{f.ks_statistic:.3f}</td>"
            f"<td>{f.ks_pvalue:.2g}</td><td>{f.window_mean:.4g}</td><td>{f.reference_mean:.4g}</td>"
            f"<td>{_bars([c / total for c in f.window_counts], f.reference_shares)}</td>"
            f"<td>{'yes' if f.drifted else 'no'}</td></tr>"
        )
    predictions = ""
    if report.predictions is not None:
        p = report.predictions
        cells = "".join(
            f"<tr><td>{html.escape(c)}</td><td>{p.window_shares[c]:.1%}</td><td>{p.reference_shares[c]:.1%}</td></tr>"
            for c in p.reference_shares
        )
        predictions = (
            f"<h2>Predicted classes</h2><p>PSI {p.psi:.3f}, chi-square p {p.chi2_pvalue:.2g}: "
            f"{'drifted' if p.drifted else 'no drift'}</p>"
            f"<table><tr><th>class</th><th>window</th><th>reference</th></tr>{cells}</table>"
        )
    thresholds = ", ".join(f"{k} {v:g}" for k, v in report.thresholds.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Drift report: {report.status}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}} table{{border-collapse:collapse}}</style></head>
<body>
<h1 style="color:{colour}">{html.escape(report.status.replace("_", " "))}</h1>
<p>{html.escape(report.reason)}</p>
<p>{report.rows} rows of {html.escape(report.model_version or "-")}, {_when(report.first_ts)} to
{_when(report.last_ts)}. Thresholds: {html.escape(thresholds)}.</p>
<h2>Features</h2>
<p>Bars: window share per training-quantile bin (filled), training share (outline).</p>
<table><tr><th>feature</th><th>PSI</th><th>KS D</th><th>KS p</th><th>window mean</th><th>training mean</th>
<th>bins</th><th>drifted</th></tr>
{"".join(rows)}
</table>
{predictions}
</body></html>
"""


__all__ = ["DriftError", "exit_status", "render_html", "run_drift_check", "write_report"]
