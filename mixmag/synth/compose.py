"""Render one planned composite: background, scaled cut-outs placed and alpha-blended, records."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..classes import CLASS_NAMES
from .background import render_background
from .cutout import CutoutStore
from .place import place_boxes
from .plan import ImagePlan, image_rng


@dataclass(frozen=True)
class RenderConfig:
    canvas: int = 1024
    box: str = "tight"          # "tight": box of the pasted mask; "crop": the pasted rectangle
    max_iou: float = 0.0
    seed: int = 0
    jpeg_quality: int = 92


def scale_image(img: np.ndarray, m: float) -> np.ndarray:
    """An image at m x its pixel size: INTER_AREA to shrink (no aliasing), cubic to enlarge."""
    if m == 1.0:
        return img
    h, w = img.shape[:2]
    size = (max(1, int(round(w * m))), max(1, int(round(h * m))))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if m < 1 else cv2.INTER_CUBIC)


def scale_cutout(bgr: np.ndarray, alpha: np.ndarray, m: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize a cut-out (image and its alpha) by magnification m, as ``scale_image``."""
    return scale_image(bgr, m), scale_image(alpha, m)


def tight_box(alpha: np.ndarray) -> tuple[int, int, int, int, int]:
    """(x1, y1, x2, y2, area) of alpha >= 0.5; x2/y2 exclusive."""
    _, a = cv2.threshold(alpha, 127, 255, cv2.THRESH_BINARY)    # alpha >= 128
    area = cv2.countNonZero(a)
    if area == 0:
        return 0, 0, 0, 0, 0
    x, y, w, h = cv2.boundingRect(a)
    return x, y, x + w, y + h, area


def render_image(plan: ImagePlan, store: CutoutStore, bank: list[np.ndarray], cfg: RenderConfig,
                 draw: bool = True, out: np.ndarray | None = None) -> tuple[np.ndarray | None, list[dict], int]:
    """(image or None when draw=False, per-cell records, cells that did not fit).

    ``out``: a (canvas, canvas, 3) uint8 buffer to draw into (and return) instead of a new array.
    """
    rng = image_rng(cfg.seed, plan.image_id)
    C = cfg.canvas
    pieces = []
    for row, m in plan.cells:
        cut = store.get(row)
        bgr, alpha = scale_cutout(cut.bgr, cut.alpha, m)
        tb = tight_box(alpha)
        if tb[4] == 0:
            tb = (0, 0, alpha.shape[1], alpha.shape[0], 0)
        pieces.append((row, m, cut.palette, bgr, alpha, tb))
    if cfg.box == "crop":
        sizes = np.array([[p[3].shape[1], p[3].shape[0]] for p in pieces], np.int64).reshape(-1, 2)
    else:
        sizes = np.array([[p[5][2] - p[5][0], p[5][3] - p[5][1]] for p in pieces], np.int64).reshape(-1, 2)
    offsets = place_boxes(sizes, (C, C), rng, cfg.max_iou)
    palette = pieces[0][2] if pieces else np.array([[235, 225, 245], [190, 170, 215]], np.uint8)
    canvas = render_background(bank, C, palette, rng, out) if draw else None
    records, dropped, k = [], 0, 0
    class_ids, sources = store.columns()
    for (row, m, _, bgr, alpha, tb), off in zip(pieces, offsets):
        if off is None:
            dropped += 1
            continue
        if cfg.box == "crop":
            px, py = off                                  # the crop's top-left on the canvas
            box = (px, py, px + bgr.shape[1], py + bgr.shape[0])
        else:
            px, py = off[0] - tb[0], off[1] - tb[1]
            box = (off[0], off[1], off[0] + tb[2] - tb[0], off[1] + tb[3] - tb[1])
        if draw:
            paste(canvas, bgr, alpha, px, py)
        cid = class_ids[row]
        records.append({
            "image": plan.image, "image_id": plan.image_id, "cell": k,
            "class_name": CLASS_NAMES[cid], "class_id": cid,
            "source": sources[row], "split": plan.split,
            "magnification": float(m),
            "x1": float(box[0]), "y1": float(box[1]), "x2": float(box[2]), "y2": float(box[3]),
            "mask_area": int(tb[4]), "width": C, "height": C,
        })
        k += 1
    return canvas, records, dropped


def paste(canvas: np.ndarray, bgr: np.ndarray, alpha: np.ndarray, px: int, py: int) -> None:
    """Alpha-blend a cut-out (``bgr``, ``alpha`` 0-255) onto ``canvas`` in place with its top-left
    at (``px``, ``py``), clipped to the canvas: the generator's paste."""
    H, W = canvas.shape[:2]
    h, w = alpha.shape
    x1, y1 = max(0, px), max(0, py)
    x2, y2 = min(W, px + w), min(H, py + h)
    if x2 <= x1 or y2 <= y1:
        return
    sub = (slice(y1 - py, y2 - py), slice(x1 - px, x2 - px))
    a = alpha[sub].astype(np.float32)
    a *= 1 / 255
    roi = canvas[y1:y2, x1:x2]
    # blendLinear writes a new array; copy it back into the canvas view (no temporaries in numpy)
    roi[...] = cv2.blendLinear(bgr[sub], roi, a, 1 - a)


def yolo_lines(records: list[dict]) -> str:
    out = []
    for r in records:
        W, H = r["width"], r["height"]
        cx, cy = (r["x1"] + r["x2"]) / 2 / W, (r["y1"] + r["y2"]) / 2 / H
        w, h = (r["x2"] - r["x1"]) / W, (r["y2"] - r["y1"]) / H
        out.append(f"{r['class_id']} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(out)
