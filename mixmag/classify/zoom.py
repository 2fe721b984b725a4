"""Scale normalisation for single-cell images: zoom so the cell fills the field as at 1x.

A classifier trained on PBC crops sees each cell in a fixed field of view. A cell photographed at
0.5x fills a quarter of that field, and even with rescale augmentation the classifier labels such
cells about a point worse than native ones (docs/classify.md). The detector pipeline answers this
by resizing each crop by 1 / its estimated magnification; this module does the same for whole
single-cell images:

1. classify the image as it is (pass 1);
2. estimate the cell's magnification from its stained nucleus: ``m = sqrt(share / native[class])``,
   where ``share`` is the nucleus' fraction of the image (``mask.nucleus_share``) and ``native`` the
   median share of the pass-1 class on the training images at 1x (``nucleus.json``);
3. where ``m`` is below ``zoom_below`` but not below ``floor`` (an estimate that low means the seed
   was not the nucleus), or above ``zoom_above`` if set, rescale the image about
   its centre by 1 / m (PBC-like crops are centred on their cell) and classify again (pass 2),
   whose answer replaces pass 1's.

Images whose estimate falls between the two thresholds keep pass 1's answer untouched, so cells
near native size cost nothing and lose nothing. On the 1,796 PBC val images with the
released Lite2-224's pass-1 classes, 98.2 % of 0.5x cells and 1.0 % of 1x cells are zoomed with
the defaults (``benchmarks/results/classify-lite2-zoom-floor-val.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import MixmagError
from ..fileio import beside_weights, write_json
from ..synth.mask import nucleus_share
from .augment import rescale_in_canvas

FORMAT = "mixmag-native-nucleus/1"
# Estimates below this are taken as failed (the seed found was not this cell's nucleus) and keep
# pass 1's answer: 0.7 x the generator's smallest magnification (0.5x). Set after seeing that the
# three 1.5x val eosinophils a zoom-in turned into "platelets" were estimated at 0.17-0.31.
FLOOR = 0.35
BELOW = 0.75  # zoom in below this (rule 2's pick in docs/classify.md)
FILE_NAME = "nucleus.json"


def native_nucleus(images, class_names, progress: bool = False) -> dict:
    """Median nucleus share per class over (BGR image, class name) pairs taken at 1x."""
    from tqdm import tqdm

    shares: dict[str, list[float]] = {}
    missing = 0
    for img, cls in tqdm(zip(images, class_names), disable=not progress, desc="nucleus",
                         total=len(class_names)):
        s = nucleus_share(img, cls)
        if s is None:
            missing += 1
            continue
        shares.setdefault(cls, []).append(s)
    return {"format": FORMAT,
            "native_share": {c: float(np.median(v)) for c, v in sorted(shares.items())},
            "counts": {c: len(v) for c, v in sorted(shares.items())},
            "no_stain": missing}


def write_native_nucleus(path, data: dict, source: str = "") -> None:
    write_json(path, {**data, "source": source})


def load_native_nucleus(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MixmagError(f"{path}: cannot read native nucleus shares ({e}); write one with "
                          "`mixmag native-nucleus`") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT \
            or not isinstance(data.get("native_share"), dict) or not data["native_share"]:
        raise MixmagError(f"{path}: not a {FORMAT} file; write one with `mixmag native-nucleus`")
    bad = [c for c, v in data["native_share"].items()
           if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1]
    if bad:
        raise MixmagError(f"{path}: native shares of {bad} are not fractions in (0, 1)")
    return data


def find_native_nucleus(weights: str | os.PathLike, explicit: str | None = None) -> dict:
    """The file given, else ``nucleus.json`` beside the classifier weights; a one-line error if neither."""
    if explicit:
        return load_native_nucleus(explicit)
    found = beside_weights(weights, FILE_NAME)
    if found:
        return load_native_nucleus(found)
    raise MixmagError(f"--zoom: no {FILE_NAME} beside {weights}; pass --native-nucleus FILE "
                      "(written by `mixmag native-nucleus --split MANIFEST --out FILE`)")


def threshold(text: str | float | None) -> float | None:
    """A --zoom-below / --zoom-above value: a magnification, or 'off'."""
    if text is None or str(text).lower() == "off":
        return None
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not np.isfinite(v):
        raise MixmagError(f"zoom threshold {text!r}: expected a magnification such as 0.75, or off")
    return v


def zoom_mask(m: np.ndarray, below: float | None, above: float | None, floor: float) -> np.ndarray:
    """Which estimates get the zoomed pass: floor <= m < below, or m > above (NaN: never)."""
    m = np.asarray(m, np.float64)
    far = np.zeros(m.shape, bool)
    if below is not None:
        far |= (m < below) & (m >= floor)  # NaN compares False
    if above is not None:
        far |= m > above
    return far


class ZoomedClassifier:
    """``predict(crops BGR) -> (N, C)`` with a second, zoomed pass for cells far from native size.

    After ``predict``, ``last_magnification`` holds each image's estimate (NaN where no nucleus
    was found) and ``last_zoomed`` whether pass 2 answered for it.
    """

    def __init__(self, clf, native: dict, zoom_below: float | None = BELOW,
                 zoom_above: float | None = None, floor: float = FLOOR):
        if zoom_below is not None and not 0 < zoom_below <= 1:
            raise MixmagError(f"--zoom-below {zoom_below}: expected a magnification in (0, 1]")
        if not (np.isfinite(floor) and 0 <= floor < (zoom_below or 1)):
            raise MixmagError(f"--zoom-floor {floor} (default {FLOOR}) must lie in [0, --zoom-below "
                              f"{zoom_below}): lower --zoom-floor or raise --zoom-below")
        if zoom_above is not None and not (np.isfinite(zoom_above) and zoom_above >= 1):
            raise MixmagError(f"--zoom-above {zoom_above}: expected a magnification >= 1")
        share = native["native_share"]
        absent = [c for c in clf.class_names if not share.get(c)]
        if absent:
            raise MixmagError(f"native nucleus shares lack classes {absent}; write the file from "
                              "a manifest holding every class")
        self.clf, self.zoom_below, self.zoom_above, self.floor = clf, zoom_below, zoom_above, floor
        self.class_names = list(clf.class_names)
        self.input_size = clf.input_size
        self.native = np.array([share[c] for c in self.class_names], np.float64)
        self.last_magnification = np.zeros(0)
        self.last_zoomed = np.zeros(0, bool)

    def magnification(self, crops, class_ids) -> np.ndarray:
        out = np.full(len(crops), np.nan)
        for i, (c, k) in enumerate(zip(crops, class_ids)):
            s = nucleus_share(c, self.class_names[int(k)])
            if s is not None:
                out[i] = np.sqrt(s / self.native[int(k)])
        return out

    def predict(self, crops, batch_size: int = 64) -> np.ndarray:
        probs = np.asarray(self.clf.predict(crops, batch_size=batch_size), np.float32)
        m = self.magnification(crops, probs.argmax(1)) if len(crops) else np.zeros(0)
        far = zoom_mask(m, self.zoom_below, self.zoom_above, self.floor)
        idx = np.flatnonzero(far)
        if len(idx):
            zoomed = [rescale_in_canvas(crops[i], float(1.0 / m[i])) for i in idx]
            probs[idx] = self.clf.predict(zoomed, batch_size=batch_size)
        self.last_magnification, self.last_zoomed = m, far
        return probs


def native_nucleus_of_split(split: str | os.PathLike, out: str | os.PathLike, *,
                            pbc: str | None = None, part: str = "train",
                            overwrite: bool = False) -> dict:
    """``mixmag native-nucleus``: the shares of a manifest's ``part`` images, written to ``out``."""
    from ..data.split import load_manifest
    from ..fileio import prepare_output
    from ..images import read_image

    prepare_output(out, overwrite, "native nucleus shares")
    m = load_manifest(split, pbc=pbc)
    rows = m[m["split"] == part]
    if rows.empty:
        raise MixmagError(f"{split}: no {part} images")
    images = (read_image(p) for p in rows["abspath"])  # an unreadable file: one line naming it
    data = native_nucleus(images, list(rows["class_name"]), progress=True)
    data["manifest_hash"] = m.attrs.get("manifest_hash", "")
    write_native_nucleus(out, data, source=f"{split} ({part}, {len(rows)} images)")
    return data
