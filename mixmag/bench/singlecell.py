"""Single-cell protocol helpers shared by the classification benchmarks (issue 4).

``SCALES`` are the rescaled-test magnifications; ``softmax_pred`` applies a fine-tuned network's
own head to its pooled features (its softmax argmax, without running the backbone again);
``checkpoint_features`` gives a checkpoint's pooled features of some images, uncached;
``fitted_head`` fits one classical head with fixed parameters.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["SCALES", "checkpoint_features", "fitted_head", "softmax_pred"]

# the rescaled-test protocol: each cell shrunk or enlarged inside its canvas to these scales
SCALES = (0.5, 1.0, 1.5)


def softmax_pred(ckpt: str | os.PathLike, X: np.ndarray, device: str) -> np.ndarray:
    """The fine-tuned network's own head applied to its pooled features (= its softmax argmax)."""
    import torch

    from ..classify.checkpoint import load_classifier

    m = load_classifier(ckpt, device).model
    layer = m.get_classifier() if hasattr(m, "get_classifier") else (m.fc if hasattr(m, "fc") else m.head)
    with torch.no_grad():
        return layer.eval()(torch.from_numpy(X).to(device)).float().argmax(1).cpu().numpy()


def checkpoint_features(ckpt: str | os.PathLike, src, indices, device: str = "cpu") -> np.ndarray:
    """Pooled features of just these images of ``src`` (a ``mixmag.classify.data`` source)
    through a fine-tuned checkpoint at its own input size and normalisation, uncached: for the
    parts of a split a sweep needs, not all of it."""
    import torch

    from ..classify.checkpoint import build_model, read_checkpoint
    from ..classify.features import pooled_features
    from ..classify.registry import get_backbone

    ck = read_checkpoint(str(ckpt))
    net = build_model(ck, str(ckpt))
    parts = (net, get_backbone(ck["backbone"]).pooled, ck["mean"], ck["std"], int(ck["input_size"]))
    return pooled_features(parts, src, indices, torch.device(device))


def fitted_head(kind: str, params: dict, X: np.ndarray, y: np.ndarray, seed: int = 0):
    """A classical head of ``kind`` (mixmag.classify.heads) with fixed ``params``, fitted on X, y."""
    from ..classify.heads import estimator

    return estimator(kind, params, seed).fit(X, y)
