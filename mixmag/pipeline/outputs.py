"""Prediction outputs: cells.csv/json, COCO results, per-image counts, drawn images.

``StreamingOutputs`` (what ``mixmag predict`` uses) takes the rows image by image and keeps only
per-image records and counts in memory, so predict over any number of images runs in constant
memory. tests/reference_outputs.py writes the same files from a finished in-memory result, the
plain way, as the reference its bytes are tested against.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES, RBC
from ..errors import MixmagError
from ..fileio import _json_default, atomic_path, write_bytes, write_csv
from .predict import CELL_COLUMNS

# one BGR colour a class, readable on pale smears
COLOURS = [(180, 40, 160), (0, 120, 255), (40, 40, 200), (0, 160, 0), (200, 80, 0),
           (120, 120, 0), (0, 0, 0), (160, 0, 220)]


def read_coco_ids(coco_gt: str | os.PathLike) -> dict[str, int]:
    """file name → image id of a COCO truth file, or a one-line error naming what is wrong."""
    path = Path(coco_gt)
    if not path.is_file():
        raise MixmagError(f"--coco-gt {path}: not a file; give the COCO truth JSON (e.g. "
                          "datasets/NAME/test.json)")
    try:
        gt = json.loads(path.read_text(encoding="utf-8"))
        return {Path(im["file_name"]).name: int(im["id"]) for im in gt["images"]}
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise MixmagError(f"--coco-gt {path}: not a COCO truth file ({type(e).__name__}); it needs "
                          "an 'images' list of {{id, file_name}}") from None


def coco_image_ids(names: list[str], coco_gt: str | os.PathLike | None = None) -> dict[str, int]:
    """image name → COCO image_id: the truth file's ids (matched by file name) or 1..N."""
    if coco_gt:
        by_name = read_coco_ids(coco_gt)
        return {n: by_name[Path(n).name] for n in names if Path(n).name in by_name}
    return {n: i + 1 for i, n in enumerate(names)}


def _coco_fields(r) -> dict:
    """A cell's COCO result without its image_id (a cells.csv row as a namedtuple)."""
    return {"category_id": int(r.class_id) + 1,
            "bbox": [round(float(r.x1), 2), round(float(r.y1), 2),
                     round(float(r.x2 - r.x1), 2), round(float(r.y2 - r.y1), 2)],
            "score": round(float(r.score), 5)}


def coco_results(cells: pd.DataFrame, ids: dict[str, int]) -> list[dict]:
    return [{"image_id": ids[r.image], **_coco_fields(r)}
            for r in cells.itertuples(index=False) if r.image in ids]


def count_columns(red: bool) -> list[str]:
    """counts.csv's class columns: the eight, and ``rbc`` when the detector knows red cells."""
    return [*CLASS_NAMES, RBC] if red else list(CLASS_NAMES)


def counts_table(cells: pd.DataFrame, images: pd.DataFrame, red: bool = False) -> pd.DataFrame:
    """Per image: ``n_cells`` (cells of the eight: the white-cell and platelet count) and each
    class's count; with ``red``, the red cells in an ``rbc`` column after them."""
    ok = images[~images["error"].astype(bool)]
    table = pd.crosstab(cells["image"], cells["class_name"]) if len(cells) else pd.DataFrame()
    table = table.reindex(index=ok["image"], columns=count_columns(red), fill_value=0).fillna(0)
    table = table.astype(int)
    table.insert(0, "n_cells", table[list(CLASS_NAMES)].sum(axis=1))
    return table.reset_index().rename(columns={"index": "image"})


def _counts_frame(names: list[str], per_name: dict[str, np.ndarray], red: bool = False) -> pd.DataFrame:
    """counts.csv from per-image class counts (names: the readable images, in output order)."""
    cols = count_columns(red)
    zero = np.zeros(len(CLASS_NAMES) + 1, np.int64)
    table = pd.DataFrame([per_name.get(n, zero)[:len(cols)] for n in names], columns=cols,
                         index=pd.Index(names, name="image"), dtype=np.int64)
    table.insert(0, "n_cells", table[list(CLASS_NAMES)].sum(axis=1))
    return table.reset_index()


def drawn_name(image: str) -> str:
    """Where ``drawn/`` keeps an image's drawing: the image's name as cells.csv gives it, with
    its folders (``x/a.jpg`` -> ``x/a.jpg``) and its extension (``a.png`` -> ``a.png.jpg``), so
    two images never share a drawing. A name that would leave the folder (absolute, or with
    ``..``) becomes its file name behind a short hash of the whole name."""
    import hashlib

    name = image.replace("\\", "/")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts or not parts or ":" in parts[0]:
        parts = [f"{hashlib.sha1(name.encode()).hexdigest()[:8]}-{Path(name).name or 'image'}"]
    rel = "/".join(parts)
    return rel if rel.lower().endswith(".jpg") else rel + ".jpg"


def draw_cells(img: np.ndarray, cells: pd.DataFrame, inplace: bool = False,
               labels: bool = True) -> np.ndarray:
    out = img if inplace else img.copy()
    thick = max(1, round(max(img.shape[:2]) / 700))
    scale = max(0.4, max(img.shape[:2]) / 2400)
    for r in cells.itertuples(index=False):
        c = COLOURS[int(r.class_id) % len(COLOURS)]
        p1, p2 = (int(r.x1), int(r.y1)), (int(r.x2), int(r.y2))
        cv2.rectangle(out, p1, p2, c, thick)
        if not labels:
            continue
        mag = "" if np.isnan(r.magnification_est) else f" x{r.magnification_est:.1f}"
        label = f"{r.class_name} {r.score:.2f}{mag}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        y = p1[1] - 3 if p1[1] - th - base - 3 > 0 else p2[1] + th + 3
        cv2.rectangle(out, (p1[0], y - th - base), (p1[0] + tw, y + base), c, -1)
        cv2.putText(out, label, (p1[0], y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out


def drawn_jpeg(name: str, img: np.ndarray, cells: pd.DataFrame, inplace: bool = False,
               labels: bool = True) -> bytes:
    """The JPEG of an image with its cells drawn. ``inplace`` draws on ``img`` itself (predict's
    last use of it: a 12,000 x 9,000 image is 324 MB a copy)."""
    ok, buf = cv2.imencode(".jpg", draw_cells(img, cells, inplace, labels), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise MixmagError(f"{drawn_name(name)}: the drawn image could not be encoded")
    return buf.tobytes()


def write_drawn(folder: Path, name: str, img: np.ndarray, cells: pd.DataFrame,
                inplace: bool = False, labels: bool = True) -> None:
    """drawn/<name>: the image with its cells (``drawn_jpeg``)."""
    # checked, atomic: a full disk is an OSError naming the path
    write_bytes(folder / drawn_name(name), drawn_jpeg(name, img, cells, inplace, labels))


_CELLS_JSON_TAIL = '"cells": []\n}'


class StreamingOutputs:
    """predict's four files, fed image by image: ``add(row, cells)`` for each image, then
    ``finish(meta, skipped)``. Until ``finish`` the rows wait in anonymous temporary files (gone
    with the process, however it ends); ``finish`` writes each final file atomically, in the
    same order and with the same bytes as the in-memory reference writer in the tests. In memory: one record and eight
    counts per image (cells.json lists the images before the cells; COCO ids need every name)."""

    def __init__(self, out: Path, coco_gt: str | os.PathLike | None = None, red: bool = False):
        self.out = Path(out)
        self.coco_gt = coco_gt
        self.red = red  # the detector knows red cells: counts.csv gets an rbc column
        # the spools sit on the output's file system (not a tmpfs /tmp that would hold them in
        # RAM) without creating the folder: a run that fails changes nothing there
        near = next(p for p in (self.out, *self.out.absolute().parents) if p.is_dir())
        spool = lambda: tempfile.TemporaryFile("w+", encoding="utf-8", newline="",  # noqa: E731
                                               dir=near, prefix=".predict-spool-")
        self._csv, self._json, self._coco = tmp, _, _ = spool(), spool(), spool()
        pd.DataFrame(columns=CELL_COLUMNS).to_csv(tmp, index=False, lineterminator="\n")
        self.images: list[dict] = []
        self._counts: dict[str, np.ndarray] = {}
        self.n_cells = 0
        self.n_failed = 0
        self.n_red = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        for f in (self._csv, self._json, self._coco):
            f.close()

    def add(self, row: dict, cells: pd.DataFrame | None) -> None:
        index = len(self.images)
        self.images.append(dict(row))
        if cells is None:
            self.n_failed += 1
            return
        counts = self._counts.setdefault(row["image"], np.zeros(len(CLASS_NAMES) + 1, np.int64))
        np.add.at(counts, cells["class_id"].to_numpy(int), 1)
        self.n_red += int((cells["class_name"] == RBC).sum())
        if not len(cells):
            return
        tmp = self._csv  # the spool: an anonymous temporary file
        cells.to_csv(tmp, index=False, header=False, lineterminator="\n")
        for rec in cells.replace({np.nan: None}).to_dict("records"):
            text = json.dumps(rec, indent=1, default=_json_default).replace("\n", "\n  ")
            self._json.write((",\n  " if self.n_cells else "  ") + text)
            self.n_cells += 1
        for r in cells.itertuples(index=False):
            self._coco.write(f"{index}\t{json.dumps(_coco_fields(r))}\n")

    def finish(self, meta: dict, skipped: list[str]) -> dict[str, Path]:
        paths = {k: self.out / v for k, v in (("cells_csv", "cells.csv"), ("cells_json", "cells.json"),
                                                ("coco", "coco_results.json"), ("counts", "counts.csv"))}
        names = [r["image"] for r in self.images]
        ids = coco_image_ids(names, self.coco_gt)
        self._copy(self._csv, paths["cells_csv"])
        head = json.dumps({"format": "mixmag-predictions/1", **meta,
                           "images": [{**r, "image_id": ids.get(r["image"])} for r in self.images],
                           "skipped_non_images": skipped, "cells": []},
                          indent=1, default=_json_default)
        assert head.endswith(_CELLS_JSON_TAIL)
        if self.n_cells:
            self._copy(self._json, paths["cells_json"],
                       head[:-len("[]\n}")] + "[\n", "\n ]\n}\n")
        else:
            self._copy(None, paths["cells_json"], head + "\n")
        self._coco.seek(0)
        with atomic_path(paths["coco"]) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write("[")
            first = True
            for line in self._coco:
                index, fields = line.rstrip("\n").split("\t", 1)
                name = names[int(index)]
                if name not in ids:
                    continue
                f.write(("" if first else ", ") + f'{{"image_id": {json.dumps(ids[name])}, '
                        + fields[1:])
                first = False
            f.write("]\n")
        ok = [r["image"] for r in self.images if not r["error"]]
        write_csv(paths["counts"], _counts_frame(ok, self._counts, self.red))
        return paths

    @staticmethod
    def _copy(spool, path: Path, before: str = "", after: str = "") -> None:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(before)
            if spool is not None:
                spool.seek(0)
                shutil.copyfileobj(spool, f, 1 << 20)
            f.write(after)
