"""Counting outcomes into a confusion matrix and the per-class and averaged figures derived from it.

The confusion matrix has the 8 classes plus a ninth row ``spurious`` (predictions matching no
cell) and a ninth column ``missed`` (cells no prediction matched). A truth that boxes red cells
too (a real field, class ``rbc``) adds a tenth row, ``red cell``: a red cell is none of the eight,
so a prediction of class c on it is a false positive of c (its own row, to see how often), and a
red cell that no prediction matched counts nowhere. Per class ``c``:

* TP = cells of class c matched by a prediction of class c;
* FP = predictions of class c that are spurious, on a red cell, or matched a cell of another class;
* FN = cells of class c that are missed or matched by a prediction of another class.

precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN); a figure with a zero
denominator is undefined (NaN) and left out of averages. This is exactly scikit-learn's
``classification_report`` over labels that include "missed" and "spurious", restricted to the 8
classes, with ``zero_division=np.nan``. The ``matched_*`` figures use only matched pairs (how well
found cells are labelled, the single-cell classifier's view).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES, NUM_CLASSES

K = NUM_CLASSES
MISSED = SPURIOUS = K  # the extra column / row of the confusion matrix
RED = K + 1            # the truth code of a red cell: the row after ``spurious``
ROW_LABELS = list(CLASS_NAMES) + ["spurious"]
RED_LABEL = "red cell"
COL_LABELS = list(CLASS_NAMES) + ["missed"]


def confusion(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(9, 9) counts: rows true class (+ spurious), columns predicted class (+ missed); (10, 9)
    with a last row ``red cell`` when the truth holds red cells."""
    true = np.asarray(true)
    rows = K + 2 if (true == RED).any() else K + 1
    return np.bincount(true * (K + 1) + np.asarray(pred),
                       minlength=rows * (K + 1)).reshape(rows, K + 1)


def on_red_cells(cm: np.ndarray) -> np.ndarray:
    """Predictions of each of the eight classes on red cells (zeros without a red-cell row)."""
    return cm[RED, :K] if cm.shape[0] > RED else np.zeros(K, cm.dtype)


def confusion_frame(cm: np.ndarray, normalise: bool = False) -> pd.DataFrame:
    m = cm.astype(float)
    if normalise:
        rows = m.sum(axis=1, keepdims=True)
        m = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    index = ROW_LABELS + [RED_LABEL] * (cm.shape[0] - len(ROW_LABELS))
    return pd.DataFrame(m if normalise else cm, index=index, columns=COL_LABELS)


def _div(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.divide(a, b, out=np.full(np.broadcast(a, b).shape, np.nan), where=b > 0)


def f1(tp, fp, fn):
    tp = np.asarray(tp, float)
    return _div(2 * tp, 2 * tp + fp + fn)


def class_counts(cm: np.ndarray):
    """TP, FP, FN per class (length 8 each) from a confusion matrix (a red-cell row's predictions
    are false positives of their class)."""
    tp = np.diag(cm)[:K].astype(np.int64)
    fp = cm[:, :K].sum(axis=0) - tp
    fn = cm[:K, :].sum(axis=1) - tp
    return tp, fp, fn


def _nanmean(x) -> float:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else float("nan")


def _weighted(x, w) -> float:
    x, w = np.asarray(x, float), np.asarray(w, float)
    ok = np.isfinite(x) & (w > 0)
    return float((x[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")


def per_class_table(cm: np.ndarray) -> pd.DataFrame:
    """Per-class figures (end-to-end and matched-only) from a (9, 9) confusion matrix."""
    tp, fp, fn = class_counts(cm)
    m = cm[:K, :K]
    m_tp = np.diag(m)
    m_fp, m_fn = m.sum(axis=0) - m_tp, m.sum(axis=1) - m_tp
    return pd.DataFrame({
        "class_name": list(CLASS_NAMES),
        "support": tp + fn,
        "predicted": tp + fp,
        "tp": tp, "fp": fp, "fn": fn,
        "precision": _div(tp, tp + fp), "recall": _div(tp, tp + fn), "f1": f1(tp, fp, fn),
        "missed": cm[:K, MISSED], "spurious": cm[SPURIOUS, :K], "on_red_cells": on_red_cells(cm),
        "matched_support": m_tp + m_fn,
        "matched_precision": _div(m_tp, m_tp + m_fp), "matched_recall": _div(m_tp, m_tp + m_fn),
        "matched_f1": f1(m_tp, m_fp, m_fn),
    })


def summary(cm: np.ndarray, table: pd.DataFrame | None = None) -> dict:
    """Averages, accuracy over matched cells and localisation figures from a confusion matrix."""
    t = per_class_table(cm) if table is None else table
    n_truth = int(cm[:K, :].sum())
    n_pred = int(cm[:, :K].sum())
    n_matched = int(cm[:K, :K].sum())
    tp = int(t["tp"].sum())
    out = {
        "n_truth": n_truth, "n_pred": n_pred, "n_matched": n_matched,
        "n_missed": int(cm[:K, MISSED].sum()), "n_spurious": int(cm[SPURIOUS, :K].sum()),
        "n_on_red_cells": int(on_red_cells(cm).sum()),
        "n_confused": n_matched - tp,
        "accuracy_matched": float(tp / n_matched) if n_matched else float("nan"),
        "loc_precision": float(n_matched / n_pred) if n_pred else float("nan"),
        "loc_recall": float(n_matched / n_truth) if n_truth else float("nan"),
    }
    out["loc_f1"] = float(_div(2 * n_matched, n_truth + n_pred))
    for avg in ("precision", "recall", "f1"):
        out[f"macro_{avg}"] = _nanmean(t[avg])
        out[f"weighted_{avg}"] = _weighted(t[avg], t["support"])
        out[f"matched_macro_{avg}"] = _nanmean(t[f"matched_{avg}"])
    out["micro_precision"] = float(_div(tp, n_pred))
    out["micro_recall"] = float(_div(tp, n_truth))
    out["micro_f1"] = float(_div(2 * tp, n_truth + n_pred))
    return out


def per_image_counts(true: np.ndarray, pred: np.ndarray, img: np.ndarray, n_img: int) -> np.ndarray:
    """(n_img, 8, 3) int32 table of TP, FP, FN per image and class: what the bootstrap resamples."""
    true, pred, img = np.asarray(true), np.asarray(pred), np.asarray(img)
    out = np.zeros((n_img, K, 3), np.int32)
    hit = true == pred
    size = n_img * K
    tp_idx = img[hit] * K + true[hit]
    out[..., 0] = np.bincount(tp_idx, minlength=size).reshape(n_img, K)
    fp = ~hit & (pred < K)
    out[..., 1] = np.bincount(img[fp] * K + pred[fp], minlength=size).reshape(n_img, K)
    fn = ~hit & (true < K)
    out[..., 2] = np.bincount(img[fn] * K + true[fn], minlength=size).reshape(n_img, K)
    return out


def magnification_bins(mag: np.ndarray, max_discrete: int = 12, n_bins: int = 5):
    """Labels for each value: each discrete scale (``1×``), or quantile bins (``[0.62, 0.91)``)
    when there are more than ``max_discrete`` distinct values. NaN stays unlabelled ("")."""
    mag = np.asarray(mag, float)
    finite = np.isfinite(mag)
    labels = np.full(len(mag), "", dtype=object)
    values = np.unique(np.round(mag[finite], 6))
    if len(values) == 0:
        return labels, []
    if len(values) <= max_discrete:
        names = [f"{v:g}×" for v in values]
        idx = np.searchsorted(values, np.round(mag[finite], 6))
        labels[finite] = np.asarray(names, dtype=object)[idx]
        return labels, [(n, float(v), float(v)) for n, v in zip(names, values)]
    edges = np.unique(np.round(np.quantile(mag[finite], np.linspace(0, 1, n_bins + 1)), 2))
    edges[0], edges[-1] = min(edges[0], mag[finite].min()), max(edges[-1], mag[finite].max())
    idx = np.clip(np.searchsorted(edges, mag[finite], side="right") - 1, 0, len(edges) - 2)
    names = [f"[{edges[i]:.2f}, {edges[i + 1]:.2f}{']' if i == len(edges) - 2 else ')'}"
             for i in range(len(edges) - 1)]
    labels[finite] = np.asarray(names, dtype=object)[idx]
    return labels, [(n, float(edges[i]), float(edges[i + 1])) for i, n in enumerate(names)]


def by_group(outcomes: pd.DataFrame, labels: np.ndarray, bins: list) -> pd.DataFrame:
    """Per group (magnification bin) and class: counts and P/R/F1, plus an 'all' row per group."""
    rows = []
    for name, lo, hi in bins:
        sel = labels == name
        cm = confusion(outcomes["true"].to_numpy()[sel], outcomes["pred"].to_numpy()[sel])
        t = per_class_table(cm)
        s = summary(cm, t)
        base = {"magnification": name, "mag_low": lo, "mag_high": hi}
        rows.append({**base, "class_name": "all", "support": s["n_truth"],
                     "predicted": s["n_pred"], "tp": int(t["tp"].sum()),
                     "fp": int(t["fp"].sum()), "fn": int(t["fn"].sum()),
                     "precision": s["micro_precision"], "recall": s["micro_recall"],
                     "f1": s["micro_f1"], "macro_f1": s["macro_f1"],
                     "accuracy_matched": s["accuracy_matched"],
                     "loc_precision": s["loc_precision"], "loc_recall": s["loc_recall"],
                     "n_missed": s["n_missed"], "n_spurious": s["n_spurious"]})
        for r in t.itertuples(index=False):
            rows.append({**base, "class_name": r.class_name, "support": r.support,
                         "predicted": r.predicted, "tp": r.tp, "fp": r.fp, "fn": r.fn,
                         "precision": r.precision, "recall": r.recall, "f1": r.f1,
                         "macro_f1": np.nan, "accuracy_matched": np.nan,
                         "loc_precision": np.nan, "loc_recall": np.nan,
                         "n_missed": r.missed, "n_spurious": r.spurious})
    return pd.DataFrame(rows)
