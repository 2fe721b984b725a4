"""Bootstrap 95 % intervals over images for macro F1 and per-class F1.

Images, not cells, are resampled (cells of one image share its background, crowding and
magnifications, so they are not independent). Nothing is re-matched: each resample is a weighted
sum of the per-image TP/FP/FN table, computed as a matrix product of resample counts (drawn with
``numpy.random.Generator.multinomial``) with that table, in chunks to bound memory.
"""

from __future__ import annotations

import numpy as np

from ..classes import CLASS_NAMES
from .metrics import f1


def bootstrap_f1(counts: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                 chunk_bytes: int = 64 << 20) -> dict:
    """Percentile intervals for macro F1, micro F1 and each class's F1.

    ``counts``: (n_images, 8, 3) TP, FP, FN per image and class (see ``metrics.per_image_counts``).
    Macro F1 of a resample averages the classes whose F1 is defined in it.
    """
    n_img = counts.shape[0]
    if n_boot <= 0 or n_img == 0:
        return {}
    rng = np.random.default_rng(seed)
    flat = counts.reshape(n_img, -1).astype(np.float64)
    rows = max(1, int(chunk_bytes // (8 * n_img)))
    sums = []
    done = 0
    while done < n_boot:
        b = min(rows, n_boot - done)
        w = rng.multinomial(n_img, np.full(n_img, 1.0 / n_img), size=b).astype(np.float64)
        sums.append(w @ flat)
        done += b
    s = np.concatenate(sums).reshape(n_boot, *counts.shape[1:])
    tp, fp, fn = s[..., 0], s[..., 1], s[..., 2]
    per_class = f1(tp, fp, fn)  # (n_boot, 8)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(per_class)
        macro = np.where(valid, per_class, 0).sum(1) / np.maximum(valid.sum(1), 1)
        macro[valid.sum(1) == 0] = np.nan
    micro = f1(tp.sum(1), fp.sum(1), fn.sum(1))
    lo_q, hi_q = (1 - level) / 2 * 100, (1 + level) / 2 * 100

    def ci(x):
        x = x[np.isfinite(x)]
        if not len(x):
            return [float("nan"), float("nan")]
        lo, hi = np.percentile(x, [lo_q, hi_q])
        return [float(lo), float(hi)]

    return {
        "n_boot": int(n_boot), "seed": int(seed), "level": level, "unit": "image",
        "n_images": int(n_img),
        "macro_f1": ci(macro), "micro_f1": ci(micro),
        "per_class_f1": {name: ci(per_class[:, k]) for k, name in enumerate(CLASS_NAMES)},
    }
