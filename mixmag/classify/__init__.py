"""Single-cell classifiers: backbones (registry), training, checkpoints, classical heads.

``load_classifier(path, device)`` is the entry point for other stages (docs/CONTRACTS.md).
"""


def load_classifier(path, device="cpu", **kw):
    from .checkpoint import load_classifier as _load

    return _load(path, device, **kw)


__all__ = ["load_classifier"]
