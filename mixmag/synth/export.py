"""Dataset-level outputs (docs/CONTRACTS.md): cells.csv/json, COCO per split, data.yaml; and
``load_cells`` for the stages that read a dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..classes import CLASS_NAMES
from ..errors import MixmagError
from ..fileio import write_csv, write_json, write_text

CELL_COLUMNS = ["image", "image_id", "cell", "class_name", "class_id", "source", "split",
                "magnification", "x1", "y1", "x2", "y2", "mask_area", "width", "height"]


def load_cells(dataset: str | os.PathLike) -> pd.DataFrame:
    """The per-cell records of a synthetic dataset (its cells.csv) as a DataFrame."""
    f = Path(dataset) / "cells.csv"
    if not f.is_file():
        raise MixmagError(f"{dataset}: no cells.csv; is it a dataset made by `mixmag synthesize`?")
    df = pd.read_csv(f, dtype={"image": str, "class_name": str, "source": str, "split": str})
    missing = [c for c in CELL_COLUMNS if c not in df.columns]
    if missing:
        raise MixmagError(f"{f}: lacks columns {missing}; regenerate the dataset")
    return df


def _rows(frame: pd.DataFrame, columns) -> list[dict]:
    """Rows as dicts of Python scalars; Series.tolist per column is ~10x faster than to_dict /
    itertuples, which box every value one at a time."""
    return [dict(zip(columns, r)) for r in zip(*(frame[c].tolist() for c in columns))]


def coco_dict(cells: pd.DataFrame, images: pd.DataFrame, class_names=CLASS_NAMES,
              description: str = "mixmag synthetic mixed-magnification composites") -> dict:
    """COCO detection dict for one split; ``images`` has image, image_id, width, height."""
    return {
        "info": {"description": description},
        "images": [{"id": int(r["image_id"]), "file_name": r["image"], "width": int(r["width"]),
                    "height": int(r["height"])}
                   for r in _rows(images, ["image", "image_id", "width", "height"])],
        "annotations": [{
            "id": i + 1, "image_id": int(r["image_id"]), "category_id": int(r["class_id"]) + 1,
            "bbox": [r["x1"], r["y1"], r["x2"] - r["x1"], r["y2"] - r["y1"]], "area": int(r["mask_area"]),
            "iscrowd": 0, "magnification": float(r["magnification"]), "source": r["source"],
        } for i, r in enumerate(_rows(cells, CELL_COLUMNS))],
        "categories": [{"id": i + 1, "name": n, "supercategory": "cell"}
                       for i, n in enumerate(class_names)],
    }


def data_yaml(root: Path, splits, class_names=CLASS_NAMES) -> str:
    lines = [f"path: {root.resolve()}"]
    for s in ("train", "val", "test"):
        if s in splits:
            lines.append(f"{s}: images/{s}")
    lines.append("names:")
    lines += [f"  {i}: {n}" for i, n in enumerate(class_names)]
    return "\n".join(lines) + "\n"


def write_exports(root: Path, cells: pd.DataFrame, images: pd.DataFrame, splits,
                  class_names=CLASS_NAMES, extra_columns=(),
                  description: str = "mixmag synthetic mixed-magnification composites",
                  final_root: Path | None = None) -> None:
    """cells.csv/json (CELL_COLUMNS + ``extra_columns``), COCO per split and data.yaml;
    ``final_root``: where the folder will live (data.yaml's path), when written elsewhere first."""
    columns = [*CELL_COLUMNS, *extra_columns]
    cells = cells[columns]
    write_csv(root / "cells.csv", cells)
    # indent=None lets json use its C encoder (~10x faster than the indented Python one)
    write_json(root / "cells.json", {"columns": columns,
                                     "cells": _rows(cells, columns)}, indent=None)
    for s in splits:
        write_json(root / f"{s}.json", coco_dict(cells[cells["split"] == s],
                                                 images[images["split"] == s], class_names,
                                                 description), indent=None)
    yaml_text = data_yaml(Path(final_root or root), splits, class_names)
    # YOLO needs a val set; when only train is made, train doubles as val (said in dataset.json)
    write_text(root / "data.yaml", yaml_text.replace(
        "train: images/train\n", "train: images/train\nval: images/train\n")
        if "val" not in splits and "train" in splits else yaml_text)
