"""mixmag.detect.boxes (letterbox, NMS, box scaling in NumPy/OpenCV) gives ultralytics' own
results box for box: the released detector's raw output on drawn smears, every letterbox shape
(square, wide, tall, thin, up- and downscaled), and the tile merge's NMS against torchvision's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from test_detect_drawn import draw_disks

from mixmag.detect.boxes import decode, letterbox, nms, scale_boxes, to_batch
from mixmag.zoo import load_zoo

SHAPES = [(640, 640), (1024, 1024), (363, 360), (200, 300), (300, 120), (7, 900), (1000, 3), (641, 639)]


@pytest.mark.parametrize("h,w", SHAPES)
def test_letterbox_is_ultralytics(h, w):
    from ultralytics.data.augment import LetterBox

    img = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ours = letterbox(img, 640)
    theirs = LetterBox((640, 640), auto=False, scaleup=True, center=True)(image=img)
    assert ours.shape == (640, 640, 3) and np.array_equal(ours, theirs)


def _smears():
    rng = np.random.default_rng(4)
    out = []
    for w, h in [(1024, 1024), (360, 363), (900, 500), (300, 700)]:
        r = max(8, min(w, h) // 12)
        disks = [(int(rng.integers(8)), rng.uniform(r, w - r), rng.uniform(r, h - r), r)
                 for _ in range(int(rng.integers(3, 9)))]
        out.append(draw_disks(w, h, disks, seed=w + h))
    return out


def test_decode_and_scale_are_ultralytics_nms_and_scale_boxes():
    """The released detector's raw output through both postprocessings: the same boxes (to
    float32 rounding), scores, classes and order. A low threshold keeps many overlapping
    candidates, so NMS has real work to do."""
    from ultralytics.utils import ops
    from ultralytics.utils.nms import non_max_suppression

    from mixmag.detect.detector import YoloDetector

    entry = load_zoo().default("detect")
    if not entry.file.is_file():
        pytest.skip(f"default detector {entry.file} not in this checkout")
    det = YoloDetector(entry.file)
    images = _smears()
    raw = det.forward(to_batch(images, det.imgsz))
    compared = 0
    for conf, iou in ((0.25, 0.6), (0.01, 0.45), (0.001, 0.7)):
        ours = decode(raw, conf, iou)
        theirs = non_max_suppression(torch.from_numpy(raw), conf, iou, agnostic=True, max_det=1000)
        for im, a, b in zip(images, ours, theirs):
            b = b.numpy()
            assert a.shape == b.shape
            assert np.array_equal(a[:, 4:], b[:, 4:])
            assert np.allclose(a[:, :4], b[:, :4], atol=1e-4)
            a = scale_boxes(det.imgsz, a[:, :4].copy(), im.shape[:2])
            b = ops.scale_boxes((det.imgsz, det.imgsz), torch.from_numpy(b[:, :4]), im.shape[:2])
            assert np.allclose(a, b.numpy(), atol=1e-3)
            compared += len(a)
    assert compared > 50  # the low thresholds kept many boxes: the comparison is not empty


def test_nms_is_torchvision_nms():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 400, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 60, (300, 2))], 1).astype(np.float32)
    scores = rng.permutation(300).astype(np.float32) / 300 + 0.001  # distinct: no ties to order
    classes = rng.integers(0, 4, 300)
    for iou in (0.3, 0.5, 0.7):
        tb, ts = torch.from_numpy(boxes), torch.from_numpy(scores)
        assert np.array_equal(nms(boxes, scores, iou), torchvision.ops.nms(tb, ts, iou).numpy())
        want = torchvision.ops.batched_nms(tb, ts, torch.from_numpy(classes), iou).numpy()
        assert np.array_equal(np.sort(nms(boxes, scores, iou, classes)), np.sort(want))
    assert len(nms(boxes, scores, 0.3)) < 300 and nms(boxes[:0], scores[:0], 0.5).shape == (0,)


@pytest.mark.parametrize("h,w", [(363, 360), (180, 182), (545, 540), (1024, 700), (31, 900)])
def test_a_fitted_canvas_holds_the_padded_tiles_pixels(h, w):
    """An image smaller than the 1,024 tile, scaled by 640/1,024 onto the smallest 32-multiple
    canvas: its pixels are the padded tile's letterboxed pixels (to one grey level), the canvas
    no larger than it must be."""
    from mixmag.detect.boxes import scaled_canvas
    from mixmag.pipeline.tiling import tile_grid, tile_pixels

    img = np.random.default_rng(h + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    (t,) = tile_grid(h, w, 1024, 256)
    padded = letterbox(tile_pixels(img, t, 1024), 640)
    fitted = scaled_canvas(img, 0.625)
    H, W = fitted.shape[:2]
    assert H % 32 == 0 and W % 32 == 0 and H - 32 < h * 0.625 <= H and W - 32 < w * 0.625 <= W
    assert np.abs(padded[:H, :W].astype(int) - fitted).max() <= 1


def test_fitted_boxes_come_back_in_image_pixels():
    from mixmag.detect.boxes import unscale_boxes

    det = np.array([[10, 20, 50, 60, 0.9, 3], [300, 10, 320, 30, 0.8, 7]], np.float32)
    out = unscale_boxes(det.copy(), 0.5, (100, 200))  # the second box starts in the grey
    assert out.shape == (1, 6) and np.allclose(out[0, :4], [20, 40, 100, 100]) and out[0, 5] == 3


def test_small_images_run_on_fitted_canvases_and_find_the_same_cells(tmp_path):
    """predict's default for small images (fit): the default detector runs a 360 x 363 field
    on a 288² canvas at input 800 (256² at input 640; not a whole input; sides at least 256),
    canvases of one shape in one batch, and finds the same cells as on the padded tile. Boxes move by up to ~2 px, confidences by up to ~0.3 and
    the detector's own class of a drawn disk may flip on these drawn smears: the network sees less grey, and its attention block mixes the whole
    feature map (docs/HISTORY.md, 2026-12-07)."""
    from mixmag.pipeline import build_pipeline

    entry = load_zoo().default("detect")
    if not entry.file.is_file():
        pytest.skip(f"default detector {entry.file} not in this checkout")
    images = _smears()[1:] + [_smears()[1]]
    shapes = []
    fit = build_pipeline(classifier="none", backend="pytorch")
    pad = build_pipeline(classifier="none", backend="pytorch", small_images="pad")
    forward = fit.det.forward
    fit.det.forward = lambda x: shapes.append(x.shape) or forward(x)
    a, b = fit.detect(images), pad.detect(images)
    # each side scaled by input / 1024 (the tile), up to a multiple of 32, at least 256
    expected = {640: [(2, 3, 256, 256), (1, 3, 320, 576), (1, 3, 448, 256)],
                800: [(2, 3, 288, 288), (1, 3, 416, 704), (1, 3, 576, 256)]}[fit.det.imgsz]
    assert sorted(shapes) == sorted(expected)
    for da, db in zip(a, b):
        assert len(da) == len(db) > 0
        assert np.abs(np.sort(da[:, :4], 0) - np.sort(db[:, :4], 0)).max() < 3


def test_parts_inside_drops_lobes_and_nuclei_not_platelets_or_neighbours():
    """A box mostly inside a larger box of the eight is a part of that cell (a lobe, a nucleus)
    and is dropped; a platelet over a white cell, two touching cells, a box inside a red cell's
    box and a larger box around a smaller one are kept."""
    from mixmag.detect.boxes import parts_inside

    names = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte",
             "neutrophil", "platelet", "rbc"]
    eight = np.array([n != "rbc" for n in names])
    parts = eight & np.array([n != "platelet" for n in names])
    det = np.array([
        [100, 100, 200, 200, 0.9, 1],   # 0 eosinophil
        [105, 110, 150, 190, 0.8, 1],   # 1 one of its lobes: wholly inside -> dropped
        [150, 150, 185, 185, 0.7, 7],   # 2 a platelet over it: kept
        [200, 100, 300, 200, 0.9, 6],   # 3 a neutrophil touching the eosinophil: kept
        [400, 400, 480, 480, 0.9, 8],   # 4 a red cell
        [410, 410, 460, 460, 0.6, 2],   # 5 inside the red cell's box only: kept
        [210, 110, 290, 150, 0.5, 6],   # 6 a smaller box wholly inside the neutrophil: dropped
        [500, 500, 540, 540, 0.9, 4],   # 7 a lymphocyte ...
        [520, 500, 580, 540, 0.9, 4],   # 8 ... and a touching one, half inside: kept at 0.6
    ], np.float32)
    drop = parts_inside(det, 0.6, parts, eight)
    assert drop.tolist() == [False, True, False, False, False, False, True, False, False]
    assert np.array_equal(parts_inside(det, 0.6, parts, eight, chunk=2), drop)  # in pieces alike
    assert not parts_inside(det, 0.6, parts, eight & ~parts).any()  # only platelets as wholes
    assert parts_inside(det[:1], 0.6, parts, eight).tolist() == [False]
    assert parts_inside(det[7:9], 0.5, parts, eight).tolist() == [True, False]  # at 0.5, 7 is half in 8
