"""Is one detector + classifier pair better than another, beyond the luck of which cells were drawn?

Both pairs are scored on the same generated sets (``pair_cells``: the rows ``mixmag predict``
would write, with ``mixmag.bench.detection``'s caches), their matching outcomes pooled over the
sets with one cluster per source cell (``pooled_rows``), and ``compare`` draws paired bootstrap
resamples of those clusters: both pairs are scored on the same draw, so what they share (the same
hard cells) cancels in the difference. ``benchmarks/compare_pairs.py`` is the command.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["compare", "pair_cells", "pair_figures", "point_counts", "pooled_rows",
           "print_comparison", "source_codes"]


def pair_cells(dpath: str, cpath: str, root: Path, split: str, norm: str, cache_dir, batch: int,
               models: dict) -> pd.DataFrame:
    """Rows ``mixmag predict`` would write for one pair (weights files ``dpath``, ``cpath``) on
    one set (classifier on boxes, cut-off 0.25, scale normalisation ``norm`` "on"/"off"). Models
    are loaded once into ``models`` (path -> model); boxes and probabilities are cached under
    ``cache_dir`` with benchmarks/detect.py's keys (None: no cache)."""
    from ..detect.magnification import find_native_sizes
    from ..pipeline.predict import Pipeline, PredictOptions, list_sources
    from ..pipeline.runtime import load_classifier, load_detector
    from .detection import (
        box_cache,
        cells_frame,
        classifier_all,
        detect_all,
        prob_cache,
    )
    from .models import short_name

    if dpath not in models:
        models[dpath] = load_detector(dpath, device="cpu")
    if cpath not in models:
        models[cpath] = load_classifier(cpath, device="cpu")
    det, clf = models[dpath], models[cpath]
    sources, _ = list_sources(root / "images" / split)
    pipe = Pipeline(det, clf, find_native_sizes(dpath, None), PredictOptions(
        mode="classifier-on-boxes", scale_norm=norm == "on", conf=0.25, batch=batch))
    cache = (box_cache(cache_dir, short_name(dpath), dpath, root, split, len(sources), 0.25)
             if cache_dir else None)
    boxes, _ = detect_all(pipe, sources, cache)
    pcache = (prob_cache(cache, short_name(cpath), cpath, "pytorch", norm, len(sources))
              if cache is not None else None)
    probs, _ = classifier_all(pipe, sources, boxes, pcache)
    return cells_frame(pipe, sources, boxes, probs, "classifier-on-boxes")


def pair_figures(s: np.ndarray) -> dict[str, np.ndarray]:
    """The compared figures per resample from (n, 8, 3) TP/FP/FN sums (NaN where undefined):
    macro F1, the erythroblast's precision and recall, and each class's F1 (``f1_<class>``)."""
    from ..classes import CLASS_NAMES
    from ..evaluate.bootstrap import figures_of_counts

    f = figures_of_counts(s)
    e = CLASS_NAMES.index("erythroblast")
    out = {"macro_f1": f["macro_f1"], "erythroblast_precision": f["precision"][:, e],
           "erythroblast_recall": f["recall"][:, e]}
    for k, name in enumerate(CLASS_NAMES):
        out[f"f1_{name}"] = f["f1"][:, k]
    return out


def compare(base_rows, cand_rows, n_clusters: int, n_boot: int, seed: int) -> dict:
    """Point figures of both pairs and the paired intervals of their differences.

    ``base_rows`` / ``cand_rows``: ``mixmag.evaluate.bootstrap.Rows`` of the same cells (clusters
    numbered below ``n_clusters``). For each figure, pooled and (macro F1 and the erythroblast's)
    per magnification: baseline, candidate, difference, its 95 % percentile interval over
    ``n_boot`` paired resamples, and the shares of resamples with the candidate ahead and tied."""
    from ..evaluate.bootstrap import resampled_counts

    [(bt, bg), (ct, cg)], n = resampled_counts([base_rows, cand_rows], n_boot, seed, n_clusters)
    (b0, b0g), (c0, c0g) = point_counts(base_rows, n), point_counts(cand_rows, n)

    def table(tb, tc, pb, pc):
        fb, fc, pfb, pfc = pair_figures(tb), pair_figures(tc), pair_figures(pb), pair_figures(pc)
        rows = {}
        for k in fb:
            d = fc[k] - fb[k]
            d = d[np.isfinite(d)]
            rows[k] = {"baseline": _r(pfb[k][0]), "candidate": _r(pfc[k][0]),
                       "difference": _r(pfc[k][0] - pfb[k][0]),
                       "difference_ci": [_r(np.percentile(d, 2.5)), _r(np.percentile(d, 97.5))] if len(d) else None,
                       "candidate_ahead": _r(float((d > 0).mean())) if len(d) else None,
                       "tied": _r(float((d == 0).mean())) if len(d) else None}
        return rows

    out = {"n_boot": n_boot, "seed": seed, "unit": "source", "n_clusters": n,
           "pooled": table(bt, ct, b0, c0), "by_magnification": {}}
    for level in bg:
        if level in cg:
            out["by_magnification"][level] = {k: v for k, v in table(bg[level], cg[level], b0g[level],
                                                                      c0g[level]).items()
                                              if k.startswith("erythroblast") or k == "macro_f1"}
    return out


def point_counts(rows, n: int):
    """TP/FP/FN sums of the rows as they are (every cluster once), pooled and per group."""
    from ..evaluate.bootstrap import cluster_counts

    counts, groups = cluster_counts(rows, n)
    return counts.sum(0, keepdims=True), {x: c.sum(0, keepdims=True) for x, c in groups.items()}


def _r(v):
    return None if v is None or not np.isfinite(v) else round(float(v), 5)


def source_codes(sources: list[pd.Series]) -> dict:
    """One code per source cell across the sets (their truth's ``source`` columns): sets made
    from one split share their sources, so a source drawn in two sets is one cluster."""
    return {s: i for i, s in enumerate(pd.unique(pd.concat(sources)))}


def pooled_rows(parts, codes: dict):
    """``Rows`` of several sets pooled: ``parts`` is (outcomes of ``mixmag.evaluate``, the set's
    truth ``source`` column, the set's first image number in the pool) per set. A true cell's
    cluster is its source's code, a spurious box's its image (after all sources). Per-scale
    groups are kept only for discrete magnifications (quantile bins differ between sets)."""
    from ..evaluate.bootstrap import Rows, source_clusters

    n_src = len(codes)
    true, pred, cluster, mag = [], [], [], []
    for o, sources, off in parts:
        true.append(o["true"].to_numpy())
        pred.append(o["pred"].to_numpy())
        cluster.append(source_clusters(o["t"].to_numpy(), o["img"].to_numpy() + off,
                                       np.array([codes[x] for x in sources]), n_src))
        mag.append(o["magnification"].to_numpy() if "magnification" in o else np.full(len(o), ""))
    mag = np.concatenate(mag)
    if any(str(m).startswith("[") for m in mag):
        # quantile bins differ between sets and pairs: no per-scale rows then
        mag = np.full(len(mag), "")
    return Rows(np.concatenate(true), np.concatenate(pred), np.concatenate(cluster), mag)


def _s(v, sign=False):
    return "–" if v is None else (f"{v:+.4f}" if sign else f"{v:.4f}")


def print_comparison(out: dict) -> None:
    """The table of ``compare``'s result: one line a figure, pooled then per magnification."""
    print(f"{'figure':<26s} {'baseline':>9s} {'candidate':>9s} {'diff':>8s}  {'95 % interval':>18s}  ahead")

    def show(label, v):
        ci = v["difference_ci"]
        print(f"{label:<26s} {_s(v['baseline']):>9s} {_s(v['candidate']):>9s} {_s(v['difference'], True):>8s}  "
              f"{'[' + _s(ci[0], True) + ', ' + _s(ci[1], True) + ']' if ci else '–':>18s}  "
              f"{_s(v['candidate_ahead'])}")

    for k, v in out["pooled"].items():
        show(k, v)
    for level, t in out["by_magnification"].items():
        for k, v in t.items():
            show(f"{level} {k}", v)
