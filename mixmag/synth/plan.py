"""Plan a whole dataset up front: cells per image, their classes, sources and magnifications.

Everything random is drawn here from one seeded generator (and per-image seeds derived from the
dataset seed and image id), so rendering order and worker count cannot change the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES, NUM_CLASSES
from ..errors import MixmagError

SPLITS = ("train", "val", "test")


@dataclass
class ImagePlan:
    image_id: int
    split: str
    stem: str
    cells: list[tuple[int, float]] = field(default_factory=list)   # (store row, magnification)

    @property
    def image(self) -> str:
        return f"images/{self.split}/{self.stem}.jpg"

    @property
    def label(self) -> str:
        return f"labels/{self.split}/{self.stem}.txt"


def image_rng(seed: int, image_id: int) -> np.random.Generator:
    return np.random.default_rng([seed, image_id, 0x5EED])


def split_counts(n: int, splits=SPLITS, fractions=(0.70, 0.15, 0.15),
                 explicit: dict[str, int | None] | None = None) -> dict[str, int]:
    """Images per split: --n shared 70/15/15 over the chosen splits, unless given per split."""
    fr = dict(zip(SPLITS, fractions))
    chosen = [s for s in SPLITS if s in splits]
    tot = sum(fr[s] for s in chosen)
    out, left = {}, n
    for s in chosen[:-1]:
        out[s] = int(round(n * fr[s] / tot))
        left -= out[s]
    if chosen:
        out[chosen[-1]] = max(0, left)
    for s, v in (explicit or {}).items():
        if v is not None:
            if s not in chosen:
                raise MixmagError(f"--n-{s} given but split {s} is not in --splits")
            out[s] = int(v)
    return out


def plan_dataset(table: pd.DataFrame, counts: dict[str, int], cells=(4, 12),
                 mags: list[float] | None = None, mag_range: tuple[float, float] | None = None,
                 balance: str = "equal", seed: int = 0) -> list[ImagePlan]:
    """One ImagePlan per composite. ``table``: the cut-out store's table (split, class_id)."""
    lo, hi = int(cells[0]), int(cells[1])
    if lo < 1 or hi < lo:
        raise MixmagError(f"--cells {lo} {hi}: need 1 <= MIN <= MAX")
    if mags is None and mag_range is None:
        mags = [0.5, 1.0, 1.5]
    rng = np.random.default_rng([seed, 0x91A])
    plans: list[ImagePlan] = []
    image_id = 0
    for split in SPLITS:
        n = int(counts.get(split, 0))
        if n <= 0:
            continue
        rows = table.index[table["split"] == split].to_numpy()
        cls_of = table["class_id"].to_numpy()[rows]
        pools = {c: rows[cls_of == c] for c in range(NUM_CLASSES)}
        present = [c for c in range(NUM_CLASSES) if len(pools[c])]
        if not present:
            raise MixmagError(f"split {split}: no sources; check the manifest / bundle")
        missing = [CLASS_NAMES[c] for c in range(NUM_CLASSES) if not len(pools[c])]
        if missing and balance == "equal":
            raise MixmagError(f"split {split}: no sources of {missing}; equal balance needs all "
                              "classes (use --balance natural or another manifest/bundle)")
        per_image = rng.integers(lo, hi + 1, n)
        total = int(per_image.sum())
        if balance == "equal":
            k = len(present)
            classes = np.repeat(present, total // k)
            extra = rng.choice(present, total - len(classes), replace=False)
            classes = rng.permutation(np.concatenate([classes, extra]))
        elif balance == "natural":
            p = np.array([len(pools[c]) for c in present], float)
            classes = rng.choice(present, total, p=p / p.sum())
        else:
            raise MixmagError(f"--balance {balance}: use equal or natural")
        # sources: each class cycles through its pool in fresh random orders, so every source is
        # used about equally often
        sources = np.empty(total, np.int64)
        for c in present:
            where = np.flatnonzero(classes == c)
            pool = pools[c]
            reps = -(-len(where) // len(pool))
            seq = np.concatenate([rng.permutation(pool) for _ in range(max(reps, 1))])
            sources[where] = seq[:len(where)]
        if mag_range is not None:
            m = np.round(rng.uniform(mag_range[0], mag_range[1], total), 4)
        else:
            m = rng.choice(np.asarray(mags, float), total)
        start = 0
        for k in per_image:
            cells_i = [(int(s), float(x)) for s, x in zip(sources[start:start + k], m[start:start + k])]
            plans.append(ImagePlan(image_id, split, f"{image_id:06d}", cells_i))
            image_id += 1
            start += k
    return plans
