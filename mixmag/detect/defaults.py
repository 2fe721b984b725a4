"""The models and settings `mixmag predict` uses when the user names none.

Chosen on val composites (benchmarks/results/detect-val23.json, detect-val24.json: 200 val-source
composites each) and reported on 300 test-source composites (2,370 cells; detect-crops4.json),
8-class detector boxes, plain box+margin crops:
- classifier-lite0-160-crops4 (Lite0 fine-tuned end to end on pipeline-style crops of train
  composites over 4 rounds, `mixmag pack-crops` + `train-classifier --init`), alone on the boxes
  (score √(det_conf × class_conf)): val macro F1 0.980 / 0.978, test 0.9796 (0.978 / 0.982 /
  0.979 at 0.5× / 1× / 1.5×), mAP@0.5 0.970, mAP@0.5:0.95 0.914;
- the same classifier combined with the detector's classes (two-stage): val 0.973 / 0.962, test
  0.975: the 8-class detector (0.920 alone) only pulls a good classifier down;
- earlier rounds (crops, crops2, crops3) and Lite2 with scale-normalised crops: docs/detect.md.
Lite0 is also the faster classifier on a CPU.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MixmagError

RELEASED = Path(__file__).resolve().parents[2] / "models" / "released"
DETECTOR = RELEASED / "detector-yolo11n-640-8class" / "best.pt"
CLASSIFIER = RELEASED / "classifier-lite0-160-crops4" / "best.pt"
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
