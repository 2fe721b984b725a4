"""`mixmag serve` in a real browser (headless Chromium driven by Playwright): the page uploads two
images, waits for the job, shows the predicted cells as boxes and table rows, changes one class
and downloads the corrected labels, which hold the change. A screenshot of the page is written to
runs/serve-screenshot.png (the docs' picture is made this way)."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import cv2
import pytest

from mixmag.cli import main
from mixmag.zoo import load_zoo

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "datasets" / "sample"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytest.importorskip("fastapi", reason="mixmag serve is an optional extra (pip install 'mixmag[serve]')")
pytest.importorskip("multipart", reason="mixmag serve needs python-multipart")
uvicorn = pytest.importorskip("uvicorn", reason="mixmag serve needs uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test drives Chromium "
                                                           "with playwright (pip install playwright)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed "
                                                         "(apt-get install chromium)")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tmp_path):
    from mixmag.serve.app import create_app

    if not load_zoo().default("detect").file.is_file():
        pytest.skip("default models not in this checkout")
    app = create_app(tmp_path / "data", {"backend": "onnx"})
    app.state.worker.pipeline()
    port = _port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    t0 = time.time()
    while not srv.started:
        assert time.time() - t0 < 30, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    srv.should_exit = True
    thread.join(30)


@pytest.fixture()
def two_images(tmp_path) -> list[Path]:
    """Two 1,024² composites of the demo sample (real PBC cells, CC BY)."""
    if not (SAMPLE / "pbc-split.csv").is_file():
        pytest.skip("no demo sample in datasets/sample")
    out = tmp_path / "synth"
    assert main(["synthesize", "--split", str(SAMPLE / "pbc-split.csv"), "--pbc", str(SAMPLE / "pbc"),
                 "--out", str(out), "--n-test", "2", "--splits", "test", "--seed", "5",
                 "--no-progress"]) == 0
    paths = sorted((out / "images" / "test").glob("*.jpg"))
    named = []
    for k, p in enumerate(paths):  # names a lab would use
        q = tmp_path / f"smear-{k + 1}.jpg"
        cv2.imwrite(str(q), cv2.imread(str(p)))
        named.append(q)
    return named


def test_upload_look_correct_download_in_chromium(server, two_images, tmp_path):
    base, app = server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 1100}, accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/")
        page.set_input_files("#file-input", [str(p) for p in two_images])
        page.click("#upload-button")
        batch = page.locator(".batch").first
        batch.locator(".status", has_text="done").wait_for(timeout=240_000)
        bid = batch.get_attribute("data-batch-id")

        # the API's cells of the first image are what the page draws and lists
        detail = app.state.store.images(bid)
        first = next(i for i in detail if i["name"] == "smear-1.jpg")
        page.click(f".image-item[data-image-id='{first['id']}']")
        cells = app.state.store.cells(bid, first["id"])
        assert len(cells) >= 3
        page.wait_for_function(f"document.querySelectorAll('#overlay rect.cell-box').length === {len(cells)}")
        rows = page.locator("#cells-table tbody tr[data-cell-id]")
        assert rows.count() == len(cells)
        drawn_ids = {int(x) for x in page.eval_on_selector_all(
            "#overlay rect.cell-box", "els => els.map(e => e.dataset.cellId)")}
        assert drawn_ids == {c["id"] for c in cells}

        # change one cell's class on the page
        target = cells[0]
        new_class = "monocyte" if target["class_name"] != "monocyte" else "lymphocyte"
        page.click(f"#cells-table tr[data-cell-id='{target['id']}']")
        page.select_option("#cell-class", new_class)
        page.locator(f"#cells-table tr[data-cell-id='{target['id']}'] td.class-name",
                     has_text=new_class).wait_for(timeout=10_000)
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

        # download the corrected labels
        with page.expect_download() as dl:
            page.click("a[data-download='labels_coco.json']")
        labels = json.loads(Path(dl.value.path()).read_text())
        browser.close()
    assert not errors, errors
    cats = {c["id"]: c["name"] for c in labels["categories"]}
    box = [round(target["x1"], 2), round(target["y1"], 2)]
    edited = [a for a in labels["annotations"] if [round(v, 2) for v in a["bbox"][:2]] == box]
    assert len(edited) == 1 and cats[edited[0]["category_id"]] == new_class
    assert edited[0]["model_class"] == target["class_name"]
    assert len(labels["images"]) == 2
    shot = REPO / "runs" / "serve-screenshot.png"
    shot.parent.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "page.png", shot)
