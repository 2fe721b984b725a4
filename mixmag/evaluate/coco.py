"""COCO mAP through pycocotools' COCOeval (not re-implemented), overall and per class.

Truth and predictions are handed to COCOeval in memory (image ids 1..N in truth order, category
id = class_id + 1 as in docs/CONTRACTS.md). Only the "all" area range is evaluated: mAP@0.5 and
mAP@0.5:0.95 (COCOeval's stats[1] and stats[0]) use only that range, and skipping small/medium/large
halves the time. ``maxDets`` is COCO's 100 unless an image holds more predictions, then that count
(recorded in the output), so crowded images are not silently truncated. mAP ranks all predictions
by score: ``--conf`` does not apply to it.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES, NUM_CLASSES


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())


def coco_objects(truth_cells: pd.DataFrame, images: list[str], pred: pd.DataFrame,
                 classes=CLASS_NAMES):
    """(COCO truth, COCO detections or None, image ids) built in memory; category id =
    class_id + 1 over ``classes`` (the eight, or the eight + rbc for real fields)."""
    from pycocotools.coco import COCO

    img_id = {name: i + 1 for i, name in enumerate(images)}
    b = truth_cells[["x1", "y1", "x2", "y2"]].to_numpy(float)
    area = truth_cells["mask_area"].to_numpy(float) if "mask_area" in truth_cells else None
    wh = b[:, 2:] - b[:, :2]
    if area is None or not np.isfinite(area).all():
        area = wh[:, 0] * wh[:, 1]
    tid = truth_cells["image"].map(img_id).to_numpy()
    cls = truth_cells["class_id"].to_numpy()
    anns = [{"id": k + 1, "image_id": int(tid[k]), "category_id": int(cls[k]) + 1,
             "bbox": [float(b[k, 0]), float(b[k, 1]), float(wh[k, 0]), float(wh[k, 1])],
             "area": float(area[k]), "iscrowd": 0} for k in range(len(b))]
    gt = COCO()
    gt.dataset = {"images": [{"id": i} for i in img_id.values()], "annotations": anns,
                  "categories": [{"id": k + 1, "name": n} for k, n in enumerate(classes)]}
    with _quiet():
        gt.createIndex()
    if len(pred) == 0:
        return gt, None, img_id
    pb = pred[["x1", "y1", "x2", "y2"]].to_numpy(float)
    det = np.column_stack([pred["image"].map(img_id).to_numpy(float), pb[:, :2],
                           pb[:, 2:] - pb[:, :2], pred["score"].to_numpy(float),
                           pred["class_id"].to_numpy(float) + 1])
    with _quiet():
        dt = gt.loadRes(det)
    return gt, dt, img_id


# how `mixmag predict` turns (det_conf, class_conf) into a row's score, by mode (docs/CONTRACTS.md)
_SCORE_RULES = {"class probability": lambda d, p: p,
                "geometric mean": lambda d, p: np.sqrt(d * p),
                "product": lambda d, p: d * p}


def class_hypotheses(pred: pd.DataFrame, min_prob: float = 0.01) -> pd.DataFrame | None:
    """Each cell once per class it may be, as COCO-style detectors report and ultralytics' val
    scores (``multi_label``). Class c is scored by the rule that scored the row, with p_c in place
    of the row's class probability: the rule is recognised from ``det_conf``/``class_conf``
    (class probability, √(det·p) or det·p, whichever reproduces every score); failing that,
    score × p_c / p_(the row's class). The row's own class keeps its row and score. Classes with
    p_c below ``min_prob`` are left out (they only add detections at the tail). None when the
    predictions carry no ``p_<class>`` columns (e.g. a COCO results file)."""
    cols = [f"p_{n}" for n in CLASS_NAMES]
    if not set(cols) <= set(pred.columns):
        return None
    if len(pred) == 0:
        return pred
    P = pred[cols].to_numpy(float)
    n = np.arange(len(pred))
    cid = (pred["class_id"] if "class_id" in pred else
           pred["class_name"].map({c: k for k, c in enumerate(CLASS_NAMES)})).to_numpy(int)
    score = pred["score"].to_numpy(float)
    S = None
    if {"det_conf", "class_conf"} <= set(pred.columns):
        d, c = pred["det_conf"].to_numpy(float), pred["class_conf"].to_numpy(float)
        for rule in _SCORE_RULES.values():
            if np.allclose(rule(d, c), score, rtol=0, atol=1e-5):
                S = np.array(rule(d[:, None], P), dtype=float)  # a copy: P may be read-only
                break
    if S is None:
        own = P[n, cid]
        S = score[:, None] * np.divide(P, own[:, None], out=np.zeros_like(P), where=own[:, None] > 0)
    S[n, cid] = score  # the row as predict wrote it
    rows, ks = np.nonzero((P >= min_prob) | (np.arange(NUM_CLASSES) == cid[:, None]))
    out = pred.iloc[rows][["image", "x1", "y1", "x2", "y2"]].reset_index(drop=True)
    out["class_id"] = ks
    out["class_name"] = np.asarray(CLASS_NAMES)[ks]
    out["score"] = np.clip(S[rows, ks], 0, 1)
    return out


def coco_map(truth_cells: pd.DataFrame, images: list[str], pred: pd.DataFrame,
             classes=CLASS_NAMES) -> dict:
    """mAP@0.5, mAP@0.5:0.95, per-class AP and the per-class PR curves at IoU 0.5, over
    ``classes`` (class_id indexes it)."""
    from pycocotools.cocoeval import COCOeval

    gt, dt, _ = coco_objects(truth_cells, images, pred, classes)
    present = np.bincount(truth_cells["class_id"].to_numpy(int), minlength=len(classes)) > 0
    recall = np.linspace(0, 1, 101)
    if dt is None:
        zero = {n: ({"ap50": 0.0, "ap50_95": 0.0} if present[k] else
                    {"ap50": float("nan"), "ap50_95": float("nan")})
                for k, n in enumerate(classes)}
        return {"map50": 0.0 if present.any() else float("nan"),
                "map50_95": 0.0 if present.any() else float("nan"), "per_class": zero,
                "max_dets": 100, "recall": recall.tolist(),
                "pr50": {n: [0.0] * len(recall) for k, n in enumerate(classes) if present[k]}}
    max_dets = int(max(100, pred.groupby("image").size().max()))
    ev = COCOeval(gt, dt, "bbox")
    ev.params.areaRng = [[0, 1e10]]
    ev.params.areaRngLbl = ["all"]
    ev.params.maxDets = [1, 10, max_dets]
    with _quiet():
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][:, :, :, 0, -1]  # (T iou, R recall, K class)

    def mean_valid(x):
        x = x[x > -1]
        return float(x.mean()) if x.size else float("nan")

    cat_index = {c: i for i, c in enumerate(ev.params.catIds)}
    per_class, pr50 = {}, {}
    for k, name in enumerate(classes):
        i = cat_index.get(k + 1)
        per_class[name] = {"ap50": mean_valid(prec[0, :, i]) if i is not None else float("nan"),
                           "ap50_95": mean_valid(prec[:, :, i]) if i is not None else float("nan")}
        if i is not None and present[k]:
            pr50[name] = np.where(prec[0, :, i] > -1, prec[0, :, i], 0).round(4).tolist()
    return {"map50": mean_valid(prec[0]), "map50_95": mean_valid(prec), "per_class": per_class,
            "max_dets": max_dets, "recall": ev.params.recThrs.tolist(), "pr50": pr50}
