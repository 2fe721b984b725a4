"""One place where a predict pipeline is assembled: ``build_pipeline(preset, **overrides)``.

A preset is a pipeline of the model zoo (``models/zoo.yaml``: ``default`` is what ``mixmag
predict`` runs when nothing is named): a detector entry, a classifier entry, and the classifier's
predict settings (mode, scale normalisation, margin, window). Overrides name other models (zoo
names or paths to a user's own files), the backend, the device, or any ``PredictOptions`` field;
``None`` means "the preset's".
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, fields

from ..detect.magnification import find_native_sizes
from ..errors import MixmagError
from .predict import MODES, SMALL_IMAGES, Pipeline, PredictOptions
from .runtime import load_classifier, load_detector, runtime_models
from ..zoo import default_preset, resolve

log = logging.getLogger(__name__)

OPTION_FIELDS = tuple(f.name for f in fields(PredictOptions))
NO_CLASSIFIER = "none"


def check_options(**values) -> None:
    """One-line errors for predict settings out of range (before any model loads)."""
    for name in ("conf", "iou"):
        v = values.get(name)
        if v is not None and not 0 <= v <= 1:
            raise MixmagError(f"--{name} {v:g}: must be in [0, 1]")
    batch = values.get("batch")
    if batch is not None and batch < 1:
        raise MixmagError(f"--batch {batch}: must be >= 1")
    overlap, tile = values.get("overlap"), values.get("tile")
    if overlap is not None and (overlap < 0 or (tile and overlap >= tile)):
        raise MixmagError(f"--tile-overlap {overlap}: must be >= 0 and below --tile")
    zoom = values.get("zoom_below")
    if zoom is not None and not 0 < zoom <= 1:
        raise MixmagError(f"--zoom-below {zoom}: a magnification in (0, 1], e.g. 0.75")
    share = values.get("drop_inside")
    if share is not None and not 0 < share <= 1:
        raise MixmagError(f"--drop-inside {share}: a share of a box's area in (0, 1], e.g. 0.6")
    side = values.get("fit_min_side")
    if side is not None and (side < 32 or side % 32):
        raise MixmagError(f"--fit-min-side {side}: a multiple of 32, at least 32")
    small = values.get("small_images")
    if small is not None and small not in SMALL_IMAGES:
        raise MixmagError(f"--small-images {small}: expected one of {', '.join(SMALL_IMAGES)}")
    level = values.get("slide_level")
    if level is not None and level < 0:
        raise MixmagError(f"--slide-level {level}: 'auto' or a level number >= 0")
    region = values.get("slide_region")
    if region is not None and region < 1024:
        raise MixmagError(f"slide_region {region}: at least 1024 px")
    mode = values.get("mode")
    if mode is not None and mode not in MODES:
        raise MixmagError(f"--mode {mode}: expected one of {', '.join(MODES)}")


def build_pipeline(preset: str = "default", *, detector: str | os.PathLike | None = None,
                   classifier: str | os.PathLike | None = None, backend: str = "auto",
                   device: str = "cpu", native_sizes: str | None = None, **overrides) -> Pipeline:
    """A ready ``Pipeline``: models resolved through the zoo, loaded on the chosen runtime, with
    the preset's settings under the overrides. ``classifier="none"`` runs the detector alone.
    The pipeline's ``meta`` records what was chosen (files, backend, options)."""
    unknown = set(overrides) - set(OPTION_FIELDS)
    if unknown:
        raise TypeError(f"build_pipeline: unknown options {sorted(unknown)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    check_options(**given)
    settings = default_preset(preset)
    det_path, _ = resolve(detector, "detect", preset)
    mode = given.get("mode")
    clf_path = None
    no_classifier = classifier is not None and str(classifier).lower() == NO_CLASSIFIER
    if not no_classifier and not (classifier is None and mode == "detector"):
        clf_path, clf_entry = resolve(classifier, "classify", preset)
        if clf_entry is not None and clf_entry.preset:
            settings = dict(clf_entry.preset)
    det_file, clf_file = str(det_path), (str(clf_path) if clf_path is not None else None)
    run_det, run_clf, used_backend = runtime_models(det_file, clf_file, backend, device)
    det = load_detector(run_det, device)
    clf = load_classifier(run_clf, device)
    if mode is None:
        mode = settings.get("mode", "classifier-on-boxes") if clf is not None else "detector"
    sizes = find_native_sizes(det_file, native_sizes)
    scale_norm = given.get("scale_norm")
    if scale_norm is None:
        scale_norm = bool(settings.get("scale_norm", False))
        if scale_norm and sizes is None and mode != "detector":
            log.warning("no native cell sizes beside %s (magnification.json): scale normalisation "
                        "off; pass --native-sizes datasets/NAME/cells.csv to turn it on", det_file)
            scale_norm = False
    opts = {**{k: settings[k] for k in ("margin", "window") if k in settings}, **given,
            "mode": mode, "scale_norm": bool(scale_norm) and mode != "detector"}
    pipe = Pipeline(det, clf, sizes, PredictOptions(**opts))
    pipe.meta = {"detector": det_file, "classifier": clf_file, "backend": used_backend,
                 "native_sizes": bool(sizes)}
    return pipe


def options_dict(opt: PredictOptions) -> dict:
    return asdict(opt)
