"""Single-cell mode: a table of image -> true class -> predicted class (+ probabilities).

The figures are the detection report's with nothing missed or spurious (every cell is "matched"),
so the same tables, confusion matrix, bootstrap and renderer serve both. With ``p_<class>``
columns the report adds top-2 accuracy, macro one-vs-rest ROC AUC, log loss and per-class
precision-recall curves and average precision (scikit-learn).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES, NUM_CLASSES
from ..errors import MixmagError
from .bootstrap import bootstrap_clustered
from .evaluation import Result, _check_settings, _erythroblast
from .load import _classes, _numeric, _read_csv, _row_label
from .metrics import by_group, confusion, magnification_bins, per_class_table, summary

TRUE_NAMES = ("true_class", "true", "y_true", "class_name", "label")
PRED_NAMES = ("pred_class", "predicted", "pred", "y_pred", "prediction")


def _pick(df: pd.DataFrame, names, src: str, what: str) -> str:
    for n in names:
        if n in df.columns:
            return n
    raise MixmagError(f"{src}: no {what} column (one of {', '.join(names)}); add it")


def _as_class(df: pd.DataFrame, col: str, src: str) -> np.ndarray:
    """Class names or integer ids in ``col`` -> class ids (refusing unknown ones)."""
    tmp = pd.DataFrame(index=df.index)
    vals = df[col]
    numeric = pd.to_numeric(vals, errors="coerce")
    if numeric.notna().all():
        tmp["class_id"] = numeric
    else:
        tmp["class_name"] = vals
    try:
        _classes(tmp, src, "csv")
    except MixmagError as e:
        raise MixmagError(str(e).replace("class_name", col).replace("class_id", col)) from None
    return tmp["class_id"].to_numpy(np.int64)


def load_single_cell(path: str | os.PathLike) -> pd.DataFrame:
    """Read and check a single-cell predictions CSV into image, true, pred (+ p_*, magnification)."""
    path = Path(path)
    if not path.is_file():
        raise MixmagError(f"single-cell table {path} does not exist (or is not a file)")
    return single_cell_frame(_read_csv(path), str(path))


def single_cell_frame(df: pd.DataFrame, src: str = "single-cell table") -> pd.DataFrame:
    if len(df) == 0:
        raise MixmagError(f"{src}: no rows; give one row per classified cell")
    tcol, pcol = _pick(df, TRUE_NAMES, src, "true-class"), _pick(df, PRED_NAMES, src, "predicted-class")
    out = pd.DataFrame({"image": df["image"].astype(str) if "image" in df.columns
                        else [f"row{i}" for i in range(len(df))]})
    for col in (tcol, pcol):
        bad = df[col].isna().to_numpy()
        if bad.any():
            raise MixmagError(f"{src}: {_row_label(df, int(np.flatnonzero(bad)[0]), 'csv')}: "
                              f"empty {col}; every row needs a true and a predicted class")
    out["true"] = _as_class(df, tcol, src)
    out["pred"] = _as_class(df, pcol, src)
    pcols = [f"p_{n}" for n in CLASS_NAMES]
    present = [c for c in pcols if c in df.columns]
    if present and len(present) != NUM_CLASSES:
        missing = sorted(set(pcols) - set(present))
        raise MixmagError(f"{src}: probability columns incomplete (missing {', '.join(missing)}); "
                          "give all 8 p_<class> columns or none")
    if present:
        probs = df[pcols].copy()
        _numeric(probs, pcols, src, "csv")
        v = probs.to_numpy(float)
        bad = ~np.isfinite(v).all(1) | (v < 0).any(1) | (v > 1).any(1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise MixmagError(f"{src}: {_row_label(df, i, 'csv')}: probabilities must be numbers "
                              "in [0, 1] (NaN found or out of range); fix the p_<class> columns")
        out[pcols] = v
    if "magnification" in df.columns:
        m = df[["magnification"]].copy()
        _numeric(m, ["magnification"], src, "csv")
        out["magnification"] = m["magnification"].to_numpy()
    return out


def evaluate_single_cell(table: pd.DataFrame, *, bootstrap: int = 1000, seed: int = 0,
                         inputs: dict | None = None) -> Result:
    """Figures for a single-cell classifier: ``table`` has image, true/pred class (names or ids,
    any of the column names in TRUE_NAMES / PRED_NAMES) and optional p_<class>, magnification."""
    _check_settings([0.5], 0.0, bootstrap)
    if not {"true", "pred"} <= set(table.columns) or table["true"].dtype.kind not in "iu":
        table = single_cell_frame(table)
    true, pred = table["true"].to_numpy(np.int64), table["pred"].to_numpy(np.int64)
    n = len(table)
    cm = confusion(true, pred)
    t = per_class_table(cm)
    s = summary(cm, t)
    probs = _probability_figures(table, true, t)
    out = pd.DataFrame({"t": np.arange(n), "p": np.arange(n), "img": np.arange(n),
                        "true": true, "pred": pred})
    per_mag, labels = None, None
    if "magnification" in table.columns and np.isfinite(table["magnification"]).any():
        labels, bins = magnification_bins(table["magnification"].to_numpy(float))
        out["magnification"] = labels
        per_mag = by_group(out, labels, bins)
    # each row is one cell image: the resampling unit
    boot = bootstrap_clustered(true, pred, np.arange(n), bootstrap, seed, groups=labels) if bootstrap else None
    if boot:
        t["f1_ci_low"] = [boot["per_class_f1"][c][0] for c in t["class_name"]]
        t["f1_ci_high"] = [boot["per_class_f1"][c][1] for c in t["class_name"]]
    headline = {"n_images": n, **s, "accuracy": s["accuracy_matched"],
                "macro_f1_ci": boot["macro_f1"] if boot else None}
    if probs:
        headline.update({k: probs[k] for k in ("top2_accuracy", "roc_auc_macro", "log_loss")})
    per_image = pd.DataFrame({"image": table["image"].to_numpy(), "true": true, "pred": pred})
    return Result(mode="single-cell",
                  settings={"bootstrap": bootstrap, "bootstrap_unit": "image" if bootstrap else None,
                            "seed": seed},
                  inputs={"n_cells": n, **(inputs or {})}, headline=headline, per_class=t,
                  confusion=cm, per_magnification=per_mag, bootstrap=boot, per_image=per_image,
                  outcomes=out, erythroblast=_erythroblast(t, cm, per_mag, boot),
                  coco=probs or None)


def _probability_figures(table: pd.DataFrame, true: np.ndarray, t: pd.DataFrame) -> dict:
    from sklearn.metrics import (average_precision_score, log_loss, precision_recall_curve,
                                 roc_auc_score, top_k_accuracy_score)

    pcols = [f"p_{n}" for n in CLASS_NAMES]
    if not set(pcols) <= set(table.columns):
        return {}
    p = table[pcols].to_numpy(float)
    labels = np.arange(NUM_CLASSES)
    present = np.bincount(true, minlength=NUM_CLASSES) > 0
    out = {"top2_accuracy": float(top_k_accuracy_score(true, p, k=2, labels=labels))}
    norm = p / np.clip(p.sum(1, keepdims=True), 1e-12, None)
    out["log_loss"] = float(log_loss(true, np.clip(norm, 1e-15, 1), labels=labels))
    try:
        out["roc_auc_macro"] = float(roc_auc_score(true, norm, multi_class="ovr", labels=labels,
                                                   average="macro")) if present.all() else \
            float(np.mean([roc_auc_score(true == k, p[:, k]) for k in labels if present[k]]))
    except ValueError:
        out["roc_auc_macro"] = float("nan")
    recall = np.linspace(0, 1, 101)
    pr, ap = {}, {}
    for k, name in enumerate(CLASS_NAMES):
        if not present[k]:
            ap[name] = {"ap": float("nan")}
            continue
        ap[name] = {"ap": float(average_precision_score(true == k, p[:, k]))}
        prec, rec, _ = precision_recall_curve(true == k, p[:, k])
        # interpolated precision at fixed recall points, as COCO does, for one plotting path
        order = np.argsort(rec)
        env = np.maximum.accumulate(prec[order][::-1])[::-1]
        idx = np.searchsorted(rec[order], recall, side="left")
        pr[name] = np.where(idx < len(env), env[np.minimum(idx, len(env) - 1)], 0).round(4).tolist()
    t["ap"] = [ap[n]["ap"] for n in t["class_name"]]
    out.update({"recall": recall.tolist(), "pr50": pr, "per_class": ap,
                "map_prob": float(np.nanmean([v["ap"] for v in ap.values()]))})
    return out
