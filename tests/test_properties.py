"""Property tests (hypothesis) for what tests/test_synth.py and tests/test_report_*.py check only on
fixed cases: placement geometry for any sizes and IoU limits, and the record formats written by the
generator (cells.csv = COCO = YOLO) and by predict (cells.csv = COCO results), read back by the
report's loaders."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixmag.classes import CLASS_NAMES
from mixmag.synth.place import box_iou, place_boxes

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@SETTINGS
@given(sizes=st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300)), min_size=1, max_size=14),
       canvas=st.tuples(st.integers(16, 512), st.integers(16, 512)),
       max_iou=st.sampled_from([0.0, 0.1, 0.5]), seed=st.integers(0, 2**31))
def test_placement_inside_canvas_and_within_the_iou_limit(sizes, canvas, max_iou, seed):
    sz = np.array(sizes, np.int64)
    pos = place_boxes(sz, canvas, np.random.default_rng(seed), max_iou=max_iou)
    assert len(pos) == len(sizes)
    boxes = []
    for (w, h), p in zip(sizes, pos):
        if p is None:
            continue
        x, y = p
        assert 0 <= x and 0 <= y and x + w <= canvas[0] and y + h <= canvas[1]
        boxes.append([x, y, x + w, y + h])
    for (w, h), p in zip(sizes, pos):
        if w > canvas[0] or h > canvas[1]:
            assert p is None                      # can never fit: never placed, never loops
    if len(boxes) > 1:
        b = np.array(boxes, float)
        iou = box_iou(b, b)
        np.fill_diagonal(iou, 0)
        assert iou.max() <= max_iou + 1e-9


@st.composite
def cell_records(draw):
    W, H = draw(st.integers(64, 2048)), draw(st.integers(64, 2048))
    n_img = draw(st.integers(1, 4))
    rows = []
    for i in range(n_img):
        for j in range(draw(st.integers(0, 5))):
            x1 = draw(st.floats(0, W - 2, allow_nan=False))
            y1 = draw(st.floats(0, H - 2, allow_nan=False))
            x2 = draw(st.floats(x1 + 1, W, allow_nan=False))
            y2 = draw(st.floats(y1 + 1, H, allow_nan=False))
            c = draw(st.integers(0, 7))
            rows.append({"image": f"images/test/{i:06d}.jpg", "image_id": i, "cell": j,
                         "class_name": CLASS_NAMES[c], "class_id": c, "source": f"{CLASS_NAMES[c]}/x{j}.jpg",
                         "split": "test", "magnification": draw(st.sampled_from([0.5, 1.0, 1.5])),
                         "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                         "mask_area": max(1, int((x2 - x1) * (y2 - y1) * 0.7)), "width": W, "height": H})
    images = pd.DataFrame({"image": [f"images/test/{i:06d}.jpg" for i in range(n_img)],
                           "image_id": range(n_img), "split": "test", "width": W, "height": H})
    return pd.DataFrame(rows), images


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(name=[Path(p).name for p in df["image"]])
    return df.sort_values(["name", "x1", "y1", "x2", "y2"]).reset_index(drop=True)


@settings(SETTINGS, max_examples=12)
@given(data=cell_records())
def test_generator_records_round_trip_csv_coco_yolo(data):
    """The generator's writers, read back by the report's loaders: the same cells from cells.csv,
    the COCO JSON and the YOLO labels (to YOLO's 6-decimal precision)."""
    from mixmag.evaluate import load_truth
    from mixmag.synth.compose import yolo_lines
    from mixmag.synth.export import CELL_COLUMNS, write_exports

    cells, images = data
    cells = cells.reindex(columns=CELL_COLUMNS) if len(cells) else pd.DataFrame(columns=CELL_COLUMNS)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for im in images["image"]:
            (root / "labels" / "test").mkdir(parents=True, exist_ok=True)
            recs = cells[cells["image"] == im].to_dict(orient="records")
            (root / "labels" / "test" / f"{Path(im).stem}.txt").write_text(yolo_lines(recs))
        write_exports(root, cells, images, ["test"])
        a = load_truth(root / "cells.csv").cells
        b = load_truth(root / "test.json").cells
        assert len(a) == len(b) == len(cells)
        if not len(cells):
            return
        a, b, ref = _sorted(a), _sorted(b), _sorted(cells)
        for col in ("x1", "y1", "x2", "y2"):
            np.testing.assert_allclose(a[col], ref[col], rtol=0, atol=1e-6)
            np.testing.assert_allclose(b[col], ref[col], rtol=0, atol=1e-4)
        assert (a["class_id"].to_numpy() == ref["class_id"].to_numpy()).all()
        assert (b["class_id"].to_numpy() == ref["class_id"].to_numpy()).all()
        # YOLO: class cx cy w h, normalised; back to pixels within the format's rounding
        rows = []
        for f in sorted((root / "labels" / "test").glob("*.txt")):
            for line in f.read_text().split("\n"):
                if line.strip():
                    c, cx, cy, w, h = line.split()
                    W, H = ref["width"].iloc[0], ref["height"].iloc[0]
                    cx, cy, w, h = float(cx) * W, float(cy) * H, float(w) * W, float(h) * H
                    rows.append({"image": f"images/test/{f.stem}.jpg", "class_id": int(c),
                                 "x1": cx - w / 2, "y1": cy - h / 2, "x2": cx + w / 2, "y2": cy + h / 2})
        # line order is record order within each image
        y = pd.DataFrame(rows)
        ref = cells.sort_values("image", kind="stable").reset_index(drop=True)
        tol = 1e-6 * max(ref["width"].iloc[0], ref["height"].iloc[0]) * 2
        for col in ("x1", "y1", "x2", "y2"):
            np.testing.assert_allclose(y[col], ref[col], rtol=0, atol=tol)
        assert (y["class_id"].to_numpy() == ref["class_id"].to_numpy()).all()


@settings(SETTINGS, max_examples=12)
@given(data=cell_records(), seed=st.integers(0, 1000))
def test_prediction_records_round_trip_csv_coco_results(data, seed):
    """predict's cells.csv and its COCO results JSON, read by the report, give the same boxes,
    classes and scores (COCO results keep 2 decimals for boxes, 5 for scores)."""
    from mixmag.pipeline.outputs import coco_image_ids, coco_results
    from mixmag.evaluate import load_predictions
    from mixmag.evaluate.load import coco_truth

    cells, images = data
    if not len(cells):
        return
    rng = np.random.default_rng(seed)
    pred = cells[["image", "x1", "y1", "x2", "y2", "class_name", "class_id"]].copy()
    pred["image"] = [Path(p).name for p in pred["image"]]
    pred["score"] = (rng.permutation(len(pred)) + 1) / (len(pred) + 1)
    pred["score"] = pred["score"].round(5)
    names = [Path(p).name for p in images["image"]]
    gt = {"images": [{"id": int(i) + 1, "file_name": f"images/test/{n}", "width": int(r.width),
                      "height": int(r.height)} for i, (n, r) in enumerate(zip(names, images.itertuples()))],
          "annotations": [], "categories": [{"id": k + 1, "name": c} for k, c in enumerate(CLASS_NAMES)]}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "gt.json").write_text(json.dumps(gt))
        truth = coco_truth(gt, d / "gt.json")
        pred.to_csv(d / "cells.csv", index=False)
        ids = coco_image_ids(names, d / "gt.json")
        (d / "res.json").write_text(json.dumps(coco_results(pred, ids)))
        def by_score(df):   # boxes round differently in the two formats; scores are unique here
            df = df.assign(name=[Path(p).name for p in df["image"]])
            return df.sort_values(["name", "score", "class_id"]).reset_index(drop=True)

        a = by_score(load_predictions(d / "cells.csv", truth))
        b = by_score(load_predictions(d / "res.json", truth))
        assert len(a) == len(b) == len(pred)
        for col in ("x1", "y1", "x2", "y2"):
            np.testing.assert_allclose(b[col], a[col], rtol=0, atol=0.011)
        np.testing.assert_allclose(b["score"], a["score"], atol=1e-5)
        assert (a["class_id"].to_numpy() == b["class_id"].to_numpy()).all()
