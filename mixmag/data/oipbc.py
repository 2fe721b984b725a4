"""OI-PBC: boxes for every cell of the PBC images (white cells, red cells, platelets, cells cut by
the edge), read from where the user keeps them.

The labels (Abou Ali et al. 2025, arXiv:2509.24595) state no licence: mixmag reads them from a
path (``--labels``, then ``$MIXMAG_OI_PBC``, then ``../shared/data/oi-pbc``) and never copies
them. ``labels/NAME.txt`` holds YOLO lines (``class cx cy w h``, normalised) for PBC image
``NAME.jpg``; its 12 classes map onto mixmag's 8 plus red cells (``rbc``, not one of the 8).
They are good, not perfect: ``folder_agreement`` measures how often the centre box's class agrees
with the PBC folder, the figure to give beside anything that rests on them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES, RBC
from ..errors import MixmagError

# OI-PBC's classes (its data.yaml order) -> mixmag's 8 classes, or rbc
OI_CLASSES = {0: "basophil", 1: "neutrophil", 2: "eosinophil", 3: "erythroblast", 4: "lymphocyte",
              5: "ig", 6: "monocyte", 7: "ig", 8: "platelet", 9: "ig", 10: RBC, 11: "neutrophil"}
OI_NAMES = ("BA", "BNE", "EO", "ERB", "LY", "MMY", "MO", "MY", "PLT", "PMY", "RBC", "SNE")
FIELD_CLASSES = (*CLASS_NAMES, RBC)   # class_id 8 = rbc in real-field datasets
GET_LABELS = ("pass --labels DIR (the OI-PBC folder holding labels/), or set $MIXMAG_OI_PBC; "
              "the labels accompany arXiv:2509.24595")


def default_search_paths() -> list[Path]:
    here, repo = Path.cwd(), Path(__file__).resolve().parents[2]
    out = [(base / rel).resolve() for base in (here, repo)
           for rel in ("../shared/data/oi-pbc", "shared/data/oi-pbc")]
    return list(dict.fromkeys(out))


def find_labels(given: str | os.PathLike | None = None) -> Path:
    """The OI-PBC ``labels/`` folder from ``given``, then $MIXMAG_OI_PBC, then the default search."""
    cands = [Path(given).expanduser()] if given else (
        [Path(os.environ["MIXMAG_OI_PBC"]).expanduser()] if os.environ.get("MIXMAG_OI_PBC")
        else default_search_paths())
    for c in cands:
        for d in (c / "labels", c):
            if d.is_dir() and next(d.glob("*.txt"), None) is not None:
                return d
    where = cands[0] if given or os.environ.get("MIXMAG_OI_PBC") else "../shared/data/oi-pbc"
    raise MixmagError(f"no OI-PBC labels at {where} (a labels/ folder of NAME.txt files); {GET_LABELS}")


def read_boxes(label_file: str | os.PathLike, width: int, height: int) -> pd.DataFrame:
    """One row a box: class_name (8 classes or rbc), oi_class, x1, y1, x2, y2 in pixels (clipped
    to the image); a malformed line is a one-line error naming the file and the line."""
    path = Path(label_file)
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            k = int(parts[0])
            cx, cy, w, h = (float(v) for v in parts[1:5])
            if len(parts) != 5 or k not in OI_CLASSES or not all(np.isfinite([cx, cy, w, h])):
                raise ValueError
        except ValueError:
            raise MixmagError(f"{path}:{i}: expected 'class cx cy w h' with class 0-11, got "
                              f"{line.strip()[:60]!r}") from None
        x1, x2 = np.clip([(cx - w / 2) * width, (cx + w / 2) * width], 0, width)
        y1, y2 = np.clip([(cy - h / 2) * height, (cy + h / 2) * height], 0, height)
        if x2 - x1 >= 1 and y2 - y1 >= 1:
            rows.append((OI_CLASSES[k], OI_NAMES[k], x1, y1, x2, y2))
    return pd.DataFrame(rows, columns=["class_name", "oi_class", "x1", "y1", "x2", "y2"])


def centre_box(boxes: pd.DataFrame, width: int, height: int) -> int | None:
    """Index of the box holding the image centre that is closest to it (the cell PBC labels), or
    None when no box covers the centre."""
    if boxes.empty:
        return None
    cx, cy = width / 2, height / 2
    b = boxes[["x1", "y1", "x2", "y2"]].to_numpy()
    inside = (b[:, 0] <= cx) & (cx <= b[:, 2]) & (b[:, 1] <= cy) & (cy <= b[:, 3])
    if not inside.any():
        return None
    d = np.hypot((b[:, 0] + b[:, 2]) / 2 - cx, (b[:, 1] + b[:, 3]) / 2 - cy)
    d[~inside] = np.inf
    return int(boxes.index[int(np.argmin(d))])


def label_file(labels: Path, manifest_path: str) -> Path:
    """The label file of a manifest row (``basophil/BA_1.jpg`` -> ``labels/BA_1.txt``)."""
    return labels / (Path(manifest_path).stem + ".txt")


def folder_agreement(manifest: pd.DataFrame, labels: Path) -> dict:
    """How often OI-PBC agrees with the PBC folder on a manifest's images: labelled share, a box
    on the centre, and the centre box's class equal to the folder's."""
    n = labelled = centred = agree = 0
    for r in manifest.itertuples(index=False):
        n += 1
        f = label_file(labels, r.path)
        if not f.is_file():
            continue
        labelled += 1
        boxes = read_boxes(f, int(r.width), int(r.height))
        c = centre_box(boxes, int(r.width), int(r.height))
        if c is None:
            continue
        centred += 1
        agree += boxes.loc[c, "class_name"] == r.class_name
    return {"images": n, "labelled": labelled, "centre_box": centred, "centre_class_agrees": agree,
            "agreement": agree / centred if centred else float("nan")}
