"""report.html is self-contained and renders in a real browser (headless Chromium)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mixmag.evaluate import evaluate, load_predictions, load_truth, write_report
from mixmag.evaluate.synthetic import synthetic_predictions, synthetic_truth, write_dataset

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("report_html")
    truth = synthetic_truth(10, 8, size=320, seed=7)
    # as generated composites do, cells reuse source images: the intervals resample sources
    truth["source"] = truth["class_name"] + "/" + (np.arange(len(truth)) % 11).astype(str)
    root = write_dataset(base / "ds", truth)
    synthetic_predictions(truth, seed=8, accuracy=0.75, p_spurious=0.1).to_csv(base / "p.csv",
                                                                              index=False)
    t = load_truth(root, split="test")
    res = evaluate(t, load_predictions(base / "p.csv", t), iou=[0.5, 0.75], sweep=True,
                   bootstrap=200)
    return Path(write_report(res, base / "rep", worst=4)["report.html"])


def test_html_is_self_contained(report):
    html = report.read_text()
    # nothing fetched from anywhere: no links, scripts, stylesheets or remote/relative pictures
    assert not re.search(r"<(link|script|iframe)\b", html, re.I)
    srcs = re.findall(r"src=['\"]([^'\"]+)", html)
    assert srcs and all(s.startswith("data:image/") for s in srcs)
    assert "url(" not in html and "@import" not in html
    hrefs = re.findall(r"href=['\"]([^'\"]+)", html)
    assert all(h.startswith("#") for h in hrefs)


def test_html_says_what_the_intervals_resampled(report):
    html = report.read_text()
    assert "percentile bootstrap over source cells" in html
    # the erythroblast's per-scale precision and recall carry intervals
    assert re.search(r"Erythroblast by magnification.*?recall \[95 % CI\]", html, re.S)


def _chromium(args, tmp_path, timeout=90):
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium; "
                                              ".ci/run installs it)")
def test_html_renders_in_headless_chromium(report, tmp_path):
    dom = _chromium(["--dump-dom", report.as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    d = dom.stdout
    # the browser parsed the tables, with their cells, and the headline first
    assert d.count("<table") >= 7 and d.count("<td") > 300
    assert d.index("Headline figures") < d.index("Per-class figures") < d.index("Confusion matrix")
    for text in ("erythroblast", "spurious", "missed", "macro avg", "By magnification",
                 "Worst-scoring images", "mAP@0.5"):
        assert text in d, text
    shot = tmp_path / "shot.png"
    r = _chromium([f"--screenshot={shot}", "--window-size=1280,2400", report.as_uri()], tmp_path)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (2400, 1280)
    # a rendered page, not a blank or error page: dark text on light, coloured table cells
    assert img.std() > 20 and (img < 80).mean() > 0.005 and (img > 230).mean() > 0.4
