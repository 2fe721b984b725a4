"""``mixmag export``: the detector (and classifier) of a pipeline as ONNX, with a parity check.

Writes OUT/detector.onnx + detector.json and, with a classifier, classifier.onnx + classifier.json
(normalisation and softmax inside the graph). ``mixmag predict --detector OUT/detector.onnx`` runs
it through ONNX Runtime with the same letterbox and NMS as the .pt. With ``check`` (a SOURCE as for
predict, first 16 images) it writes parity.json: box IoU, class and count agreement.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..classify.export import export_classifier
from ..detect.export import detector_parity, export_detector
from ..fileio import prepare_output, write_json
from ..images import read_image
from .predict import list_sources
from .runtime import load_classifier
from ..zoo import resolve


@dataclass
class ExportResult:
    detector: Path
    classifier: Path | None = None
    parity: dict = field(default_factory=dict)


def export_models(detector: str | os.PathLike, out: str | os.PathLike, *,
                  classifier: str | os.PathLike | None = None, opset: int | None = None,
                  check: str | None = None, overwrite: bool = False) -> ExportResult:
    out = prepare_output(Path(out), overwrite, "export")
    det_path, _ = resolve(detector, "detect")
    clf_path = resolve(classifier, "classify")[0] if classifier else None
    # every input is read before the first file is written, so a bad one leaves OUT as it was
    clf = load_classifier(clf_path)
    images = []
    if check:
        sources, _ = list_sources(check)
        images = [read_image(s.path) for s in sources[:16]]
    result = ExportResult(export_detector(det_path, out, opset=opset))
    if clf is not None:
        result.classifier = export_classifier(clf, out, source=str(classifier))
    if check:
        result.parity = detector_parity(det_path, result.detector, images)
        write_json(out / "parity.json", result.parity)
    return result
