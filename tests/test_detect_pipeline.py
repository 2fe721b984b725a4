"""Tiling and merging, crop geometry, the predict pipeline and its outputs, bad inputs (fast: no
training; the detector is an oracle that thresholds drawn disks tile by tile)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from test_detect_drawn import (BACKGROUND, RADII, OracleDetector, StubClassifier,
                               draw_disks, make_yolo_dataset)
from torchvision.ops import box_iou
import torch

from mixmag.classes import CLASS_NAMES
from mixmag.cli import main
from mixmag.pipeline.crops import plain_crops, scale_norm_crops
from mixmag.detect.magnification import (MagnificationEstimator, estimation_error,
                                         native_sizes_from_cells)
from reference_outputs import write_outputs
from mixmag.pipeline.predict import CELL_COLUMNS, Pipeline, PredictOptions, list_sources
from mixmag.pipeline.tiling import cut_tiles, merge_tiles, tile_grid
from mixmag.errors import MixmagError


# ------------------------------------------------------------------ tiling

def _large_scene():
    """3000×2000 with disks on tile seams (tile 1024, overlap 256: x starts 0, 768, 1536, 1976;
    y starts 0, 768, 976), some larger than the overlap."""
    disks = [(0, 1024, 500, 40), (1, 768, 900, 60), (2, 1536, 1000, 150),  # on vertical seams
             (3, 500, 768, 45), (4, 1800, 1024, 30), (5, 2500, 976, 140),  # on horizontal seams
             (6, 1020, 1020, 50), (7, 300, 300, 10), (1, 2950, 1950, 40),  # corner, small, edge
             (5, 1700, 1700, 170)]  # bigger than the overlap, across two seams
    return draw_disks(3000, 2000, disks, seed=3), disks


def test_tile_grid_covers_image_with_full_tiles():
    grid = tile_grid(2000, 3000, 1024, 256)
    assert sorted({t.x0 for t in grid}) == [0, 768, 1536, 1976]
    assert sorted({t.y0 for t in grid}) == [0, 768, 976]
    assert all(t.w == 1024 and t.h == 1024 for t in grid)
    small = tile_grid(300, 500, 1024, 256)
    assert len(small) == 1 and (small[0].w, small[0].h) == (500, 300)
    assert not any([small[0].cut_left, small[0].cut_right, small[0].cut_top, small[0].cut_bottom])


def test_tiled_large_image_finds_each_disk_once():
    img, disks = _large_scene()
    tiles, grid = cut_tiles(img, 1024, 256)
    assert all(t.shape == (1024, 1024, 3) for t in tiles)
    det = OracleDetector(1024)
    merged = merge_tiles(det.predict(tiles), grid, iou=0.5)
    truth = OracleDetector(4000).predict([img])[0][:, :4]  # the same detector, untiled
    assert len(truth) == len(disks)
    assert len(merged) == len(disks), merged[:, :4].round()
    iou = box_iou(torch.from_numpy(truth), torch.from_numpy(merged[:, :4])).numpy()
    assert (iou.max(1) > 0.97).all(), iou.max(1)
    assert ((iou > 0.3).sum(1) == 1).all()  # no duplicate piece left over a seam


def test_without_seam_handling_nms_alone_leaves_duplicates():
    """The test above can fail: plain NMS over tiles keeps cut pieces of seam cells."""
    import torchvision

    img, disks = _large_scene()
    tiles, grid = cut_tiles(img, 1024, 256)
    rows = []
    for d, t in zip(OracleDetector(1024).predict(tiles), grid):
        d = d.copy()
        d[:, [0, 2]] += t.x0
        d[:, [1, 3]] += t.y0
        rows.append(d)
    d = np.concatenate(rows)
    keep = torchvision.ops.nms(torch.from_numpy(d[:, :4]), torch.from_numpy(d[:, 4]), 0.5)
    assert len(keep) > len(disks)


def test_small_image_padded_not_resized():
    img = draw_disks(200, 150, [(0, 100, 70, 30)])
    tiles, grid = cut_tiles(img, 256, 32)
    assert len(tiles) == 1 and tiles[0].shape == (256, 256, 3)
    assert (tiles[0][:150, :200] == img).all() and (tiles[0][150:] == 114).all()
    assert len(tile_grid(200, 300, 256, 32)) == 2


# ------------------------------------------------------------------ crops

def _disk_radius(crop):
    mask = np.abs(crop.astype(np.int16) - np.array(BACKGROUND)).sum(2) > 45
    ys, xs = np.nonzero(mask)
    return (xs.max() - xs.min() + 1) / 2, ((xs.max() + xs.min()) / 2, (ys.max() + ys.min()) / 2)


@pytest.mark.parametrize("m", [0.5, 1.0, 1.5, 2.0])
def test_scale_norm_crop_shows_cell_at_native_size(m):
    native_r = 40
    img = draw_disks(800, 800, [(1, 400, 420, native_r * m)])
    box = np.array([[400 - native_r * m, 420 - native_r * m, 400 + native_r * m, 420 + native_r * m]])
    crop = scale_norm_crops(img, box, [m], window=360, out_size=180)[0]
    assert crop.shape == (180, 180, 3)
    r, (cx, cy) = _disk_radius(crop)
    assert abs(r - native_r * 180 / 360) <= 1.5, r  # same size whatever the magnification
    assert abs(cx - 90) <= 1.5 and abs(cy - 90) <= 1.5


def test_plain_crop_fills_same_fraction_whatever_size():
    for r in (30, 90):
        img = draw_disks(400, 400, [(2, 200, 200, r)])
        crop = plain_crops(img, np.array([[200 - r, 200 - r, 200 + r, 200 + r]]), margin=0.25,
                           out_size=150)[0]
        rr, _ = _disk_radius(crop)
        assert abs(rr - 150 / 1.5 / 2) <= 3, (r, rr)


def test_crop_outside_image_is_padded_with_background():
    img = draw_disks(200, 200, [(3, 10, 10, 8)])
    crop = scale_norm_crops(img, np.array([[2.0, 2, 18, 18]]), [1.0], window=100)[0]
    assert crop.shape == (100, 100, 3)
    assert np.abs(crop[0, 0].astype(int) - np.array(BACKGROUND)).sum() < 30


# ------------------------------------------------------------------ magnification

def test_native_sizes_and_estimates_recover_magnification(tmp_path):
    make_yolo_dataset(tmp_path / "ds", counts=(("train", 6), ("test", 3)), size=256)
    cells = pd.read_csv(tmp_path / "ds" / "cells.csv")
    sizes = native_sizes_from_cells(cells)
    assert sizes["native_size"]["platelet"] == pytest.approx(2 * RADII[7], rel=0.01)
    test = cells[cells["split"] == "test"]
    est = MagnificationEstimator(sizes).estimate(test[["x1", "y1", "x2", "y2"]].to_numpy(),
                                                 list(test["class_name"]))
    err = estimation_error(test["magnification"], est)
    assert err["median_rel_error"] < 0.01 and err["within_10pct"] == 1.0
    wrong = MagnificationEstimator(sizes).estimate(test[["x1", "y1", "x2", "y2"]].to_numpy())
    assert estimation_error(test["magnification"], wrong)["within_10pct"] < 1.0


# ------------------------------------------------------------------ pipeline + outputs

@pytest.fixture(scope="module")
def drawn_ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("det") / "ds"
    make_yolo_dataset(root, counts=(("train", 6), ("test", 4)), size=256, per_image=5)
    return root


def _run(drawn_ds, scale_norm=True, mode="two-stage"):
    sizes = native_sizes_from_cells(pd.read_csv(drawn_ds / "cells.csv"))
    clf = StubClassifier(input_size=96)
    pipe = Pipeline(OracleDetector(256), clf, sizes,
                    PredictOptions(mode=mode, scale_norm=scale_norm, batch=3, window=100))
    sources, skipped = list_sources(drawn_ds / "images" / "test")
    return pipe.run(sources, progress=False), clf


@pytest.mark.parametrize("scale_norm", [True, False])
def test_pipeline_labels_drawn_cells(drawn_ds, scale_norm):
    res, clf = _run(drawn_ds, scale_norm)
    truth = pd.read_csv(drawn_ds / "cells.csv").query("split == 'test'")
    assert list(res.cells.columns) == CELL_COLUMNS
    assert len(res.cells) == len(truth)
    assert sum(clf.calls) >= len(truth) and len(clf.calls) <= 4  # batched, not one call a cell
    assert all(c.shape == (96, 96, 3) for c in clf.seen)
    probs = res.cells[[f"p_{c}" for c in CLASS_NAMES]].to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-6)
    # the stub reads the centre colour: right for every cell when crops are centred
    merged = _match(res.cells, truth)
    assert (merged["class_name_p"] == merged["class_name_t"]).mean() == 1.0
    err = estimation_error(merged["magnification"], merged["magnification_est"])
    assert err["median_rel_error"] < 0.08


def _match(pred, truth):
    rows = []
    for name, t in truth.groupby("image"):
        p = pred[pred["image"] == Path(name).name]
        iou = box_iou(torch.tensor(t[["x1", "y1", "x2", "y2"]].to_numpy()),
                      torch.tensor(p[["x1", "y1", "x2", "y2"]].to_numpy())).numpy()
        for i, j in enumerate(iou.argmax(1)):
            assert iou[i, j] > 0.6
            rows.append({"class_name_t": t.iloc[i]["class_name"], "magnification": t.iloc[i]["magnification"],
                         "class_name_p": p.iloc[j]["class_name"],
                         "magnification_est": p.iloc[j]["magnification_est"]})
    return pd.DataFrame(rows)


def test_outputs_parse_and_coco_loads(drawn_ds, tmp_path):
    from pycocotools.coco import COCO

    res, _ = _run(drawn_ds)
    out = tmp_path / "pred"
    write_outputs(out, res, {"detector": "oracle"}, coco_gt=str(drawn_ds / "test.json"))
    cells = pd.read_csv(out / "cells.csv")
    assert list(cells.columns) == CELL_COLUMNS and len(cells) == len(res.cells)
    data = json.loads((out / "cells.json").read_text())
    assert len(data["cells"]) == len(cells) and data["images"][0]["image_id"] is not None
    counts = pd.read_csv(out / "counts.csv")
    assert counts["n_cells"].sum() == len(cells) and len(counts) == 4
    assert (counts[list(CLASS_NAMES)].sum(1) == counts["n_cells"]).all()
    gt = COCO(str(drawn_ds / "test.json"))
    dt = gt.loadRes(str(out / "coco_results.json"))
    assert len(dt.getAnnIds()) == len(cells)
    ann = dt.loadAnns(dt.getAnnIds()[:1])[0]
    assert 1 <= ann["category_id"] <= 8 and len(ann["bbox"]) == 4


def test_mode_checks(drawn_ds):
    with pytest.raises(MixmagError, match="not the 8 PBC"):
        Pipeline(OracleDetector(), None, None, PredictOptions(mode="detector"))
    with pytest.raises(MixmagError, match="needs --classifier"):
        Pipeline(OracleDetector(), None, None, PredictOptions(mode="two-stage"))
    with pytest.raises(MixmagError, match="native cell sizes"):
        Pipeline(OracleDetector(), StubClassifier(), None, PredictOptions(scale_norm=True))


# ------------------------------------------------------------------ bad inputs

def test_sources_skip_non_images_and_unreadable(drawn_ds, tmp_path, caplog):
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    img = cv2.imread(str(next((drawn_ds / "images" / "test").glob("*.jpg"))))
    cv2.imwrite(str(folder / "a.jpg"), img)
    cv2.imwrite(str(folder / "sub" / "b.png"), img)
    (folder / "notes.txt").write_text("hello")
    (folder / ".DS_Store").write_bytes(b"\0\1")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    srcs, skipped = list_sources(folder)
    assert sorted(s.name for s in srcs) == ["a.jpg", "broken.jpg"] and len(skipped) == 2
    srcs_r, _ = list_sources(folder, recursive=True)
    assert "sub/b.png" in [s.name for s in srcs_r]
    lst = tmp_path / "list.txt"
    lst.write_text(f"{folder / 'a.jpg'}\n# comment\n{folder / 'sub' / 'b.png'}\n")
    assert len(list_sources(lst)[0]) == 2
    assert len(list_sources(str(folder / "*.jpg"))[0]) == 2
    sizes = native_sizes_from_cells(pd.read_csv(drawn_ds / "cells.csv"))
    pipe = Pipeline(OracleDetector(256), StubClassifier(), sizes, PredictOptions())
    res = pipe.run(srcs, progress=False)
    assert len(res.failed) == 1 and "broken.jpg" in res.failed.iloc[0]["error"]
    assert (res.cells["image"] == "a.jpg").sum() > 0
    with pytest.raises(MixmagError, match="no images found"):
        list_sources(_empty(tmp_path))
    # a folder of subfolders only: nothing was left out for --out, so the hint is --recursive
    with pytest.raises(MixmagError, match="pass --recursive"):
        list_sources(_nested(tmp_path, img), out=tmp_path / "elsewhere")


def _nested(tmp_path, img):
    p = tmp_path / "nested"
    (p / "a").mkdir(parents=True)
    cv2.imwrite(str(p / "a" / "x.jpg"), img)
    return p


def _empty(tmp_path):
    p = tmp_path / "empty"
    p.mkdir()
    (p / "x.csv").write_text("a\n")
    return p


def test_cli_missing_weights_is_one_line_error(tmp_path, capsys, drawn_ds):
    rc = main(["predict", str(drawn_ds / "images" / "test"), "--detector",
               str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "nope.pt: no such file" in err
    rc = main(["predict", str(drawn_ds / "images" / "test"), "--detector",
               str(drawn_ds / "cells.csv"), "--out", str(tmp_path / "o2")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "not an ultralytics detector" in err
    rc = main(["train-detector", "--data", str(tmp_path / "no.yaml")])
    assert rc == 2 and "no such file" in capsys.readouterr().err


# ------------------------------------------------------------------ magnification vs truth (benchmark)

def _truth_as_predictions(truth):
    p = truth[["image", "x1", "y1", "x2", "y2", "class_name", "class_id"]].copy()
    p["image"] = p["image"].map(lambda s: Path(s).name)
    p["score"] = p["det_conf"] = p["class_conf"] = 0.9
    p["magnification_est"] = truth["magnification"].to_numpy() * 1.05
    return p


def test_magnification_estimate_vs_truth(drawn_ds):
    from mixmag.detect.magnification import estimate_vs_truth
    from mixmag.evaluate import evaluate

    truth = pd.read_csv(drawn_ds / "cells.csv").query("split == 'test'").reset_index(drop=True)
    pred = _truth_as_predictions(truth)
    res = evaluate(truth, pred, iou=0.5, bootstrap=0, coco=False)
    assert res.headline["macro_f1"] == 1.0
    e = estimate_vs_truth(res)
    assert e["n"] == len(truth) and e["discrete_accuracy"] == 1.0
    assert e["median_rel_error"] == pytest.approx(0.05)
    levels = sorted(truth["magnification"].unique())
    # 5 % over the truth: within ±0.125 below 2.5x
    assert e["within_0.125"] == pytest.approx(float((truth["magnification"] * 0.05 <= 0.125).mean()))
    conf = e["discrete_confusion"]
    assert sum(conf[f"{t:g}"][f"{t:g}"] for t in levels) == len(truth)

    # every estimate one scale too high: the confusion moves off the diagonal
    if len(levels) > 1:
        up = dict(zip(levels[:-1], levels[1:]))
        wrong = pred.assign(magnification_est=truth["magnification"].map(lambda m: up.get(m, m)))
        w = estimate_vs_truth(evaluate(truth, wrong, bootstrap=0, coco=False))
        n_low = int(truth["magnification"].isin(up).sum())
        assert w["discrete_accuracy"] == pytest.approx(1 - n_low / len(truth))
        lo, hi = levels[0], levels[1]
        assert w["discrete_confusion"][f"{lo:g}"][f"{hi:g}"] == int((truth["magnification"] == lo).sum())
    # a missed cell is no estimate
    fewer = estimate_vs_truth(evaluate(truth, pred.iloc[1:], bootstrap=0, coco=False))
    assert fewer["n"] == len(truth) - 1


def test_two_stage_is_geometric_mean_of_the_parts(drawn_ds):
    """classify() = finish(combine(classifier_probs, det_probs)): the parts the benchmark reuses."""
    sizes = native_sizes_from_cells(pd.read_csv(drawn_ds / "cells.csv"))
    det = OracleDetector(256)
    det.names = {i: c for i, c in enumerate(CLASS_NAMES)}
    pipe = Pipeline(det, StubClassifier(input_size=96), sizes,
                    PredictOptions(mode="two-stage", scale_norm=True, window=100))
    sources, _ = list_sources(drawn_ds / "images" / "test")
    imgs = [cv2.imread(str(s.path)) for s in sources]
    dets = pipe.detect(imgs)
    for d in dets:  # a detector that is sure of a wrong class on every box
        d[:, 5] = 0
        d[:, 4] = 0.6
    parts = pipe.finish(dets, pipe.combine(pipe.classifier_probs(imgs, dets, pipe.det_probs(dets)),
                                           pipe.det_probs(dets)))
    whole = pipe.classify(imgs, dets)
    for (pa, ma), (pb, mb) in zip(parts, whole):
        assert np.allclose(pa, pb) and np.allclose(ma, mb, equal_nan=True)
        assert np.allclose(pa.sum(1), 1)


def test_score_does_not_square_an_8class_detector_confidence(drawn_ds):
    """An 8-class YOLO confidence is a class score already: in detector mode score = det_conf
    (not det_conf²); with a one-class detector score = sqrt(det_conf × class probability), which
    ranks as the product but keeps a cell found at 0.5 and labelled at 0.8 well above 0.25."""
    d = np.array([[10, 10, 50, 50, 0.5, 3]], np.float32)
    eight = OracleDetector(256)
    eight.names = {i: c for i, c in enumerate(CLASS_NAMES)}
    pipe = Pipeline(eight, None, None, PredictOptions(mode="detector", scale_norm=False))
    p, m = pipe.classify([np.zeros((64, 64, 3), np.uint8)], [d])[0]
    row = pipe.rows("a.jpg", d, p, m).iloc[0]
    assert row["class_name"] == CLASS_NAMES[3] and row["score"] == pytest.approx(0.5)
    # below conf 1/8 an even spread of the rest would outrank the detector's own class: the box
    # must keep its class and its confidence as score (predict --conf 0.001, COCO's protocol)
    low = d.copy()
    low[0, 4] = 0.05
    p, m = pipe.classify([np.zeros((64, 64, 3), np.uint8)], [low])[0]
    row = pipe.rows("a.jpg", low, p, m).iloc[0]
    assert row["class_name"] == CLASS_NAMES[3] and row["score"] == pytest.approx(0.05)
    one = Pipeline(OracleDetector(256), StubClassifier(input_size=32), None,
                   PredictOptions(mode="two-stage", scale_norm=False))
    probs = np.full((1, 8), 0.2 / 7)
    probs[0, 2] = 0.8
    row = one.rows("a.jpg", d, probs, np.ones(1)).iloc[0]
    assert row["score"] == pytest.approx(0.4 ** 0.5) and row["class_conf"] == pytest.approx(0.8)


def test_zoom_below_detects_small_cells_again_enlarged():
    """--zoom-below: an image whose first-pass boxes say its cells are small (median estimate
    0.5 against a native 60 px) is detected again at 2x and its boxes come back in its own
    pixels; an image of native-size cells, or without the option, gets one pass."""
    sizes = {"native_size": {"cell": 60.0}, "all_classes_median": 60.0}
    small = draw_disks(300, 300, [(0, 80, 80, 15), (3, 200, 150, 15)], seed=1)   # 30 px cells
    native = draw_disks(300, 300, [(0, 80, 80, 30), (3, 200, 170, 30)], seed=2)  # 60 px cells
    for zoom, img, passes, scale in ((0.75, small, 2, 2.0), (0.75, native, 1, None),
                                     (None, small, 1, None)):
        det = OracleDetector(1024)
        pipe = Pipeline(det, StubClassifier(), sizes,
                        PredictOptions(mode="classifier-on-boxes", tile=1024, zoom_below=zoom,
                                       small_images="pad"))
        (boxes,) = pipe.detect([img])
        assert len(det.seen_shapes) == passes
        if scale:  # the second pass saw the image enlarged (padded into its tile)
            one = OracleDetector(1024).predict([img])[0]
            assert len(boxes) == len(one) == 2
            assert np.abs(np.sort(boxes[:, :4], 0) - np.sort(one[:, :4], 0)).max() <= 1.5
            assert boxes[:, 2].max() <= 300 and boxes[:, 3].max() <= 300


class FixedDetector:
    """A detector of the eight + rbc that finds the same boxes on every image: an eosinophil,
    one of its lobes, and a platelet lying over it."""

    names = {i: n for i, n in enumerate([*CLASS_NAMES, "rbc"])}
    imgsz = 256
    boxes = np.array([[20, 20, 120, 120, 0.9, 1], [25, 30, 70, 110, 0.8, 1],
                      [80, 80, 110, 110, 0.7, 7]], np.float32)

    def predict(self, images, conf=0.25, iou=0.6, batch_size=16):
        return [self.boxes.copy() for _ in images]


@pytest.mark.parametrize("share,kept", [(None, 3), (0.6, 2)])
def test_drop_inside_drops_the_lobe_in_predict(share, kept):
    """--drop-inside reaches predict's detection: the lobe inside the eosinophil goes, the
    platelet over it stays; without the option every box is kept."""
    pipe = Pipeline(FixedDetector(), StubClassifier(), None,
                    PredictOptions(mode="classifier-on-boxes", scale_norm=False, tile=256,
                                   small_images="pad", drop_inside=share))
    (d,) = pipe.detect([np.full((200, 200, 3), 200, np.uint8)])
    assert len(d) == kept
    assert sorted(d[:, 5].astype(int).tolist()) == ([1, 1, 7] if share is None else [1, 7])
