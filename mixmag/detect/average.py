"""Weight averaging ("model soup") of detector checkpoints, as ``mixmag.classify.average`` does
for classifiers.

Detectors fine-tuned one from another sit in one loss basin, so the element-wise mean of their
weights is a detector of its own, at no cost at inference. A weighted mean of a detector and one
fine-tuned from it is a point on the line between the two (WiSE-FT, Wortsman et al. 2022): it
trades what the fine-tune learned against what the start knew, often above the straight line
between their figures.

Parts must share architecture. Their classes may differ by classes added at the end (a detector
fine-tuned with ``rbc`` after the eight): each class's output rows are averaged over the parts that
have the class, and the average has the widest part's classes. Anything else is refused in one
line. Checkpoints are read with ``load_checkpoint`` (no code runs from a weight file).
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import MixmagError
from ..fileio import sha256_file
from .weights import load_checkpoint

__all__ = ["average_detectors"]


def _weights(weights, n: int) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    w = [float(x) for x in weights]
    if len(w) != n:
        raise MixmagError(f"{len(w)} weights for {n} detectors: give one a detector")
    if any(not 0 < x < math.inf for x in w):
        raise MixmagError(f"weights {w}: each must be above 0 and finite (leave a detector out "
                          "instead)")
    return [x / sum(w) for x in w]


def average_detectors(paths, weights=None) -> dict:
    """An ultralytics checkpoint whose model's floating-point tensors (weights and BatchNorm
    statistics) are the mean of the parts', weighted by ``weights`` (one a part, normalised;
    equal when None). The class output rows of a class only some parts have are averaged over
    those parts, their weights normalised among them. Integer buffers and everything else come
    from the part with the most classes (the first such). ``ck["mixmag"]["average_of"]`` records
    the parts (path, sha256, weight), ``["classes_from"]`` the widest part."""
    import torch

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise MixmagError("averaging needs at least two detectors")
    w = _weights(weights, len(paths))
    parts = [load_checkpoint(p) for p in paths]
    models = [ck.get("model") for ck in parts]
    for p, m in zip(paths, models):
        if not hasattr(m, "state_dict"):
            raise MixmagError(f"{p}: not a detector checkpoint with a model")
    names = [dict(getattr(m, "names", {})) for m in models]
    wide = max(range(len(paths)), key=lambda i: len(names[i]))
    for p, n in zip(paths, names):
        if any(names[wide].get(i) != c for i, c in n.items()):
            raise MixmagError(f"{p}: classes {list(n.values())} are not "
                              f"{list(names[wide].values())} or the first of them")
    sds = [m.state_dict() for m in models]
    ref = sds[wide]
    for p, n, sd in zip(paths, names, sds):
        if sd.keys() != ref.keys():
            raise MixmagError(f"{p}: another architecture than {paths[wide]}")
        for k, v in sd.items():
            # only the class output layers may differ, and only by their rows: one a class
            if v.shape != ref[k].shape and (v.shape[1:] != ref[k].shape[1:] or v.shape[0] != len(n)
                                            or ref[k].shape[0] != len(names[wide])):
                raise MixmagError(f"{p}: another architecture than {paths[wide]} ({k})")
    mean = {}
    for k, v in ref.items():
        if not v.is_floating_point():
            mean[k] = v
            continue
        if all(sd[k].shape == v.shape for sd in sds):
            mean[k] = sum(wi * sd[k].float() for sd, wi in zip(sds, w)).to(v.dtype)
            continue
        # a class output layer: each row over the parts that have that class
        acc = torch.zeros(v.shape, dtype=torch.float32)
        total = torch.zeros((v.shape[0],) + (1,) * (v.ndim - 1))
        for sd, wi in zip(sds, w):
            rows = sd[k].shape[0]
            acc[:rows] += wi * sd[k].float()
            total[:rows] += wi
        mean[k] = (acc / total).to(v.dtype)
    out = dict(parts[wide])
    model = models[wide]
    model.load_state_dict(mean)
    out["model"] = model
    out["mixmag"] = {**dict(out.get("mixmag") or {}),
                     "average_of": [{"path": str(p), "sha256": sha256_file(p), "weight": round(wi, 6)}
                                    for p, wi in zip(paths, w)],
                     "classes_from": str(paths[wide])}
    return out
