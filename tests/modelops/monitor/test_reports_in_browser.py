"""The gate's report.html and the drift report open in a real browser (Debian's chromium, headless): every plot
renders — each <img> decoded with a size, each inline <svg> laid out with a size — and the screenshot is not blank.
Chromium's own flags only: --dump-dom for the DOM after a tiny inline script measured the plots, --screenshot."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelops.gate.report import render as render_gate_report
from modelops.monitor import drift_report
from modelops.monitor.drift_view import judge_log
from modelops.monitor.logread import Row
from stacks.config import load_stack_config
from tests.modelops.gate import report_runs
from tests.modelops.monitor import synthetic

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed: run `make setup` (Debian's chromium package)"
)
# Runs at load: what the browser made of every plot, written into the DOM that --dump-dom prints.
PROBE = """<script>window.addEventListener("load", () => {
  const imgs = [...document.images].map(i => ({src: i.getAttribute("src").slice(0, 80), width: i.naturalWidth}));
  const svgs = [...document.querySelectorAll("svg")].map(s => {
    const box = s.getBoundingClientRect();
    return {width: box.width, height: box.height, figure: s.closest("figure")?.id ?? null}; });
  const out = document.createElement("pre"); out.id = "render-probe";
  out.textContent = JSON.stringify({imgs, svgs}); document.body.appendChild(out);
});</script>"""


def chromium(*flags: str, page: Path, profile: Path) -> subprocess.CompletedProcess:
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
            "--virtual-time-budget=5000", *flags, page.as_uri()]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def plots_in_browser(page: Path, tmp_path: Path) -> dict:
    """Open a copy of ``page`` with the probe beside it (same folder: relative image paths still resolve)."""
    probed = page.with_name("probed-" + page.name)
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    done = chromium("--dump-dom", page=probed, profile=tmp_path / "profile-dom")
    match = re.search(r'<pre id="render-probe">(.*?)</pre>', done.stdout, re.S)
    assert match, f"chromium printed no probe for {page} (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def screenshot_is_blank(page: Path, tmp_path: Path) -> bool:
    shot = tmp_path / (page.stem + ".png")
    done = chromium(f"--screenshot={shot}", "--window-size=1280,2000", page=page, profile=tmp_path / "profile-shot")
    assert shot.exists(), f"chromium wrote no screenshot of {page} (exit {done.returncode}): {done.stderr[-2000:]}"
    pixels = np.asarray(Image.open(shot).convert("L"))
    return bool((pixels < 250).mean() < 0.01)  # under 1 % of the page is anything but white


def drift_page(tmp_path: Path) -> Path:
    """A drifted page: feature d of the synthetic model moved by 1 sd in the second half of 10 minutes of rows."""
    rng = np.random.default_rng(0)
    rows = synthetic.draw(rng, 3000)
    rows[1500:, 3] += synthetic.SD[3]
    labels = synthetic.predict(rows)
    logged = [
        Row(1_700_000_000.0 + 0.2 * i, f"r{i}", "m:1", list(r), p)
        for i, (r, p) in enumerate(zip(rows, labels, strict=True))
    ]
    report = judge_log(synthetic.reference(), logged, load_stack_config("local").monitor, now=1_700_001_000.0)
    assert report.status == "drift" and len(report.chunks) > 1
    return drift_report.write_report(report, tmp_path / "drift")[1]


@pytest.mark.parametrize("which", ["gate", "drift"])
def test_every_plot_of_the_report_renders_in_a_real_browser(which, tmp_path) -> None:
    if which == "gate":  # every part the report draws: scaling suites with rounds, regression, quality, canary
        (tmp_path / "run").mkdir()
        report_runs.write_canary(tmp_path / "run", report_runs.canary_outcome())
        page = render_gate_report(report_runs.full_summary(), tmp_path / "run")
    else:
        page = drift_page(tmp_path)
    seen = plots_in_browser(page, tmp_path)
    plots = seen["imgs"] + seen["svgs"]
    assert plots, f"{page} has no plot at all"
    if which == "gate":
        expected = {"plot-latency", "plot-p95-vs-rps", "plot-scaling", "plot-regression", "plot-quality",
                    "plot-canary", "plot-per-second", "plot-autoscale"}  # fmt: skip
        assert {s["figure"] for s in seen["svgs"]} == expected and not seen["imgs"], f"plots in {page}: {seen}"
    else:
        expected_plots = 1 + len(synthetic.NAMES) + 1
        assert len(seen["imgs"]) == expected_plots, f"expected the CUSUM, {len(synthetic.NAMES)} histograms, classes"
    broken = [i for i in seen["imgs"] if i["width"] <= 0]
    broken += [s for s in seen["svgs"] if s["width"] <= 0 or s["height"] <= 0]
    assert not broken, f"plots that did not render in {page}: {broken}"
    assert not screenshot_is_blank(page, tmp_path), f"the screenshot of {page} is blank"


def test_the_browser_check_catches_a_plot_that_does_not_render_and_a_blank_page(tmp_path) -> None:
    page = tmp_path / "broken.html"
    page.write_text('<html><body><img src="missing.png" alt="x"><figure id="plot-x"><svg style="width:0;height:0">'
                    "</svg></figure></body></html>")  # fmt: skip
    seen = plots_in_browser(page, tmp_path)
    assert seen["imgs"] == [{"src": "missing.png", "width": 0}]
    assert seen["svgs"] == [{"width": 0, "height": 0, "figure": "plot-x"}], "an inline plot laid out without a size"
    assert screenshot_is_blank(page, tmp_path)
