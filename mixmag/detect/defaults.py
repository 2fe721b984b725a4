"""The models and settings `mixmag predict` uses when the user names none.

Chosen by the test-composite comparison in docs/detect.md (benchmarks/detect.py,
benchmarks/results/detect.json and detect-adapted.json): on 300 test-source composites the 8-class
detector + the composite-adapted Lite0 with plain box+margin crops, combined with the detector's
class scores, gave the best macro F1 (0.955, vs 0.945 for Lite2 with scale-normalised crops) and is
the faster of the two on a CPU.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MixmagError

RELEASED = Path(__file__).resolve().parents[2] / "models" / "released"
DETECTOR = RELEASED / "detector-yolo11n-640-8class" / "best.pt"
CLASSIFIER = RELEASED / "classifier-lite0-160-composite" / "best.pt"
# two-stage (geometric mean of the 8-class detector's and the classifier's probabilities) with
# the default classifier; the detector's classes alone with --classifier none
# the adapted classifier was fitted on both crop kinds and labels box+margin crops best (0.955
# macro F1 vs 0.946 with 360·m px scale-normalised crops)
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
