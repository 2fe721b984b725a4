"""The models and settings `mixmag predict` uses when the user names none.

Chosen on val composites by a rule stated before the figures (docs/detect.md, ninth session;
`benchmarks/select_pair.py`, benchmarks/results/select-gpu9-val.json: 200 val-source composites
each, seeds 41/42/43) and reported once on 300 test-source composites (2,370 cells;
benchmarks/results/detect-gpu9-test.json), box + margin crops:
- detector-yolo11n-640-8class-ft: the released 8-class YOLO11n fine-tuned on a GPU for 22 + 19
  epochs on 5,000 fresh train composites (tools/gpu/crops_round.sh);
- classifier-lite0-160-crops-gpu: crops4 fine-tuned on the GPU, every stage trainable, 10 epochs
  on 40,546 predict-style crops of those composites (`pack-crops`), EMA;
- the classifier alone on the boxes (score √(det_conf × class_conf)): val macro F1
  0.9819 / 0.9813 / 0.9817 (the earlier default pair: 0.9718 / 0.9810 / 0.9738), test 0.9817
  (0.983 / 0.982 / 0.980 at 0.5× / 1× / 1.5×), loc. recall 0.9979, mAP@0.5 0.975;
- two-stage (classifier combined with the detector's classes) was lower on val (mean 0.9761),
  so it stays an option although it scored higher on test (0.9872): the mode is chosen on val.
The earlier pair (detector-yolo11n-640-8class + classifier-lite0-160-crops4) stays released;
its rounds and the other candidates are in docs/detect.md. Lite0 is also the faster classifier
on a CPU.
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
