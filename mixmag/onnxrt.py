"""Shared ONNX Runtime helpers: whether it is installed, and the session settings every
mixmag session uses (detector and classifier alike)."""

from __future__ import annotations


def onnx_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def session_options():
    """ONNX Runtime settings for predict's sessions. Memory patterns off: ORT plans and keeps one
    allocation pattern per input shape, and the classifier's batch (the cells of a group) changes
    from one group to the next; with them on, predict over 1024² composites held ~500 MB more
    (2.45 vs 1.95 GB RSS at 96 images) for the same CPU time (docs/reliability.md). The arena
    stays on: it is bounded by the largest batch, and without it predict took ~1.6x the CPU time."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.enable_mem_pattern = False
    return so
