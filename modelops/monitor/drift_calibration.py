"""`modelops drift --calibrate`: run the online detector's calibration (modelops/monitor/calibrate.py) on a model
from the store and print it — false alarms over simulated days, detection delays per shift and feature count."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from modelops.errors import UsageError
from modelops.monitor.calibrate import OnlineCalibration, calibrate_online, heldout_rows
from modelops.monitor.drift import reference_from_metadata
from modelops.ui import Steps
from stacks.config import DriftWatchSettings


def run(settings: DriftWatchSettings, model: str, rate: float, days: float, jitter: float, seed: int,
        progress: Console | None = None) -> OnlineCalibration:  # fmt: skip
    from modelops.monitor.drift_report import load_model

    if rate <= 0 or days <= 0:
        raise UsageError(f"--rate and --days must be positive, got {rate} and {days}")
    metadata, predict = load_model(model)
    if predict is None:
        raise UsageError(f"{model} is a regressor: the drift calibration simulates class shares, which it lacks")
    steps = Steps(progress or Console(stderr=True))
    with steps.step(f"calibrating the monitor's detector: {days:g} simulated day(s) at {rate:g} rows/s, then shifts"):
        return calibrate_online(
            reference_from_metadata(metadata, predict), predict, heldout_rows(metadata), settings,
            model=model, rate=rate, days=days, jitter=jitter, seed=seed,
        )  # fmt: skip


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def run_and_print(out: Console, err: Console, settings: DriftWatchSettings, model: str, rate: float, days: float,
                  jitter: float, seed: int, as_json: bool) -> OnlineCalibration:  # fmt: skip
    result = run(settings, model, rate, days, jitter, seed, progress=err)
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
        return result
    t = result.thresholds
    out.print(
        f"thresholds from the reference of {model}: allowance k = {t['allowance']:.3f} sd (reference resolution "
        f"r = {t['resolution']:.3f}, tuned shift {t['shift']:g}), h = {t['h']:.2f}, {t['statistics']} statistics, "
        f"{t['chunks_per_day']:g} looks a day, max {settings.max_false_alarms_per_day:g} false alarms a day"
    )
    if t.get("note"):
        err.print(f"[yellow]{t['note']}[/]")
    day = result.day
    out.print(
        f"false alarms: [bold]{day.false_alarms}[/] in {day.days:g} simulated day(s) of normal traffic "
        f"({day.chunks} chunks, {day.rows} rows){': ' + '; '.join(day.alarm_signals) if day.alarm_signals else ''}"
    )
    table = Table("shift (sd)", "features", "found", "median delay s", "max delay s", "missed (direction, features)",
                  title=f"time to detect, from the first shifted row ({rate:g} rows/s, looks every "
                  f"{settings.interval_s} s, both directions, every feature or run of 3)")  # fmt: skip
    for row in result.summary():
        found = f"{row['found']}/{row['trials']}"
        delays = (_seconds(row["median_delay_s"]), _seconds(row["max_delay_s"]))
        table.add_row(f"{row['shift_sd']:g}", str(row["features"]), found, *delays, " ".join(row["missed"]))
    out.print(table)
    return result
