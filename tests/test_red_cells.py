"""A detector that knows red cells (class ``rbc``, as one trained on real fields does): its red
boxes become ``rbc`` rows, are never sent to the classifier, are counted in their own column of
counts.csv (``n_cells`` counts the eight only), and the report leaves them out."""

from __future__ import annotations

import json

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
