"""A detector that knows red cells (class ``rbc``, as one trained on real fields does): its red
boxes become ``rbc`` rows, are never sent to the classifier, are counted in their own column of
counts.csv (``n_cells`` counts the eight only), and the report leaves them out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from test_detect_drawn import StubClassifier

from mixmag.classes import CLASS_NAMES, RBC, RBC_ID
from mixmag.pipeline.outputs import StreamingOutputs, counts_table
from mixmag.pipeline.predict import Pipeline, PredictOptions, Source


class FakeDetector:
    """Fixed boxes on a one-tile image: a basophil, a red cell, a platelet (tile coordinates)."""

    names = {**dict(enumerate(CLASS_NAMES)), 8: RBC}
    imgsz = 256
    train_canvas = 256

    def predict(self, tiles, conf=0.25, iou=0.6, batch_size=16):
        d = np.array([[20, 20, 80, 80, 0.9, 0], [100, 100, 160, 160, 0.8, 8],
                      [180, 30, 200, 50, 0.7, 7]], np.float32)
        return [d.copy() for _ in tiles]


def test_red_boxes_are_rows_of_their_own(tmp_path):
    img = np.full((220, 220, 3), 230, np.uint8)
    path = tmp_path / "field.png"
    import cv2

    cv2.imwrite(str(path), img)
    clf = StubClassifier(32)
    pipe = Pipeline(FakeDetector(), clf, None, PredictOptions(mode="classifier-on-boxes",
                                                              scale_norm=False))
    assert pipe.red_id == 8 and pipe.det_pbc
    result = pipe.run([Source(path, "field.png")], progress=False)
    cells = result.cells
    assert sum(clf.calls) == 2                      # the red box was never classified
    red = cells[cells["class_name"] == RBC]
    assert len(red) == 1 and int(red["class_id"].iloc[0]) == RBC_ID
    assert (red[[f"p_{c}" for c in CLASS_NAMES]].to_numpy() == 0).all()
    assert red["score"].iloc[0] == np.float32(0.8)
    assert result.images["n_cells"].tolist() == [2] and result.images["n_red_cells"].tolist() == [1]
    # counts.csv: the streaming writer and the plain one agree; rbc in its own column
    with StreamingOutputs(tmp_path / "out", red=True) as out:
        for r in pipe.iter_images([Source(path, "field.png")], progress=False):
            out.add(r.row, r.cells)
        out.finish({}, [])
    counts = pd.read_csv(tmp_path / "out" / "counts.csv")
    assert counts.columns.tolist() == ["image", "n_cells", *CLASS_NAMES, RBC]
    assert counts[["n_cells", RBC]].iloc[0].tolist() == [2, 1]
    assert counts.equals(counts_table(cells, result.images, red=True))
    coco = json.loads((tmp_path / "out" / "coco_results.json").read_text())
    assert sorted(c["category_id"] for c in coco) == sorted(int(i) + 1 for i in cells["class_id"])


def test_the_report_leaves_red_predictions_out(tmp_path):
    """Composite truth has no red cells: a predicted red cell is none of the eight and is
    dropped, not refused and not counted as a spurious box."""
    from mixmag.evaluate import evaluate, load_predictions, load_truth
    from mixmag.evaluate.synthetic import synthetic_predictions, synthetic_truth, write_dataset

    truth = synthetic_truth(n_images=3, seed=2)
    ds = write_dataset(tmp_path / "ds", truth)
    pred = synthetic_predictions(truth, seed=2, p_spurious=0.0)
    red = pred.iloc[:3].assign(class_name=RBC, class_id=RBC_ID, x1=1, y1=1, x2=9, y2=9)
    both = pd.concat([pred, red], ignore_index=True)
    pred.to_csv(tmp_path / "a.csv", index=False)
    both.to_csv(tmp_path / "b.csv", index=False)
    t = load_truth(ds)
    ra = evaluate(t, load_predictions(tmp_path / "a.csv", t), bootstrap=0, coco=False)
    rb = evaluate(t, load_predictions(tmp_path / "b.csv", t), bootstrap=0, coco=False)
    assert ra.headline == rb.headline


def _field_truth() -> pd.DataFrame:
    """A real field as `mixmag fields` writes it: two white cells and three red cells (class_id 8)."""
    rows = [("f.jpg", "erythroblast", 2, 10, 10, 50, 50), ("f.jpg", "lymphocyte", 4, 60, 10, 100, 50),
            ("f.jpg", RBC, 8, 10, 60, 50, 100), ("f.jpg", RBC, 8, 60, 60, 100, 100),
            ("f.jpg", RBC, 8, 110, 60, 150, 100)]
    return pd.DataFrame([{"image": i, "class_name": c, "class_id": k, "x1": a, "y1": b, "x2": x,
                          "y2": y, "width": 200, "height": 200, "magnification": 1.0}
                         for i, c, k, a, b, x, y in rows])


def _field_predictions() -> pd.DataFrame:
    """Right on the erythroblast; an erythroblast on one red cell (a lilac red cell, say); an rbc
    row on another; the lymphocyte missed; one box on nothing."""
    rows = [("erythroblast", 10, 10, 50, 50), ("erythroblast", 10, 60, 50, 100),
            (RBC, 60, 60, 100, 100), ("platelet", 160, 160, 180, 180)]
    return pd.DataFrame([{"image": "f.jpg", "class_name": c, "x1": a, "y1": b, "x2": x, "y2": y,
                          "score": 0.9} for c, a, b, x, y in rows])


def test_the_report_scores_real_fields_red_cells_as_none_of_the_eight(tmp_path):
    """Truth with red cells (a real field): a box of class c on a red cell is a false positive of
    c in a 'red cell' row of its own; a red cell no box claims, and an rbc prediction, count
    nowhere; the eight's figures and mAP are those of the same truth without red cells, except
    the boxes on red cells, which turn from spurious into 'on a red cell'."""
    from mixmag.evaluate import evaluate
    from mixmag.evaluate.metrics import confusion_frame

    truth, pred = _field_truth(), _field_predictions()
    r = evaluate(truth, pred, bootstrap=0)
    cm = confusion_frame(r.confusion)
    assert list(cm.index)[-2:] == ["spurious", "red cell"] and cm.shape == (10, 9)
    assert cm.loc["red cell", "erythroblast"] == 1 and cm.loc["red cell"].sum() == 3
    assert cm.loc["red cell", "missed"] == 2            # no error: red cells nobody claimed
    assert cm.loc["spurious", "platelet"] == 1 and cm.loc["lymphocyte", "missed"] == 1
    ery = r.per_class.set_index("class_name").loc["erythroblast"]
    assert (ery.tp, ery.fp, ery.fn, ery.on_red_cells) == (1, 1, 0, 1)
    h = r.headline
    assert (h["n_truth"], h["n_missed"], h["n_spurious"], h["n_on_red_cells"]) == (2, 1, 1, 1)
    assert r.inputs["n_truth_cells"] == 2 and r.inputs["n_truth_red_cells"] == 3
    assert r.erythroblast["red_cells_as_erythroblast"] == 1
    pi = r.per_image.iloc[0]
    assert (pi.n_truth, pi.missed, pi.spurious, pi.on_red_cells, pi.errors) == (2, 1, 1, 1, 3)
    # without the red cells in the truth: the same P/R/F1 and mAP of the eight
    white = evaluate(truth[truth["class_name"] != RBC], pred, bootstrap=0)
    cols = ["tp", "fp", "fn", "precision", "recall", "f1", "ap50"]
    pd.testing.assert_frame_equal(r.per_class[cols], white.per_class[cols])
    assert white.headline["n_spurious"] == 2 and "red cell" not in confusion_frame(white.confusion).index


def test_report_cli_reads_a_real_field_dataset(tmp_path):
    """`mixmag report` takes a real-field dataset's cells.csv (class rbc, class_id 8) as truth and
    says in the HTML what it did with the red cells."""
    from mixmag.cli import main

    ds = tmp_path / "fields"
    (ds / "images" / "val").mkdir(parents=True)
    truth = _field_truth().assign(image="images/val/f.jpg", split="val")
    truth.to_csv(ds / "cells.csv", index=False)
    import cv2

    cv2.imwrite(str(ds / "images" / "val" / "f.jpg"), np.full((200, 200, 3), 200, np.uint8))
    _field_predictions().to_csv(tmp_path / "pred.csv", index=False)
    assert main(["report", "--truth", str(ds), "--split", "val", "--pred", str(tmp_path / "pred.csv"),
                 "--out", str(tmp_path / "rep"), "--bootstrap", "0"]) == 0
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert m["confusion"]["rows"][-1] == "red cell" and m["headline"]["n_on_red_cells"] == 1
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "The truth boxes 3 red cells too" in html and "red cell" in html


def test_a_red_cell_never_takes_a_box_from_a_white_cell():
    """A lymphocyte and a red cell that overlap, two boxes: matched all at once (most pairs), the
    red cell would take the lymphocyte's own box and leave the lymphocyte the erythroblast box, a
    wrong class. White cells go first: the lymphocyte keeps its box, and the other box, under
    IoU 0.5 with the red cell, is spurious."""
    from mixmag.evaluate import evaluate

    truth = pd.DataFrame([{"image": "f.jpg", "class_name": c, "x1": a, "y1": 10, "x2": b, "y2": 50,
                           "width": 100, "height": 100}
                          for c, a, b in (("lymphocyte", 10, 50), (RBC, 20, 60))])
    pred = pd.DataFrame([{"image": "f.jpg", "class_name": c, "x1": a, "y1": y, "x2": b, "y2": 50,
                          "score": s} for c, a, y, b, s in (("lymphocyte", 12, 10, 54, 0.9),
                                                            ("erythroblast", 8, 12, 46, 0.5))])
    r = evaluate(truth, pred, bootstrap=0, coco=False)
    t = r.per_class.set_index("class_name")
    assert (t.loc["lymphocyte", "tp"], t.loc["lymphocyte", "fn"]) == (1, 0)
    assert (t.loc["erythroblast", "fp"], t.loc["erythroblast", "spurious"]) == (1, 1)
    assert r.headline["n_on_red_cells"] == 0
    from mixmag.bench.real import field_figures, match_fields

    rows = match_fields(truth, pred)
    f = field_figures(truth, rows)
    assert f["per_class"]["lymphocyte"]["recall"] == 1.0
    assert f["red_cells_called_one_of_the_eight_per_image"] == 0 and f["spurious_per_image"] == 1


def test_red_predictions_are_left_out_in_every_format(tmp_path):
    """rbc rows from a nine-class detector: by name (cells.csv), COCO category 9 (predict's
    coco_results.json) and YOLO class 8 (ultralytics' save_txt) are all none of the eight."""
    from mixmag.evaluate import load_predictions, load_truth
    from mixmag.evaluate.synthetic import synthetic_truth, write_dataset

    truth = synthetic_truth(n_images=2, seed=1)
    t = load_truth(write_dataset(tmp_path / "ds", truth))
    first = t.images.iloc[0]
    coco = [{"image_id": int(first["image_id"]), "category_id": 9, "bbox": [1, 1, 8, 8], "score": 0.9},
            {"image_id": int(first["image_id"]), "category_id": 1, "bbox": [1, 1, 8, 8], "score": 0.9}]
    (tmp_path / "res.json").write_text(json.dumps(coco))
    got = load_predictions(tmp_path / "res.json", t)
    assert got["class_name"].tolist() == ["basophil"]
    yolo = tmp_path / "labels"
    yolo.mkdir()
    (yolo / (Path(first["image"]).stem + ".txt")).write_text("8 0.5 0.5 0.1 0.1 0.9\n2 0.5 0.5 0.1 0.1 0.8\n")
    got = load_predictions(yolo, t)
    assert got["class_name"].tolist() == ["erythroblast"]


def test_the_benchmark_harness_scores_what_predict_writes(tmp_path):
    """benchmarks/detect.py's stages (mixmag.bench.detection) drop a detector's red boxes before
    classifying and scoring, as predict does: a composite's drawn red cells are no spurious
    cells of the eight, from a fresh run and from the box cache alike."""
    import cv2

    from mixmag.bench.detection import detect_all

    path = tmp_path / "c.png"
    cv2.imwrite(str(path), np.full((220, 220, 3), 230, np.uint8))
    pipe = Pipeline(FakeDetector(), None, None, PredictOptions(mode="detector"))
    cache = tmp_path / "boxes.npz"
    for _ in range(2):  # written, then read back
        dets, _ = detect_all(pipe, [Source(path, "c.png")], cache)
        assert len(dets) == 1 and sorted(dets[0][:, 5].astype(int).tolist()) == [0, 7]
