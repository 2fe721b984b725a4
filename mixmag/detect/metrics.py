"""Minimal per-cell scoring of predictions against a generated dataset's records.

Kept small on purpose: mixmag.evaluate (the report stage) owns the full version; this module only
serves benchmarks/detect.py until then. Matching: per image, one-to-one assignment maximising IoU
(scipy's Hungarian solver), pairs below ``iou`` rejected; a missed cell counts as a false negative
of its class, a spurious box as a false positive of its predicted class.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou
import torch

from ..classes import CLASS_NAMES

BOX = ["x1", "y1", "x2", "y2"]


def match_cells(pred: pd.DataFrame, truth: pd.DataFrame, iou: float = 0.5) -> pd.DataFrame:
    """One row per truth cell and per unmatched prediction: truth/pred class, magnification, IoU."""
    pred = pred.assign(_key=pred["image"].map(lambda s: Path(s).name))
    truth = truth.assign(_key=truth["image"].map(lambda s: Path(s).name))
    rows = []
    pred_groups = dict(tuple(pred.groupby("_key")))
    for key, t in truth.groupby("_key"):
        p = pred_groups.pop(key, pred.iloc[:0])
        m = (box_iou(torch.tensor(t[BOX].to_numpy(float)), torch.tensor(p[BOX].to_numpy(float))).numpy()
             if len(p) else np.zeros((len(t), 0)))
        ti, pi = linear_sum_assignment(-m) if m.size else (np.array([], int), np.array([], int))
        ok = m[ti, pi] >= iou if len(ti) else np.array([], bool)
        ti, pi = ti[ok], pi[ok]
        matched_t = dict(zip(ti, pi))
        for i in range(len(t)):
            j = matched_t.get(i)
            rows.append({"image": key, "truth": t.iloc[i]["class_name"],
                         "pred": p.iloc[j]["class_name"] if j is not None else None,
                         "magnification": float(t.iloc[i]["magnification"]),
                         "magnification_est": (float(p.iloc[j]["magnification_est"])
                                               if j is not None else np.nan),
                         "iou": float(m[i, j]) if j is not None else 0.0})
        for j in sorted(set(range(len(p))) - set(pi)):
            rows.append(_spurious(key, p.iloc[j]))
    for key, p in pred_groups.items():  # predictions on images without truth cells
        for j in range(len(p)):
            rows.append(_spurious(key, p.iloc[j]))
    return pd.DataFrame(rows, columns=["image", "truth", "pred", "magnification",
                                       "magnification_est", "iou"])


def _spurious(key, r) -> dict:
    return {"image": key, "truth": None, "pred": r["class_name"], "magnification": np.nan,
            "magnification_est": float(r["magnification_est"]), "iou": 0.0}


def per_class(matches: pd.DataFrame, classes=CLASS_NAMES) -> pd.DataFrame:
    rows = []
    for c in classes:
        tp = int(((matches["truth"] == c) & (matches["pred"] == c)).sum())
        fn = int(((matches["truth"] == c) & (matches["pred"] != c)).sum())
        fp = int(((matches["pred"] == c) & (matches["truth"] != c)).sum())
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        rows.append({"class": c, "tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r,
                     "f1": f, "support": tp + fn})
    return pd.DataFrame(rows)


def _assign_levels(matches: pd.DataFrame) -> pd.DataFrame:
    """Spurious boxes have no true magnification: give them the nearest level to their estimate."""
    levels = np.array(sorted(matches["magnification"].dropna().unique()))
    m = matches.copy()
    lost = m["magnification"].isna() & m["magnification_est"].notna()
    if len(levels) and lost.any():
        est = m.loc[lost, "magnification_est"].to_numpy()
        m.loc[lost, "magnification"] = levels[np.abs(np.log(est[:, None] / levels[None])).argmin(1)]
    return m


def summary(matches: pd.DataFrame) -> dict:
    table = per_class(matches)
    present = table[table["support"] > 0]
    truth = matches["truth"].notna()
    out = {"cells": int(truth.sum()), "predictions": int(matches["pred"].notna().sum()),
           "macro_f1": float(present["f1"].mean()) if len(present) else 0.0,
           "localisation_recall": float((matches.loc[truth, "pred"].notna()).mean())
           if truth.any() else 0.0,
           "accuracy_of_found": float((matches.loc[truth & matches["pred"].notna(), "truth"] ==
                                       matches.loc[truth & matches["pred"].notna(), "pred"]).mean())
           if (truth & matches["pred"].notna()).any() else 0.0,
           "per_class": table.to_dict("records"), "per_magnification": {}}
    m = _assign_levels(matches)
    for level, g in m.dropna(subset=["magnification"]).groupby("magnification"):
        t = per_class(g)
        tp = t[t["support"] > 0]
        ery = t[t["class"] == "erythroblast"].iloc[0]
        found = g[g["truth"].notna() & g["pred"].notna()]
        out["per_magnification"][f"{level:g}"] = {
            "cells": int(g["truth"].notna().sum()),
            "macro_f1": float(tp["f1"].mean()) if len(tp) else 0.0,
            "erythroblast_precision": float(ery["precision"]),
            "erythroblast_recall": float(ery["recall"]),
            "magnification_median_rel_error": float(
                np.median(np.abs(found["magnification_est"] - found["magnification"]) /
                          found["magnification"])) if len(found) else None}
    found = matches[matches["truth"].notna() & matches["pred"].notna()]
    if len(found) and found["magnification_est"].notna().any():
        from .magnification import estimation_error

        f = found.dropna(subset=["magnification_est"])
        out["magnification_error"] = estimation_error(f["magnification"], f["magnification_est"])
    return out


def coco_map(coco_gt_path: str | Path, results: list[dict]) -> dict:
    """mAP@0.5 and mAP@0.5:0.95 with pycocotools (results already carry the truth's image ids)."""
    import contextlib
    import io

    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        return {"coco": "pycocotools not installed: mAP not computed"}

    if not results:
        return {"map50": 0.0, "map50_95": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(coco_gt_path))
        dt = gt.loadRes(json.loads(json.dumps(results)))
        ev = COCOeval(gt, dt, "bbox")
        ev.params.maxDets = [1, 10, 1000]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map50_95": float(ev.stats[0]), "map50": float(ev.stats[1])}
