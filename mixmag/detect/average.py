"""Weight averaging ("model soup") of detector checkpoints, as ``mixmag.classify.average`` does
for classifiers.

Detectors fine-tuned one from another on the same kind of data sit in one loss basin, so the
element-wise mean of their weights is a detector of its own, at no cost at inference. Parts must
share architecture and classes; anything else is refused in one line. Checkpoints are read with
``load_checkpoint`` (no code runs from a weight file).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MixmagError
from ..fileio import sha256_file
from .weights import load_checkpoint

__all__ = ["average_detectors"]


def average_detectors(paths) -> dict:
    """An ultralytics checkpoint whose model's floating-point tensors (weights and BatchNorm
    statistics) are the mean of the parts'; integer buffers, and everything else, come from the
    first part. ``ck["mixmag"]["average_of"]`` records the parts (path, sha256)."""
    import torch

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise MixmagError("averaging needs at least two detectors")
    parts = [load_checkpoint(p) for p in paths]
    models = [ck.get("model") for ck in parts]
    for p, m in zip(paths, models):
        if not hasattr(m, "state_dict"):
            raise MixmagError(f"{p}: not a detector checkpoint with a model")
    names = [dict(getattr(m, "names", {})) for m in models]
    sds = [m.state_dict() for m in models]
    for p, n, sd in zip(paths[1:], names[1:], sds[1:]):
        if n != names[0]:
            raise MixmagError(f"{p}: classes {list(n.values())} differ from {list(names[0].values())}")
        if sd.keys() != sds[0].keys() or any(sd[k].shape != sds[0][k].shape for k in sd):
            raise MixmagError(f"{p}: another architecture than {paths[0]}")
    mean = {}
    for k, v in sds[0].items():
        if v.is_floating_point():
            mean[k] = (torch.stack([sd[k].float() for sd in sds]).mean(0)).to(v.dtype)
        else:
            mean[k] = v
    out = dict(parts[0])
    model = models[0]
    model.load_state_dict(mean)
    out["model"] = model
    out["mixmag"] = {**dict(out.get("mixmag") or {}),
                     "average_of": [{"path": str(p), "sha256": sha256_file(p)} for p in paths]}
    return out
