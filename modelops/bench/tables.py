"""The bench's summary as terminal tables: variants, comparisons with their spread and verdict, OpenMP threads."""

from __future__ import annotations

from rich.table import Table

VERDICT_STYLE = {"met": "[green]met[/]", "missed": "[red]missed[/]", "inconclusive": "[yellow]inconclusive[/]"}
GENERATOR_BUSY = 0.85  # cores: a Locust process this busy may have been the limit (gate.max_generator_load)


def _value(x: float, kind: str) -> str:
    return f"{x:.0f}" if kind == "figure" else f"{x:.3f}"


def variants_table(summary: dict) -> Table:
    table = Table("variant", "users", "req/s", "rounds req/s (min-max)", "p50 ms", "p95 ms", "p99 ms", "errors",
                  "requests")  # fmt: skip
    for name, v in summary["variants"].items():
        rounds = v["rounds_rps"]
        busy = v["generator_load"] is not None and v["generator_load"] >= GENERATOR_BUSY
        warn = " [yellow](load generator busy)[/]" if busy or v["cpu_warning"] else ""
        table.add_row(name + warn, str(v["users"]), f"{v['rps']:.0f}",
                      f"{min(rounds):.0f}-{max(rounds):.0f} ({len(rounds)})", f"{v['p50_ms']:.0f}",
                      f"{v['p95_ms']:.0f}", f"{v['p99_ms']:.0f}", str(v["errors"]), str(v["requests"]))  # fmt: skip
    return table


def comparisons_table(summary: dict) -> Table:
    """Each ratio (median of per-round ratios) or figure with its 95 % interval, rounds, goal and verdict."""
    table = Table("comparison", "value", "95 % interval", "rounds", "goal", "verdict")
    for c in summary["comparisons"].values():
        verdict = VERDICT_STYLE.get(c["verdict"], "—")
        if c["verdict"] == "missed" and c["failed_requests"]:
            verdict += f" ({c['failed_requests']} failed requests)"
        table.add_row(c["label"], _value(c["value"], c["kind"]),
                      f"{_value(c['low'], c['kind'])}-{_value(c['high'], c['kind'])}", str(c["rounds"]),
                      c["goal"] or "—", verdict)  # fmt: skip
    return table


def omp_table(summary: dict) -> Table | None:
    """The OpenMP model at half a core, threads unset vs set (None when the run left it out)."""
    variants, ratio = summary["variants"], summary["comparisons"].get("omp_set_vs_unset")
    if ratio is None or not {"omp_unset", "omp_set"} <= set(variants):
        return None
    table = Table("HistGradientBoosting, ½ core", "req/s", "p50 ms", "p95 ms", "ratio (set / unset)",
                  title="OpenMP threads: unset vs OMP_NUM_THREADS & co. from the budget")  # fmt: skip
    for name, label in (("omp_unset", "threads unset"), ("omp_set", "threads set (stacks/threads.py)")):
        v = variants[name]
        table.add_row(label, f"{v['rps']:.0f}", f"{v['p50_ms']:.0f}", f"{v['p95_ms']:.0f}", "")
    table.add_row("", "", "", "", f"{ratio['value']:.2f}x [{ratio['low']:.2f}-{ratio['high']:.2f}]")
    return table
