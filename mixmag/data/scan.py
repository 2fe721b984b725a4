"""Find the PBC dataset on disk and list (optionally validate) its images."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from ..classes import CLASS_ID, CLASS_NAMES
from ..errors import MixmagError

GET_DATASET = (
    "get the PBC dataset (Acevedo et al. 2020, CC BY 4.0) with `mixmag data download --to DIR` "
    "or from https://data.mendeley.com/datasets/snkd93bnjr/1, then pass --pbc DIR or set MIXMAG_PBC"
)


def looks_like_pbc(path: Path) -> bool:
    return path.is_dir() and sum((path / c).is_dir() for c in CLASS_NAMES) >= 2


def default_search_paths() -> list[Path]:
    here = Path.cwd()
    repo = Path(__file__).resolve().parents[2]
    out = []
    for base in (here, repo):
        for rel in ("../shared/data/pbc", "shared/data/pbc", "../../shared/data/pbc"):
            out.append((base / rel).resolve())
    return list(dict.fromkeys(out))


def find_pbc_root(given: str | os.PathLike | None = None) -> Path:
    """The PBC folder from ``given``, then $MIXMAG_PBC, then the default search."""
    if given:
        p = Path(given).expanduser()
        if not p.exists():
            raise MixmagError(f"PBC folder {p} does not exist; {GET_DATASET}")
        found = _unwrap(p)
        if found is None:
            raise MixmagError(
                f"{p} holds none of the PBC class folders ({', '.join(CLASS_NAMES)}); {GET_DATASET}")
        return found
    env = os.environ.get("MIXMAG_PBC")
    if env:
        return find_pbc_root(env)
    for cand in default_search_paths():
        if looks_like_pbc(cand):
            return cand
    raise MixmagError(f"no PBC dataset found (looked in $MIXMAG_PBC and ../shared/data/pbc); {GET_DATASET}")


def _unwrap(p: Path) -> Path | None:
    """Accept the dataset folder itself or the folder the official archive unpacks to."""
    if looks_like_pbc(p):
        return p
    for child in sorted(p.iterdir()) if p.is_dir() else []:
        if looks_like_pbc(child):
            return child
    return None


def list_files(root: Path) -> tuple[pd.DataFrame, list[str], list[str]]:
    """All files in the class folders, sorted; plus missing and unknown folder names."""
    rows = []
    for cname in CLASS_NAMES:
        d = root / cname
        if not d.is_dir():
            continue
        for f in sorted(os.listdir(d)):
            if (d / f).is_file():
                rows.append((f"{cname}/{f}", cname, CLASS_ID[cname]))
    missing = [c for c in CLASS_NAMES if not (root / c).is_dir()]
    unknown = sorted(e.name for e in root.iterdir()
                     if e.is_dir() and e.name not in CLASS_NAMES and not e.name.startswith("."))
    frame = pd.DataFrame(rows, columns=["path", "class_name", "class_id"])
    return frame, missing, unknown


# a PBC crop is ~360 px; a source smaller than this cannot hold a cell with its context
MIN_SOURCE_SIDE = 64


def _inspect(args: tuple[str, str]) -> tuple[str, int, int, str]:
    import cv2

    from ..images import tiff_pages, MAX_PIXELS, ImageError, image_size

    root, rel = args
    data = (Path(root) / rel).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return digest, 0, 0, "empty file"
    try:
        w, h = image_size(Path(root) / rel)   # header only: a bomb is never decoded
    except ImageError:
        w = h = None
    if w is not None and w * h > MAX_PIXELS:
        return digest, w, h, f"declares {w}x{h} pixels, above the limit of {MAX_PIXELS:,}"
    if w is not None and min(w, h) < MIN_SOURCE_SIDE:
        return digest, w, h, f"{w}x{h} is too small to hold a cell (need {MIN_SOURCE_SIDE} px a side)"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        kind = "macOS .DS_Store file" if data[:8] == b"\x00\x00\x00\x01Bud1" else "not an image"
        return digest, 0, 0, kind
    h, w = img.shape[:2]
    err = "truncated JPEG" if data[-2:] != b"\xff\xd9" and rel.lower().endswith((".jpg", ".jpeg")) else ""
    if rel.lower().endswith((".tif", ".tiff")) and (n := tiff_pages(Path(root) / rel)) > 1:
        err = f"a multipage TIFF ({n} pages); one image a file"
    return digest, w, h, err


def scan_pbc(root: Path, workers: int = 0, progress: bool = True) -> pd.DataFrame:
    """Decode every file once: columns path, class_name, class_id, sha256, width, height, ok, error."""
    from tqdm import tqdm

    frame, _, _ = list_files(root)
    jobs = [(str(root), p) for p in frame["path"]]
    workers = workers or min(4, os.cpu_count() or 1)
    with ProcessPoolExecutor(workers) as ex:
        res = list(tqdm(ex.map(_inspect, jobs, chunksize=64), total=len(jobs), disable=not progress,
                        desc="scan", unit="img"))
    frame["sha256"] = [r[0] for r in res]
    frame["width"] = [r[1] for r in res]
    frame["height"] = [r[2] for r in res]
    frame["error"] = [r[3] for r in res]
    frame["ok"] = frame["error"] == ""
    return frame
