"""Several classifiers as one: their class probabilities averaged (``predict --classifier A B``).

Unlike a weight average (``average-classifiers``), the members may differ in backbone, input size
and normalisation: each prepares the crop its own way from the uncut crop, so a Lite0 at 160 px and
a Lite2 at 224 px both see what they would see alone. The cost is the sum of the members'.
"""

from __future__ import annotations

import numpy as np

from ..errors import MixmagError


class ClassifierEnsemble:
    """``predict(crops BGR) -> (N, C)``: the mean of the members' probabilities (or a weighted mean)."""

    def __init__(self, members, weights=None, paths=None):
        members = list(members)
        if len(members) < 2:
            raise MixmagError("an ensemble needs at least two classifiers")
        names = list(members[0].class_names)
        for i, m in enumerate(members[1:], 1):
            if list(m.class_names) != names:
                label = paths[i] if paths else f"member {i}"
                raise MixmagError(f"--classifier {label}: classes {list(m.class_names)} differ from "
                                  f"the first classifier's {names}; an ensemble needs the same classes "
                                  "in the same order")
        w = np.ones(len(members)) if weights is None else np.asarray(weights, float)
        if w.shape != (len(members),) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise MixmagError(f"ensemble weights {list(np.atleast_1d(w))}: give one finite, "
                              f"non-negative weight per classifier ({len(members)}), not all zero")
        self.members = members
        self.weights = w / w.sum()
        self.class_names = names
        self.paths = [str(p) for p in paths] if paths else [getattr(m, "path", "?") for m in members]
        # crops are handed over uncut (no resize): each member resizes to its own input, as alone
        self.input_size = None

    def predict(self, crops, batch_size: int = 64) -> np.ndarray:
        if not len(crops):
            return np.zeros((0, len(self.class_names)), np.float32)
        p = sum(w * np.asarray(m.predict(crops, batch_size=batch_size), np.float64)
                for w, m in zip(self.weights, self.members))
        return p.astype(np.float32)
