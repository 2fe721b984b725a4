"""evaluate(): match predictions to truth and compute every figure of the report."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES, NUM_CLASSES
from ..errors import MixmagError
from .bootstrap import bootstrap_clustered, source_clusters
from .load import BOX, Truth, predictions_from_frame, truth_from_frame
from .match import match, outcome_table, overlapping_pairs
from .metrics import (MISSED, RED, SPURIOUS, by_group, confusion, magnification_bins, on_red_cells,
                      per_class_table, per_image_counts, summary)

log = logging.getLogger(__name__)

MATCHING_RULE = ("one-to-one, class-agnostic; among pairs with IoU >= threshold the matching with "
                 "the most pairs, then the largest total IoU (Hungarian, "
                 "scipy.optimize.linear_sum_assignment); predictions below --conf dropped first")
SWEEP_CONFS = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2))


@dataclass
class Result:
    """Everything a report shows. ``to_dict()`` is metrics.json; the frames are the CSV tables.

    mode: "detection" or "single-cell". headline: the figures shown first (at the first IoU).
    per_class: per-class table (support, TP/FP/FN, P/R/F1, matched-only figures, AP, F1 CI).
    confusion: (9, 9) counts, rows true class + "spurious", columns predicted class + "missed".
    by_iou: headline and per-class F1 for every IoU threshold. per_magnification: one row per
    magnification bin and class (class "all" for the bin's totals). coco: mAP and PR curves.
    bootstrap: 95 % intervals. sweep: figures per confidence cut-off. per_image: counts per image.
    outcomes: one row per matched pair / missed cell / spurious prediction (at the first IoU).
    """

    mode: str
    settings: dict
    inputs: dict
    headline: dict
    per_class: pd.DataFrame
    confusion: np.ndarray
    by_iou: dict = field(default_factory=dict)
    per_magnification: pd.DataFrame | None = None
    coco: dict | None = None
    bootstrap: dict | None = None
    sweep: pd.DataFrame | None = None
    per_image: pd.DataFrame | None = None
    outcomes: pd.DataFrame | None = None
    erythroblast: dict = field(default_factory=dict)
    truth: Truth | None = None
    pred: pd.DataFrame | None = None
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from .metrics import confusion_frame

        def frame(df):
            return None if df is None else _records(df)

        cm = confusion_frame(self.confusion)
        return {
            "format": "mixmag-report/1", "mode": self.mode, "settings": self.settings,
            "inputs": self.inputs, "headline": _clean(self.headline),
            "per_class": frame(self.per_class),
            "confusion": {"rows": list(cm.index), "columns": list(cm.columns),
                          "counts": self.confusion.tolist()},
            "by_iou": _clean(self.by_iou),
            "erythroblast": _clean(self.erythroblast),
            "per_magnification": frame(self.per_magnification),
            "coco": _clean({k: v for k, v in (self.coco or {}).items()}) if self.coco else None,
            "bootstrap": _clean(self.bootstrap) if self.bootstrap else None,
            "sweep": frame(self.sweep),
            "notes": list(self.notes),
        }


def _clean(o):
    """JSON-ready: NaN -> None, numpy scalars -> Python."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    return o


def _records(df: pd.DataFrame) -> list[dict]:
    return [_clean(r) for r in df.to_dict(orient="records")]


BOOTSTRAP_UNITS = ("auto", "image", "source")


def _check_settings(iou: Sequence[float], conf: float, n_boot: int, unit: str = "auto") -> None:
    for t in iou:
        if not (isinstance(t, (int, float)) and 0 < float(t) <= 1):
            raise MixmagError(f"--iou {t}: IoU thresholds must be in (0, 1]; e.g. --iou 0.5 0.75")
    if not (0 <= float(conf) <= 1):
        raise MixmagError(f"--conf {conf}: the confidence threshold must be in [0, 1]")
    if n_boot < 0:
        raise MixmagError(f"--bootstrap {n_boot}: must be >= 0 (0 turns it off)")
    if unit not in BOOTSTRAP_UNITS:
        raise MixmagError(f"--bootstrap-unit {unit}: choose one of {', '.join(BOOTSTRAP_UNITS)}")


def bootstrap_units(truth_cells: pd.DataFrame, unit: str = "auto") -> str:
    """The cluster ``auto`` stands for: the source cell when the truth names one for every cell
    and some source appears more than once (generated composites reuse source cells), else the
    image. An explicit ``source`` needs that column, complete."""
    has_src = "source" in truth_cells.columns and truth_cells["source"].notna().all()
    if unit == "auto":
        return "source" if has_src and truth_cells["source"].duplicated().any() else "image"
    if unit == "source" and not has_src:
        raise MixmagError("--bootstrap-unit source: the truth has no complete 'source' column "
                          "naming each cell's source image (cells.csv of `mixmag synthesize` has "
                          "one); use image")
    return unit


def evaluate(truth, pred: pd.DataFrame, iou: float | Sequence[float] = 0.5, conf: float = 0.25,
             *, images=None, bootstrap: int = 1000, sweep: bool = False, coco: bool = True,
             all_classes_map: bool = False, seed: int = 0, inputs: dict | None = None,
             bootstrap_unit: str = "auto") -> Result:
    """Match ``pred`` to ``truth`` and compute the report's figures.

    truth: a :class:`~mixmag.evaluate.load.Truth` (from ``load_truth``) or a DataFrame of the
        generator's per-cell records (image, class_name or class_id, x1, y1, x2, y2, and
        optionally magnification, width, height); ``images`` then optionally lists all truth
        images, so images without cells count. The truth is taken whole: limit it to the images
        that were predicted (e.g. ``cells[cells.split == "test"]``), or every other cell is missed.
    pred: DataFrame of predictions (image, x1, y1, x2, y2, class_name or class_id, score), joined
        to truth by file name.
    iou: one threshold or several; the first drives the tables, all appear in ``by_iou``.
    conf: predictions scoring below it are dropped before matching (mAP ignores it).
    bootstrap: resamples for 95 % intervals (0: off). bootstrap_unit: the cluster resampled,
        "image" or "source" (the truth's source cell; spurious boxes go with their image);
        "auto": source when the truth reuses source cells (see :func:`bootstrap_units`).
        sweep: figures per conf.
    all_classes_map: also COCO mAP with every class a cell may be as its own detection
        (``coco.class_hypotheses``; ultralytics' val protocol), beside the headline mAP of one
        class a cell: headline ``map50_all_classes``/``map50_95_all_classes`` and per-class
        ``ap50_all_classes``/``ap50_95_all_classes``; needs ``p_<class>`` columns.
    Returns a :class:`Result`; pass it to ``write_report``.
    """
    ious = [float(iou)] if np.isscalar(iou) else [float(t) for t in iou]
    if not ious:
        raise MixmagError("--iou: give at least one IoU threshold")
    _check_settings(ious, conf, bootstrap, bootstrap_unit)
    if not isinstance(truth, Truth):
        truth = truth_from_frame(truth, images=images)
    pred = predictions_from_frame(pred, truth)
    cells, names = truth.cells, truth.images["image"].tolist()
    img_index = {n: i for i, n in enumerate(names)}
    t_img = cells["image"].map(img_index).to_numpy(np.int64)
    p_img = pred["image"].map(img_index).to_numpy(np.int64)
    t_cls, p_cls = cells["class_id"].to_numpy(np.int64), pred["class_id"].to_numpy(np.int64)
    score = pred["score"].to_numpy(float)
    pairs = overlapping_pairs(t_img, cells[BOX].to_numpy(float), p_img, pred[BOX].to_numpy(float),
                              min(ious))
    keep = score >= conf
    # red cells (a real field's truth) are matched after the eight: see match()
    first = t_cls < NUM_CLASSES

    def outcomes_at(thr, keep_mask):
        mt, mp, miou = match(pairs, thr, keep_mask, first)
        out = outcome_table(t_cls, t_img, p_cls, p_img, mt, mp, keep_mask, MISSED, SPURIOUS)
        out["iou"] = np.concatenate([miou, np.full(len(out) - len(miou), np.nan)])
        return out

    by_iou, primary = {}, None
    for thr in ious:
        out = outcomes_at(thr, keep)
        cm = confusion(out["true"].to_numpy(), out["pred"].to_numpy())
        table = per_class_table(cm)
        s = summary(cm, table)
        by_iou[f"{thr:g}"] = {**s, "per_class_f1": dict(zip(table["class_name"], table["f1"]))}
        if primary is None:
            primary = (thr, out, cm, table, s)
    thr, out, cm, table, s = primary

    notes = []
    coco_res = None
    # red cells are no COCO category of the eight: a box of class c on one is a false positive
    # of c whether the red cell is in the truth or not
    eight_cells = cells[first]
    if coco:
        from .coco import coco_map

        coco_res = coco_map(eight_cells, names, pred)
        ap = pd.DataFrame(coco_res["per_class"]).T
        table["ap50"] = table["class_name"].map(ap["ap50"]).astype(float)
        table["ap50_95"] = table["class_name"].map(ap["ap50_95"]).astype(float)
    coco_all = None
    if coco and all_classes_map:
        from .coco import class_hypotheses

        hyp = class_hypotheses(pred)
        if hyp is None:
            notes.append("mAP over all class hypotheses needs p_<class> columns; these "
                         "predictions have none")
        else:
            coco_all = coco_map(eight_cells, names, hyp)
            ap = pd.DataFrame(coco_all["per_class"]).T
            table["ap50_all_classes"] = table["class_name"].map(ap["ap50"]).astype(float)
            table["ap50_95_all_classes"] = table["class_name"].map(ap["ap50_95"]).astype(float)

    counts = per_image_counts(out["true"].to_numpy(), out["pred"].to_numpy(),
                              out["img"].to_numpy(), len(names))
    unit = bootstrap_units(cells, bootstrap_unit) if bootstrap else None

    # magnification: truth's for matched and missed cells; a spurious box takes the magnification
    # of the cell it overlaps most (or the nearest one), since that is the scale that fooled it
    mag_t = cells["magnification"].to_numpy(float)
    per_mag = None
    if np.isfinite(mag_t).any():
        near = np.append(pairs.pred_near, -1)  # p == -1 (a missed cell) looks up the -1 at the end
        src_row = np.where(out["t"] >= 0, out["t"], near[out["p"].to_numpy()])
        mag = np.where(src_row >= 0, mag_t[np.maximum(src_row, 0)], np.nan)
        # red cells no box claimed are no outcome of the eight: they must not shape the bins
        mag[((out["true"] == RED) & (out["pred"] == MISSED)).to_numpy()] = np.nan
        labels, bins = magnification_bins(mag)
        out["magnification"] = labels
        per_mag = by_group(out, labels, bins)
        n_unassigned = int(((out["true"] == SPURIOUS) & (labels == "")).sum())
        if n_unassigned:
            notes.append(f"{n_unassigned} spurious predictions on images without truth cells have "
                         "no magnification and are left out of the magnification table")

    boot = _bootstrap(out, cells, len(names), unit, bootstrap, seed) if bootstrap else None
    if boot:
        ci = boot["per_class_f1"]
        table["f1_ci_low"] = [ci[n][0] for n in table["class_name"]]
        table["f1_ci_high"] = [ci[n][1] for n in table["class_name"]]

    per_image = _per_image(names, counts, t_img, p_img, keep, truth, out)
    headline = {
        "iou": thr, "conf": conf, "n_images": len(names),
        **s,
        "macro_f1_ci": boot["macro_f1"] if boot else None,
        "map50": coco_res["map50"] if coco_res else None,
        "map50_95": coco_res["map50_95"] if coco_res else None,
    }
    if coco_all is not None:
        headline["map50_all_classes"] = coco_all["map50"]
        headline["map50_95_all_classes"] = coco_all["map50_95"]
    ery = _erythroblast(table, cm, per_mag, boot)
    sweep_df = _sweep(outcomes_at, thr, score) if sweep else None
    if sweep_df is not None and len(sweep_df):
        best = sweep_df.loc[sweep_df["macro_f1"].idxmax()]
        headline["best_conf_by_macro_f1"] = float(best["conf"])
    res = Result(
        mode="detection",
        settings={"iou": ious, "conf": conf, "matching": MATCHING_RULE, "bootstrap": bootstrap,
                  "bootstrap_unit": unit,
                  "seed": seed, "sweep": bool(sweep), "edge_tolerance_px": 1.0,
                  "coco_max_dets": coco_res["max_dets"] if coco_res else None},
        inputs={"truth": truth.source, "truth_kind": truth.kind, "n_truth_images": len(names),
                "n_truth_cells": int((t_cls < NUM_CLASSES).sum()),
                "n_truth_red_cells": int((t_cls == RED).sum()), "n_predictions": len(pred),
                "n_predictions_kept": int(keep.sum()), **(inputs or {})},
        headline=headline, per_class=table, confusion=cm, by_iou=by_iou,
        per_magnification=per_mag, coco=coco_res, bootstrap=boot, sweep=sweep_df,
        per_image=per_image, outcomes=out, erythroblast=ery, truth=truth, pred=pred, notes=notes)
    return res


def _bootstrap(out: pd.DataFrame, cells: pd.DataFrame, n_images: int, unit: str, n_boot: int,
               seed: int) -> dict:
    """Intervals over the outcome rows, resampling images or source cells; per magnification too."""
    cluster, n = out["img"].to_numpy(), n_images
    if unit == "source":
        codes, uniq = pd.factorize(cells["source"])
        cluster = source_clusters(out["t"].to_numpy(), cluster, codes, len(uniq))
        n = len(uniq) + n_images
    groups = out["magnification"].to_numpy() if "magnification" in out else None
    return bootstrap_clustered(out["true"].to_numpy(), out["pred"].to_numpy(), cluster, n_boot,
                               seed, groups=groups, n_clusters=n, unit=unit)


def _per_image(names, counts, t_img, p_img, keep, truth, out) -> pd.DataFrame:
    tp, fp, fn = (counts[..., i].sum(1) for i in range(3))
    n = len(names)
    img, true, pred = out["img"].to_numpy(), out["true"].to_numpy(), out["pred"].to_numpy()
    conf = (true < NUM_CLASSES) & (pred < NUM_CLASSES) & (true != pred)
    eight = truth.cells["class_id"].to_numpy() < NUM_CLASSES
    df = pd.DataFrame({
        "image": names, "path": truth.images["path"].to_numpy(),
        "n_truth": np.bincount(t_img[eight], minlength=n),
        "n_pred": np.bincount(p_img[keep], minlength=n),
        "tp": tp, "fp": fp, "fn": fn,
        "missed": np.bincount(img[(pred == MISSED) & (true < NUM_CLASSES)], minlength=n),
        "spurious": np.bincount(img[true == SPURIOUS], minlength=n),
        "on_red_cells": np.bincount(img[(true == RED) & (pred < NUM_CLASSES)], minlength=n),
        "wrong_class": np.bincount(img[conf], minlength=n)})
    df["errors"] = df["missed"] + df["spurious"] + df["on_red_cells"] + df["wrong_class"]
    df["f1"] = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 1.0)
    return df


def _erythroblast(table: pd.DataFrame, cm: np.ndarray, per_mag, boot) -> dict:
    """Erythroblast on its own: its figures and its confusion with lymphocyte both ways."""
    e, ly = CLASS_NAMES.index("erythroblast"), CLASS_NAMES.index("lymphocyte")
    row = table.iloc[e]
    out = {k: row[k] for k in ("support", "predicted", "tp", "fp", "fn", "precision", "recall", "f1",
                               "matched_precision", "matched_recall", "matched_f1")}
    for k in ("ap50", "ap50_95"):
        if k in table:
            out[k] = row[k]
    out["f1_ci"] = boot["per_class_f1"]["erythroblast"] if boot else None
    if boot:
        out["precision_ci"] = boot["per_class_precision"]["erythroblast"]
        out["recall_ci"] = boot["per_class_recall"]["erythroblast"]
    out["erythroblast_as_lymphocyte"] = int(cm[e, ly])
    out["lymphocyte_as_erythroblast"] = int(cm[ly, e])
    out["erythroblast_missed"] = int(cm[e, MISSED])
    out["spurious_erythroblast"] = int(cm[SPURIOUS, e])
    out["red_cells_as_erythroblast"] = int(on_red_cells(cm)[e])
    out["confused_with"] = {CLASS_NAMES[j]: int(cm[e, j]) for j in range(NUM_CLASSES)
                            if j != e and cm[e, j]}
    out["mistaken_for_it"] = {CLASS_NAMES[i]: int(cm[i, e]) for i in range(NUM_CLASSES)
                              if i != e and cm[i, e]}
    if per_mag is not None:
        sel = per_mag[per_mag["class_name"] == "erythroblast"]
        out["by_magnification"] = {r.magnification: {"support": int(r.support), "f1": r.f1,
                                                     "precision": r.precision, "recall": r.recall}
                                   for r in sel.itertuples()}
        groups = (boot or {}).get("by_group", {})
        for level, v in out["by_magnification"].items():
            if level in groups:
                g = groups[level]
                v.update({"precision_ci": g["per_class_precision"]["erythroblast"],
                          "recall_ci": g["per_class_recall"]["erythroblast"],
                          "f1_ci": g["per_class_f1"]["erythroblast"]})
    return out


def _sweep(outcomes_at, thr: float, score: np.ndarray) -> pd.DataFrame:
    rows = []
    for c in SWEEP_CONFS:
        out = outcomes_at(thr, score >= c)
        cm = confusion(out["true"].to_numpy(), out["pred"].to_numpy())
        s = summary(cm)
        rows.append({"conf": float(c), **{k: s[k] for k in (
            "n_pred", "macro_f1", "micro_precision", "micro_recall", "micro_f1",
            "accuracy_matched", "loc_precision", "loc_recall", "n_missed", "n_spurious")}})
    return pd.DataFrame(rows)
