"""The models and settings `mixmag predict` uses when the user names none.

Chosen by the test-composite comparison in docs/detect.md (benchmarks/detect.py,
benchmarks/results/detect.json): the released models of ``models/released/``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MixmagError

RELEASED = Path(__file__).resolve().parents[2] / "models" / "released"
DETECTOR = RELEASED / "detector-yolo11n-640-8class" / "best.pt"
CLASSIFIER = RELEASED / "classifier-lite2-224" / "best.pt"
# two-stage (geometric mean of the 8-class detector's and the classifier's probabilities) with
# the default classifier; the detector's classes alone with --classifier none
SCALE_NORM = "on"  # crops of 360·m px: the classifier sees each cell at native size


def default_detector() -> str:
    if not DETECTOR.is_file():
        raise MixmagError(f"--detector: not given and the released detector {DETECTOR} is not in "
                          "this installation; pass --detector PATH (a .pt or an exported .onnx)")
    return str(DETECTOR)


def default_classifier() -> str:
    if not CLASSIFIER.is_file():
        raise MixmagError(f"--classifier: not given and the released classifier {CLASSIFIER} is "
                          "not in this installation; pass --classifier PATH or --classifier none")
    return str(CLASSIFIER)
