"""ONNX export of the detector (ultralytics exporter), with a parity check against PyTorch.

Files written to ``--out``: ``detector.onnx`` + ``detector.json`` (class names, imgsz,
preprocessing: square letterbox to imgsz, grey 114, RGB 0–1 NCHW; output (N, 4 + C, anchors)
before NMS).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..fileio import atomic_path, write_json

log = logging.getLogger(__name__)


def export_detector(weights: str | os.PathLike, out_dir: Path, opset: int | None = None,
                    dynamic: bool = True) -> Path:
    from .detector import YoloDetector
    from .weights import check_file
    from .yolo_env import setup_ultralytics

    det = YoloDetector(weights)  # validates the file, reads names and imgsz
    YOLO = setup_ultralytics()
    out_dir.mkdir(parents=True, exist_ok=True)
    # ultralytics writes the .onnx beside the .pt: export a copy so nothing lands beside the weights
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        local = Path(tmp) / "detector.pt"
        shutil.copyfile(weights, local)
        check_file(local)  # the copy ultralytics unpickles is the file the restricted loader read
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


@contextlib.contextmanager
def quiet_ultralytics():
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
