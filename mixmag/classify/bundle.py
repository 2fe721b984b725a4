"""Pre-resized, encoded image bundles: the training data for a machine that cannot see the PBC folder.

A bundle is one ``.npz`` (loaded with ``allow_pickle=False``) holding every image as encoded bytes
(WebP by default: at 160 px, quality 90, about 4.2 KB an image, so train+val of PBC's 70 %, ~10,200
images, is about 42 MB) concatenated in ``data`` with ``offsets``, plus labels, splits, manifest
paths, source sha256s, the stored size and its scale relative to the source, and the manifest hash.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES
from ..errors import MixmagError
from ..fileio import atomic_path, prepare_output
from ..images import read_image
from .augment import prepare

BUNDLE_FORMAT = "mixmag-bundle/1"
ENCODINGS = {"webp": (".webp", cv2.IMWRITE_WEBP_QUALITY), "jpeg": (".jpg", cv2.IMWRITE_JPEG_QUALITY)}


def encode_one(path: str, size: int, fmt: str, quality: int) -> bytes:
    ext, flag = ENCODINGS[fmt]
    rgb = prepare(read_image(path), size)
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [flag, int(quality)])
    if not ok:
        raise MixmagError(f"{path}: could not encode as {fmt}")
    return buf.tobytes()


def pack(manifest: pd.DataFrame, out_npz: str | os.PathLike, size: int = 160,
         splits=("train", "val"), quality: int = 90, fmt: str = "webp", workers: int = 0,
         overwrite: bool = False, progress: bool = True) -> dict:
    """Write the ``splits`` of a loaded manifest (``load_manifest``) as a bundle; returns a summary."""
    if fmt not in ENCODINGS:
        raise MixmagError(f"bundle format {fmt!r} unknown; use one of {sorted(ENCODINGS)}")
    out = prepare_output(out_npz, overwrite, "bundle")
    rows = manifest[manifest["split"].isin(splits)].reset_index(drop=True)
    if rows.empty:
        raise MixmagError(f"manifest has no images in splits {list(splits)}")
    workers = workers or min(8, os.cpu_count() or 1)
    from tqdm import tqdm

    with ThreadPoolExecutor(workers) as ex:  # cv2 releases the GIL while decoding/encoding
        it = ex.map(lambda p: encode_one(p, size, fmt, quality), rows["abspath"])
        blobs = list(tqdm(it, total=len(rows), desc=f"bundle {size}px {fmt} q{quality}",
                          disable=not progress, unit="img"))
    offsets = np.zeros(len(blobs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    native = rows[["width", "height"]].max(axis=1).to_numpy(float) if "width" in rows else \
        np.full(len(rows), np.nan)
    arrays = dict(
        format=np.array(BUNDLE_FORMAT), data=np.frombuffer(b"".join(blobs), np.uint8),
        offsets=offsets, labels=rows["class_id"].to_numpy(np.int16),
        splits=rows["split"].to_numpy(str), paths=rows["path"].to_numpy(str),
        sha256=rows["sha256"].to_numpy(str), class_names=np.array(CLASS_NAMES),
        size=np.array(size), scale=(size / native).astype(np.float32),
        encoding=np.array(fmt), quality=np.array(quality),
        manifest_hash=np.array(manifest.attrs.get("manifest_hash", "")),
    )
    with atomic_path(out, suffix=".npz") as tmp:
        # compressed: the encoded images do not shrink, but the path/hash strings do (~4 MB)
        np.savez_compressed(tmp, **arrays)
    kb = offsets[-1] / len(blobs) / 1024
    return {"path": str(out), "images": len(blobs), "bytes": int(Path(out).stat().st_size),
            "kb_per_image": round(kb, 2), "size": size, "format": fmt, "quality": quality,
            "splits": {s: int((rows["split"] == s).sum()) for s in splits}}


class Bundle:
    """A loaded bundle; ``image(i)`` decodes one image to RGB uint8 (cheap: call it in workers)."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if not path.is_file():
            raise MixmagError(f"bundle {path} does not exist; make one with `mixmag pack-bundle`")
        try:
            z = np.load(path, allow_pickle=False)
            fmt = str(z["format"])
            arrays = {k: z[k] for k in z.files}
        except Exception as e:
            raise MixmagError(f"bundle {path} is not a readable mixmag bundle ({type(e).__name__})") from None
        if fmt != BUNDLE_FORMAT:
            raise MixmagError(f"bundle {path} has format {fmt!r}, expected {BUNDLE_FORMAT}")
        if tuple(arrays["class_names"]) != CLASS_NAMES:
            raise MixmagError(f"bundle {path} has other classes {list(arrays['class_names'])}")
        self.path = path
        self.data, self.offsets = arrays["data"], arrays["offsets"]
        self.labels = arrays["labels"].astype(np.int64)
        self.splits = arrays["splits"].astype(str)
        self.paths = arrays["paths"].astype(str)
        self.sha256 = arrays["sha256"].astype(str)
        self.size = int(arrays["size"])
        self.scale = arrays["scale"]
        self.manifest_hash = str(arrays["manifest_hash"])
        # optional (pack-crops): where each image comes from, "pbc" or "composite"
        n = len(self.labels)
        self.origin = arrays["origin"].astype(str) if "origin" in arrays else np.full(n, "pbc")
        self.magnification = (arrays["magnification"].astype(np.float32) if "magnification" in arrays
                              else np.ones(n, np.float32))

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> np.ndarray:
        buf = self.data[self.offsets[i]:self.offsets[i + 1]]
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if img is None:
            raise MixmagError(f"bundle {self.path}: image {i} ({self.paths[i]}) does not decode")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"path": self.paths, "class_id": self.labels, "split": self.splits,
                             "sha256": self.sha256})
