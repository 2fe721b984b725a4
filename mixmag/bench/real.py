"""Figures on real fields (datasets from `mixmag fields`): every cell is in the truth, red cells as
``rbc``, which is not one of the eight.

Predictions are matched to the truth boxes class-agnostically, one-to-one, IoU >= 0.5 (the
report's rule): the white cells and platelets first, then the red cells with the predictions
left over, so a red cell never takes a box from a white cell. Then, for the eight classes:
- a truth cell of the eight: right (matched, same class), confused (matched, other class) or
  missed; a red cell that no prediction matches counts nowhere;
- a prediction: right, confused, *on a red cell* (a false positive of its class: a red cell is
  none of the eight) or *spurious* (no cell there); a prediction of ``rbc`` (a detector that
  knows red cells) is none of the eight: on a white cell it is that cell's wrong class, elsewhere
  it counts nowhere;
so per-class precision counts predictions on red cells against their class, and recall counts
only the eight. The labels are OI-PBC's: good, not perfect (their centre box agrees with the
PBC folder in ~99.3 % of images; some small platelets and edge cells are not boxed), so a
"spurious" box may be a real, unlabelled cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES
from ..evaluate.match import match, overlapping_pairs
from ..evaluate.metrics import f1

RBC = "rbc"
BOX = ["x1", "y1", "x2", "y2"]


def centre_classes(pred_dir) -> pd.Series:
    """For each image of a `mixmag predict` output folder: the class of its box of the eight
    nearest the image's centre ("" when it has none). On single-cell images such as PBC's that
    box is the image's own cell, the one its folder names. Sizes come from cells.json."""
    import json
    from pathlib import Path

    pred_dir = Path(pred_dir)
    images = pd.DataFrame(json.loads((pred_dir / "cells.json").read_text())["images"])
    cells = pd.read_csv(pred_dir / "cells.csv", dtype={"image": str})
    c = cells[cells["class_name"] != RBC].merge(images[["image", "width", "height"]], on="image")
    c = c.assign(d=((c["x1"] + c["x2"] - c["width"]) / 2) ** 2 + ((c["y1"] + c["y2"] - c["height"]) / 2) ** 2)
    own = c.loc[c.groupby("image")["d"].idxmin()].set_index("image")["class_name"]
    return own.reindex(images["image"].astype(str), fill_value="")


def _div(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def match_fields(truth: pd.DataFrame, pred: pd.DataFrame, iou: float = 0.5) -> pd.DataFrame:
    """One row per truth cell and per prediction: ``t`` / ``p`` (row or -1), ``image``,
    ``true`` (a class name, ``rbc`` or ``-``: no cell) and ``pred`` (a class name or ``-``)."""
    names = sorted(set(truth["image"]) | set(pred["image"]))
    code = {n: i for i, n in enumerate(names)}
    ti, pi = truth["image"].map(code).to_numpy(), pred["image"].map(code).to_numpy()
    pairs = overlapping_pairs(ti, truth[BOX].to_numpy(float), pi, pred[BOX].to_numpy(float), iou)
    # red cells second: a red cell never takes a box from a white cell (evaluate.match.match)
    mt, mp, _ = match(pairs, iou, first=(truth["class_name"] != RBC).to_numpy())
    t_match = np.full(len(truth), -1)
    t_match[mt] = mp
    p_match = np.full(len(pred), -1)
    p_match[mp] = mt
    tcls, pcls = truth["class_name"].to_numpy(), pred["class_name"].to_numpy()
    rows = pd.DataFrame({
        "t": np.r_[np.arange(len(truth)), p_match[p_match < 0]],
        "p": np.r_[t_match, np.flatnonzero(p_match < 0)],
        "image": np.r_[truth["image"].to_numpy(), pred["image"].to_numpy()[p_match < 0]]})
    rows["true"] = np.where(rows["t"] >= 0, tcls[rows["t"].clip(0)], "-")
    rows["pred"] = np.where(rows["p"] >= 0, pcls[rows["p"].clip(0)], "-")
    return rows


def field_figures(truth: pd.DataFrame, rows: pd.DataFrame, n_images: int | None = None) -> dict:
    """The targets of the real-image work from ``match_fields`` rows (all of them, or those of
    one scale; ``t`` indexes ``truth``'s rows in order); ``n_images`` for the per-image rates
    (default: the truth's images)."""
    white = rows[rows["true"].isin(CLASS_NAMES)]
    found = white["pred"] != "-"
    per_class = {}
    for c in CLASS_NAMES:
        tp = int(((rows["true"] == c) & (rows["pred"] == c)).sum())
        n_true = int((rows["true"] == c).sum())
        n_pred = int((rows["pred"] == c).sum())
        per_class[c] = {"precision": _div(tp, n_pred), "recall": _div(tp, n_true),
                        "f1": float(f1(tp, n_pred - tp, n_true - tp)) if n_true else float("nan"),
                        "support": n_true, "predicted": n_pred}
    f1s = [v["f1"] for v in per_class.values() if v["support"]]
    t = truth.reset_index(drop=True)
    cut = white["t"].map(t["cut"]).astype(bool) if "cut" in t else pd.Series(False, white.index)
    centre = white["t"].map(t["centre"]).astype(bool) if "centre" in t else pd.Series(False, white.index)
    if "source" in t:  # the folder's cell, where OI-PBC's centre box has the folder's class
        folder = white["t"].map(t["source"].astype(str).str.split("/").str[0])
        centre &= folder == white["true"]
    n_images = int(truth["image"].nunique()) if n_images is None else int(n_images)
    on_rbc = int(((rows["true"] == RBC) & rows["pred"].isin(CLASS_NAMES)).sum())
    spurious = int(((rows["true"] == "-") & rows["pred"].isin(CLASS_NAMES)).sum())
    confusion = pd.crosstab(rows["true"], rows["pred"]).reindex(
        index=[*CLASS_NAMES, RBC, "-"], columns=[*CLASS_NAMES, RBC, "-"], fill_value=0)
    return {
        "images": n_images, "cells_of_the_eight": int(len(white)),
        "red_cells": int((rows["true"] == RBC).sum()),
        "recall_of_non_red_cells": _div(found.sum(), len(white)),
        "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
        "platelet": per_class["platelet"], "erythroblast": per_class["erythroblast"],
        "cut_cells": int(cut.sum()), "cut_cell_recall": _div((found & cut).sum(), cut.sum()),
        "centre_cells_where_labels_agree": int(centre.sum()),
        "centre_cell_right": _div((centre & (white["pred"] == white["true"])).sum(), centre.sum()),
        "red_cells_called_one_of_the_eight_per_image": _div(on_rbc, n_images),
        "spurious_per_image": _div(spurious, n_images),
        "class_right_where_boxed": _div((white["pred"] == white["true"]).sum(), found.sum()),
        "per_class": per_class,
        "confusion": {r: {c: int(v) for c, v in row.items()} for r, row in confusion.iterrows()},
    }


# the figures given with a 95 % interval (real.py prints them; the JSON keeps them)
INTERVAL_KEYS = ("recall_of_non_red_cells", "macro_f1", "platelet_f1", "platelet_recall",
                 "erythroblast_f1", "cut_cell_recall", "red_cells_called_one_of_the_eight_per_image",
                 "spurious_per_image")


def _cluster_tallies(truth: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """Per source field (the cluster: a field's cells share its slide, crowding and labeller, and
    it appears at every scale), the counts ``field_figures`` is made of: per class of the eight
    TP, predicted, true; then cells of the eight, found, cut, cut found, on a red cell, spurious,
    images (a mosaic's image shared out among its fields)."""
    t = truth.reset_index(drop=True)
    src = t["source"].astype(str).to_numpy() if "source" in t else t["image"].astype(str).to_numpy()
    per_image = t.groupby("image")["source" if "source" in t else "image"].agg(
        lambda v: v.iloc[0] if v.nunique() == 1 else None)
    # a row with a truth cell belongs to that cell's field; a spurious box to its image's field,
    # or to its mosaic when the image holds several
    cl = np.where(rows["t"].to_numpy() >= 0, src[rows["t"].clip(0).to_numpy()],
                  rows["image"].map(per_image).fillna(rows["image"]).astype(str).to_numpy())
    codes, clusters = pd.factorize(pd.Series(cl))
    n = len(clusters)
    true, pred = rows["true"].to_numpy(), rows["pred"].to_numpy()
    white = np.isin(true, CLASS_NAMES)
    found = white & (pred != "-")
    cut = np.zeros(len(rows), bool)
    if "cut" in t:
        cut[white] = t["cut"].to_numpy(bool)[rows["t"].to_numpy()[white]]
    cols = []
    for c in CLASS_NAMES:
        cols += [(true == c) & (pred == c), pred == c, true == c]
    cols += [white, found, cut, found & cut, (true == RBC) & np.isin(pred, CLASS_NAMES),
             (true == "-") & np.isin(pred, CLASS_NAMES)]
    tallies = np.stack([np.bincount(codes, weights=c.astype(float), minlength=n) for c in cols], 1)
    # images: each image's weight shared out among its fields' clusters
    img_fields = rows.assign(cl=codes).groupby("image")["cl"].unique()
    images = np.zeros(n)
    for cls in img_fields:
        images[cls] += 1 / len(cls)
    return np.column_stack([tallies, images])


def interval_figures(tallies: np.ndarray) -> dict[str, np.ndarray]:
    """The INTERVAL_KEYS figures of tally sums (…, 31): one value per row."""
    k = len(CLASS_NAMES)
    tp, npred, ntrue = (tallies[..., j:3 * k:3] for j in range(3))
    white, found, cut, cut_found, on_rbc, spurious, images = (tallies[..., 3 * k + j] for j in range(7))
    per_f1 = np.where(ntrue > 0, f1(tp, npred - tp, ntrue - tp), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        macro = np.nanmean(np.where(ntrue > 0, per_f1, np.nan), -1)
        pl, ery = CLASS_NAMES.index("platelet"), CLASS_NAMES.index("erythroblast")
        return {"recall_of_non_red_cells": found / white, "macro_f1": macro,
                "platelet_f1": per_f1[..., pl], "platelet_recall": tp[..., pl] / ntrue[..., pl],
                "erythroblast_f1": per_f1[..., ery], "cut_cell_recall": cut_found / cut,
                "red_cells_called_one_of_the_eight_per_image": on_rbc / images,
                "spurious_per_image": spurious / images}


def field_intervals(truth: pd.DataFrame, rows: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                    level: float = 0.95) -> dict:
    """95 % percentile intervals of the INTERVAL_KEYS figures, resampling source fields with
    replacement (each with all its rows), and the number of fields resampled."""
    tallies = _cluster_tallies(truth, rows)
    n = len(tallies)
    rng = np.random.default_rng(seed)
    sums = np.concatenate([rng.multinomial(n, np.full(n, 1 / n), size=min(200, n_boot - i)) @ tallies
                           for i in range(0, n_boot, 200)])
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    out = {}
    for key, v in interval_figures(sums).items():
        v = v[np.isfinite(v)]
        out[key] = [round(float(x), 4) for x in np.percentile(v, q)] if len(v) else [np.nan, np.nan]
    return {"level": level, "resampled": "source fields", "n_fields": n, "n_boot": n_boot, **out}


def figures_by_scale(truth: pd.DataFrame, pred: pd.DataFrame, iou: float = 0.5,
                     conf: float = 0.25) -> dict:
    """``field_figures`` for all images and for each magnification of the truth; predictions
    below ``conf`` are dropped first, as the report does. Matching is done once, over whole
    images: in a mosaic (fields at several magnifications on one canvas) a cell counts at its own
    field's magnification, and a prediction matching no cell at the scale of its image where the
    image has one scale (in a mixed mosaic it counts only in ``all``)."""
    truth = truth.reset_index(drop=True)
    pred = pred[pred["score"] >= conf].reset_index(drop=True)
    rows = match_fields(truth, pred, iou)
    out = {"all": {**field_figures(truth, rows), **magnification_estimate(truth, pred, rows),
                   "intervals": field_intervals(truth, rows)}}
    mag = truth["magnification"].to_numpy(float)
    scales = truth.groupby("image")["magnification"].agg(lambda v: v.iloc[0] if v.nunique() == 1
                                                          else np.nan)
    row_mag = np.where(rows["t"] >= 0, mag[rows["t"].clip(0)], rows["image"].map(scales))
    for m in sorted(set(mag)):
        sel = rows[row_mag == m]
        images = set(truth.loc[mag == m, "image"])
        out[f"x{m:g}"] = {**field_figures(truth, sel, n_images=len(images)),
                          **magnification_estimate(truth, pred, sel),
                          "intervals": field_intervals(truth, sel)}
    return out


def magnification_estimate(truth: pd.DataFrame, pred: pd.DataFrame, rows: pd.DataFrame) -> dict:
    """predict's magnification estimate against the field's true magnification, over the cells of
    the eight that a box found: median relative error and the share within 25 %."""
    if "magnification_est" not in pred:
        return {}
    hit = rows[(rows["t"] >= 0) & (rows["p"] >= 0) & rows["true"].isin(CLASS_NAMES)]
    true_m = truth["magnification"].to_numpy(float)[hit["t"].to_numpy()]
    est = pred["magnification_est"].to_numpy(float)[hit["p"].to_numpy()]
    ok = np.isfinite(true_m) & np.isfinite(est)
    rel = np.abs(est[ok] - true_m[ok]) / true_m[ok]
    return {"magnification_estimate": {
        "n": int(ok.sum()), "median_rel_error": float(np.median(rel)) if len(rel) else float("nan"),
        "within_25pct": float((rel <= 0.25).mean()) if len(rel) else float("nan"),
        "median_ratio": float(np.median(est[ok] / true_m[ok])) if len(rel) else float("nan")}}


def field_map(truth: pd.DataFrame, pred: pd.DataFrame) -> dict:
    """COCO mAP (pycocotools) on real fields: over the eight + ``rbc`` (nine categories; a
    detector that does not know red cells has AP 0 there) and over the eight alone (red cells in
    neither truth nor predictions: a box on a red cell is a false positive of its class). All
    predictions are ranked, whatever the cut-off of the matching figures."""
    from ..data.oipbc import FIELD_CLASSES
    from ..evaluate.coco import coco_map

    images = sorted(truth["image"].unique())
    t = truth.assign(class_id=truth["class_name"].map(FIELD_CLASSES.index))
    p = pred.assign(class_id=pred["class_name"].map(FIELD_CLASSES.index))
    nine = coco_map(t, images, p, classes=FIELD_CLASSES)
    eight = coco_map(t[t["class_name"] != RBC], images, p[p["class_name"] != RBC])
    return {"map50_nine": nine["map50"], "map50_95_nine": nine["map50_95"],
            "map50_eight": eight["map50"], "map50_95_eight": eight["map50_95"],
            "ap50_nine": {k: v["ap50"] for k, v in nine["per_class"].items()}}


def score_dataset(root, split: str = "val", detector=None, classifier=None, backend: str = "auto",
                  conf: float = 0.25, limit: int = 0, **options) -> dict:
    """A pair (zoo names, files, or the zoo's default) on the ``split`` images of a real-field
    dataset, as `mixmag predict` runs it: the figures of ``figures_by_scale`` with the models,
    options, time and rate. ``limit``: that many images, evenly spaced in name order;
    ``options``: predict's settings (``small_images="pad"``, ...) over the defaults."""
    import time
    from pathlib import Path

    from ..errors import MixmagError
    from ..pipeline import build_pipeline, list_sources

    root = Path(root)
    if not (root / "cells.csv").is_file() or not (root / "dataset.json").is_file():
        raise MixmagError(f"--data {root}: not a dataset written by `mixmag fields`")
    truth = pd.read_csv(root / "cells.csv", dtype={"image": str, "class_name": str})
    truth = truth[truth["split"] == split]
    if truth.empty:
        raise MixmagError(f"--data {root}: no {split} images")
    images = sorted(truth["image"].unique())
    if limit and limit < len(images):  # evenly spaced: names sort by class, the first N are one class
        images = [images[i] for i in np.linspace(0, len(images) - 1, limit).round().astype(int)]
    truth = truth[truth["image"].isin(images)].reset_index(drop=True)
    pipe = build_pipeline(detector=detector, classifier=classifier, backend=backend, **options)
    keep = {Path(n).name for n in images}
    sources = [s for s in list_sources(root / "images" / split)[0] if s.name in keep]
    t0 = time.perf_counter()
    result = pipe.run(sources, progress=False)
    seconds = time.perf_counter() - t0
    pred = result.cells.copy()
    pred["image"] = f"images/{split}/" + pred["image"].astype(str)
    return {"images": len(sources), "models": pipe.meta, "options": vars(pipe.opt),
            "seconds": round(seconds, 1), "images_per_s": round(len(sources) / seconds, 2),
            "figures": figures_by_scale(truth, pred, conf=conf), "coco": field_map(truth, pred)}


KEYS = ("recall_of_non_red_cells", "macro_f1", "cut_cell_recall", "centre_cell_right",
        "red_cells_called_one_of_the_eight_per_image", "spurious_per_image")


def summary_line(scope: str, f: dict) -> str:
    """One scope's figures, each with its 95 % interval where it has one, and the counts."""
    ci = f.get("intervals") or {}

    def val(k, x):
        return f"{x:.3f}" + (f" [{ci[k][0]:.3f}, {ci[k][1]:.3f}]" if k in ci else "")

    line = ", ".join(f"{k} {val(k, f[k])}" for k in KEYS)
    me = f.get("magnification_estimate") or {}
    tail = (f"; magnification estimate within 25 % {me['within_25pct']:.3f}"
            if me.get("n") else "")
    fields = f" from {ci['n_fields']} fields" if "n_fields" in ci else ""
    return (f"{scope:>8}: {line}; platelet F1 {val('platelet_f1', f['platelet']['f1'])} "
            f"(R {val('platelet_recall', f['platelet']['recall'])}), erythroblast F1 "
            f"{val('erythroblast_f1', f['erythroblast']['f1'])}{tail} ({f['images']} images"
            f"{fields}: {f['cells_of_the_eight']} cells of the eight, {f['cut_cells']} cut, "
            f"{f['red_cells']} red cells)")