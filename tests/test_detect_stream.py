"""`mixmag predict` streams its outputs: the same bytes as the in-memory writer, constant memory,
nothing under a final name (and no spool left behind) when a run dies midway. Fast: the oracle
detector and stub classifier of test_detect_drawn draw and find coloured disks."""

from __future__ import annotations

import gc
import tracemalloc

import cv2
import numpy as np
import pandas as pd
import pytest
from test_detect_drawn import BACKGROUND, OracleDetector, StubClassifier, make_yolo_dataset

from mixmag.classes import CLASS_NAMES
from mixmag.detect.magnification import native_sizes_from_cells
from mixmag.pipeline.outputs import StreamingOutputs
from reference_outputs import write_outputs
from mixmag.pipeline.predict import CELL_COLUMNS, Pipeline, PredictOptions, list_sources

FILES = ("cells.csv", "cells.json", "coco_results.json", "counts.csv")
META = {"detector": "oracle", "classifier": "stub", "seconds": 1.0, "created": "now"}


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """A list with what a real folder holds: cells, an unreadable image in the middle of a
    group, an image without cells, and one image listed twice (same name, same COCO id)."""
    root = tmp_path_factory.mktemp("stream")
    ds = make_yolo_dataset(root / "ds", counts=(("train", 2), ("test", 5)), size=256,
                           per_image=5).parent
    imgs = sorted((ds / "images" / "test").glob("*.jpg"))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    blank = np.zeros((256, 256, 3), np.uint8)
    blank[:] = BACKGROUND
    cv2.imwrite(str(root / "blank.jpg"), blank)
    order = [imgs[0], imgs[1], root / "broken.jpg", imgs[2], root / "blank.jpg", imgs[3], imgs[1],
             imgs[4]]
    (root / "list.txt").write_text("".join(f"{p}\n" for p in order))
    return ds, root / "list.txt"


def _pipeline(ds, mode):
    if mode == "no-sizes":  # no magnification estimates: NaN in every row
        return Pipeline(OracleDetector(256), StubClassifier(input_size=48), None,
                        PredictOptions(mode="classifier-on-boxes", scale_norm=False, batch=3))
    sizes = native_sizes_from_cells(pd.read_csv(ds / "cells.csv"))
    return Pipeline(OracleDetector(256), StubClassifier(input_size=48), sizes,
                    PredictOptions(mode="two-stage", scale_norm=True, batch=3, window=100))


@pytest.mark.parametrize("mode", ["two-stage", "no-sizes"])
@pytest.mark.parametrize("gt", [False, True])
def test_streamed_outputs_are_the_in_memory_bytes(messy, tmp_path, mode, gt):
    ds, lst = messy
    coco_gt = str(ds / "test.json") if gt else None
    sources, skipped = list_sources(lst)
    res = _pipeline(ds, mode).run(sources, progress=False)
    res.skipped = skipped
    assert len(res.failed) == 1 and (res.images["n_cells"] == 0).sum() == 2  # broken, blank
    write_outputs(tmp_path / "a", res, META, coco_gt)
    with StreamingOutputs(tmp_path / "b", coco_gt) as out:
        for r in _pipeline(ds, mode).iter_images(sources, progress=False):
            out.add(r.row, r.cells)
        out.finish(META, skipped)
    assert out.n_cells == len(res.cells) > 0
    for f in FILES:
        assert (tmp_path / "b" / f).read_bytes() == (tmp_path / "a" / f).read_bytes(), f
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(FILES)


def test_a_run_dying_midway_leaves_nothing(messy, tmp_path):
    """The spools are anonymous temporary files: an exception (or a kill) before finish leaves
    neither a final file nor a temporary one, and does not even create the output folder."""
    ds, lst = messy
    sources, _ = list_sources(lst)
    out = tmp_path / "pred"
    with pytest.raises(KeyboardInterrupt):
        with StreamingOutputs(out) as w:
            for k, r in enumerate(_pipeline(ds, "two-stage").iter_images(sources, progress=False)):
                w.add(r.row, r.cells)
                if k == 4:
                    raise KeyboardInterrupt
    assert not out.exists() and list(tmp_path.iterdir()) == []


def _frame(name: str, n: int, rng) -> pd.DataFrame:
    probs = rng.dirichlet(np.ones(len(CLASS_NAMES)), n)
    cls = probs.argmax(1)
    xy = rng.uniform(0, 900, (n, 2)).astype(np.float32)
    return pd.DataFrame({
        "image": name, "x1": xy[:, 0], "y1": xy[:, 1], "x2": xy[:, 0] + 60, "y2": xy[:, 1] + 60,
        "class_name": [CLASS_NAMES[i] for i in cls], "class_id": cls,
        "score": probs.max(1), "det_conf": np.float32(0.9), "class_conf": probs.max(1),
        **{f"p_{c}": probs[:, i] for i, c in enumerate(CLASS_NAMES)},
        "magnification_est": rng.uniform(0.5, 2, n)})[CELL_COLUMNS]


def test_streaming_memory_does_not_grow_with_the_cells(tmp_path):
    """Python memory the writer holds grows by the per-image record (name, size, class counts:
    ~0.5 kB an image), not by the cells: keeping each image's 8-row frame, as the in-memory path
    does, costs ~10 kB an image (measured with tracemalloc)."""
    rng = np.random.default_rng(0)
    tracemalloc.start()
    try:
        with StreamingOutputs(tmp_path / "o") as w:
            for i in range(1000):
                name = f"img_{i:05d}.jpg"
                w.add({"image": name, "width": 1024, "height": 1024, "n_cells": 8, "error": ""},
                      _frame(name, 8, rng))
                if i == 199:
                    gc.collect()
                    at_200 = tracemalloc.get_traced_memory()[0]
            gc.collect()
            at_1000 = tracemalloc.get_traced_memory()[0]
            w.finish(META, [])
    finally:
        tracemalloc.stop()
    per_image = (at_1000 - at_200) / 800
    assert per_image < 1024, f"{per_image:.0f} B an image"
    cells = pd.read_csv(tmp_path / "o" / "cells.csv")
    assert len(cells) == 8000 and cells["image"].nunique() == 1000
