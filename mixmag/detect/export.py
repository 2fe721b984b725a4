"""ONNX export of the detector (ultralytics exporter) and the classifier (torch.onnx), with parity checks.

Files written to ``--out``:
- ``detector.onnx`` + ``detector.json`` (class names, imgsz, preprocessing: square letterbox to
  imgsz, grey 114, RGB 0–1 NCHW; output (N, 4 + C, anchors) before NMS);
- ``classifier.onnx`` + ``classifier.json`` (class names, input size, mean/std; the graph takes
  RGB 0–1 NCHW at the input size and returns probabilities: normalisation and softmax are inside).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import MixmagError
from ..fileio import atomic_path, write_json

log = logging.getLogger(__name__)


def export_detector(weights: str | os.PathLike, out_dir: Path, opset: int | None = None,
                    dynamic: bool = True) -> Path:
    from .detector import YoloDetector
    from .yolo_env import setup_ultralytics

    det = YoloDetector(weights)  # validates the file, reads names and imgsz
    YOLO = setup_ultralytics()
    out_dir.mkdir(parents=True, exist_ok=True)
    # ultralytics writes the .onnx beside the .pt: export a copy so nothing lands beside the weights
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        local = Path(tmp) / "detector.pt"
        shutil.copyfile(weights, local)
        kw = dict(format="onnx", imgsz=det.imgsz, simplify=False, dynamic=dynamic,
                  nms=False, device="cpu", verbose=False)
        if opset:
            kw["opset"] = opset
        produced = Path(YOLO(str(local), task="detect").export(**kw))
        dst = out_dir / "detector.onnx"
        with atomic_path(dst) as t:
            shutil.move(str(produced), t)
    write_json(out_dir / "detector.json", {
        "format": "mixmag-onnx-detector/1", "names": det.names, "imgsz": det.imgsz,
        "train_canvas": det.train_canvas,
        "source": str(weights), "dynamic": dynamic,
        "preprocess": "square letterbox to imgsz (ultralytics LetterBox auto=False, pad 114), "
                      "BGR->RGB, /255, NCHW float32",
        "postprocess": "class-agnostic NMS (ultralytics non_max_suppression), scale_boxes"})
    return dst


class _ClassifierGraph(torch.nn.Module):
    """RGB 0–1 NCHW → probabilities: the checkpoint's normalisation, softmax and (for a checkpoint
    scored so) the 8-view dihedral averaging travel inside, so ONNX answers as PyTorch does."""

    def __init__(self, net: torch.nn.Module, mean, std, tta: bool = False):
        super().__init__()
        self.net, self.tta = net, bool(tta)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x):
        from ..classify.train import dihedral_probs

        return dihedral_probs(self.net, (x - self.mean) / self.std, self.tta)


def classifier_module(clf) -> torch.nn.Module:
    net = next((getattr(clf, a) for a in ("model", "net", "module")
                if isinstance(getattr(clf, a, None), torch.nn.Module)), None)
    if net is None:
        raise MixmagError("--classifier: the loaded classifier exposes no torch module "
                          "(.model); cannot export it to ONNX")
    return _ClassifierGraph(net.eval().cpu(), list(clf.mean), list(clf.std),
                            tta=getattr(clf, "tta", False)).eval()


def classifier_input(crops: list[np.ndarray], size: int) -> np.ndarray:
    """BGR crops → (N, 3, size, size) RGB 0–1, the classifier graph's input."""
    arr = [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA if c.shape[0] > size
                      else cv2.INTER_LINEAR)[..., ::-1] for c in crops]
    return np.ascontiguousarray(np.stack(arr).transpose(0, 3, 1, 2)).astype(np.float32) / 255.0


def export_classifier(clf, out_dir: Path, source: str = "", opset: int = 17) -> Path:
    graph = classifier_module(clf)
    size = int(clf.input_size)
    dst = out_dir / "classifier.onnx"
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        torch.onnx.export(graph, torch.rand(1, 3, size, size), str(tmp), input_names=["images"],
                          output_names=["probs"], opset_version=opset,
                          dynamic_axes={"images": {0: "batch"}, "probs": {0: "batch"}},
                          dynamo=False)
    write_json(out_dir / "classifier.json", {
        "format": "mixmag-onnx-classifier/1", "class_names": list(clf.class_names),
        "input_size": size, "mean": list(clf.mean), "std": list(clf.std), "source": source,
        "tta": bool(getattr(clf, "tta", False)),
        "preprocess": "resize square to input_size, BGR->RGB, /255, NCHW float32 "
                      "(mean/std applied inside the graph)"})
    return dst


class OnnxClassifier:
    """``classifier.onnx`` with the same interface as mixmag.classify's Classifier."""

    def __init__(self, path: str | os.PathLike):
        import onnxruntime as ort

        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        self.class_names = meta["class_names"]
        self.input_size = int(meta["input_size"])
        self.session = ort.InferenceSession(str(path), session_options(),
                                            providers=["CPUExecutionProvider"])

    def predict(self, crops, batch_size: int = 64) -> np.ndarray:
        out = [self.session.run(None, {"images": classifier_input(crops[i:i + batch_size],
                                                                   self.input_size)})[0]
               for i in range(0, len(crops), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)


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


def torch_classifier_probs(clf, crops) -> np.ndarray:
    graph = classifier_module(clf)
    with torch.inference_mode():
        return graph(torch.from_numpy(classifier_input(crops, int(clf.input_size)))).numpy()


def detector_parity(pt_weights, onnx_path, images: list[np.ndarray], conf: float = 0.25,
                    iou: float = 0.6) -> dict:
    """Same images, same preprocessing, both backends: box and class agreement."""
    from torchvision.ops import box_iou

    from .detector import OnnxDetector, YoloDetector

    a = YoloDetector(pt_weights).predict(images, conf, iou)
    b = OnnxDetector(onnx_path).predict(images, conf, iou)
    worst_iou, same_count, same_cls, max_conf = 1.0, True, True, 0.0
    for da, db in zip(a, b):
        if len(da) != len(db):
            same_count = False
            continue
        if not len(da):
            continue
        m = box_iou(torch.from_numpy(da[:, :4]), torch.from_numpy(db[:, :4])).numpy()
        j = m.argmax(1)
        worst_iou = min(worst_iou, float(m[np.arange(len(da)), j].min()))
        same_cls &= bool((da[:, 5] == db[j, 5]).all())
        max_conf = max(max_conf, float(np.abs(da[:, 4] - db[j, 4]).max()))
    return {"images": len(images), "boxes": int(sum(len(d) for d in a)), "same_count": same_count,
            "same_classes": same_cls, "min_box_iou": worst_iou, "max_conf_diff": max_conf}


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


@contextlib.contextmanager
def _quiet_ultralytics():
    """The exporter's banner (a dozen lines, 'Visualize: netron.app') would bury predict's own
    output on the first run; its warnings and errors still show."""
    lg = logging.getLogger("ultralytics")
    level = lg.level
    lg.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        lg.setLevel(level)


def onnx_cache_dir() -> Path:
    """Where ``predict`` keeps its one-time ONNX exports: $MIXMAG_CACHE/onnx, else the user's
    cache folder ($XDG_CACHE_HOME or ~/.cache)/mixmag/onnx; never beside the weights or in the
    current folder, so a read-only install still works."""
    root = os.environ.get("MIXMAG_CACHE")
    if root:
        return Path(root) / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "mixmag" / "onnx"


def onnx_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


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
            if kind == "detector":
                with _quiet_ultralytics():
                    export_detector(path, folder)
            else:
                from .cli import load_classifier

                export_classifier(load_classifier(path), folder, source=str(path))
        out.append(str(dst))
    return tuple(out)
