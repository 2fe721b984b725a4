"""Test-time augmentation shared by training-time evaluation, the loaded classifier and its ONNX graph."""

from __future__ import annotations

import torch


def dihedral_probs(model, x, tta: bool) -> torch.Tensor:
    """Softmax of ``model`` on ``x``; with ``tta`` averaged over the 8 flips/90-degree rotations
    (a smear has no up or left, and training saw all eight). The 8 views are made from flips and
    a transpose, not rot90, so the same code traces into the ONNX graph (ONNX has no rot90)."""
    if not tta:
        return model(x).float().softmax(1)
    p = 0
    for v in (x, x.transpose(2, 3)):
        for dims in ((), (2,), (3,), (2, 3)):
            p = p + model(torch.flip(v, dims) if dims else v).float().softmax(1)
    return p / 8
