"""The models and settings `mixmag predict` uses when the user names none.

Chosen by the test-composite comparisons in docs/detect.md (benchmarks/detect.py; results in
benchmarks/results/detect.json, detect-adapted.json and detect-crops.json). On 300 test-source
composites (2,370 cells), 8-class detector boxes, plain box+margin crops, two-stage:
- classifier-lite0-160-crops (Lite0 fine-tuned end to end on pipeline-style crops of train
  composites, `mixmag pack-crops` + `train-classifier --init`): macro F1 0.962 (0.954 / 0.959 /
  0.971 at 0.5× / 1× / 1.5×), mAP@0.5 0.952, mAP@0.5:0.95 0.899;
- classifier-lite0-160-composite (last layer refitted only, the previous default): 0.955
  (0.945 / 0.946 / 0.972), mAP 0.944 / 0.879;
- Lite2 with scale-normalised crops: 0.945. Lite0 is also the faster of the two on a CPU.
The fine-tuned classifier alone on the same boxes (`--mode classifier-on-boxes`) reaches 0.968
(0.970 counting every row predict writes), so the detector's class opinion now costs a little.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MixmagError

RELEASED = Path(__file__).resolve().parents[2] / "models" / "released"
DETECTOR = RELEASED / "detector-yolo11n-640-8class" / "best.pt"
CLASSIFIER = RELEASED / "classifier-lite0-160-crops" / "best.pt"
# two-stage (geometric mean of the 8-class detector's and the classifier's probabilities) with
# the default classifier; the detector's classes alone with --classifier none
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
