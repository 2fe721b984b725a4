"""``mixmag classify``: class and probabilities for whole single-cell images (PBC-like crops)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MixmagError
from ..fileio import beside_weights, prepare_output, write_csv
from ..images import is_image_name, read_image
from ..zoo import resolve

log = logging.getLogger(__name__)


def expand_images(items) -> list[Path]:
    """Files as given, folders expanded to the images inside them (sorted, recursive)."""
    out = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and is_image_name(q)
                           and not q.name.startswith("."))
            if not found:
                raise MixmagError(f"{p}: folder holds no images ({', '.join(('.jpg', '.png', '...'))})")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise MixmagError(f"{p}: no such file or folder")
    return out


def classify_images(paths, clf, batch_size: int = 64) -> pd.DataFrame:
    rows, probs, mags, zoomed = [], [], [], []
    for s in range(0, len(paths), batch_size):
        chunk = paths[s:s + batch_size]
        probs.extend(clf.predict([read_image(p) for p in chunk], batch_size))
        if hasattr(clf, "last_magnification"):
            mags.append(clf.last_magnification)
            zoomed.append(clf.last_zoomed)
        rows += [str(p) for p in chunk]
    df = pd.DataFrame({"image": rows})

    pr = np.asarray(probs).reshape(len(rows), len(clf.class_names))
    df["class_id"] = pr.argmax(1)
    df["class_name"] = [clf.class_names[i] for i in df["class_id"]]
    df["class_conf"] = pr.max(1).round(6)
    for j, n in enumerate(clf.class_names):
        df[f"p_{n}"] = pr[:, j].round(6)
    if mags:  # --zoom: the nucleus-based estimate and whether the zoomed pass answered
        df["magnification_est"] = np.round(np.concatenate(mags), 4)
        df["zoomed"] = np.concatenate(zoomed)
    return df


def classify_files(images, weights: str | os.PathLike, *, device: str = "cpu", batch: int = 64,
                   tta_sizes=None, tta_rule: str | None = None, zoom: bool | None = None,
                   zoom_below: str | None = None, zoom_above: str | None = None,
                   zoom_floor: float | None = None, native_nucleus: str | None = None,
                   out: str | os.PathLike | None = None, overwrite: bool = False
                   ) -> tuple[pd.DataFrame, bool]:
    """``mixmag classify``: one row an image (and the CSV at ``out``); returns (table, zoomed?).

    ``weights`` is a zoo name or a checkpoint. ``zoom=None`` turns scale normalisation on where
    the native nucleus shares are at hand (nucleus.json beside the weights) or a zoom option asks
    for it."""
    from .checkpoint import load_classifier

    if tta_rule and not tta_sizes:
        raise MixmagError(f"--tta-rule {tta_rule}: needs --tta-sizes (the sizes it combines)")
    if out:
        prepare_output(out, overwrite, "predictions")
    paths = expand_images(images)
    weights = resolve(weights, "classify")[0]
    clf = load_classifier(weights, device)
    if tta_sizes:
        clf.set_sizes(tta_sizes, tta_rule or "mean")
    options = native_nucleus or any(v is not None for v in (zoom_below, zoom_above, zoom_floor))
    if zoom is False and options:
        raise MixmagError("--native-nucleus / --zoom-below / --zoom-above / --zoom-floor: not with --no-zoom")
    if zoom is None:  # on where the shares are at hand (or asked for by a zoom option)
        from .zoom import FILE_NAME

        zoom = bool(options) or beside_weights(weights, FILE_NAME) is not None
    if zoom:
        from .zoom import BELOW, FLOOR, ZoomedClassifier, find_native_nucleus, threshold

        native = find_native_nucleus(weights, native_nucleus)
        if native.get("manifest_hash") and clf.manifest_hash \
                and native["manifest_hash"] != clf.manifest_hash:
            log.warning("native nucleus shares come from another split manifest (%s) than the "
                        "classifier's (%s); fine if both are PBC at its own resolution",
                        native["manifest_hash"], clf.manifest_hash)
        clf = ZoomedClassifier(clf, native, threshold(zoom_below or BELOW), threshold(zoom_above),
                               FLOOR if zoom_floor is None else zoom_floor)
    df = classify_images(paths, clf, batch)
    if out:
        write_csv(out, df)
    return df, bool(zoom)
