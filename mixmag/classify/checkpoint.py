"""The classifier checkpoint (docs/CONTRACTS.md) and the inference object built from it.

Preprocessing travels with the weights: backbone name, input size, mean/std and class names are
read from the checkpoint, never from defaults. Loading uses ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..classes import CLASS_NAMES
from ..errors import MixmagError
from ..fileio import atomic_path
from .augment import prepare
from .data import to_input
from .registry import BACKBONES, get_backbone
from .tta import dihedral_probs

FORMAT = "mixmag-classifier/1"
REQUIRED = ("format", "backbone", "class_names", "input_size", "mean", "std", "state_dict")


def save_checkpoint(path, model, *, backbone: str, class_names, input_size: int, mean, std,
                    manifest_hash: str, train_scale, args: dict, metrics: dict,
                    train_state: dict | None = None, half: bool = False) -> None:
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ck = {
        "format": FORMAT, "backbone": backbone, "class_names": list(class_names),
        "input_size": int(input_size), "mean": [float(v) for v in mean],
        "std": [float(v) for v in std], "state_dict": sd, "manifest_hash": str(manifest_hash),
        "train_scale": [float(v) for v in train_scale] if train_scale else [1.0, 1.0],
        "args": _plain(args), "metrics": _plain(metrics),
    }
    if train_state is not None:
        ck["train_state"] = train_state
    write_checkpoint(ck, path, half=half)


def write_checkpoint(ck: dict, path, half: bool = False) -> int:
    """Write a checkpoint dict atomically (fp16 floating-point weights with ``half``; read back
    as float32). Returns the file's size in bytes."""
    if half:
        ck = {**ck, "state_dict": {k: v.half() if v.is_floating_point() else v
                                   for k, v in ck["state_dict"].items()}}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(ck, tmp)
    return Path(path).stat().st_size


def half_checkpoint(src, dst, overwrite: bool = False) -> int:
    """Copy a checkpoint with fp16 weights and no training state (for release; half the size).
    ``load_classifier`` reads it back as float32. Returns the new file's size in bytes."""
    from ..fileio import prepare_output

    prepare_output(dst, overwrite, "checkpoint")
    ck = read_checkpoint(src, expect_classes=None)
    ck.pop("train_state", None)
    return write_checkpoint(ck, dst, half=True)


def _plain(obj):
    """Only types torch.load(weights_only=True) accepts (and JSON would): dicts, lists, str, numbers."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def read_checkpoint(path, expect_classes=CLASS_NAMES) -> dict:
    """Load and check a checkpoint dict; one-line MixmagError for anything that is not usable."""
    path = Path(path)
    if not path.is_file():
        raise MixmagError(f"classifier {path}: no such file; train one with `mixmag train-classifier`")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise MixmagError(f"classifier {path}: not a loadable mixmag checkpoint "
                          f"({type(e).__name__}); use a best.pt written by `mixmag train-classifier`") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise MixmagError(f"classifier {path}: not a {FORMAT} checkpoint "
                          f"(format {ck.get('format') if isinstance(ck, dict) else type(ck).__name__!s}); "
                          "use a best.pt written by `mixmag train-classifier`")
    missing = [k for k in REQUIRED if k not in ck]
    if missing:
        raise MixmagError(f"classifier {path}: checkpoint lacks {missing}; it is damaged, retrain")
    if ck["backbone"] not in BACKBONES:
        raise MixmagError(f"classifier {path}: unknown backbone {ck['backbone']!r} "
                          f"(this mixmag knows {sorted(BACKBONES)}); update mixmag or retrain")
    names = list(ck["class_names"])
    if expect_classes is not None and names != list(expect_classes):
        raise MixmagError(f"classifier {path}: trained for {len(names)} classes {names}, "
                          f"this pipeline needs the {len(expect_classes)} PBC classes; use a matching model")
    return ck


def build_model(ck: dict, path="checkpoint"):
    b = get_backbone(ck["backbone"])
    model, _ = b.build(len(ck["class_names"]), pretrained=False)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in ck["state_dict"].items()}
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise MixmagError(f"classifier {path}: weights do not fit backbone {ck['backbone']} with "
                          f"{len(ck['class_names'])} classes ({str(e).splitlines()[0][:100]})") from None
    return model


SIZE_RULES = ("mean", "max-confidence")


def combine_sizes(per_size: list[np.ndarray], rule: str = "mean") -> np.ndarray:
    """One (N, C) answer from the probabilities at several input sizes.

    ``mean`` averages them; ``max-confidence`` takes, per image, the size whose top probability is
    highest, so a size that sees a cell at a scale it was not trained for (a 1.5x cell enlarged
    further) only speaks where it is surer than the others.
    """
    p = np.stack([np.asarray(q, np.float64) for q in per_size])
    if rule == "mean" or len(p) == 1:
        return p.mean(0)
    if rule == "max-confidence":
        best = p.max(2).argmax(0)
        return p[best, np.arange(p.shape[1])]
    raise MixmagError(f"size rule {rule}: expected one of {', '.join(SIZE_RULES)}")


class Classifier:
    """A loaded single-cell classifier: ``predict(crops BGR) -> (N, C) probabilities``."""

    def __init__(self, ck: dict, device="cpu", path="checkpoint"):
        self.path = str(path)
        self.backbone = ck["backbone"]
        self.class_names = list(ck["class_names"])
        self.input_size = int(ck["input_size"])
        self.mean, self.std = list(ck["mean"]), list(ck["std"])
        self.metrics, self.args = ck.get("metrics", {}), ck.get("args", {})
        self.manifest_hash = ck.get("manifest_hash", "")
        self.tta = bool(self.args.get("tta", False))  # scored with dihedral TTA when trained so
        # input sizes whose probabilities are combined by size_rule (multi-resolution TTA; set with
        # ``mixmag classify --tta-sizes/--tta-rule``): a larger input gives a small (0.5x) cell more pixels
        self.sizes: list[int] | None = None  # None: the input size alone
        self.size_rule = "mean"
        self.device = torch.device(device)
        self.model = build_model(ck, path).to(self.device).eval()

    def _batches(self, crops, batch_size, size: int | None = None):
        for s in range(0, len(crops), batch_size):
            imgs = []
            for j, c in enumerate(crops[s:s + batch_size]):
                if not (isinstance(c, np.ndarray) and c.dtype == np.uint8 and c.ndim == 3
                        and c.shape[2] == 3 and min(c.shape[:2]) >= 1):
                    raise MixmagError(f"crop {s + j}: expected an HxWx3 uint8 BGR array, got "
                                      f"{getattr(c, 'shape', type(c).__name__)} "
                                      f"{getattr(c, 'dtype', '')}")
                imgs.append(prepare(c, size or self.input_size))
            yield to_input(torch.from_numpy(np.stack(imgs)), self.mean, self.std, self.device)

    @torch.inference_mode()
    def predict(self, crops, batch_size: int = 64) -> np.ndarray:
        if not len(crops):
            return np.zeros((0, len(self.class_names)), np.float32)
        per_size = [np.concatenate([dihedral_probs(self.model, x, self.tta).cpu().numpy()
                                    for x in self._batches(crops, batch_size, size)])
                    for size in (self.sizes or [self.input_size])]
        return combine_sizes(per_size, self.size_rule).astype(np.float32)

    def set_sizes(self, sizes, rule: str = "mean") -> None:
        """Score at these input sizes (pixels, square) and combine by ``rule`` (SIZE_RULES)."""
        sizes = [int(v) for v in sizes]
        if not sizes or any(v < 16 or v > 1024 for v in sizes):
            raise MixmagError(f"--tta-sizes {' '.join(map(str, sizes))}: give input sizes of 16-1024 px")
        if rule not in SIZE_RULES:
            raise MixmagError(f"--tta-rule {rule}: expected one of {', '.join(SIZE_RULES)}")
        self.sizes, self.size_rule = sizes, rule

    @torch.inference_mode()
    def features(self, crops, batch_size: int = 64) -> np.ndarray:
        """Pooled backbone features (the fine-tuned network's penultimate layer)."""
        pooled = get_backbone(self.backbone).pooled
        out = [pooled(self.model, x).float().cpu().numpy() for x in self._batches(crops, batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def load_classifier(path: str | os.PathLike, device: str = "cpu",
                    expect_classes=CLASS_NAMES) -> Classifier:
    """Load a checkpoint written by ``mixmag train-classifier`` for inference."""
    return Classifier(read_checkpoint(path, expect_classes), device, path)
