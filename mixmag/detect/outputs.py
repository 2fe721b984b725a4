"""Prediction outputs: cells.csv/json, COCO results, per-image counts, drawn images."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES
from ..fileio import atomic_path, write_csv, write_json

# one BGR colour a class, readable on pale smears
COLOURS = [(180, 40, 160), (0, 120, 255), (40, 40, 200), (0, 160, 0), (200, 80, 0),
           (120, 120, 0), (0, 0, 0), (160, 0, 220)]


def coco_image_ids(names: list[str], coco_gt: str | os.PathLike | None = None) -> dict[str, int]:
    """image name → COCO image_id: the truth file's ids (matched by file name) or 1..N."""
    if coco_gt:
        gt = json.loads(Path(coco_gt).read_text())
        by_name = {Path(im["file_name"]).name: int(im["id"]) for im in gt["images"]}
        return {n: by_name[Path(n).name] for n in names if Path(n).name in by_name}
    return {n: i + 1 for i, n in enumerate(names)}


def coco_results(cells: pd.DataFrame, ids: dict[str, int]) -> list[dict]:
    out = []
    for r in cells.itertuples(index=False):
        if r.image not in ids:
            continue
        out.append({"image_id": ids[r.image], "category_id": int(r.class_id) + 1,
                    "bbox": [round(float(r.x1), 2), round(float(r.y1), 2),
                             round(float(r.x2 - r.x1), 2), round(float(r.y2 - r.y1), 2)],
                    "score": round(float(r.score), 5)})
    return out


def counts_table(cells: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    ok = images[~images["error"].astype(bool)]
    table = pd.crosstab(cells["image"], cells["class_name"]) if len(cells) else pd.DataFrame()
    table = table.reindex(index=ok["image"], columns=list(CLASS_NAMES), fill_value=0).fillna(0)
    table = table.astype(int)
    table.insert(0, "n_cells", table.sum(axis=1))
    return table.reset_index().rename(columns={"index": "image"})


def drawn_name(image: str) -> str:
    return Path(image.replace("\\", "/").replace("/", "__")).with_suffix(".jpg").name


def draw_cells(img: np.ndarray, cells: pd.DataFrame) -> np.ndarray:
    out = img.copy()
    thick = max(1, round(max(img.shape[:2]) / 700))
    scale = max(0.4, max(img.shape[:2]) / 2400)
    for r in cells.itertuples(index=False):
        c = COLOURS[int(r.class_id) % len(COLOURS)]
        p1, p2 = (int(r.x1), int(r.y1)), (int(r.x2), int(r.y2))
        cv2.rectangle(out, p1, p2, c, thick)
        mag = "" if np.isnan(r.magnification_est) else f" x{r.magnification_est:.1f}"
        label = f"{r.class_name} {r.score:.2f}{mag}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        y = p1[1] - 3 if p1[1] - th - base - 3 > 0 else p2[1] + th + 3
        cv2.rectangle(out, (p1[0], y - th - base), (p1[0] + tw, y + base), c, -1)
        cv2.putText(out, label, (p1[0], y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out


def write_drawn(folder: Path, name: str, img: np.ndarray, cells: pd.DataFrame) -> None:
    path = folder / drawn_name(name)
    with atomic_path(path) as tmp:
        cv2.imwrite(str(tmp), draw_cells(img, cells), [cv2.IMWRITE_JPEG_QUALITY, 90])


def write_outputs(out: Path, result, meta: dict, coco_gt: str | None = None) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    cells, images = result.cells, result.images
    paths = {k: out / v for k, v in (("cells_csv", "cells.csv"), ("cells_json", "cells.json"),
                                      ("coco", "coco_results.json"), ("counts", "counts.csv"))}
    write_csv(paths["cells_csv"], cells)
    ids = coco_image_ids(list(images["image"]), coco_gt)
    write_json(paths["cells_json"], {
        "format": "mixmag-predictions/1", **meta,
        "images": [{**r, "image_id": ids.get(r["image"])} for r in images.to_dict("records")],
        "skipped_non_images": result.skipped,
        "cells": cells.replace({np.nan: None}).to_dict("records")})
    write_json(paths["coco"], coco_results(cells, ids), indent=None)
    write_csv(paths["counts"], counts_table(cells, images))
    return paths
