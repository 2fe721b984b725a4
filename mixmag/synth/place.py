"""Random, non-overlapping placement of boxes on a canvas (bounded work: never loops forever)."""

from __future__ import annotations

import numpy as np

CANDIDATES = 256   # random positions tried per box, all at once


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of each row of ``box`` (K, 4) with each of ``boxes`` (M, 4); xyxy -> (K, M)."""
    ix1 = np.maximum(box[:, None, 0], boxes[None, :, 0])
    iy1 = np.maximum(box[:, None, 1], boxes[None, :, 1])
    ix2 = np.minimum(box[:, None, 2], boxes[None, :, 2])
    iy2 = np.minimum(box[:, None, 3], boxes[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    a = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
    b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(a[:, None] + b[None, :] - inter, 1e-9)


def place_boxes(sizes: np.ndarray, canvas: tuple[int, int], rng: np.random.Generator,
                max_iou: float = 0.0, gap: int = 2) -> list[tuple[int, int] | None]:
    """Top-left offsets for boxes of ``sizes`` (N, 2: w, h) inside ``canvas`` (W, H).

    Larger boxes are placed first (they are the hardest to fit). Each box tries CANDIDATES random
    positions at once and takes the first whose IoU with every placed box is <= ``max_iou``
    (with ``max_iou`` 0, boxes keep ``gap`` px apart). A box that fits nowhere gets None: the
    canvas is full for it.
    """
    W, H = canvas
    out: list[tuple[int, int] | None] = [None] * len(sizes)
    placed = np.zeros((0, 4), np.float64)
    order = np.argsort(-(sizes[:, 0] * sizes[:, 1]), kind="stable")
    for i in order:
        w, h = int(sizes[i, 0]), int(sizes[i, 1])
        if w > W or h > H:
            continue
        xs = rng.integers(0, W - w + 1, CANDIDATES)
        ys = rng.integers(0, H - h + 1, CANDIDATES)
        cand = np.stack([xs, ys, xs + w, ys + h], 1).astype(np.float64)
        if len(placed):
            if max_iou <= 0:
                g = np.array([-gap, -gap, gap, gap], np.float64)
                ok = (box_iou(cand + g, placed) <= 0).all(1)
            else:
                ok = (box_iou(cand, placed) <= max_iou).all(1)
            hit = np.flatnonzero(ok)
            if not len(hit):
                continue
            k = int(hit[0])
        else:
            k = 0
        out[i] = (int(xs[k]), int(ys[k]))
        placed = np.vstack([placed, cand[k]])
    return out
