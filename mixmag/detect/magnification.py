"""Estimated magnification of a detected cell: its box size over its class's native size.

A cell's tight box grows linearly with magnification, and each class has a typical native size
(platelets small, neutrophils and monocytes large), so ``m = sqrt(w*h) / native[class]``. The
native sizes are medians of ``sqrt(w*h) / magnification`` over the generator's train-split records,
stored as a small JSON beside the detector weights (``magnification.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..classes import RBC
from ..errors import MixmagError
from ..fileio import beside_weights, write_json

FORMAT = "mixmag-native-sizes/1"
FILE_NAME = "magnification.json"


def box_size(boxes: np.ndarray) -> np.ndarray:
    """Geometric-mean side of xyxy boxes (robust to elongated cells)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = np.clip(boxes[:, 2] - boxes[:, 0], 1e-6, None)
    h = np.clip(boxes[:, 3] - boxes[:, 1], 1e-6, None)
    return np.sqrt(w * h)


def native_sizes_from_cells(cells: pd.DataFrame, split: str | None = "train") -> dict:
    """Median native box size per class from a generator's cells.csv (train split when present).

    Cells cut by an image edge (a real-field dataset's ``cut`` column) show only part of their
    size and are left out; red cells get their own size, but the all-class median (the fallback
    for a class without one) is taken over the eight, as for a detector that never saw red cells."""
    need = {"class_name", "magnification", "x1", "y1", "x2", "y2"}
    missing = need - set(cells.columns)
    if missing:
        raise MixmagError(f"cells table: missing columns {sorted(missing)}; "
                          "pass the cells.csv written by tools/synthesize.py")
    if split and "split" in cells.columns and (cells["split"] == split).any():
        cells = cells[cells["split"] == split]
    cut = cells["cut"].fillna(False).astype(bool) if "cut" in cells.columns else None
    if cut is not None and (~cut).any():
        cells = cells[~cut]
    native = box_size(cells[["x1", "y1", "x2", "y2"]].to_numpy()) / cells["magnification"].to_numpy()
    frame = pd.DataFrame({"class_name": cells["class_name"].to_numpy(), "native": native})
    eight = native[(cells["class_name"] != RBC).to_numpy()]
    per = frame.groupby("class_name")["native"].agg(["median", "count"])
    sizes = {c: float(per.loc[c, "median"]) for c in per.index}
    return {"format": FORMAT, "native_size": sizes,
            "counts": {c: int(per.loc[c, "count"]) for c in per.index},
            "all_classes_median": float(np.median(eight)) if len(eight) else None,
            "split": split}


def write_native_sizes(path: str | os.PathLike, sizes: dict, source: str = "") -> None:
    write_json(path, {**sizes, "source": source})


def load_native_sizes(path: str | os.PathLike) -> dict:
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return native_sizes_from_cells(pd.read_csv(path))
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MixmagError(f"{path}: cannot read native sizes ({e}); pass the magnification.json "
                          "written by train-detector or a dataset's cells.csv") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(
            data.get("native_size"), dict) or not data["native_size"]:
        raise MixmagError(f"{path}: not a {FORMAT} file; pass the magnification.json written by "
                          "train-detector or a dataset's cells.csv")
    return data


def find_native_sizes(detector: str | os.PathLike, explicit: str | None = None) -> dict | None:
    """The native sizes given explicitly, else the JSON beside the detector weights, else None."""
    if explicit:
        return load_native_sizes(explicit)
    found = beside_weights(detector, FILE_NAME)
    return load_native_sizes(found) if found else None


class MagnificationEstimator:
    """``estimate(boxes, class_names)`` → magnification per box; class-agnostic if class unknown."""

    def __init__(self, sizes: dict):
        self.native = dict(sizes["native_size"])
        self.default = float(sizes.get("all_classes_median") or np.median(list(self.native.values())))

    def native_for(self, class_names) -> np.ndarray:
        return np.array([self.native.get(c, self.default) if c else self.default
                         for c in class_names], dtype=np.float64)

    def estimate(self, boxes: np.ndarray, class_names=None) -> np.ndarray:
        boxes = np.asarray(boxes).reshape(-1, 4)
        if class_names is None:
            class_names = [None] * len(boxes)
        return box_size(boxes) / self.native_for(class_names)


def estimation_error(true_m: np.ndarray, est_m: np.ndarray) -> dict:
    """Relative error of estimated magnification against the generator's records."""
    true_m, est_m = np.asarray(true_m, float), np.asarray(est_m, float)
    if not len(true_m):
        return {"n": 0}
    rel = np.abs(est_m - true_m) / true_m
    return {"n": int(len(rel)), "median_rel_error": float(np.median(rel)),
            "mean_rel_error": float(rel.mean()), "within_10pct": float((rel <= 0.10).mean()),
            "within_20pct": float((rel <= 0.20).mean())}



def estimate_vs_truth(result, tol: float = 0.125) -> dict:
    """Estimated vs generated magnification of the matched cells of a ``mixmag.evaluate`` result.

    ``within_<tol>``: share with |estimate - truth| <= tol (0.125 is a quarter of the 0.5 step of
    the generator's default scales). With at most 12 distinct true scales each estimate is also
    snapped to the nearest of them: ``discrete_accuracy`` and ``discrete_confusion`` (true →
    estimated counts).
    """
    o = result.outcomes
    matched = o[(o["t"] >= 0) & (o["p"] >= 0)]
    true_m = result.truth.cells["magnification"].to_numpy(float)[matched["t"].to_numpy()]
    est = (result.pred["magnification_est"].to_numpy(float)[matched["p"].to_numpy()]
           if "magnification_est" in result.pred else np.full(len(matched), np.nan))
    ok = np.isfinite(est) & np.isfinite(true_m)
    if not ok.any():
        return {"n": 0}
    true_m, est = true_m[ok], est[ok]
    err = np.abs(est - true_m)
    out = {"n": int(ok.sum()), f"within_{tol:g}": float((err <= tol).mean()),
           "median_abs_error": float(np.median(err)), "median_rel_error": float(np.median(err / true_m))}
    levels = np.unique(true_m)
    if len(levels) <= 12:
        snapped = levels[np.abs(est[:, None] - levels[None]).argmin(1)]
        out["discrete_accuracy"] = float((snapped == true_m).mean())
        out["discrete_confusion"] = {f"{t:g}": {f"{e:g}": int(((true_m == t) & (snapped == e)).sum())
                                                for e in levels} for t in levels}
        out[f"within_{tol:g}_by_scale"] = {f"{t:g}": float((err[true_m == t] <= tol).mean())
                                           for t in levels}
    return out
