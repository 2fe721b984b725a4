"""Real-field datasets: whole PBC images with a box on every cell (OI-PBC), at 1x and rescaled.

Where composites paste cut-out cells on a drawn background, a real field is the smear itself:
the labelled centre cell with every neighbour, red cells, platelets and cells cut by the edge. The
dataset has the contracts of ``mixmag synthesize`` (docs/CONTRACTS.md): ``images/<split>/``,
YOLO ``labels/<split>/`` + ``data.yaml``, COCO ``<split>.json``, ``cells.csv``/``cells.json``,
``dataset.json``; with nine classes, the eight plus ``rbc`` (class_id 8, not one of the eight).

Splits come from the committed manifest by source image, so a test field never trains. Each
image is written once per scale asked (``--scales 0.5 1 1.5``: resized as the generator resizes
a cut-out, area to shrink and cubic to enlarge), its boxes scaled with it and its magnification
recorded. Extra columns: ``oi_class`` (OI-PBC's own class), ``centre`` (the box PBC's folder
labels), ``cut`` (the box touches the image edge: a cell cut by it).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from .. import __version__
from ..data.oipbc import FIELD_CLASSES, centre_box, folder_agreement, label_file, read_boxes
from ..errors import MixmagError
from ..fileio import write_bytes, write_json, write_text
from ..images import read_image
from .compose import scale_image, yolo_lines
from .export import write_exports

FORMAT = "mixmag-fields/1"
EXTRA_COLUMNS = ("oi_class", "centre", "cut")
SPLITS = ("train", "val", "test")


@dataclass
class FieldSettings:
    splits: tuple[str, ...] = ("val",)
    scales: tuple[float, ...] = (1.0,)
    max_images: int | None = None   # first N labelled images of each split (manifest order)
    jpeg_quality: int = 95
    edge: float = 1.0               # a box within this many pixels of the edge is 'cut'


def _check(s: FieldSettings) -> None:
    bad = [x for x in s.splits if x not in SPLITS]
    if bad or not s.splits:
        raise MixmagError(f"--splits {' '.join(s.splits)}: use one or more of {', '.join(SPLITS)}")
    if not s.scales or any(not (0.1 <= m <= 4) for m in s.scales):
        raise MixmagError(f"--scales {' '.join(map(str, s.scales))}: each must be in [0.1, 4]")
    if s.max_images is not None and s.max_images < 1:
        raise MixmagError(f"--max-images {s.max_images}: must be >= 1")


def _scale_tag(m: float) -> str:
    return f"x{m:g}"


def build_fields(out: str | os.PathLike, manifest: pd.DataFrame, labels: Path,
                 settings: FieldSettings | None = None, progress: bool = True,
                 final: str | os.PathLike | None = None) -> dict:
    """Write the real-field dataset at ``out`` (which must be free: the caller checks it) from a
    loaded manifest and the OI-PBC ``labels/`` folder; returns its dataset.json dict. ``final``:
    the folder it will be moved to, for data.yaml's path."""
    from tqdm import tqdm

    s = settings or FieldSettings()
    _check(s)
    root = Path(out)
    t0 = time.perf_counter()
    rows = manifest[manifest["split"].isin(s.splits)]
    has = np.array([label_file(labels, p).is_file() for p in rows["path"]], bool)
    unlabelled = int((~has).sum())
    rows = rows[has]
    if s.max_images:
        rows = rows.groupby("split", sort=False).head(s.max_images)
    if rows.empty:
        raise MixmagError(f"{labels}: no OI-PBC label file for any image of split(s) "
                          f"{', '.join(s.splits)}; is it the labels folder of these images?")
    cells, images, image_id = [], [], 0
    for r in tqdm(rows.itertuples(index=False), total=len(rows), disable=not progress,
                  desc="fields", unit="img"):
        img = read_image(r.abspath)
        h0, w0 = img.shape[:2]
        boxes = read_boxes(label_file(labels, r.path), w0, h0)
        centre = centre_box(boxes, w0, h0)
        for m in s.scales:
            pic = scale_image(img, m)
            h, w = pic.shape[:2]
            sx, sy = w / w0, h / h0
            name = f"images/{r.split}/{Path(r.path).stem}-{_scale_tag(m)}.jpg"
            b = boxes.copy()
            b[["x1", "x2"]] *= sx
            b[["y1", "y2"]] *= sy
            recs = pd.DataFrame({
                "image": name, "image_id": image_id, "cell": np.arange(len(b)),
                "class_name": b["class_name"].to_numpy(),
                "class_id": [FIELD_CLASSES.index(c) for c in b["class_name"]],
                "source": r.path, "split": r.split, "magnification": float(m),
                "x1": b["x1"].round(2), "y1": b["y1"].round(2),
                "x2": b["x2"].round(2), "y2": b["y2"].round(2),
                "mask_area": ((b["x2"] - b["x1"]) * (b["y2"] - b["y1"])).round().astype(int),
                "width": w, "height": h, "oi_class": b["oi_class"].to_numpy(),
                "centre": b.index.to_numpy() == (centre if centre is not None else -1),
                "cut": ((b["x1"] <= s.edge) | (b["y1"] <= s.edge) | (b["x2"] >= w - s.edge)
                        | (b["y2"] >= h - s.edge)).to_numpy()})
            ok, jpg = cv2.imencode(".jpg", pic, [cv2.IMWRITE_JPEG_QUALITY, s.jpeg_quality])
            if not ok:
                raise MixmagError(f"{root / name}: JPEG encoding failed")
            write_bytes(root / name, jpg.tobytes())
            write_text(root / "labels" / r.split / (Path(name).stem + ".txt"),
                       yolo_lines(recs.to_dict("records")))
            cells.append(recs)
            images.append({"image": name, "image_id": image_id, "width": w, "height": h,
                           "split": r.split})
            image_id += 1
    cells = pd.concat(cells, ignore_index=True)
    images = pd.DataFrame(images)
    write_exports(root, cells, images, s.splits, FIELD_CLASSES, EXTRA_COLUMNS,
                  "mixmag real PBC fields, every cell boxed (OI-PBC labels)", final_root=final)
    counts = cells.groupby(["split", "class_name"]).size().unstack(fill_value=0)
    meta = {
        "format": FORMAT, "mixmag_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "settings": asdict(s), "manifest_hash": manifest.attrs.get("manifest_hash", ""),
        "labels": str(labels), "labels_source": "OI-PBC, Abou Ali et al. 2025, arXiv:2509.24595 "
                                                "(read from the path above, not copied)",
        "classes": list(FIELD_CLASSES),
        "counts": {"images": images.groupby("split").size().to_dict(),
                   "source_images": rows.groupby("split").size().to_dict(),
                   "unlabelled_sources_skipped": unlabelled,
                   "cells": {sp: counts.loc[sp].to_dict() for sp in counts.index},
                   "cut_cells": int(cells["cut"].sum()),
                   "images_without_centre_box": int(images.shape[0] - cells.groupby("image")["centre"].any().sum())},
        "oi_pbc_agreement": folder_agreement(rows, labels),
        "seconds": round(time.perf_counter() - t0, 1)}
    write_json(root / "dataset.json", meta)
    return meta


def fields_dataset(out: str | os.PathLike, split: str | os.PathLike, *, pbc=None, labels=None,
                   settings: FieldSettings | None = None, overwrite: bool = False,
                   progress: bool = True) -> dict:
    """``mixmag fields``: the manifest's images of the chosen splits as real fields at ``out``."""
    from ..data.oipbc import find_labels
    from ..data.split import load_manifest
    from ..fileio import replaced_folder

    _check(settings or FieldSettings())
    lab = find_labels(labels)
    m = load_manifest(split, pbc=pbc)
    with replaced_folder(out, overwrite, "dataset", "mixmag fields") as work:
        return build_fields(work, m, lab, settings, progress, final=Path(out).resolve())
