"""Cut-outs: the masked centre cell of each source, cropped tight (+ margin), cached on disk.

A cut-out is what the generator pastes: the cell's crop as JPEG bytes, its feathered alpha mask
as PNG bytes, and the source's plasma / red-cell colours (for the background). The generator only
ever works from cut-outs, so a run from the PBC folder (cut-outs made and cached per source) and a
run from a packed bundle (``pack_cutouts``, for a machine without PBC) give the same images.

Cache: one small ``.npz`` per source under ``<cache>/cutouts/<MASK_VERSION>/<sha[:2]>/``, keyed by
the source's sha256 and class, so a changed algorithm (new mask version) never reuses stale masks.
"""

from __future__ import annotations

import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..classes import CLASS_ID, CLASS_NAMES
from ..errors import MixmagError
from ..fileio import write_bytes
from .mask import MASK_VERSION, cell_mask, check_version, stain_map, white_balance

MARGIN = 4            # px of context kept around the mask (the feathered edge lives there)
FEATHER_SIGMA = 1.2   # px; alpha edge softness at source resolution
CROP_JPEG_QUALITY = 95
BUNDLE_FORMAT = "mixmag-cutouts/1"


@dataclass
class Cutout:
    bgr: np.ndarray        # (h, w, 3) uint8
    alpha: np.ndarray      # (h, w) uint8, feathered; >= 128 is the cell
    palette: np.ndarray    # (2, 3) uint8 BGR: plasma colour, red-cell colour of the source


def default_cache_dir(out: str | os.PathLike | None = None) -> Path:
    """$MIXMAG_CACHE, else ``<parent of the dataset>/.cache`` (e.g. datasets/.cache)."""
    env = os.environ.get("MIXMAG_CACHE")
    if env:
        return Path(env)
    if out is not None:
        return Path(out).resolve().parent / ".cache"
    return Path("datasets/.cache").resolve()


def source_palette(bgr: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Plasma and red-cell colours of a crop, from pixels away from the cell and any stain."""
    away = ~cv2.dilate(cell.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    away &= ~cv2.dilate(stain_map(bgr).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    px = bgr[away]
    if len(px) < 100:
        px = bgr.reshape(-1, 3)
    od = -np.log(white_balance(px[None])[0]).sum(-1)
    lo, hi = np.percentile(od, [25, 75])
    plasma = np.median(px[od <= lo], axis=0)
    rbc = np.median(px[od >= hi], axis=0)
    return np.stack([plasma, rbc]).round().astype(np.uint8)


def make_cutout(bgr: np.ndarray, class_name: str,
                mask_version: str = MASK_VERSION) -> tuple[bytes, bytes, dict]:
    """Segment the centre cell of one crop; return (crop JPEG, alpha PNG, meta)."""
    res = cell_mask(bgr, class_name, version=mask_version)
    m = res.mask > 0
    ys, xs = np.nonzero(m)
    H, W = m.shape
    x1, x2 = max(0, xs.min() - MARGIN), min(W, xs.max() + 1 + MARGIN)
    y1, y2 = max(0, ys.min() - MARGIN), min(H, ys.max() + 1 + MARGIN)
    alpha = cv2.GaussianBlur(res.mask.astype(np.float32), (0, 0), FEATHER_SIGMA)
    alpha = np.clip(alpha[y1:y2, x1:x2] + 0.5, 0, 255).astype(np.uint8)
    ok1, jpg = cv2.imencode(".jpg", bgr[y1:y2, x1:x2], [cv2.IMWRITE_JPEG_QUALITY, CROP_JPEG_QUALITY])
    ok2, png = cv2.imencode(".png", alpha, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    meta = {"status": res.status, "mask_area": res.area, "nucleus_area": res.nucleus_area,
            "crop_xyxy": [int(x1), int(y1), int(x2), int(y2)], "source_wh": [W, H],
            "palette": source_palette(bgr, m).tolist()}
    return jpg.tobytes(), png.tobytes(), meta


def decode_cutout(jpg: bytes | np.ndarray, png: bytes | np.ndarray, palette) -> Cutout:
    bgr = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
    alpha = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    if bgr is None or alpha is None or bgr.shape[:2] != alpha.shape:
        raise MixmagError("cut-out: corrupt crop or alpha bytes; rebuild the cache or bundle")
    return Cutout(bgr, alpha, np.asarray(palette, np.uint8).reshape(2, 3))


# --- per-source cache -------------------------------------------------------------------------

def _cache_file(cache: Path, sha: str, class_name: str, mask_version: str) -> Path:
    return cache / "cutouts" / mask_version / sha[:2] / f"{sha}-{class_name}.npz"


def _pack_entry(jpg: bytes, png: bytes, meta: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, jpg=np.frombuffer(jpg, np.uint8), png=np.frombuffer(png, np.uint8),
             meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return buf.getvalue()


def _read_entry(path: Path) -> tuple[bytes, bytes, dict]:
    with np.load(path, allow_pickle=False) as z:
        return z["jpg"].tobytes(), z["png"].tobytes(), json.loads(z["meta"].tobytes())


def cached_mask_box(cache: Path, sha: str, class_name: str, mask_version: str):
    """((x1, y1, x2, y2), (width, height)) of a cached cut-out's mask in its source image, or None
    when the cut-out is not cached. The crop keeps MARGIN px of context beyond the mask on each
    side that the image has."""
    f = _cache_file(Path(cache), sha, class_name, mask_version)
    if not f.is_file():
        return None
    with np.load(f, allow_pickle=False) as z:   # the meta member alone, not the crop's bytes
        meta = json.loads(z["meta"].tobytes())
    W, H = meta["source_wh"]
    x1, y1, x2, y2 = meta["crop_xyxy"]
    box = (x1 + MARGIN if x1 > 0 else 0, y1 + MARGIN if y1 > 0 else 0,
           x2 - MARGIN if x2 < W else W, y2 - MARGIN if y2 < H else H)
    return box, (W, H)


def _build_one(args) -> str:
    abspath, sha, class_name, dest, mask_version = args
    from ..data.scan import MIN_SOURCE_SIDE
    from ..images import read_image

    jpg, png, meta = make_cutout(read_image(abspath, min_side=MIN_SOURCE_SIDE), class_name, mask_version)
    write_bytes(dest, _pack_entry(jpg, png, meta))
    return meta["status"]


def ensure_cutouts(sources: pd.DataFrame, cache: Path, workers: int = 2,
                   progress: bool = True, mask_version: str = MASK_VERSION) -> None:
    """Make (once) the cached cut-out of every source row (needs columns abspath, sha256, class_name)."""
    check_version(mask_version)
    todo = []
    for r in sources[["abspath", "sha256", "class_name"]].drop_duplicates(["sha256", "class_name"]).itertuples(index=False):
        dest = _cache_file(cache, r.sha256, r.class_name, mask_version)
        if not dest.is_file():
            todo.append((r.abspath, r.sha256, r.class_name, dest, mask_version))
    if not todo:
        return
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="cell masks", unit="src", disable=not progress, leave=False)
    if workers <= 1:
        for t in todo:
            _build_one(t)
            bar.update()
    else:
        with cv_single_thread(), ProcessPoolExecutor(workers, mp_context=_mp_context()) as ex:
            for _ in ex.map(_build_one, todo, chunksize=16):
                bar.update()
    bar.close()


class cv_single_thread:
    """OpenCV single-threaded while a fork pool lives: a child forked from a process whose OpenCV
    thread pool has run can hang in its first parallel call (seen here with imencode)."""

    def __enter__(self):
        self.prev = cv2.getNumThreads()
        cv2.setNumThreads(1)

    def __exit__(self, *exc):
        cv2.setNumThreads(self.prev)


def _mp_context():
    import multiprocessing as mp

    return mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None


def source_mask(abspath: str | os.PathLike, class_name: str, sha256: str | None = None,
                cache: str | os.PathLike | None = None, mask_version: str = MASK_VERSION) -> np.ndarray:
    """The cell mask of one PBC source at full resolution (uint8 0/255), from the cache if present.

    This is the per-source mask function other stages use (e.g. to crop a classifier's input the
    way the generator pastes it).
    """
    from ..fileio import sha256_file
    from ..images import read_image

    sha256 = sha256 or sha256_file(abspath)
    cache = Path(cache) if cache else default_cache_dir()
    f = _cache_file(cache, sha256, class_name, mask_version)
    if f.is_file():
        jpg, png, meta = _read_entry(f)
        W, H = meta["source_wh"]
        x1, y1, x2, y2 = meta["crop_xyxy"]
        alpha = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
        out = np.zeros((H, W), np.uint8)
        out[y1:y2, x1:x2] = np.where(alpha >= 128, 255, 0)
        return out
    return cell_mask(read_image(abspath), class_name, version=mask_version).mask


# --- the in-memory store the generator uses ---------------------------------------------------

class CutoutStore:
    """Encoded cut-outs plus a table of sources (one row a cut-out).

    ``table`` columns: source, sha256, class_name, class_id, split, status, mask_area.
    From a bundle, the bytes sit in flat arrays; from a manifest, a row's cut-out is made or read
    from the cache only when ``require`` asks for it (a small run needs not mask all of PBC).
    """

    def __init__(self, table: pd.DataFrame, jpg_data=None, jpg_off=None, png_data=None,
                 png_off=None, palette=None, origin: str = "", mask_version: str = MASK_VERSION):
        self.table = table.reset_index(drop=True)
        self.jpg_data, self.jpg_off = jpg_data, jpg_off
        self.png_data, self.png_off = png_data, png_off
        self.palette = palette
        self.origin = origin
        self.mask_version = mask_version
        self.entries: dict[int, tuple[bytes, bytes, np.ndarray]] = {}
        self.manifest = None
        self.cache = None

    def __len__(self) -> int:
        return len(self.table)

    def columns(self) -> tuple[list[int], list[str]]:
        """(class ids, source paths) as plain lists: per-cell lookups without pandas."""
        cols = getattr(self, "_columns", None)
        if cols is None or len(cols[0]) != len(self.table):
            cols = (self.table["class_id"].astype(int).tolist(), self.table["source"].astype(str).tolist())
            self._columns = cols
        return cols

    def encoded(self, i: int) -> tuple[bytes, bytes, np.ndarray]:
        if self.jpg_data is not None:
            return (self.jpg_data[self.jpg_off[i]:self.jpg_off[i + 1]].tobytes(),
                    self.png_data[self.png_off[i]:self.png_off[i + 1]].tobytes(), self.palette[i])
        if i not in self.entries:
            raise KeyError(f"cut-out {i} not loaded; call require() first")
        return self.entries[i]

    def get(self, i: int) -> Cutout:
        return decode_cutout(*self.encoded(i))

    def require(self, rows, workers: int = 2, progress: bool = True) -> None:
        """Make sure the cut-outs of ``rows`` are available (mask them once, then cache)."""
        if self.jpg_data is not None:
            return
        rows = sorted(set(int(r) for r in rows) - set(self.entries))
        if not rows:
            return
        sub = self.manifest.iloc[rows]
        ensure_cutouts(sub, self.cache, workers=workers, progress=progress,
                       mask_version=self.mask_version)
        for i, sha, c in zip(rows, sub["sha256"], sub["class_name"]):
            jpg, png, meta = _read_entry(_cache_file(self.cache, sha, c, self.mask_version))
            self.entries[i] = (jpg, png, np.array(meta["palette"], np.uint8).reshape(2, 3))
            self.table.at[i, "status"] = meta["status"]
            self.table.at[i, "mask_area"] = int(meta["mask_area"])

    @classmethod
    def from_manifest(cls, manifest: pd.DataFrame, cache: Path, workers: int = 2,
                      progress: bool = True, load_all: bool = False,
                      mask_version: str = MASK_VERSION) -> "CutoutStore":
        table = pd.DataFrame({
            "source": manifest["path"].to_numpy(str), "sha256": manifest["sha256"].to_numpy(str),
            "class_name": manifest["class_name"].to_numpy(str),
            "class_id": [CLASS_ID[c] for c in manifest["class_name"]],
            "split": manifest["split"].to_numpy(str), "status": "not-loaded", "mask_area": 0})
        store = cls(table, origin=f"manifest:{manifest.attrs.get('manifest_hash', '')}",
                    mask_version=check_version(mask_version))
        store.manifest = manifest.reset_index(drop=True)
        store.cache = Path(cache)
        if load_all:
            store.require(range(len(table)), workers, progress)
        return store

    def flat(self):
        """(jpg_data, jpg_off, png_data, png_off, palette) over all rows (all must be loaded)."""
        if self.jpg_data is not None:
            return self.jpg_data, self.jpg_off, self.png_data, self.png_off, self.palette
        enc = [self.encoded(i) for i in range(len(self))]
        return (*_concat([e[0] for e in enc]), *_concat([e[1] for e in enc]),
                np.stack([e[2] for e in enc]) if enc else np.zeros((0, 2, 3), np.uint8))

    @classmethod
    def from_bundle(cls, path: str | os.PathLike) -> "CutoutStore":
        path = Path(path)
        if not path.is_file():
            raise MixmagError(f"cut-out bundle {path} does not exist; make one with `mixmag pack-cutouts`")
        try:
            z = np.load(path, allow_pickle=False)
            meta = json.loads(z["meta"].tobytes())
            if meta.get("format") != BUNDLE_FORMAT:
                raise ValueError(meta.get("format"))
            table = pd.DataFrame({
                "source": z["source"].astype(str), "sha256": z["sha256"].astype(str),
                "class_id": z["class_id"].astype(int), "split": z["split"].astype(str),
                "status": z["status"].astype(str), "mask_area": z["mask_area"].astype(int)})
            store = cls(table, z["jpg_data"], z["jpg_off"], z["png_data"], z["png_off"],
                        z["palette"], origin=f"bundle:{meta.get('manifest_hash', '')}",
                        mask_version=str(meta.get("mask_version", "m4")))
        except MixmagError:
            raise
        except Exception as e:
            raise MixmagError(f"cut-out bundle {path} is not a mixmag cut-out bundle "
                              f"({type(e).__name__}: {e}); rebuild it with `mixmag pack-cutouts`") from None
        table.insert(2, "class_name", [CLASS_NAMES[i] for i in table["class_id"]])
        store.table = table[["source", "sha256", "class_name", "class_id", "split", "status", "mask_area"]]
        store.meta = meta
        return store


def _concat(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    off = np.zeros(len(blobs) + 1, np.int64)
    off[1:] = np.cumsum([len(b) for b in blobs])
    return np.frombuffer(b"".join(blobs), np.uint8), off


def pack_cutouts(manifest: pd.DataFrame, splits=("train", "val", "test"),
                 out_npz: str | os.PathLike = "cutouts.npz", max_per_class: int | None = None,
                 cache: str | os.PathLike | None = None, workers: int = 2, seed: int = 0,
                 progress: bool = True, mask_version: str = MASK_VERSION) -> dict:
    """Write a compact bundle of cut-outs (crop JPEG + alpha PNG per source, with class, split,
    source path and sha256) that ``synthesize(cutouts=...)`` runs from without the PBC folder.

    ``max_per_class`` keeps a seeded random subset per (split, class). Returns a summary dict.
    """
    m = manifest[manifest["split"].isin(list(splits))]
    if max_per_class:
        m = (m.groupby(["split", "class_name"], group_keys=False)
             .apply(lambda g: g.sample(min(len(g), max_per_class), random_state=seed)))
    order = {"train": 0, "val": 1, "test": 2}
    m = m.sort_values(["split", "class_id", "path"],
                      key=lambda c: c.map(order) if c.name == "split" else c).reset_index(drop=True)
    m.attrs = manifest.attrs
    if m.empty:
        raise MixmagError(f"pack-cutouts: no sources in splits {list(splits)}")
    store = CutoutStore.from_manifest(m, Path(cache) if cache else default_cache_dir(), workers,
                                      progress, load_all=True, mask_version=mask_version)
    t = store.table
    jpg_data, jpg_off, png_data, png_off, palette = store.flat()
    meta = {"format": BUNDLE_FORMAT, "mask_version": mask_version,
            "manifest_hash": manifest.attrs.get("manifest_hash", ""), "splits": list(splits),
            "max_per_class": max_per_class, "n": len(t)}
    buf = io.BytesIO()
    np.savez(buf, jpg_data=jpg_data, jpg_off=jpg_off, png_data=png_data,
             png_off=png_off, palette=palette,
             source=t["source"].to_numpy(str), sha256=t["sha256"].to_numpy(str),
             class_id=t["class_id"].to_numpy(np.int16), split=t["split"].to_numpy(str),
             status=t["status"].to_numpy(str), mask_area=t["mask_area"].to_numpy(np.int32),
             meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    data = buf.getvalue()
    write_bytes(out_npz, data)
    return {**meta, "bytes": len(data), "bytes_per_1000": round(len(data) / len(t) * 1000),
            "fallbacks": int((t["status"] != "ok").sum())}


def pack_cutouts_of_split(split: str | os.PathLike, out: str | os.PathLike, *, pbc=None,
                          splits=("train", "val", "test"), max_per_class: int | None = None,
                          cache=None, workers: int = 2, seed: int = 0,
                          mask_version: str = MASK_VERSION, overwrite: bool = False) -> dict:
    """``mixmag pack-cutouts``: the manifest's cut-outs of ``splits`` in one .npz at ``out``."""
    from ..data.split import load_manifest
    from ..fileio import prepare_output

    prepare_output(out, overwrite, "cut-out bundle")
    m = load_manifest(split, pbc=pbc, verify="sample")
    return pack_cutouts(m, tuple(splits), out, max_per_class, cache=cache or default_cache_dir(out),
                        workers=workers, seed=seed, mask_version=mask_version)
