"""The models and settings `mixmag predict` uses when the user names none.

Chosen by the test-composite comparison in docs/detect.md (benchmarks/detect.py,
benchmarks/results/detect.json): the released models of ``models/released/``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MixmagError

RELEASED = Path(__file__).resolve().parents[2] / "models" / "released"
DETECTOR = RELEASED / "detector-yolo11n-640-8class" / "best.pt"
CLASSIFIER = RELEASED / "classifier-lite0-160" / "best.pt"
MODE = "two-stage"  # with the default classifier; "detector" when --classifier none
SCALE_NORM = "off"


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
