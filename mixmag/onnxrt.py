"""Shared ONNX Runtime helpers: whether it is installed, and the session settings every
mixmag session uses (detector and classifier alike)."""

from __future__ import annotations

import os


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
    # ORT's worker threads spin between operators by default: on a busy machine (other jobs,
    # predict's own reading thread) the spinning takes the cores the next operator needs.
    # MIXMAG_ORT_SPIN=1 turns it back on (docs/HISTORY.md, 2026-12-07: spinning)
    so.add_session_config_entry("session.intra_op.allow_spinning",
                                "1" if os.environ.get("MIXMAG_ORT_SPIN") == "1" else "0")
    threads = os.environ.get("MIXMAG_ORT_THREADS")
    if threads:  # a Ray actor's share of the node's CPUs (mixmag.pipeline.ray_engine)
        so.intra_op_num_threads = int(threads)
    return so


def read_sidecar(onnx_path, keys: tuple[str, ...], what: str) -> dict:
    """The JSON written beside an exported .onnx (``detector.json`` / ``classifier.json``), with
    the keys predict needs, or a one-line error naming the file and the fix."""
    import json
    from pathlib import Path

    from .errors import MixmagError

    onnx_path = Path(onnx_path)
    meta_path = onnx_path.with_suffix(".json")
    if not onnx_path.is_file() or not meta_path.is_file():
        raise MixmagError(f"{what} {onnx_path}: need the .onnx file and its .json beside it "
                          "(both written by `mixmag export`)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise MixmagError(f"{what} {meta_path}: not readable JSON ({type(e).__name__}); export "
                          "the model again with `mixmag export`") from None
    missing = [k for k in keys if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise MixmagError(f"{what} {meta_path}: lacks {', '.join(missing)}; export the model "
                          "again with `mixmag export`")
    return meta


def open_session(onnx_path, what: str, providers: list[str] | None = None):
    """An ONNX Runtime session with mixmag's settings, or a one-line error for a file ONNX
    Runtime cannot load (damaged, not ONNX, an unsupported opset)."""
    import onnxruntime as ort

    from .errors import MixmagError

    try:
        return ort.InferenceSession(str(onnx_path), session_options(),
                                    providers=providers or ["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for bad models
        first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise MixmagError(f"{what} {onnx_path}: ONNX Runtime cannot load it ({first}); export "
                          "the model again with `mixmag export`") from None
