"""Smear canvases: real fields edge to edge, with cut-out cells pasted among their cells.

A real mosaic (``mixmag fields --mosaics N``) packs whole fields on grey. A smear canvas
(``--layout smear``) is closer to the image a user brings: every pixel is a real field, all at one
magnification a canvas, laid edge to edge from a random offset, so the canvas edge and the seams
cut cells (a box cut by the canvas is clipped to what shows; every box touching a field's edge or
the canvas edge is marked ``cut``). On top, ``--paste LOW HIGH`` cut-out cells a canvas (the
generator's cell masks, sources of the canvas' split, classes drawn evenly) at the canvas'
magnification:

- touching or slightly overlapping the field's own white cells and platelets: the pasted mask
  may cover at most ``max_cover`` of any of their boxes (and of earlier pasted cells);
- over red cells: a red cell whose box the pasted mask covers by more than half loses its box
  (it is hidden); one covered less keeps it, as a red cell under a white cell on a slide;
- a share ``clumps`` of the platelets pasted as a clump of 2-5 touching platelets, each boxed;
- a pasted cell may itself be cut by the canvas edge (its box clipped and marked ``cut``).

Every visible cell keeps a box; pasted cells are marked ``pasted`` in cells.csv.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES, RBC
from .compose import paste, scale_cutout, tight_box

MIN_SIDE = 4          # px: a box clipped by the canvas to less than this a side is dropped


def field_grid(size: tuple[int, int], canvas: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Top-left corners of (w, h) fields laid edge to edge over a square canvas from a random
    offset (the first row and column start outside it, so the canvas edge cuts them)."""
    w, h = size
    ox, oy = -int(rng.integers(0, w)), -int(rng.integers(0, h))
    return [(x, y) for y in range(oy, canvas, h) for x in range(ox, canvas, w)]


def clip_records(recs: pd.DataFrame, canvas: int) -> pd.DataFrame:
    """Boxes clipped to the canvas; those cut by it marked ``cut``; slivers under MIN_SIDE dropped."""
    b = recs[["x1", "y1", "x2", "y2"]].to_numpy(float)
    clipped = b.clip(0, canvas)
    out = (clipped != b).any(1)
    keep = ((clipped[:, 2] - clipped[:, 0]) >= MIN_SIDE) & ((clipped[:, 3] - clipped[:, 1]) >= MIN_SIDE)
    recs = recs.copy()
    recs[["x1", "y1", "x2", "y2"]] = clipped.round(2)
    recs["cut"] = recs["cut"].to_numpy(bool) | out
    recs["mask_area"] = ((clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])).round().astype(int)
    return recs[keep].reset_index(drop=True)


def _covered(mask: np.ndarray, px: int, py: int, boxes: np.ndarray) -> np.ndarray:
    """Share of each box (canvas xyxy) that the binary ``mask`` placed at (px, py) covers."""
    h, w = mask.shape
    out = np.zeros(len(boxes))
    if not len(boxes):
        return out
    integral = np.pad(mask.astype(np.int32), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    x1 = np.clip(np.floor(boxes[:, 0]) - px, 0, w).astype(int)
    y1 = np.clip(np.floor(boxes[:, 1]) - py, 0, h).astype(int)
    x2 = np.clip(np.ceil(boxes[:, 2]) - px, 0, w).astype(int)
    y2 = np.clip(np.ceil(boxes[:, 3]) - py, 0, h).astype(int)
    inside = integral[y2, x2] - integral[y1, x2] - integral[y2, x1] + integral[y1, x1]
    area = np.maximum((np.ceil(boxes[:, 2]) - np.floor(boxes[:, 0]))
                      * (np.ceil(boxes[:, 3]) - np.floor(boxes[:, 1])), 1)
    return inside / area


def paste_cells(canvas: np.ndarray, recs: pd.DataFrame, store, rows_by_class: dict[str, np.ndarray],
                m: float, n: int, rng: np.random.Generator, split: str, *, clumps: float = 0.3,
                max_cover: float = 0.15, clump_cover: float = 0.35, tries: int = 30) -> pd.DataFrame:
    """Paste ``n`` cut-outs (plus clump partners) onto ``canvas`` in place; returns the records
    with the pasted cells added and the red cells they hide removed. ``store``: a CutoutStore
    whose rows ``rows_by_class`` lists per class (loaded)."""
    C = canvas.shape[0]
    recs = recs.copy()
    new: list[dict] = []
    classes = [c for c in CLASS_NAMES if len(rows_by_class.get(c, ()))]
    class_ids, sources = store.columns()

    def occupied() -> tuple[np.ndarray, np.ndarray]:
        white = recs["class_name"].to_numpy() != RBC
        b = recs[["x1", "y1", "x2", "y2"]].to_numpy(float)
        extra = np.array([[r["x1"], r["y1"], r["x2"], r["y2"]] for r in new], float).reshape(-1, 4)
        return np.concatenate([b[white], extra]), b[~white]

    def try_place(cls: str, near: tuple[float, float] | None, clump: list[dict]) -> dict | None:
        nonlocal recs
        row = int(rng.choice(rows_by_class[cls]))
        cut = store.get(row)
        bgr, alpha = scale_cutout(cut.bgr, cut.alpha, m)
        tx1, ty1, tx2, ty2, area = tight_box(alpha)
        if area == 0:
            return None
        mask = alpha >= 128
        tw, th = tx2 - tx1, ty2 - ty1
        for _ in range(tries):
            if near is None:  # the cell's centre anywhere on the canvas: the edge may cut it
                cx, cy = rng.uniform(0, C), rng.uniform(0, C)
            else:             # a clump partner: touching the previous platelet
                ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.55, 0.9) * (tw + th) / 2
                cx, cy = near[0] + dist * np.cos(ang), near[1] + dist * np.sin(ang)
            px, py = int(round(cx - (tx1 + tx2) / 2)), int(round(cy - (ty1 + ty2) / 2))
            whites, reds = occupied()
            limit = np.full(len(whites), max_cover)
            for c in clump:  # platelets of one clump may overlap each other a little more
                mine = np.isclose(whites, [c["x1"], c["y1"], c["x2"], c["y2"]]).all(1)
                limit[mine] = clump_cover
            if (_covered(mask, px, py, whites) > limit).any():
                continue
            box = np.array([px + tx1, py + ty1, px + tx2, py + ty2], float)
            clipped = box.clip(0, C)
            if (clipped[2] - clipped[0]) < MIN_SIDE or (clipped[3] - clipped[1]) < MIN_SIDE:
                continue
            paste(canvas, bgr, alpha, px, py)
            hidden = _covered(mask, px, py, reds) > 0.5
            if hidden.any():
                red_idx = np.flatnonzero(recs["class_name"].to_numpy() == RBC)[hidden]
                recs = recs.drop(index=recs.index[red_idx]).reset_index(drop=True)
            return {"class_name": CLASS_NAMES[class_ids[row]], "class_id": int(class_ids[row]),
                    "source": sources[row], "split": split, "magnification": float(m),
                    "x1": round(float(clipped[0]), 2), "y1": round(float(clipped[1]), 2),
                    "x2": round(float(clipped[2]), 2), "y2": round(float(clipped[3]), 2),
                    "mask_area": int(area), "oi_class": "", "centre": False,
                    "cut": bool((clipped != box).any()), "pasted": True}
        return None

    for _ in range(n):
        cls = classes[int(rng.integers(len(classes)))]
        rec = try_place(cls, None, [])
        if rec is None:
            continue
        new.append(rec)
        if cls == "platelet" and rng.random() < clumps:
            clump = [rec]
            for _ in range(int(rng.integers(1, 5))):  # 2-5 platelets in all
                prev = clump[-1]
                rec = try_place("platelet", ((prev["x1"] + prev["x2"]) / 2,
                                             (prev["y1"] + prev["y2"]) / 2), clump)
                if rec is None:
                    break
                new.append(rec)
                clump.append(rec)
    if new:
        recs = pd.concat([recs, pd.DataFrame(new)], ignore_index=True)
    return recs
