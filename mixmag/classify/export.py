"""ONNX export of a single-cell classifier (torch.onnx); ``mixmag.classify.onnx_model`` runs it.

Files written: ``classifier.onnx`` + ``classifier.json`` (class names, input size, mean/std; the
graph takes RGB 0–1 NCHW at the input size and returns probabilities: normalisation, softmax and a
TTA checkpoint's dihedral averaging are inside).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import MixmagError
from ..fileio import atomic_path, write_json
from .onnx_model import OnnxClassifier, classifier_input
from .tta import dihedral_probs

__all__ = ["OnnxClassifier", "classifier_input", "classifier_module", "export_classifier",
           "torch_classifier_probs"]


class _ClassifierGraph(torch.nn.Module):
    """RGB 0–1 NCHW → probabilities: the checkpoint's normalisation, softmax and (for a checkpoint
    scored so) the 8-view dihedral averaging travel inside, so ONNX answers as PyTorch does."""

    def __init__(self, net: torch.nn.Module, mean, std, tta: bool = False):
        super().__init__()
        self.net, self.tta = net, bool(tta)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x):
        return dihedral_probs(self.net, (x - self.mean) / self.std, self.tta)


def classifier_module(clf) -> torch.nn.Module:
    net = next((getattr(clf, a) for a in ("model", "net", "module")
                if isinstance(getattr(clf, a, None), torch.nn.Module)), None)
    if net is None:
        raise MixmagError("--classifier: the loaded classifier exposes no torch module "
                          "(.model); cannot export it to ONNX")
    return _ClassifierGraph(net.eval().cpu(), list(clf.mean), list(clf.std),
                            tta=getattr(clf, "tta", False)).eval()


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


def torch_classifier_probs(clf, crops) -> np.ndarray:
    graph = classifier_module(clf)
    with torch.inference_mode():
        return graph(torch.from_numpy(classifier_input(crops, int(clf.input_size)))).numpy()
