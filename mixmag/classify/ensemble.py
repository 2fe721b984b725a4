"""Several classifiers as one: the mean of their class probabilities.

Unlike a weight average (``average-classifiers``), the members may differ in backbone, input size
and normalisation: each prepares the crop its own way from the uncut crop, so a Lite0 at 160 px and
a Lite2 at 224 px both see what they would see alone. The cost is the sum of the members'.
Scored with ``benchmarks/detect.py --classifier A.pt+B.pt``; not offered by ``mixmag predict``,
because no ensemble has measured better than the default classifier alone (docs/detect.md).
"""

from __future__ import annotations

import numpy as np

from ..errors import MixmagError


class ClassifierEnsemble:
    """``predict(crops BGR) -> (N, C)``: the mean of the members' probabilities."""

    def __init__(self, members, paths=None):
        self.members = list(members)
        if len(self.members) < 2:
            raise MixmagError("an ensemble needs at least two classifiers")
        self.class_names = list(self.members[0].class_names)
        for i, m in enumerate(self.members[1:], 1):
            if list(m.class_names) != self.class_names:
                label = paths[i] if paths else f"member {i}"
                raise MixmagError(f"--classifier {label}: classes {list(m.class_names)} differ from "
                                  f"the first classifier's {self.class_names}; an ensemble needs the "
                                  "same classes in the same order")
        # crops are handed over uncut (no resize): each member resizes to its own input, as alone
        self.input_size = None

    def predict(self, crops, batch_size: int = 64) -> np.ndarray:
        if not len(crops):
            return np.zeros((0, len(self.class_names)), np.float32)
        p = sum(np.asarray(m.predict(crops, batch_size=batch_size), np.float64) for m in self.members)
        return (p / len(self.members)).astype(np.float32)
