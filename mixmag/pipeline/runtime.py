"""Runtimes: which backend runs the models (PyTorch or ONNX Runtime), the one-time ONNX exports
predict reuses, and the model loaders with one-line errors for the common failures.

``--backend auto`` runs .pt models through ONNX Runtime on a CPU when it is installed (2-2.5x
faster there), exported once into a cache keyed by the files' content; PyTorch otherwise.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import MixmagError
from ..onnxrt import onnx_available

log = logging.getLogger(__name__)

BACKENDS = ("auto", "pytorch", "onnx")

__all__ = ["BACKENDS", "choose_backend", "load_classifier", "load_detector", "onnx_cached",
           "onnx_cache_dir", "runtime_models"]


def load_detector(path: str | os.PathLike, device: str = "cpu"):
    """A .pt through ultralytics/PyTorch, a .onnx (from `mixmag export`) through ONNX Runtime."""
    from ..detect.detector import load_detector as _load

    return _load(path, device)


def load_classifier(path: str | os.PathLike | None, device: str = "cpu"):
    """A classifier checkpoint (.pt) or an exported classifier.onnx, with one-line errors."""
    from ..classify import load_classifier as _load_checkpoint
    from ..classify.onnx_model import OnnxClassifier

    if not path:
        return None
    if not Path(path).is_file():
        raise MixmagError(f"--classifier {path}: no such file; pass a zoo name (`mixmag models`) "
                          "or a checkpoint written by `mixmag train-classifier` "
                          "(runs/classify/NAME/weights/best.pt)")
    if str(path).lower().endswith(".onnx"):
        if not Path(path).with_suffix(".json").is_file():
            raise MixmagError(f"--classifier {path}: needs {Path(path).with_suffix('.json').name} "
                              "beside it (both written by `mixmag export --classifier`)")
        return OnnxClassifier(path)
    return _load_checkpoint(path, device=device)


def choose_backend(requested: str, device: str) -> str:
    if requested not in BACKENDS:
        raise MixmagError(f"--backend {requested}: expected one of {', '.join(BACKENDS)}")
    if requested == "auto":
        return "onnx" if device == "cpu" and onnx_available() else "pytorch"
    return requested


def runtime_models(detector: str, classifier: str | None, requested: str, device: str
                   ) -> tuple[str, str | None, str]:
    """(detector file, classifier file, backend) to run: ONNX exports for the onnx backend. With
    ``auto`` a failed export falls back to PyTorch with a warning; an explicit onnx fails."""
    backend = choose_backend(requested, device)
    if backend != "onnx":
        return detector, classifier, backend
    try:
        det, clf = onnx_cached(detector, classifier)
    except MixmagError:
        raise
    except Exception as e:  # noqa: BLE001 - auto falls back; an explicit request fails
        if requested == "onnx":
            raise MixmagError(f"--backend onnx: export failed ({type(e).__name__}: {e}); "
                              "use --backend pytorch") from None
        log.warning("ONNX export failed (%s: %s); running with PyTorch", type(e).__name__, e)
        return detector, classifier, "pytorch"
    return det, clf, backend


# part of every cache key: bump it when an export's graph changes for the same checkpoint
# (2: a TTA classifier's dihedral averaging moved inside the graph), so stale exports are not reused
EXPORT_VERSION = 2


def _file_key(path: str | os.PathLike) -> str:
    import hashlib

    h = hashlib.sha1(f"mixmag-export-{EXPORT_VERSION}".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def onnx_cache_dir() -> Path:
    """Where ``predict`` keeps its one-time ONNX exports: $MIXMAG_CACHE/onnx, else the user's
    cache folder ($XDG_CACHE_HOME or ~/.cache)/mixmag/onnx; never beside the weights or in the
    current folder, so a read-only install still works."""
    root = os.environ.get("MIXMAG_CACHE")
    if root:
        return Path(root) / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "mixmag" / "onnx"


def onnx_cached(detector: str, classifier: str | None, cache: str | os.PathLike | None = None):
    """ONNX versions of a .pt detector (and classifier), exported once into ``cache`` (keyed by
    the files' content) and reused: ``--backend onnx``. .onnx inputs are returned as they are."""
    cache = onnx_cache_dir() if cache is None else cache
    out = []
    for kind, path in (("detector", detector), ("classifier", classifier)):
        if path is None or str(path).lower().endswith(".onnx"):
            out.append(path)
            continue
        folder = Path(cache) / f"{kind}-{_file_key(path)}"
        dst = folder / f"{kind}.onnx"
        if not (dst.is_file() and dst.with_suffix(".json").is_file()):
            log.info("exporting %s to %s (once)", path, dst)
            # the exporters need PyTorch: imported only when there is something to export, so
            # a run from cached exports never loads it
            from ..classify.export import export_classifier
            from ..detect.export import export_detector, quiet_ultralytics

            if kind == "detector":
                with quiet_ultralytics():
                    export_detector(path, folder)
            else:
                export_classifier(load_classifier(path), folder, source=str(path))
        out.append(str(dst))
    return tuple(out)
