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
labels), ``cut`` (the box touches the image edge: a cell cut by it), ``pasted`` (a cut-out cell
pasted on a smear canvas, ``mixmag.synth.smear``).

Three layouts: single fields (default), real mosaics (``mosaics`` > 0: 4-9 whole fields at mixed
magnification packed on grey) and smear canvases (``layout="smear"``: fields edge to edge at one
magnification a canvas, cut by the canvas edge, optionally with cut-out cells pasted among them).
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
from ..classes import CLASS_NAMES
from ..errors import MixmagError
from ..fileio import write_bytes, write_json, write_text
from ..images import read_image
from .compose import scale_image, yolo_lines
from .export import write_exports

FORMAT = "mixmag-fields/1"
EXTRA_COLUMNS = ("oi_class", "centre", "cut", "pasted")
LAYOUTS = ("packed", "smear")
SPLITS = ("train", "val", "test")
MOSAIC_GREY = 114   # between fields: the grey predict's tiler and YOLO's letterbox pad with


@dataclass
class FieldSettings:
    splits: tuple[str, ...] = ("val",)
    scales: tuple[float, ...] = (1.0,)
    max_images: int | None = None   # first N labelled images of each split (manifest order)
    jpeg_quality: int = 95
    edge: float = 1.0               # a box within this many pixels of the edge is 'cut'
    mosaics: int = 0                # > 0: this many mosaics a split instead of single fields
    canvas: int = 1024              # mosaic side (px)
    per_mosaic: tuple[int, int] = (4, 9)   # fields a mosaic, at most (as many as fit)
    seed: int = 0
    shift: str | None = None        # a named stain/optics shift (mixmag.synth.shifts) on each image
    layout: str = "packed"          # mosaics: "packed" on grey, or "smear" (edge to edge, cut)
    paste: tuple[int, int] = (0, 0)  # smear canvases: cut-out cells pasted a canvas (low, high)
    clumps: float = 0.3             # share of pasted platelets that come as a clump of 2-5
    cache: str | None = None        # cut-out cache (default: the dataset's parent/.cache)
    mask_version: str | None = None  # cut-out masks (default: the generator's)


def _check(s: FieldSettings) -> None:
    bad = [x for x in s.splits if x not in SPLITS]
    if bad or not s.splits:
        raise MixmagError(f"--splits {' '.join(s.splits)}: use one or more of {', '.join(SPLITS)}")
    if s.layout not in LAYOUTS:
        raise MixmagError(f"--layout {s.layout}: use one of {', '.join(LAYOUTS)}")
    if s.layout == "smear" and not s.mosaics:
        raise MixmagError("--layout smear: give --mosaics N (the number of canvases a split)")
    if s.paste[0] < 0 or s.paste[1] < s.paste[0]:
        raise MixmagError(f"--paste {s.paste[0]} {s.paste[1]}: need 0 <= LOW <= HIGH")
    if s.paste[1] and s.layout != "smear":
        raise MixmagError("--paste: cut-out cells are pasted on smear canvases; add --layout smear")
    if not 0 <= s.clumps <= 1:
        raise MixmagError(f"--clumps {s.clumps}: a share, in [0, 1]")
    if not s.scales or any(not (0.1 <= m <= 4) for m in s.scales):
        raise MixmagError(f"--scales {' '.join(map(str, s.scales))}: each must be in [0.1, 4]")
    if s.max_images is not None and s.max_images < 1:
        raise MixmagError(f"--max-images {s.max_images}: must be >= 1")
    if s.shift is not None:
        from .shifts import SHIFTS

        if s.shift not in SHIFTS:
            raise MixmagError(f"--shift {s.shift}: unknown; one of {', '.join(SHIFTS)}")
    if s.mosaics < 0 or s.canvas < 256 or not (1 <= s.per_mosaic[0] <= s.per_mosaic[1]):
        raise MixmagError(f"--mosaics {s.mosaics} / --canvas {s.canvas} / --per-mosaic "
                          f"{s.per_mosaic[0]} {s.per_mosaic[1]}: need mosaics >= 0, canvas >= 256, "
                          "1 <= low <= high")


def _scale_tag(m: float) -> str:
    return f"x{m:g}"


def _field_records(r, boxes: pd.DataFrame, centre, m: float, w: int, h: int, w0: int, h0: int,
                   dx: int, dy: int, edge: float) -> pd.DataFrame:
    """Records of one field's boxes, scaled to its size (w, h) and shifted by (dx, dy); ``cut``
    is judged against the field's own edges (a mosaic's other fields do not uncut a cell)."""
    b = boxes.copy()
    b[["x1", "x2"]] *= w / w0
    b[["y1", "y2"]] *= h / h0
    cut = ((b["x1"] <= edge) | (b["y1"] <= edge) | (b["x2"] >= w - edge) | (b["y2"] >= h - edge))
    return pd.DataFrame({
        "class_name": b["class_name"].to_numpy(),
        "class_id": [FIELD_CLASSES.index(c) for c in b["class_name"]],
        "source": r.path, "split": r.split, "magnification": float(m),
        "x1": (b["x1"] + dx).round(2), "y1": (b["y1"] + dy).round(2),
        "x2": (b["x2"] + dx).round(2), "y2": (b["y2"] + dy).round(2),
        "mask_area": ((b["x2"] - b["x1"]) * (b["y2"] - b["y1"])).round().astype(int),
        "oi_class": b["oi_class"].to_numpy(),
        "centre": b.index.to_numpy() == (centre if centre is not None else -1),
        "cut": cut.to_numpy(), "pasted": False})


def _pack(sizes: list[tuple[int, int]], canvas: int, rng, grid: int = 8) -> list[tuple[int, int] | None]:
    """Top-left corners for (w, h) rectangles on a canvas without overlap (a gap of 0-3 grid
    cells around each): largest first, each at the first free spot in raster order of a coarse
    occupancy grid; None for one that no longer fits (it is left out)."""
    n = canvas // grid
    occ = np.zeros((n, n), np.int32)
    out: list[tuple[int, int] | None] = [None] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda k: -sizes[k][0] * sizes[k][1]):
        w, h = sizes[i]
        gw, gh = -(-w // grid), -(-h // grid)
        if gw > n or gh > n:
            continue
        pad = int(rng.integers(0, 4))
        ii = np.pad(occ, ((1, 0), (1, 0))).cumsum(0).cumsum(1)   # summed-area table
        fh, fw = min(gh + pad, n), min(gw + pad, n)
        used = ii[fh:, fw:] - ii[:-fh, fw:] - ii[fh:, :-fw] + ii[:-fh, :-fw]
        free = np.argwhere(used == 0)
        free = free[(free[:, 0] + gh <= n) & (free[:, 1] + gw <= n)]
        if not len(free):
            continue
        y, x = free[0]
        occ[y:y + fh, x:x + fw] = 1
        out[i] = (int(x) * grid, int(y) * grid)
    return out


def build_fields(out: str | os.PathLike, manifest: pd.DataFrame, labels: Path,
                 settings: FieldSettings | None = None, progress: bool = True,
                 final: str | os.PathLike | None = None) -> dict:
    """Write the real-field dataset at ``out`` (which must be free: the caller checks it) from a
    loaded manifest and the OI-PBC ``labels/`` folder; returns its dataset.json dict. ``final``:
    the folder it will be moved to, for data.yaml's path."""
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
    rows.attrs["manifest_hash"] = manifest.attrs.get("manifest_hash", "")
    if rows.empty:
        raise MixmagError(f"{labels}: no OI-PBC label file for any image of split(s) "
                          f"{', '.join(s.splits)}; is it the labels folder of these images?")
    if s.mosaics and s.layout == "smear":
        cells, images = _smear_canvases(root, rows, manifest, labels, s, progress, final or root)
    elif s.mosaics:
        cells, images = _mosaics(root, rows, labels, s, progress)
    else:
        cells, images = _single_fields(root, rows, labels, s, progress)
    return _finish(root, rows, labels, s, cells, images, unlabelled, t0, final)


def _write_image(root: Path, name: str, split: str, pic: np.ndarray, recs: pd.DataFrame,
                 quality: int, shift: str | None = None) -> None:
    if shift is not None:
        from .shifts import apply_shift

        pic = apply_shift(pic, shift)
    ok, jpg = cv2.imencode(".jpg", pic, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise MixmagError(f"{root / name}: JPEG encoding failed")
    write_bytes(root / name, jpg.tobytes())
    write_text(root / "labels" / split / (Path(name).stem + ".txt"),
               yolo_lines(recs.to_dict("records")))


def _mosaics(root: Path, rows: pd.DataFrame, labels: Path, s: FieldSettings, progress: bool):
    """``s.mosaics`` canvases a split, each of 4-9 (``per_mosaic``) whole fields of that split at
    magnifications drawn from ``s.scales``, packed without overlap on the background grey the
    tiler pads with; every cell keeps its field's magnification and source."""
    from tqdm import tqdm

    cells, images, image_id = [], [], 0
    for split, part in rows.groupby("split", sort=False):
        rng = np.random.default_rng([s.seed, SPLITS.index(split)])
        for k in tqdm(range(s.mosaics), disable=not progress, desc=f"mosaics {split}", unit="img"):
            n = int(rng.integers(s.per_mosaic[0], s.per_mosaic[1] + 1))
            picks = part.iloc[rng.choice(len(part), size=min(n, len(part)), replace=False)]
            mags = rng.choice(np.asarray(s.scales, float), size=len(picks))
            fields = []
            for r, m in zip(picks.itertuples(index=False), mags):
                img = read_image(r.abspath)
                fields.append((r, img, scale_image(img, float(m)), float(m)))
            spots = _pack([(f[2].shape[1], f[2].shape[0]) for f in fields], s.canvas, rng)
            canvas = np.full((s.canvas, s.canvas, 3), MOSAIC_GREY, np.uint8)
            name = f"images/{split}/mosaic-{k:06d}.jpg"
            recs = []
            for (r, img, pic, m), spot in zip(fields, spots):
                if spot is None:
                    continue
                (x, y), (h, w), (h0, w0) = spot, pic.shape[:2], img.shape[:2]
                canvas[y:y + h, x:x + w] = pic
                boxes = read_boxes(label_file(labels, r.path), w0, h0)
                recs.append(_field_records(r, boxes, centre_box(boxes, w0, h0), m, w, h, w0, h0,
                                           x, y, s.edge))
            recs = pd.concat(recs, ignore_index=True)
            recs.insert(0, "image", name)
            recs.insert(1, "image_id", image_id)
            recs.insert(2, "cell", np.arange(len(recs)))
            recs["width"] = recs["height"] = s.canvas
            _write_image(root, name, split, canvas, recs, s.jpeg_quality, s.shift)
            cells.append(recs)
            images.append({"image": name, "image_id": image_id, "width": s.canvas,
                           "height": s.canvas, "split": split})
            image_id += 1
    return cells, images


def _paste_store(manifest: pd.DataFrame, split: str, s: FieldSettings, root: Path):
    """(store, rows by class) of the cut-outs a smear canvas of ``split`` may paste: that split's
    sources, masked on first use (cached as ``synthesize`` caches them)."""
    from .cutout import MASK_VERSION, CutoutStore, default_cache_dir

    part = manifest[manifest["split"] == split].reset_index(drop=True)
    part.attrs = dict(manifest.attrs)
    cache = Path(s.cache) if s.cache else default_cache_dir(root)
    store = CutoutStore.from_manifest(part, cache, mask_version=s.mask_version or MASK_VERSION)
    by_class = {c: np.flatnonzero(part["class_name"].to_numpy() == c) for c in CLASS_NAMES}
    return _LazyStore(store), by_class


class _LazyStore:
    """A manifest's CutoutStore that masks (or reads from the cache) one cut-out when it is used."""

    def __init__(self, store):
        self.store = store

    def columns(self):
        return self.store.columns()

    def get(self, i: int):
        self.store.require([i], workers=1, progress=False)
        return self.store.get(i)


def _smear_canvases(root: Path, rows: pd.DataFrame, manifest: pd.DataFrame, labels: Path,
                    s: FieldSettings, progress: bool, final: Path):
    """``s.mosaics`` smear canvases a split (mixmag.synth.smear): fields of that split edge to
    edge at one magnification drawn from ``s.scales``, cut by the canvas edge, with
    ``s.paste`` cut-out cells of that split pasted among them."""
    from tqdm import tqdm

    from .smear import clip_records, field_grid, paste_cells

    cells, images, image_id = [], [], 0
    for split, part in rows.groupby("split", sort=False):
        rng = np.random.default_rng([s.seed, SPLITS.index(split), 1])
        store, by_class = _paste_store(manifest, split, s, final) if s.paste[1] else (None, {})
        for k in tqdm(range(s.mosaics), disable=not progress, desc=f"smear canvases {split}",
                      unit="img"):
            m = float(rng.choice(np.asarray(s.scales, float)))
            w, h = max(1, round(360 * m)), max(1, round(363 * m))  # PBC's field, at m
            grid = field_grid((w, h), s.canvas, rng)
            picks = part.iloc[rng.choice(len(part), size=len(grid), replace=len(grid) > len(part))]
            canvas = np.empty((s.canvas, s.canvas, 3), np.uint8)
            recs = []
            for r, (x, y) in zip(picks.itertuples(index=False), grid):
                img = read_image(r.abspath)
                h0, w0 = img.shape[:2]
                pic = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if w < w0 else cv2.INTER_CUBIC)
                x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, s.canvas), min(y + h, s.canvas)
                canvas[y1:y2, x1:x2] = pic[y1 - y:y2 - y, x1 - x:x2 - x]
                boxes = read_boxes(label_file(labels, r.path), w0, h0)
                recs.append(_field_records(r, boxes, centre_box(boxes, w0, h0), w / w0, w, h, w0,
                                           h0, x, y, s.edge))
            recs = clip_records(pd.concat(recs, ignore_index=True), s.canvas)
            if s.paste[1]:
                n = int(rng.integers(s.paste[0], s.paste[1] + 1))
                recs = paste_cells(canvas, recs, store, by_class, m, n, rng, split, clumps=s.clumps)
            name = f"images/{split}/smear-{k:06d}.jpg"
            recs.insert(0, "image", name)
            recs.insert(1, "image_id", image_id)
            recs.insert(2, "cell", np.arange(len(recs)))
            recs["width"] = recs["height"] = s.canvas
            _write_image(root, name, split, canvas, recs, s.jpeg_quality, s.shift)
            cells.append(recs)
            images.append({"image": name, "image_id": image_id, "width": s.canvas,
                           "height": s.canvas, "split": split})
            image_id += 1
    return cells, images


def _single_fields(root: Path, rows: pd.DataFrame, labels: Path, s: FieldSettings, progress: bool):
    from tqdm import tqdm

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
            name = f"images/{r.split}/{Path(r.path).stem}-{_scale_tag(m)}.jpg"
            recs = _field_records(r, boxes, centre, m, w, h, w0, h0, 0, 0, s.edge)
            recs.insert(0, "image", name)
            recs.insert(1, "image_id", image_id)
            recs.insert(2, "cell", np.arange(len(recs)))
            recs["width"], recs["height"] = w, h
            _write_image(root, name, r.split, pic, recs, s.jpeg_quality, s.shift)
            cells.append(recs)
            images.append({"image": name, "image_id": image_id, "width": w, "height": h,
                           "split": r.split})
            image_id += 1
    return cells, images


def _finish(root: Path, rows: pd.DataFrame, labels: Path, s: FieldSettings, cells, images,
            unlabelled: int, t0: float, final) -> dict:
    cells = pd.concat(cells, ignore_index=True)
    images = pd.DataFrame(images)
    write_exports(root, cells, images, s.splits, FIELD_CLASSES, EXTRA_COLUMNS,
                  "mixmag real PBC fields, every cell boxed (OI-PBC labels)", final_root=final)
    counts = cells.groupby(["split", "class_name"]).size().unstack(fill_value=0)
    meta = {
        "format": FORMAT, "mixmag_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "settings": asdict(s), "manifest_hash": rows.attrs.get("manifest_hash", ""),
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
