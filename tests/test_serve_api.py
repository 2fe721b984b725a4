"""`mixmag serve`'s API through FastAPI's test client: upload, job status, results, corrections,
exports (the corrected COCO loads in pycocotools and holds the edits), bad uploads; and the
server's cells are predict's, row for row."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from test_detect_drawn import draw_disks

from mixmag.cli import main
from mixmag.zoo import load_zoo

pytest.importorskip("fastapi", reason="mixmag serve is an optional extra (pip install 'mixmag[serve]')")
pytest.importorskip("multipart", reason="mixmag serve needs python-multipart")
from fastapi.testclient import TestClient  # noqa: E402

from mixmag.serve.app import create_app  # noqa: E402

BUILD = {"backend": "onnx"}


def _png(w: int, h: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    disks = [(int(rng.integers(8)), rng.uniform(40, w - 40), rng.uniform(40, h - 40), 24)
             for _ in range(5)]
    ok, buf = cv2.imencode(".png", draw_disks(w, h, disks, seed=seed))
    return buf.tobytes()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if not load_zoo().default("detect").file.is_file():
        pytest.skip("default models not in this checkout")
    root = tmp_path_factory.mktemp("serve")
    app = create_app(root / "data", BUILD)
    with TestClient(app) as client:
        yield client, root


def _wait(client, bid: str, timeout: float = 300) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        b = client.get(f"/api/batches/{bid}").json()
        if b["batch"]["status"] in ("done", "failed"):
            return b
        time.sleep(0.3)
    raise AssertionError(f"batch {bid} not done in {timeout} s")


@pytest.fixture(scope="module")
def batch(served):
    client, root = served
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("slides/c.png", _png(500, 400, 3))
        zf.writestr("notes.txt", "a lab note")
        zf.writestr("../evil.png", _png(100, 100, 4))
    files = [("files", ("a.png", _png(640, 480, 1), "image/png")),
             ("files", ("b.png", _png(700, 520, 2), "image/png")),
             ("files", ("folder.zip", zbuf.getvalue(), "application/zip")),
             ("files", ("broken.jpg", b"not a jpeg", "image/jpeg"))]
    r = client.post("/api/batches", files=files, data={"name": "Monday smears"})
    assert r.status_code == 201, r.text
    body = r.json()
    rejected = {x["file"]: x["error"] for x in body["rejected"]}
    assert set(rejected) == {"folder.zip:notes.txt", "folder.zip:../evil.png", "broken.jpg"}
    assert "leaves the upload folder" in rejected["folder.zip:../evil.png"]
    assert "broken.jpg" in rejected["broken.jpg"] and "Traceback" not in json.dumps(body)
    bid = body["batch"]["id"]
    assert body["batch"]["n_images"] == 3 and body["batch"]["name"] == "Monday smears"
    done = _wait(client, bid)
    assert done["batch"]["status"] == "done", done["batch"]["error"]
    assert not (root / "data" / "evil.png").exists()  # nothing written outside the batch
    return bid, done


def test_upload_predicts_every_image_as_predict_does(served, batch, tmp_path):
    client, root = served
    bid, done = batch
    b, images = done["batch"], done["images"]
    assert b["n_done"] == 3 and {i["name"] for i in images} == {"a.png", "b.png", "slides/c.png"}
    assert all(i["status"] == "done" and i["width"] > 0 for i in images)
    assert b["n_cells"] == sum(i["n_cells"] for i in images) > 0
    # the page's cells are predict's: the same images through `mixmag predict` give these rows
    src = root / "data" / "batches" / bid / "images"
    assert main(["predict", str(src), "--recursive", "--backend", "onnx", "--no-progress",
                 "--no-draw", "--out", str(tmp_path / "p")]) == 0
    ref = pd.read_csv(tmp_path / "p" / "cells.csv")
    served_rows = []
    for i in images:
        for c in client.get(f"/api/batches/{bid}/images/{i['id']}/cells").json()["cells"]:
            served_rows.append((i["name"], c["class_name"], c["x1"], c["y2"], c["score"]))
    ref_rows = [(r.image, r.class_name, round(r.x1, 2), round(r.y2, 2), round(r.score, 4))
                for r in ref.itertuples()]
    assert sorted(served_rows) == sorted(ref_rows)
    counts = client.get(f"/api/batches/{bid}/download/counts.csv")
    assert counts.status_code == 200 and counts.content == (tmp_path / "p" / "counts.csv").read_bytes()


def test_corrections_round_trip_to_coco_and_yolo(served, batch, tmp_path):
    from pycocotools.coco import COCO

    client, _ = served
    bid, done = batch
    img = next(i for i in done["images"] if i["n_cells"] >= 2)
    cells = client.get(f"/api/batches/{bid}/images/{img['id']}/cells").json()["cells"]
    first, second = cells[0], cells[1]
    new_class = "monocyte" if first["class_name"] != "monocyte" else "lymphocyte"
    r = client.patch(f"/api/cells/{first['id']}", json={"class_name": new_class})
    assert r.status_code == 200
    edited = r.json()["cell"]
    assert edited["class_name"] == new_class and edited["original_class"] == first["class_name"]
    assert edited["corrected"]
    assert client.delete(f"/api/cells/{second['id']}").json() == {"deleted": second["id"]}
    added = client.post(f"/api/batches/{bid}/images/{img['id']}/cells",
                        json={"x1": 5, "y1": 6, "x2": 45, "y2": 50, "class_name": "platelet"})
    assert added.status_code == 201 and added.json()["cell"]["source"] == "added"
    now = client.get(f"/api/batches/{bid}/images/{img['id']}/cells").json()["cells"]
    assert second["id"] not in [c["id"] for c in now] and len(now) == len(cells)
    assert client.get(f"/api/batches/{bid}").json()["batch"]["corrections"] == 3

    r = client.get(f"/api/batches/{bid}/download/labels_coco.json")
    assert r.status_code == 200
    (tmp_path / "gt.json").write_bytes(r.content)
    coco = COCO(str(tmp_path / "gt.json"))
    cat = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
    assert len(anns) == len(now)
    boxes = {tuple(round(v) for v in a["bbox"]): cat[a["category_id"]] for a in anns}
    x, y = first["x1"], first["y1"]
    w, h = first["x2"] - first["x1"], first["y2"] - first["y1"]
    assert boxes[tuple(round(v) for v in (x, y, w, h))] == new_class
    assert boxes[(5, 6, 40, 44)] == "platelet"
    assert not any(abs(b[0] - second["x1"]) < 1 and abs(b[1] - second["y1"]) < 1 for b in boxes)
    total = sum(i["n_cells"] for i in client.get(f"/api/batches/{bid}").json()["images"])
    assert len(coco.getAnnIds()) == total

    z = zipfile.ZipFile(io.BytesIO(client.get(f"/api/batches/{bid}/download/labels_yolo.zip").content))
    names = z.namelist()
    assert "data.yaml" in names and any(n.endswith("-slides__c.png") for n in names)
    stem = f"{img['id']:06d}-{Path(img['name'].replace('/', '__')).stem}"
    label = z.read(f"labels/train/{stem}.txt").decode().split("\n")
    assert sum(1 for line in label if line.strip()) == len(now)
    platelet = [line for line in label if line.startswith("7 ")]
    assert any(abs(float(line.split()[1]) * img["width"] - 25) < 0.5 for line in platelet)

    counts = pd.read_csv(io.BytesIO(client.get(f"/api/batches/{bid}/download/counts_corrected.csv").content))
    row = counts.set_index("image").loc[img["name"]]
    assert row["n_cells"] == len(now) and row["platelet"] == sum(c["class_name"] == "platelet" for c in now)
    assert row[new_class] == sum(c["class_name"] == new_class for c in now)

    report = client.get(f"/api/batches/{bid}/download/report.html")
    assert report.status_code == 200 and b"<html" in report.content[:2000].lower()


def test_crop_and_image_are_jpegs(served, batch):
    client, _ = served
    bid, done = batch
    img = done["images"][0]
    r = client.get(f"/api/batches/{bid}/images/{img['id']}/file")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    shown = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert shown.shape[:2] == (img["height"], img["width"])
    cid = client.get(f"/api/batches/{bid}/images/{img['id']}/cells").json()["cells"][0]["id"]
    crop = client.get(f"/api/cells/{cid}/crop")
    assert crop.status_code == 200 and crop.content[:2] == b"\xff\xd8"


def test_bad_requests_are_one_line_json(served, batch):
    client, _ = served
    bid, done = batch
    iid = done["images"][0]["id"]
    cid = client.get(f"/api/batches/{bid}/images/{iid}/cells").json()["cells"][0]["id"]
    cases = [
        client.post("/api/batches", files=[("files", ("x.txt", b"hello", "text/plain"))]),
        client.post("/api/batches", files=[("files", ("z.zip", b"PK not a zip", "application/zip"))]),
        client.get("/api/batches/nope"),
        client.get(f"/api/batches/{bid}/images/999999/cells"),
        client.patch("/api/cells/999999", json={"class_name": "monocyte"}),
        client.patch(f"/api/cells/{cid}", json={"class_name": "dragon"}),
        client.post(f"/api/batches/{bid}/images/{iid}/cells",
                    json={"x1": 5, "y1": 5, "x2": 5, "y2": 50, "class_name": "platelet"}),
        client.post(f"/api/batches/{bid}/images/{iid}/cells", json={"x1": 5}),
        client.get(f"/api/batches/{bid}/download/secrets.txt"),
    ]
    for r in cases:
        assert 400 <= r.status_code < 500, (r.status_code, r.text)
        err = r.json()["error"]
        assert err and "\n" not in err and "Traceback" not in err, err
    assert "not an image" in cases[0].json()["error"]
    assert "not a readable zip" in cases[1].json()["error"]
    assert "dragon" in cases[5].json()["error"]


def test_a_zip_bomb_is_refused_unread(tmp_path):
    from mixmag.serve.store import Store

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.png", b"\0" * (200 << 20))
    store = Store(tmp_path / "data")
    batch, rejected = store.create_batch([("bomb.zip", bomb)])
    assert batch is None and "zip bomb" in rejected[0].error
    assert not any((tmp_path / "data" / "batches").rglob("*.png"))


def test_jobs_survive_a_restart(tmp_path):
    """A batch a stopped server left running is queued again, its model rows dropped."""
    from mixmag.serve.store import Store

    src = tmp_path / "a.png"
    src.write_bytes(_png(300, 300, 9))
    store = Store(tmp_path / "data")
    b, _ = store.create_batch([("a.png", src)])
    store.set_status(b["id"], "running")
    again = Store(tmp_path / "data")
    assert again.requeue_interrupted() == 1
    assert again.batch(b["id"])["status"] == "queued" and again.next_queued() == b["id"]


def test_serve_refuses_bad_settings_in_one_line(capsys, tmp_path):
    for args, words in ((["--port", "0"], "--port 0"),
                        (["--detector", "no-such-model"], "no-such-model"),
                        (["--models", "no-such-pipeline"], "no-such-pipeline"),
                        (["--max-upload-mb", "0"], "--max-upload-mb 0")):
        rc = main(["serve", "--data", str(tmp_path / "d"), *args])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc != 0 and len(err) == 1 and words in err[0], (args, err)


def test_one_server_a_data_folder(tmp_path):
    from mixmag.errors import MixmagError

    first = create_app(tmp_path / "d", BUILD, start_worker=False)
    with pytest.raises(MixmagError, match="another mixmag serve"):
        create_app(tmp_path / "d", BUILD, start_worker=False)
    first.state.data_lock.close()
    create_app(tmp_path / "d", BUILD, start_worker=False).state.data_lock.close()


def test_requests_from_other_sites_and_huge_ids_are_refused(tmp_path):
    app = create_app(tmp_path / "d", BUILD, start_worker=False)
    with TestClient(app) as client:
        r = client.post("/api/batches", headers={"origin": "http://evil.example"},
                        files=[("files", ("a.png", _png(200, 200, 1), "image/png"))])
        assert r.status_code == 403 and "another site" in r.json()["error"]
        assert not list((tmp_path / "d").glob("batches/*"))
        r = client.get(f"/api/cells/{10 ** 25}/crop")
        assert r.status_code == 404 and r.json() == {"error": "no such id"}
    app.state.data_lock.close()


def test_the_upload_limit_counts_what_zips_unpack_to(tmp_path):
    """Five small zips of a 0.9 MB image each against a 2 MB limit: two are kept, not five."""
    from mixmag.serve.store import Store

    img = np.full((550, 550, 3), 200, np.uint8)
    ok, buf = cv2.imencode(".bmp", img)
    zips = []
    for k in range(5):
        z = tmp_path / f"z{k}.zip"
        with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"img{k}.bmp", buf.tobytes())
        zips.append((z.name, z))
    store = Store(tmp_path / "d")
    batch, rejected = store.create_batch(zips, max_bytes=2 << 20)
    written = sum(p.stat().st_size for p in (tmp_path / "d" / "batches").rglob("*.bmp"))
    assert written <= 2 << 20 and batch["n_images"] == 2
    assert len(rejected) == 3 and all("limit" in r.error for r in rejected)


def test_yolo_export_keeps_images_of_one_flattened_name_apart(tmp_path):
    from mixmag.serve.exports import labels_yolo_zip
    from mixmag.serve.store import Store

    a, b = tmp_path / "x1.png", tmp_path / "x2.png"
    a.write_bytes(_png(200, 200, 1))
    b.write_bytes(_png(200, 200, 2))
    store = Store(tmp_path / "d")
    batch, _ = store.create_batch([("a/b.png", a), ("a__b.png", b)])
    for i in store.images(batch["id"]):
        store.image_done(batch["id"], {"image": i["name"], "width": 200, "height": 200, "error": ""})
    store.add_cell(batch["id"], store.images(batch["id"])[0]["id"], (10, 10, 50, 50), "platelet")
    names = zipfile.ZipFile(io.BytesIO(labels_yolo_zip(store, batch["id"]))).namelist()
    labels = [n for n in names if n.startswith("labels/")]
    assert len(labels) == 2 and len(set(labels)) == 2
