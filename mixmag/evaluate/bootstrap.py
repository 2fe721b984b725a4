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

import numpy as np

from ..classes import CLASS_NAMES, NUM_CLASSES
from .metrics import f1

K = NUM_CLASSES


def _intervals(s: np.ndarray, level: float) -> dict:
    """Percentile intervals of the figures of ``s`` (n_boot, 8, 3) resampled TP, FP, FN."""
    tp, fp, fn = s[..., 0], s[..., 1], s[..., 2]
    per_class = f1(tp, fp, fn)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        rec = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        valid = np.isfinite(per_class)
        macro = np.where(valid, per_class, 0).sum(1) / np.maximum(valid.sum(1), 1)
    macro[valid.sum(1) == 0] = np.nan
    lo_q, hi_q = (1 - level) / 2 * 100, (1 + level) / 2 * 100

    def ci(x):
        x = x[np.isfinite(x)]
        if not len(x):
            return [float("nan"), float("nan")]
        lo, hi = np.percentile(x, [lo_q, hi_q])
        return [float(lo), float(hi)]

    return {"macro_f1": ci(macro), "micro_f1": ci(f1(tp.sum(1), fp.sum(1), fn.sum(1))),
            "per_class_f1": {n: ci(per_class[:, k]) for k, n in enumerate(CLASS_NAMES)},
            "per_class_precision": {n: ci(prec[:, k]) for k, n in enumerate(CLASS_NAMES)},
            "per_class_recall": {n: ci(rec[:, k]) for k, n in enumerate(CLASS_NAMES)}}


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
    rng = np.random.default_rng(seed)
    ind = outcome_indicators(true, pred)
    idx = {k: np.asarray(v, np.int64) for k, v in units.items()}
    sizes = {k: int(v.max()) + 1 if (v >= 0).any() else 0 for k, v in idx.items()}
    sizes.update(n_units or {})
    labels = None
    if groups is not None:
        groups = np.asarray(groups, dtype=object)
        labels = [g for g in dict.fromkeys(groups.tolist()) if g not in ("", None)]
    n_rows = len(true)
    width = max(n_rows, *sizes.values(), 1)
    step = max(1, int(chunk_bytes // (8 * width)))
    tot, by = [], {g: [] for g in labels or []}
    done = 0
    while done < n_boot:
        b = min(step, n_boot - done)
        w = np.ones((b, n_rows))
        for k, u in idx.items():
            n = sizes[k]
            if n == 0:
                continue
            draw = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)
            # weight 1 where the row has no unit in this factor
            w *= np.where(u >= 0, draw[:, np.maximum(u, 0)], 1.0)
        tot.append(w @ ind)
        for g in by:
            sel = groups == g
            by[g].append(w[:, sel] @ ind[sel])
        done += b

    def shaped(parts):
        return np.concatenate(parts).reshape(n_boot, K, 3)

    out = {"n_boot": int(n_boot), "seed": int(seed), "level": level, "unit": "+".join(idx),
           "n_units": dict(sizes),
           **_intervals(shaped(tot), level)}
    if labels is not None:
        out["by_group"] = {g: _intervals(shaped(by[g]), level) for g in labels}
    return out
