"""Training bundles of the crops ``mixmag predict`` cuts from composites (``mixmag pack-crops``).

The released classifiers learnt whole PBC images; in the pipeline they meet a masked cell pasted on
a procedural background, cut as a square box + margin around a detector's box. Fine-tuning the whole
network on exactly those crops closes that gap, where refitting the last layer
(``adapt-classifier``) only narrows it. This module turns a synthesized dataset's train and val
composites into an ordinary classifier bundle (``mixmag.classify.bundle``, read by
``train-classifier --bundle``):

- each truth box's edges are jittered (``domain.jitter_boxes``) so it looks like a detector's box,
  then cropped by ``mixmag.pipeline.crops.plain_crops`` with predict's margin and resized to the
  classifier input: the pixels ``predict --scale-norm off`` hands the classifier;
- labels and splits come from the dataset's records; its test split is never read (not even its
  images' rows are kept);
- optionally whole PBC train/val images (as ``pack-bundle`` stores them) make up ``pbc_share`` of
  each split, so the PBC domain is not forgotten.

Besides the standard bundle arrays it stores ``origin`` ("composite", "field" for a real-field
dataset, or "pbc"), ``magnification``
(1 for PBC images) and ``source`` (the PBC source of each crop); ``train-classifier`` reports its
val figures per origin when they are present.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..classes import CLASS_ID, CLASS_NAMES, RBC
from ..errors import MixmagError
from ..fileio import atomic_path, prepare_output
from ..images import read_image
from ..classify.bundle import ENCODINGS, BUNDLE_FORMAT, encode_one

SPLITS = ("train", "val")  # a dataset's test split is never packed


@dataclass
class CropSettings:
    size: int = 160            # stored size = the classifier input the crops are made for
    margin: float = 0.15       # predict's --margin (box + margin, square)
    jitter: float = 0.03       # sd of each box edge, fraction of the box side (detector-like boxes)
    copies: int = 1            # crops per cell, each from its own jittered box
    pbc_share: float = 0.3     # share of each split's images that are whole PBC images (with a manifest)
    max_images: int | None = None   # first N composites of each split
    quality: int = 90
    fmt: str = "webp"
    seed: int = 0


def _check(s: CropSettings) -> None:
    if s.fmt not in ENCODINGS:
        raise MixmagError(f"--format {s.fmt}: use one of {sorted(ENCODINGS)}")
    if s.size < 16:
        raise MixmagError(f"--size {s.size}: must be at least 16 px (the classifier's input, e.g. 160)")
    if not 0 <= s.margin <= 2:
        raise MixmagError(f"--margin {s.margin}: a fraction of the box side in [0, 2], e.g. 0.15")
    if not 0 <= s.jitter < 0.5:
        raise MixmagError(f"--jitter {s.jitter}: a fraction of the box side in [0, 0.5), e.g. 0.03")
    if s.copies < 1:
        raise MixmagError(f"--copies {s.copies}: must be at least 1")
    if not 0 <= s.pbc_share < 1:
        raise MixmagError(f"--pbc-share {s.pbc_share}: must be in [0, 1)")
    if s.max_images is not None and s.max_images < 1:
        raise MixmagError(f"--max-images {s.max_images}: must be at least 1")


def composite_cells(dataset: str | os.PathLike, splits=SPLITS) -> pd.DataFrame:
    """The dataset's train/val cell records; the test rows are dropped before anything else.

    A real-field dataset (``mixmag fields``) is packed the same way without its red cells: a
    detector that knows red cells makes them ``rbc`` rows, which never reach the classifier, so
    its crops are the white cells and platelets of real smears, neighbours and cut cells included."""
    from ..synth.export import load_cells

    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise MixmagError(f"--splits {bad}: only a dataset's train and val composites are packed; "
                          "its test split is kept for evaluation")
    cells = load_cells(dataset)
    cells = cells[cells["split"].isin(splits) & (cells["class_name"] != RBC)]
    cells = cells.reset_index(drop=True)
    missing = [s for s in splits if not (cells["split"] == s).any()]
    if missing:
        raise MixmagError(f"{dataset}: has no {'/'.join(missing)} composites; synthesize with "
                          "--splits train val")
    unknown = set(cells["class_name"]) - set(CLASS_NAMES)
    if unknown:
        raise MixmagError(f"{dataset}/cells.csv: unknown classes {sorted(unknown)}")
    return cells


def image_crops(dataset: Path, image: str, image_id: int, g: pd.DataFrame, s: CropSettings,
                enc) -> list[tuple[bytes, int, float]]:
    """(encoded crop, cell row position in ``g``, crop side px) for each cell and copy of one image."""
    from .adapt import jitter_boxes
    from .crops import plain_crops

    img = read_image(dataset / image)
    truth = g[["x1", "y1", "x2", "y2"]].to_numpy(float)
    out = []
    for c in range(s.copies):
        # one stream per (seed, image, copy): the bundle does not depend on thread order
        rng = np.random.default_rng([s.seed, int(image_id), c])
        boxes = jitter_boxes(truth, s.jitter, rng)
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * (1 + 2 * s.margin)
        for k, crop in enumerate(plain_crops(img, boxes, s.margin, s.size)):
            ok, buf = cv2.imencode(enc[0], crop, [enc[1], int(s.quality)])
            if not ok:
                raise MixmagError(f"{dataset / image}: could not encode a crop as {s.fmt}")
            out.append((buf.tobytes(), k, float(sides[k])))
    return out


def _pbc_rows(manifest: pd.DataFrame, split: str, n: int, seed: int) -> pd.DataFrame:
    """About ``n`` images of ``split``, as equal a number of each class as the split allows."""
    m = manifest[manifest["split"] == split]
    if n <= 0 or m.empty:
        return m.iloc[:0]
    per = int(np.ceil(n / len(CLASS_NAMES)))
    picked = (m.sample(frac=1.0, random_state=seed).groupby("class_id", sort=True).head(per))
    return picked.sort_values("path").iloc[:n] if len(picked) > n else picked.sort_values("path")


def _dataset_meta(dataset: Path) -> dict:
    meta_file = dataset / "dataset.json"
    return json.loads(meta_file.read_text()) if meta_file.is_file() else {}


def _dataset_crops(dataset: Path, ds_meta: dict, s: CropSettings, manifest, enc, workers: int,
                   progress: bool, prefix: str = "") -> tuple[list[bytes], pd.DataFrame, int]:
    """(encoded crops, their bundle rows, images read) of one dataset's train/val cells;
    ``prefix`` goes before each row's path (several datasets in one bundle share image names)."""
    from tqdm import tqdm

    cells = composite_cells(dataset)
    images = []
    for split in SPLITS:
        names = sorted(cells.loc[cells["split"] == split, "image"].unique())
        images += names[:s.max_images] if s.max_images else names
    cells = cells[cells["image"].isin(set(images))]
    groups = {name: g.sort_values("cell") for name, g in cells.groupby("image", sort=False)}
    blobs, rows, sides = [], [], []
    with ThreadPoolExecutor(workers) as ex:  # cv2 releases the GIL while decoding/encoding
        jobs = ex.map(lambda n: image_crops(dataset, n, int(groups[n]["image_id"].iloc[0]), groups[n],
                                            s, enc), images)
        for name, crops in tqdm(zip(images, jobs), total=len(images), desc=f"crops {s.size}px",
                                disable=not progress, unit="img"):
            g = groups[name]
            for blob, k, side in crops:
                blobs.append(blob)
                rows.append(g.iloc[k])
                sides.append(side)
    comp = pd.DataFrame(rows).reset_index(drop=True)
    origin = "field" if str(ds_meta.get("format", "")).startswith("mixmag-fields") else "composite"
    sha_of = dict(zip(manifest["path"], manifest["sha256"])) if manifest is not None else {}
    frame = pd.DataFrame({
        "path": prefix + comp["image"] + "#" + comp["cell"].astype(str),
        "class_id": comp["class_name"].map(CLASS_ID).astype(int), "split": comp["split"],
        "sha256": comp["source"].map(sha_of).fillna("") if sha_of else "",
        "scale": s.size / np.asarray(sides, float), "origin": origin,
        "magnification": comp["magnification"].astype(float), "source": comp["source"]})
    return blobs, frame, len(images)


def pack_crops(dataset, out_npz: str | os.PathLike, settings: CropSettings | None = None,
               pbc_split: str | os.PathLike | None = None, pbc: str | os.PathLike | None = None,
               workers: int = 0, overwrite: bool = False, progress: bool = True) -> dict:
    """Write the crop bundle of one dataset, or of several (a list: their crops side by side,
    e.g. real fields and composites, each crop's path led by its dataset's folder name); returns
    a summary (counts per split and origin, size, settings). Datasets built from different
    manifests are refused: their splits may overlap."""
    from tqdm import tqdm

    s = settings or CropSettings()
    _check(s)
    out = prepare_output(out_npz, overwrite, "bundle")
    datasets = [Path(d) for d in ([dataset] if isinstance(dataset, (str, os.PathLike)) else dataset)]
    several = len(datasets) > 1
    names = [d.name for d in datasets]
    if len(set(names)) < len(names):
        raise MixmagError(f"pack-crops: datasets named alike ({', '.join(map(str, datasets))}); a "
                          "bundle names its crops by dataset folder, so each must be given once "
                          "under its own name")
    metas = [_dataset_meta(d) for d in datasets]
    hashes = {str(d): m.get("manifest_hash", "") for d, m in zip(datasets, metas)}
    known = {h for h in hashes.values() if h}
    if len(known) > 1:
        raise MixmagError("pack-crops: the datasets were built from different manifests "
                          f"({', '.join(f'{d}: {h}' for d, h in hashes.items())}); their splits may overlap")
    ds_hash = next(iter(known), "")
    manifest = None
    if pbc_split:
        from ..data.split import load_manifest

        manifest = load_manifest(pbc_split, pbc=pbc)
        mh = manifest.attrs.get("manifest_hash", "")
        if ds_hash and mh and ds_hash != mh:
            named = str(datasets[0]) if len(datasets) == 1 else "the datasets"
            raise MixmagError(f"--pbc-split {pbc_split}: manifest {mh}, but {named} came from "
                              f"manifest {ds_hash}; their splits may overlap, use the dataset's manifest")
        ds_hash = ds_hash or mh
    enc = ENCODINGS[s.fmt]
    workers = workers or min(4, os.cpu_count() or 1)
    blobs, frames, n_images = [], [], 0
    for d, meta in zip(datasets, metas):
        b, f, n = _dataset_crops(d, meta, s, manifest, enc, workers, progress,
                                 prefix=f"{d.name}/" if several else "")
        blobs += b
        frames.append(f)
        n_images += n
    frame = pd.concat(frames, ignore_index=True)

    if manifest is not None and s.pbc_share > 0:
        picks = []
        for split in SPLITS:
            n_comp = int((frame["split"] == split).sum())
            picks.append(_pbc_rows(manifest, split, round(s.pbc_share / (1 - s.pbc_share) * n_comp),
                                   s.seed))
        prow = pd.concat(picks, ignore_index=True)
        with ThreadPoolExecutor(workers) as ex:
            pblobs = list(tqdm(ex.map(lambda p: encode_one(p, s.size, s.fmt, s.quality), prow["abspath"]),
                               total=len(prow), desc="PBC images", disable=not progress, unit="img"))
        native = prow[["width", "height"]].max(axis=1).to_numpy(float) if "width" in prow else \
            np.full(len(prow), np.nan)
        blobs += pblobs
        frame = pd.concat([frame, pd.DataFrame({
            "path": prow["path"], "class_id": prow["class_id"].astype(int), "split": prow["split"],
            "sha256": prow["sha256"], "scale": s.size / native, "origin": "pbc",
            "magnification": 1.0, "source": prow["path"]})], ignore_index=True)
    if not blobs:
        raise MixmagError(f"{', '.join(map(str, datasets))}: no cells in the train/val composites")

    offsets = np.zeros(len(blobs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    summary_meta = {"dataset": str(datasets[0]) if len(datasets) == 1 else [str(d) for d in datasets],
                    "settings": asdict(s),
                    "pbc_split": str(pbc_split) if pbc_split else None, "crop": "plain (box + margin)"}
    arrays = dict(
        format=np.array(BUNDLE_FORMAT), data=np.frombuffer(b"".join(blobs), np.uint8),
        offsets=offsets, labels=frame["class_id"].to_numpy(np.int16),
        splits=frame["split"].to_numpy(str), paths=frame["path"].to_numpy(str),
        sha256=frame["sha256"].astype(str).to_numpy(str), class_names=np.array(CLASS_NAMES),
        size=np.array(s.size), scale=frame["scale"].to_numpy(np.float32),
        encoding=np.array(s.fmt), quality=np.array(s.quality), manifest_hash=np.array(ds_hash),
        origin=frame["origin"].to_numpy(str), magnification=frame["magnification"].to_numpy(np.float32),
        source=frame["source"].astype(str).to_numpy(str), meta=np.array(json.dumps(summary_meta)),
    )
    with atomic_path(out, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    counts = frame.groupby(["split", "origin"]).size()
    return {"path": str(out), "images": len(blobs), "bytes": int(Path(out).stat().st_size),
            "composites": n_images,
            "counts": {f"{a}/{b}": int(v) for (a, b), v in counts.items()},
            "kb_per_image": round(offsets[-1] / len(blobs) / 1024, 2), **asdict(s)}
