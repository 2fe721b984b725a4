"""Bootstrap 95 % intervals for macro F1 and per-class F1, precision and recall.

Cells are resampled in clusters, never one by one, and nothing is re-matched: each cluster's
TP/FP/FN counts are tallied once (``metrics.per_image_counts``), and a resample is their sum
weighted by how often each cluster was drawn (``numpy.random.Generator.multinomial``), in chunks
to bound memory.

The cluster is the image by default: cells of one image share its background, crowding and
scales. Generated composites add a dependence that matters more: the generator reuses each
source cell in several images (the m5 test composites hold 297 erythroblasts cut from 163
sources), and a source the classifier gets wrong is wrong in every copy. Resampling images then
counts those copies as independent evidence. With ``source`` clusters every cell is drawn with
its source, and a spurious box (which has no source) with its image. On the m5 test composites
the 1.5× erythroblast recall interval is [0.916, 1] over images and [0.907, 1] over sources
(benchmarks/results/detect-m5-test-ci-{image,auto}.json).

Images and sources are not crossed here. Multiplying an image draw by a source draw (Owen's
pigeonhole bootstrap) gives each cell a weight of variance 3 when clusters hold one or two
cells, as these do, so its own noise is counted about three times; an earlier version did so and
gave that interval as [0.857, 1]. A two-way interval would need the Cameron-Gelbach-Miller
combination (image + source - cell variance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..classes import CLASS_NAMES, NUM_CLASSES
from .metrics import _div, f1, per_image_counts

K = NUM_CLASSES


def figures_of_counts(s: np.ndarray) -> dict[str, np.ndarray]:
    """Figures of each resample from ``s`` (n, 8, 3) TP, FP, FN sums, NaN where undefined:
    ``macro_f1``, ``micro_f1`` (n,) and ``f1``, ``precision``, ``recall`` (n, 8)."""
    tp, fp, fn = s[..., 0], s[..., 1], s[..., 2]
    per_class = f1(tp, fp, fn)
    # macro: the mean over the classes whose F1 is defined in that resample
    macro = _div(np.nansum(per_class, 1), np.isfinite(per_class).sum(1))
    return {"macro_f1": macro, "micro_f1": f1(tp.sum(1), fp.sum(1), fn.sum(1)), "f1": per_class,
            "precision": _div(tp, tp + fp), "recall": _div(tp, tp + fn)}


def _intervals(s: np.ndarray, level: float) -> dict:
    """Percentile intervals of the figures of ``s`` (n_boot, 8, 3) resampled TP, FP, FN."""
    fig = figures_of_counts(s)
    lo_q, hi_q = (1 - level) / 2 * 100, (1 + level) / 2 * 100

    def ci(x):
        x = x[np.isfinite(x)]
        if not len(x):
            return [float("nan"), float("nan")]
        lo, hi = np.percentile(x, [lo_q, hi_q])
        return [float(lo), float(hi)]

    return {"macro_f1": ci(fig["macro_f1"]), "micro_f1": ci(fig["micro_f1"]),
            **{f"per_class_{k}": {n: ci(fig[k][:, j]) for j, n in enumerate(CLASS_NAMES)}
               for k in ("f1", "precision", "recall")}}


@dataclass
class Rows:
    """Outcome rows to resample: class ids (8 = spurious / missed, as in the confusion matrix),
    each row's cluster index (rows of one cluster are drawn together) and an optional group label
    per row (e.g. its magnification)."""

    true: np.ndarray
    pred: np.ndarray
    cluster: np.ndarray
    groups: np.ndarray | None = None


def source_clusters(t: np.ndarray, img: np.ndarray, source_code: np.ndarray, n_sources: int) -> np.ndarray:
    """Cluster of each outcome row when source cells are resampled: a cell (``t`` >= 0, its row in
    the truth) goes with its source (``source_code[t]``), a spurious box (t = -1), which has no
    source, with its image (numbered after the sources: ``n_sources + img``)."""
    t = np.asarray(t)
    return np.where(t >= 0, np.asarray(source_code)[np.maximum(t, 0)], n_sources + np.asarray(img))


def cluster_counts(rows: Rows, n: int) -> tuple[np.ndarray, dict]:
    """TP/FP/FN per cluster and class, (n, 8, 3), in all and per non-empty group label."""
    counts = per_image_counts(rows.true, rows.pred, rows.cluster, n)
    if rows.groups is None:
        return counts, {}
    g = np.asarray(rows.groups, dtype=object)
    labels = [x for x in dict.fromkeys(g.tolist()) if x not in ("", None)]
    return counts, {x: per_image_counts(rows.true[g == x], rows.pred[g == x], rows.cluster[g == x], n)
                    for x in labels}


def resampled_counts(rowsets: list[Rows], n_boot: int, seed: int = 0, n_clusters: int | None = None,
                     chunk_bytes: int = 64 << 20):
    """TP/FP/FN sums of each row set under the same cluster resamples.

    Every row set gets the same draw of every cluster, so two configurations scored on the same
    truth (their clusters numbered alike) can be compared resample by resample. Returns, per row
    set, ``(totals, by_group)``: (n_boot, 8, 3) arrays, by_group keyed by label; and the number of
    clusters. n_clusters: where some clusters have no rows (images without cells); default: the
    largest index + 1 over the row sets. The draws do not depend on the chunking.
    """
    rowsets = [Rows(np.asarray(r.true), np.asarray(r.pred), np.asarray(r.cluster, np.int64), r.groups)
               for r in rowsets]
    n = max([int(r.cluster.max()) + 1 for r in rowsets if len(r.cluster)] + [n_clusters or 0])
    # each cluster's counts once; a resample is then a product of draw counts with them
    tables = []
    for r in rowsets:
        counts, groups = cluster_counts(r, n)
        tables.append((counts.reshape(n, -1).astype(np.float64),
                       {x: c.reshape(n, -1).astype(np.float64) for x, c in groups.items()}))
    rng = np.random.default_rng(seed)
    step = max(1, int(chunk_bytes // (8 * max(n, 1))))
    tot = [[] for _ in rowsets]
    by = [{x: [] for x in groups} for _, groups in tables]
    done = 0
    while done < n_boot:
        b = min(step, n_boot - done)
        draw = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)
        for j, (counts, groups) in enumerate(tables):
            tot[j].append(draw @ counts)
            for x, c in groups.items():
                by[j][x].append(draw @ c)
        done += b

    def shaped(parts):
        return np.concatenate(parts).reshape(n_boot, K, 3)

    return [(shaped(t), {x: shaped(v) for x, v in bj.items()}) for t, bj in zip(tot, by)], n


def bootstrap_clustered(true: np.ndarray, pred: np.ndarray, cluster: np.ndarray,
                        n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                        groups: np.ndarray | None = None, n_clusters: int | None = None,
                        unit: str = "image", chunk_bytes: int = 64 << 20) -> dict:
    """Percentile intervals, resampling clusters of outcome rows.

    true, pred: one outcome row each (class ids; 8 = spurious / missed). cluster: each row's
    cluster index (its image, or its source cell). groups: optional label per row (e.g. its
    magnification); each non-empty label also gets its own intervals under ``by_group``, from the
    same resamples. n_clusters: see :func:`resampled_counts`; ``unit`` names the clusters in the
    output. With image clusters this draws what the image bootstrap of earlier versions drew, so
    their intervals reproduce for the same seed.
    """
    if n_boot <= 0 or len(true) == 0:
        return {}
    [(tot, by)], n = resampled_counts([Rows(true, pred, cluster, groups)], n_boot, seed,
                                      n_clusters, chunk_bytes)
    out = {"n_boot": int(n_boot), "seed": int(seed), "level": level, "unit": unit,
           "n_clusters": int(n), **_intervals(tot, level)}
    if groups is not None:
        out["by_group"] = {g: _intervals(v, level) for g, v in by.items()}
    return out
