"""Weight averaging ("model soup", Wortsman et al. 2022) of classifier checkpoints.

Checkpoints fine-tuned one from another (e.g. successive rounds on detector crops) sit in one
loss basin, so the element-wise mean of their weights is a model of its own, often better than
each part, at no cost at inference. Only parts that share backbone, classes, input size,
mean/std and inference settings can be averaged; anything else is refused with one line.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import MixmagError
from ..fileio import prepare_output, sha256_file
from .checkpoint import _plain, read_checkpoint, write_checkpoint

# what must agree for the mean of the weights to be one model with one preprocessing
_SAME = ("backbone", "class_names", "input_size", "mean", "std")


def average_checkpoints(paths, mix=None) -> dict:
    """A checkpoint whose floating-point tensors are the mean of the parts', weighted by ``mix``.

    Integer buffers (BatchNorm's ``num_batches_tracked``) come from the last part, as do the
    ``args`` that inference reads (e.g. ``tta``), which must agree across parts anyway. The
    result records its parts (path, sha256, coefficient) under ``args["average_of"]``.
    """
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise MixmagError("averaging needs at least two checkpoints")
    if mix is None:
        mix = [1.0] * len(paths)
    if len(mix) != len(paths):
        raise MixmagError(f"--mix: {len(mix)} coefficients for {len(paths)} checkpoints; "
                          "give one a checkpoint")
    if not all(math.isfinite(w) and w >= 0 for w in mix) or sum(mix) <= 0:
        raise MixmagError(f"--mix {' '.join(map(str, mix))}: coefficients must be finite, "
                          "non-negative and not all zero")
    parts = [read_checkpoint(p, expect_classes=None) for p in paths]
    first = parts[0]
    for p, ck in zip(paths[1:], parts[1:]):
        for key in _SAME:
            if ck[key] != first[key]:
                raise MixmagError(f"cannot average {p} with {paths[0]}: {key} differs "
                                  f"({ck[key]!r} vs {first[key]!r})")
        # the split manifest's hash is the leakage guard of later steps (train --init, adapt):
        # a part trained on another split must not hide behind the last part's hash
        a, b = ck.get("manifest_hash", ""), first.get("manifest_hash", "")
        if a and b and a != b:
            raise MixmagError(f"cannot average {p} with {paths[0]}: trained on different split "
                              f"manifests ({a} vs {b})")
        if bool(ck.get("args", {}).get("tta")) != bool(first.get("args", {}).get("tta")):
            raise MixmagError(f"cannot average {p} with {paths[0]}: one is scored with TTA, the other not")
        if set(ck["state_dict"]) != set(first["state_dict"]):
            raise MixmagError(f"cannot average {p} with {paths[0]}: their weights have different layers")
        for k, v in ck["state_dict"].items():
            if v.shape != first["state_dict"][k].shape:
                raise MixmagError(f"cannot average {p} with {paths[0]}: layer {k} is "
                                  f"{tuple(v.shape)} vs {tuple(first['state_dict'][k].shape)}")
    total = float(sum(mix))
    last = parts[-1]
    sd = {}
    for k, v in last["state_dict"].items():
        if v.is_floating_point():
            # float32 accumulation: released parts may be fp16; the soup is stored as float32
            sd[k] = sum(w * ck["state_dict"][k].float() for w, ck in zip(mix, parts)) / total
        else:
            sd[k] = v.clone()
    out = {k: v for k, v in last.items() if k not in ("state_dict", "train_state", "args", "metrics")}
    out["state_dict"] = sd
    out["args"] = _plain({**last.get("args", {}), "average_of": [
        {"path": str(p), "sha256": sha256_file(p), "coefficient": w} for p, w in zip(paths, mix)]})
    # the parts' training metrics do not describe the average; score it before quoting figures
    out["metrics"] = {"averaged": len(paths)}
    return out


def write_average(paths, out, mix=None, overwrite: bool = False, half: bool = False) -> int:
    """Average ``paths`` into the checkpoint file ``out``; returns its size in bytes."""
    prepare_output(out, overwrite, "checkpoint")
    return write_checkpoint(average_checkpoints(paths, mix), out, half=half)
