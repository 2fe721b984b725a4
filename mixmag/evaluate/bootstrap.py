"""Bootstrap 95 % intervals for macro F1 and per-class F1, precision and recall.

Cells are resampled in groups, never one by one: cells of one image share its background,
crowding and magnifications, so they are not independent, and whole images are drawn. Nothing is re-matched: each resample is a weighted
sum of the outcome rows' TP/FP/FN indicators, computed as a matrix product of resample counts
(drawn with ``numpy.random.Generator.multinomial``) with that table, in chunks to bound memory.

Generated composites add a second dependence: the generator reuses each source cell in several
images (the test composites hold 297 erythroblasts cut from 163 source cells), and a source the
classifier gets wrong is wrong in every image it appears in. Resampling images alone then treats
copies of one hard cell as independent evidence and gives intervals that are too narrow.
:func:`bootstrap_crossed` resamples images and source cells together (Owen's pigeonhole bootstrap
for crossed factors, Owen 2007, Ann. Appl. Stat. 1(2)): each resample draws images and sources
with replacement, and an outcome counts with the product of its image's and its source's draws.
It is mildly conservative (it over-states the variance a little), the side to err on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..classes import CLASS_NAMES, NUM_CLASSES
from .metrics import f1

K = NUM_CLASSES


def figures_of_counts(s: np.ndarray) -> dict[str, np.ndarray]:
    """Figures of each resample from ``s`` (n, 8, 3) TP, FP, FN sums, NaN where undefined:
    ``macro_f1``, ``micro_f1`` (n,) and ``f1``, ``precision``, ``recall`` (n, 8)."""
    tp, fp, fn = s[..., 0], s[..., 1], s[..., 2]
    per_class = f1(tp, fp, fn)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        rec = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        valid = np.isfinite(per_class)
        macro = np.where(valid, per_class, 0).sum(1) / np.maximum(valid.sum(1), 1)
    macro[valid.sum(1) == 0] = np.nan
    return {"macro_f1": macro, "micro_f1": f1(tp.sum(1), fp.sum(1), fn.sum(1)), "f1": per_class,
            "precision": prec, "recall": rec}


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


def outcome_indicators(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(n_rows, 8·3) 0/1 table: which TP/FP/FN count of which class each outcome row adds to.
    A wrong class adds both its true class's FN and its predicted class's FP."""
    true, pred = np.asarray(true), np.asarray(pred)
    n = len(true)
    m = np.zeros((n, K, 3), np.float64)
    rows = np.arange(n)
    hit = true == pred
    m[rows[hit], true[hit], 0] = 1
    fp = ~hit & (pred < K)
    m[rows[fp], pred[fp], 1] = 1
    fn = ~hit & (true < K)
    m[rows[fn], true[fn], 2] = 1
    return m.reshape(n, K * 3)


@dataclass
class Rows:
    """Outcome rows to resample: class ids (8 = spurious / missed, as in the confusion matrix),
    each row's unit index per factor (-1: not in that factor, weight 1 there; a spurious box has
    no source cell) and an optional group label per row (e.g. its magnification)."""

    true: np.ndarray
    pred: np.ndarray
    units: dict[str, np.ndarray]
    groups: np.ndarray | None = None


def resampled_counts(rowsets: list[Rows], n_boot: int, seed: int = 0,
                     n_units: dict[str, int] | None = None, chunk_bytes: int = 64 << 20):
    """TP/FP/FN sums of each row set under the same pigeonhole resamples.

    Every row set gets the same draws of every unit, so figures of two configurations scored on
    the same truth (same images, same source cells) can be compared resample by resample.
    Returns, per row set, ``(totals, by_group)``: (n_boot, 8, 3) arrays, by_group keyed by label.
    n_units: each factor's number of units where some have no rows (images without cells);
    default: the largest index + 1 over the row sets.
    """
    factors = list(dict.fromkeys(k for r in rowsets for k in r.units))
    sizes = {k: max((int(np.max(r.units[k])) + 1 for r in rowsets
                     if k in r.units and len(r.units[k])), default=0) for k in factors}
    sizes.update(n_units or {})
    rng = np.random.default_rng(seed)
    prepared = []
    for r in rowsets:
        g = None if r.groups is None else np.asarray(r.groups, dtype=object)
        labels = [] if g is None else [x for x in dict.fromkeys(g.tolist()) if x not in ("", None)]
        prepared.append((outcome_indicators(r.true, r.pred),
                         {k: np.asarray(v, np.int64) for k, v in r.units.items()},
                         {x: g == x for x in labels}))
    width = max(max((len(r.true) for r in rowsets), default=0), *sizes.values(), 1)
    step = max(1, int(chunk_bytes // (8 * width)))
    tot = [[] for _ in rowsets]
    by = [{x: [] for x in sel} for _, _, sel in prepared]
    done = 0
    while done < n_boot:
        b = min(step, n_boot - done)
        draws = {}
        for k in factors:
            n = sizes[k]
            if n:
                draws[k] = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)
        for j, (ind, idx, sel) in enumerate(prepared):
            w = np.ones((b, len(ind)))
            for k, u in idx.items():
                if k in draws:
                    w *= np.where(u >= 0, draws[k][:, np.maximum(u, 0)], 1.0)
            tot[j].append(w @ ind)
            for x, m in sel.items():
                by[j][x].append(w[:, m] @ ind[m])
        done += b

    def shaped(parts):
        return np.concatenate(parts).reshape(n_boot, K, 3)

    return [(shaped(t), {x: shaped(v) for x, v in bj.items()}) for t, bj in zip(tot, by)], sizes


def bootstrap_crossed(true: np.ndarray, pred: np.ndarray, units: dict[str, np.ndarray],
                      n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                      groups: np.ndarray | None = None, n_units: dict[str, int] | None = None,
                      chunk_bytes: int = 64 << 20) -> dict:
    """Percentile intervals with several crossed resampling units (pigeonhole bootstrap).

    true, pred: one outcome row each (class ids; 8 = spurious / missed, as in the confusion
    matrix). units: factor name -> each row's unit index in that factor (e.g. ``image``, ``source``);
    -1 leaves a row out of that factor (weight 1 there: a spurious box has no source cell).
    groups: optional label per row (e.g. its magnification); each non-empty label also gets its
    own intervals under ``by_group``, from the same resamples. n_units: each factor's number of
    units where some have no rows (images without cells); default: the largest index + 1.
    With the image factor alone it draws what the image bootstrap of earlier versions drew, so
    their intervals reproduce for the same seed (while one chunk holds n_boot).
    """
    if n_boot <= 0 or len(true) == 0 or not units:
        return {}
    [(tot, by)], sizes = resampled_counts([Rows(true, pred, units, groups)], n_boot, seed,
                                          n_units, chunk_bytes)
    out = {"n_boot": int(n_boot), "seed": int(seed), "level": level, "unit": "+".join(units),
           "n_units": dict(sizes), **_intervals(tot, level)}
    if groups is not None:
        out["by_group"] = {g: _intervals(v, level) for g, v in by.items()}
    return out
