"""The models and settings `mixmag predict` uses when the user names none.

The released pair that won on val composites by a rule stated before the figures
(`benchmarks/select_pair.py`; the rule, the candidates and every figure, val and test, are in
docs/detect.md, ninth session, and benchmarks/results/select-gpu9-val.json):
- detector-yolo11n-640-8class-ft: the first 8-class YOLO11n fine-tuned on a GPU on fresh train
  composites (tools/gpu/crops_round.sh);
- classifier-lite0-160-crops-gpu: crops4 fine-tuned there on predict-style crops of them;
- the classifier alone on the boxes (score √(det_conf × class_conf)) beat combining it with the
  detector's classes (two-stage) on val, so that is the default mode.
The earlier pair (detector-yolo11n-640-8class + classifier-lite0-160-crops4) stays released.
Lite0 is also the faster classifier on a CPU.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MixmagError

RELEASED = Path(__file__).resolve().parents[2] / "models" / "released"
DETECTOR = RELEASED / "detector-yolo11n-640-8class-ft" / "best.pt"
CLASSIFIER = RELEASED / "classifier-lite0-160-crops-gpu" / "best.pt"
# the detector's classes alone with --classifier none (or --mode detector)
# the crops classifier was fine-tuned on box+margin crops only (the adapted one, fitted on both
# kinds, also labelled them best: 0.955 macro F1 vs 0.946 with 360·m px scale-normalised crops)
SCALE_NORM = "off"
MODE = "classifier-on-boxes"


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
