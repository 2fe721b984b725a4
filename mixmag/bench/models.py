"""Model arguments of the benchmarks: zoo names or paths, and the short names results are keyed by.

Every model argument goes through ``resolve_model``: a zoo name (``mixmag models``) gives its
weights file (checked against the zoo's sha256), anything else is a path to a user's own file
(e.g. an archived model brought back from git history). The names results are keyed by are taken
from the resolved file, so a model gives the same key whether it was named or given by path.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["checkpoint_name", "resolve_model", "short_name"]


def resolve_model(spec: str | os.PathLike, task: str) -> str:
    """The weights file of a zoo name or a path, as a string; ``A+B`` (an ensemble) resolves each
    part. ``task``: ``detect`` or ``classify``."""
    from ..zoo import resolve

    if "+" in str(spec):
        return "+".join(resolve_model(q, task) for q in str(spec).split("+"))
    return str(resolve(str(spec), task)[0])


def short_name(path: str | os.PathLike) -> str:
    """A weights file's key in results: the folder of a ``best.pt`` (a zoo model's folder is its
    name: detector-yolo11n-640-8class-ft → yolo11n-640-8class-ft), runs/X/weights/best.pt → X,
    other files → their stem, with the ``detector-`` / ``classifier-`` prefix dropped; A.pt+B.pt
    (an ensemble) → both, '+'-joined."""
    if "+" in str(path):
        return "+".join(short_name(q) for q in str(path).split("+"))
    p = Path(path)
    name = p.parent.name if p.stem in ("best", "last", "detector", "classifier") else p.stem
    if name == "weights":
        name = p.parent.parent.name
    for prefix in ("detector-", "classifier-"):
        name = name.removeprefix(prefix)
    return name


def checkpoint_name(path: str | os.PathLike) -> str:
    """A classifier checkpoint's key in single-cell results: the folder holding it
    (models/X/best.pt and runs/classify/X/weights/best.pt → X)."""
    p = Path(path).parent
    return p.parent.name if p.name == "weights" else p.name
