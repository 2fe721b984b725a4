"""The models and settings `mixmag predict` uses when the user names none.

The released pair that won on val composites by rules stated before the figures (docs/detect.md,
ninth and eleventh sessions, where the rules, candidates and every val and test figure are):
- detector-yolo11n-640-8class-ft: the first 8-class YOLO11n fine-tuned on a GPU on fresh train
  composites (tools/gpu/crops_round.sh; benchmarks/results/select-gpu9-val.json);
- classifier-lite0-160-crops-m5: classifier-lite0-160-crops-gpu (crops4 fine-tuned on that GPU
  round's crops) fine-tuned on the CPU on crops of m5-mask composites, when the generator's
  default masks became m5;
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
CLASSIFIER = RELEASED / "classifier-lite0-160-crops-m5" / "best.pt"
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
