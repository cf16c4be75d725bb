"""report.html is one self-contained page drawn from summary.json (and canary.json): every chart inline, each with
its labels and the values it shows; a run lacking a part (no canary, no regression, no scaling suite) still renders."""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from modelops.canary import CANARY_FILE
from modelops.gate.report import render
from modelops.gate.summary import REPORT_FILE, SUMMARY_FILE, Summary, write
from tests.modelops.gate import report_runs as runs

FULL = {"plot-latency", "plot-p95-vs-rps", "plot-scaling", "plot-regression", "plot-quality", "plot-canary",
        "plot-per-second", "plot-autoscale"}  # fmt: skip


def page(run_dir: Path) -> BeautifulSoup:
    return BeautifulSoup((run_dir / REPORT_FILE).read_text(), "html.parser")


def plots(soup: BeautifulSoup) -> dict[str, str]:
    """Each inline plot's figure id -> the text its SVG holds (titles, axis labels, legends, annotations)."""
    return {f["id"]: " ".join(t.get_text() for t in f.svg.find_all("text")) for f in soup.find_all("figure") if f.svg}


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> tuple[Summary, Path]:
    run_dir = tmp_path_factory.mktemp("run")
    summary = runs.full_summary()
    write(run_dir, summary)
    runs.write_canary(run_dir, runs.canary_outcome())
    render(summary, run_dir)
    return summary, run_dir


def test_a_full_run_draws_every_chart_inline_in_one_self_contained_file(full) -> None:
    _, run_dir = full
    soup = page(run_dir)
    assert set(plots(soup)) == FULL
    assert not soup.find_all("img") and not soup.find_all(src=True), "nothing to fetch: every plot is inline SVG"
    assert {p.name for p in run_dir.iterdir()} == {SUMMARY_FILE, CANARY_FILE, REPORT_FILE}, "no image files beside it"
    for figure in soup.find_all("figure"):
        assert figure.figcaption and figure.figcaption.get_text(strip=True), f"{figure['id']} has a caption"


def test_the_charts_hold_their_axis_labels_units_and_the_values_they_show(full) -> None:
    summary, run_dir = full
    text = plots(page(run_dir))
    slo = f"p95 SLO {runs.SLO.p95_ms:g} ms"
    p95 = text["plot-p95-vs-rps"]
    for needed in ("p95 latency (ms)", "good req/s (successful answers per second)", slo, "step met the SLO (capacity)",
                   "step outside the SLO (or after it)", "replicas=1", "workers=2", "64u"):  # fmt: skip
        assert needed in p95, needed
    e2 = summary.suites["horizontal"].measured
    vertical = summary.suites["vertical"].measured
    scaling = (f"{e2['efficiency_2']:.2f} [{e2['efficiency_2_low']:.2f}, {e2['efficiency_2_high']:.2f}]",
               f"{vertical['ratio']:.2f} [{vertical['ratio_low']:.2f}, {vertical['ratio_high']:.2f}]",
               "E(N) (ratio, x)", "vertical ratio (ratio, x)", f"threshold {runs.GATE.min_efficiency:g}",
               f"threshold {runs.GATE.min_vertical_ratio:g}", "physical bound", "round 3", "good req/s")  # fmt: skip
    for needed in scaling:
        assert needed in text["plot-scaling"], needed
    for needed in ("candidate", "live", "ratio candidate / live (x)", "limit: at least 0.80", slo):
        assert needed in text["plot-regression"], needed
    assert "accuracy (%)" in text["plot-quality"] and "margin -3 points" in text["plot-quality"]
    for needed in ("replicas in the pool", "serving", "replicas", "good req/s", "seconds since the load began"):
        assert needed in text["plot-autoscale"], needed
    canary = text["plot-canary"]
    for needed in ("candidate's share (%)", "seconds since the first shift", "alpha 0.01", "p-value (log scale)",
                   "failed requests (%)", "10 %: passed", "50 %: passed"):  # fmt: skip
        assert needed in canary, needed


def test_the_steps_table_says_which_steps_met_the_slo_as_the_judge_recorded(full) -> None:
    _, run_dir = full
    rows = [[td.get_text() for td in tr.find_all("td")] for tr in page(run_dir).find(id="steps").find_all("tr")[1:]]
    horizontal_1 = [(r[2], r[7]) for r in rows if r[:2] == ["horizontal", "replicas=1"]]
    assert horizontal_1 == [("8", "yes"), ("16", "yes"), ("32", "yes"), ("64", "no")]


def test_a_run_without_canary_regression_scaling_or_quality_still_renders(tmp_path) -> None:
    render(runs.bare_summary(), tmp_path)
    soup = page(tmp_path)
    assert set(plots(soup)) == {"plot-latency", "plot-per-second"}
    sections = {s["id"] for s in soup.find_all("section")}
    assert {"suites", "capacity-plan"} <= sections
    assert not sections & {"canary", "candidate-vs-live", "scaling", "capacity", "steps"}, sections


def test_a_run_with_regression_but_no_quality_nor_canary_shows_what_it_has(tmp_path) -> None:
    summary = runs.full_summary()
    del summary.suites["quality"]
    render(summary, tmp_path)
    assert set(plots(page(tmp_path))) == FULL - {"plot-quality", "plot-canary"}


def test_a_rolled_back_canary_shows_its_failed_step_and_the_breach(tmp_path) -> None:
    runs.write_canary(tmp_path, runs.canary_outcome(rolled_back=True))
    render(runs.bare_summary(), tmp_path)
    section = page(tmp_path).find(id="canary")
    assert "50 %: FAILED" in plots(page(tmp_path))["plot-canary"]
    assert "rolled back (exit 40)" in section.get_text() and "the candidate is slower" in section.get_text()


def test_an_unreadable_canary_json_is_said_and_the_rest_of_the_report_renders(tmp_path) -> None:
    (tmp_path / CANARY_FILE).write_text('{"promoted": true}')
    render(runs.full_summary(), tmp_path)
    soup = page(tmp_path)
    assert "canary.json could not be read" in soup.find(id="canary").get_text()
    assert set(plots(soup)) == FULL - {"plot-canary"}


def test_a_summary_written_before_the_judge_recorded_steps_within_the_slo_still_renders(tmp_path) -> None:
    summary = runs.full_summary()
    for suite in summary.suites.values():
        suite.within_slo = {}
    render(summary, tmp_path)
    soup = page(tmp_path)
    assert "plot-p95-vs-rps" in plots(soup)
    met = [tr.find_all("td")[7].get_text() for tr in soup.find(id="steps").find_all("tr")[1:]]
    assert set(met) == {""}, "not said when the summary does not hold it"


def test_a_run_with_sampled_replicas_draws_their_memory_and_open_files_suite_after_suite(tmp_path) -> None:
    from modelops.monitor.resources import ReplicaUsage

    summary = runs.full_summary()
    series = [[float(t), 180.0 + t, 40.0 + t % 3] for t in range(30)]
    usage = ReplicaUsage(replica="green-0", pid=4242, samples=30, processes=2, rss_mb_first=180.0, rss_mb_last=209.0,
                         rss_mb_max=209.0, fds_first=40, fds_last=41, fds_max=42, series=series)  # fmt: skip
    suites = {**summary.suites, "soak": summary.suites["slo"].model_copy(update={"resources": [usage]})}
    render(summary.model_copy(update={"suites": suites}), tmp_path)
    text = plots(page(tmp_path))
    assert "plot-resources" in text, sorted(text)
    for needed in ("RSS, MB", "Open file descriptors", "soak: green-0 (pid 4242)"):
        assert needed in text["plot-resources"], needed
