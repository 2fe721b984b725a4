"""An exported classifier (``classifier.onnx`` + ``classifier.json``, from `mixmag export`) under
ONNX Runtime. Imports no PyTorch, so predict from exported models stays light.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import MixmagError


def classifier_input(crops: list[np.ndarray], size: int) -> np.ndarray:
    """BGR crops → (N, 3, size, size) RGB 0–1, the classifier graph's input."""
    arr = [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA if c.shape[0] > size
                      else cv2.INTER_LINEAR)[..., ::-1] for c in crops]
    return np.ascontiguousarray(np.stack(arr).transpose(0, 3, 1, 2)).astype(np.float32) / 255.0


class OnnxClassifier:
    """``classifier.onnx`` with the same interface as mixmag.classify's Classifier."""

    def __init__(self, path: str | os.PathLike):
        from ..onnxrt import open_session, read_sidecar

        path = Path(path)
        meta = read_sidecar(path, ("class_names", "input_size"), "--classifier")
        try:
            self.class_names = [str(c) for c in meta["class_names"]]
            self.input_size = int(meta["input_size"])
        except (TypeError, ValueError):
            raise MixmagError(f"--classifier {path.with_suffix('.json')}: class_names or "
                              "input_size malformed; export the model again") from None
        self.session = open_session(path, "--classifier")

    def predict(self, crops, batch_size: int = 64) -> np.ndarray:
        out = [self.session.run(None, {"images": classifier_input(crops[i:i + batch_size],
                                                                   self.input_size)})[0]
               for i in range(0, len(crops), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)
