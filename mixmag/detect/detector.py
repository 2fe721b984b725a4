"""The detector at inference: one preprocessing for PyTorch and ONNX Runtime alike.

ultralytics' own ``predict`` letterboxes to the smallest stride multiple (``rect``) for .pt models
but to the full square for a static ONNX graph, so the two give slightly different boxes on the
same image — a pitfall users report. Here both backends get the same square letterbox and the same
class-agnostic NMS (``mixmag.detect.boxes``: ultralytics' arithmetic in NumPy/OpenCV), one box per
cell whatever its class. The ONNX detector never imports PyTorch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import MixmagError
from .boxes import as_input, decode, scale_boxes, scaled_canvas, to_batch, unscale_boxes


class _Base:
    names: dict[int, str]
    imgsz: int
    train_canvas: int  # side (px) of the images it was trained on; imgsz when unknown

    def preprocess(self, images: list[np.ndarray]) -> np.ndarray:
        """BGR uint8 images → (N, 3, imgsz, imgsz) float32 RGB 0–1, letterboxed."""
        return to_batch(images, self.imgsz)

    def postprocess(self, raw: np.ndarray, shapes: list[tuple[int, int]], conf: float,
                    iou: float) -> list[np.ndarray]:
        """Raw head output → (n, 6) per image: x1 y1 x2 y2 conf class in image pixels."""
        out = decode(raw, conf, iou, max_det=1000)
        for det, shape in zip(out, shapes):
            scale_boxes(self.imgsz, det[:, :4], shape)  # det[:, :4] is a view: scaled in place
        return out

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def predict(self, images: list[np.ndarray], conf: float = 0.25, iou: float = 0.6,
                batch_size: int = 16) -> list[np.ndarray]:
        """(N, 6) arrays: x1 y1 x2 y2 conf class (image pixels), one per image."""
        out = []
        for i in range(0, len(images), batch_size):
            chunk = images[i:i + batch_size]
            raw = self.forward(self.preprocess(chunk))
            out += self.postprocess(raw, [im.shape[:2] for im in chunk], conf, iou)
        return out


    def predict_scaled(self, images: list[np.ndarray], scale: float, conf: float = 0.25,
                       iou: float = 0.6, batch_size: int = 8, min_side: int = 32) -> list[np.ndarray]:
        """Like ``predict`` for images smaller than a tile: each scaled by ``scale`` onto the
        smallest stride-aligned canvas (``boxes.scaled_canvas``) instead of padded to a whole
        tile, canvases of one shape batched together, a batch holding about the pixels of
        ``batch_size`` full inputs; sides at least ``min_side``. The cells reach the network at
        the same scale."""
        canvases = [scaled_canvas(im, scale, min_side) for im in images]
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i, c in enumerate(canvases):
            by_shape.setdefault(c.shape[:2], []).append(i)
        out: list[np.ndarray | None] = [None] * len(images)
        for (H, W), idx in by_shape.items():
            n = max(1, batch_size * self.imgsz * self.imgsz // (H * W))
            for k in range(0, len(idx), n):
                part = idx[k:k + n]
                raw = self.forward(as_input([canvases[i] for i in part]))
                for i, det in zip(part, decode(raw, conf, iou, max_det=1000)):
                    out[i] = unscale_boxes(det, scale, images[i].shape[:2])
        return out


class YoloDetector(_Base):
    """A trained ultralytics detector (.pt) run with mixmag's preprocessing."""

    def __init__(self, weights: str | os.PathLike, device: str = "cpu", half: bool | None = None):
        from .yolo_env import setup_ultralytics

        weights = Path(weights)
        if not weights.is_file():
            raise MixmagError(f"--detector {weights}: no such file; pass a zoo name (`mixmag models`) "
                              "or a trained detector (runs/detect/NAME/weights/best.pt)")
        import torch

        from .weights import load_checkpoint

        device = _check_device(device)
        setup_ultralytics()
        bad = f"--detector {weights}: not an ultralytics detector checkpoint"
        if weights.suffix.lower() != ".pt":
            raise MixmagError(f"{bad} (expected a .pt, or a .onnx from `mixmag export`)")
        # the restricted unpickler: a crafted file is refused before anything in it runs
        ckpt = load_checkpoint(weights)
        model = ckpt.get("ema") or ckpt.get("model")
        if not isinstance(model, torch.nn.Module):
            raise MixmagError(bad)
        from ultralytics.nn.tasks import guess_model_task

        task = guess_model_task(model)
        if task != "detect":
            raise MixmagError(f"--detector {weights}: a '{task}' model, not a detector")
        model = model.float()  # as ultralytics loads it (checkpoints are stored in half precision)
        self.weights = weights
        self.model = model.fuse().eval().to(device) if hasattr(model, "fuse") else model.eval().to(device)
        self.names = {int(k): v for k, v in model.names.items()}
        # the training settings over ultralytics' defaults, as its own loader reads them
        from ultralytics.cfg import DEFAULT_CFG_DICT

        args = {**DEFAULT_CFG_DICT, **(ckpt.get("train_args") or {})}
        imgsz = args.get("imgsz", 640)
        self.imgsz = int(imgsz[0] if isinstance(imgsz, (list, tuple)) else imgsz)
        record = ckpt.get("mixmag") or {}
        self.train_canvas = int(record.get("train_canvas") or self.imgsz)
        self.device = torch.device(device)
        self.half = (self.device.type == "cuda") if half is None else half
        if self.half:
            self.model.half()

    def forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            x = x.half() if self.half else x
            y = self.model(x)
            y = y[0] if isinstance(y, (list, tuple)) else y
            return y.float().cpu().numpy()


class OnnxDetector(_Base):
    """The same detector exported by ``mixmag export`` (``detector.onnx`` + ``detector.json``)."""

    def __init__(self, onnx_path: str | os.PathLike, providers: list[str] | None = None):
        from ..onnxrt import open_session, read_sidecar

        onnx_path = Path(onnx_path)
        meta = read_sidecar(onnx_path, ("names", "imgsz"), "--detector")
        try:
            self.names = {int(k): str(v) for k, v in dict(meta["names"]).items()}
            self.imgsz = int(meta["imgsz"])
            self.train_canvas = int(meta.get("train_canvas") or self.imgsz)
        except (TypeError, ValueError):
            raise MixmagError(f"--detector {onnx_path.with_suffix('.json')}: names or imgsz "
                              "malformed; export the model again with `mixmag export`") from None
        self.session = open_session(onnx_path, "--detector", providers)
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]


def _check_device(device: str) -> str:
    import torch

    device = str(device or "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MixmagError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda") or device == "mps"):
        raise MixmagError(f"--device {device}: expected cpu, cuda or cuda:N")
    return device


def load_detector(path: str | os.PathLike, device: str = "cpu"):
    """A .pt through ultralytics/PyTorch, a .onnx (from `mixmag export`) through ONNX Runtime."""
    if str(path).lower().endswith(".onnx"):
        return OnnxDetector(path)
    return YoloDetector(path, device=device)
