"""Drawn YOLO-format datasets for the detector tests (coloured disks on a pale canvas).

Layout as tools/synthesize.py writes it (docs/CONTRACTS.md): images/<split>/*.jpg,
labels/<split>/*.txt, data.yaml, cells.csv, <split>.json (COCO).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml

from mixmag.classes import CLASS_NAMES

# BGR colours and native radii (px) a class: distinct enough for a detector to tell apart
COLOURS = [(150, 40, 90), (60, 120, 230), (90, 30, 60), (170, 90, 140), (160, 60, 60),
           (140, 120, 170), (120, 80, 200), (110, 60, 150)]
RADII = [22, 26, 18, 24, 16, 30, 27, 8]
BACKGROUND = (228, 220, 238)


def draw_disks(width: int, height: int, disks: list[tuple[int, float, float, float]],
               seed: int = 0) -> np.ndarray:
    """disks: (class_id, cx, cy, radius); a pale canvas with mild noise."""
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.uint8)
    img[:] = BACKGROUND
    img = np.clip(img.astype(np.int16) + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
    for c, cx, cy, r in disks:
        cv2.circle(img, (int(round(cx)), int(round(cy))), int(round(r)), COLOURS[c], -1, cv2.LINE_AA)
        cv2.circle(img, (int(round(cx)), int(round(cy))), max(1, int(round(r * 0.45))),
                   tuple(max(0, v - 60) for v in COLOURS[c]), -1, cv2.LINE_AA)
    return img


def place_disks(rng, width, height, n, mags=(0.5, 1.0, 1.5), gap=4):
    """Non-overlapping disks: list of (class_id, cx, cy, r, magnification)."""
    out = []
    tries = 0
    while len(out) < n and tries < 500:
        tries += 1
        c = int(rng.integers(0, len(CLASS_NAMES)))
        m = float(rng.choice(mags))
        r = RADII[c] * m
        cx, cy = rng.uniform(r + 2, width - r - 2), rng.uniform(r + 2, height - r - 2)
        if all((cx - x) ** 2 + (cy - y) ** 2 > (r + rr + gap) ** 2 for _, x, y, rr, _ in out):
            out.append((c, cx, cy, r, m))
    return out


def make_yolo_dataset(root: Path, counts=(("train", 8), ("val", 4), ("test", 4)), size=256,
                      per_image=6, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    rows, image_id = [], 0
    for split, n in counts:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        coco = {"images": [], "annotations": [],
                "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASS_NAMES)]}
        for k in range(n):
            image_id += 1
            stem = f"{split}{k:04d}"
            disks = place_disks(rng, size, size, per_image)
            img = draw_disks(size, size, [(c, x, y, r) for c, x, y, r, _ in disks], seed=image_id)
            cv2.imwrite(str(root / "images" / split / f"{stem}.jpg"), img)
            lines = []
            coco["images"].append({"id": image_id, "file_name": f"images/{split}/{stem}.jpg",
                                   "width": size, "height": size})
            for j, (c, x, y, r, m) in enumerate(disks):
                x1, y1, x2, y2 = x - r, y - r, x + r, y + r
                lines.append(f"{c} {x / size:.6f} {y / size:.6f} {2 * r / size:.6f} {2 * r / size:.6f}")
                rows.append({"image": f"images/{split}/{stem}.jpg", "image_id": image_id, "cell": j,
                             "class_name": CLASS_NAMES[c], "class_id": c, "source": f"drawn/{c}",
                             "split": split, "magnification": m, "x1": x1, "y1": y1, "x2": x2,
                             "y2": y2, "mask_area": np.pi * r * r, "width": size, "height": size})
                coco["annotations"].append({
                    "id": len(coco["annotations"]) + 1, "image_id": image_id, "category_id": c + 1,
                    "bbox": [x1, y1, 2 * r, 2 * r], "area": float(np.pi * r * r), "iscrowd": 0,
                    "magnification": m, "source": f"drawn/{c}"})
            (root / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + "\n")
        (root / f"{split}.json").write_text(json.dumps(coco))
    pd.DataFrame(rows).to_csv(root / "cells.csv", index=False)
    data = {"path": str(root.resolve()), "train": "images/train", "val": "images/val",
            "test": "images/test", "names": dict(enumerate(CLASS_NAMES))}
    (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root / "data.yaml"


class StubClassifier:
    """The mixmag.classify Classifier interface: colour nearest to each class's disk colour."""

    def __init__(self, input_size: int = 32):
        self.class_names = list(CLASS_NAMES)
        self.input_size = input_size
        self.calls: list[int] = []
        self.seen: list[np.ndarray] = []

    def predict(self, crops, batch_size: int = 64) -> np.ndarray:
        self.calls.append(len(crops))
        palette = np.array([*COLOURS, *[[max(0, v - 60) for v in c] for c in COLOURS]], float)
        out = np.full((len(crops), len(self.class_names)), 0.1)
        for i, c in enumerate(crops):
            self.seen.append(c)
            h, w = c.shape[:2]
            centre = c[h // 4:3 * h // 4, w // 4:3 * w // 4].reshape(-1, 3).astype(float)
            ink = centre[np.abs(centre - BACKGROUND).sum(1) > 60]
            if len(ink):  # each inked pixel votes for the class of its nearest disk colour
                votes = np.abs(ink[:, None] - palette[None]).sum(2).argmin(1) % len(COLOURS)
                out[i] += np.bincount(votes, minlength=len(COLOURS))
            out[i] /= out[i].sum()
        return out


def test_drawn_dataset_layout(tmp_path):
    data = make_yolo_dataset(tmp_path / "ds", counts=(("train", 2), ("test", 1)), size=128)
    cfg = yaml.safe_load(data.read_text())
    assert cfg["names"][7] == "platelet"
    cells = pd.read_csv(tmp_path / "ds" / "cells.csv")
    labels = sorted((tmp_path / "ds" / "labels" / "train").glob("*.txt"))
    assert len(labels) == 2
    n_lines = sum(len(p.read_text().split("\n")) - 1 for p in labels)
    assert n_lines == (cells["split"] == "train").sum() > 0


class OracleDetector:
    """The detector interface (names, imgsz, predict) finding drawn disks by colour thresholding.

    It sees each tile on its own, so a disk cut by a tile edge gives a truncated box, as a real
    detector's would: what the tile merging must resolve.
    """

    names = {0: "cell"}

    def __init__(self, imgsz: int = 256):
        self.imgsz = imgsz
        self.seen_shapes: list[tuple[int, int]] = []

    def predict(self, images, conf=0.25, iou=0.6, batch_size=16):
        out = []
        for im in images:
            self.seen_shapes.append(im.shape[:2])
            diff = np.abs(im.astype(np.int16) - np.array(BACKGROUND)).sum(2)
            grey = (np.abs(im.astype(np.int16) - 114).sum(2) < 6)  # tile padding
            mask = ((diff > 45) & ~grey).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            rows = [[x, y, x + w, y + h, 0.9, 0] for x, y, w, h, a in stats[1:] if a >= 12]
            out.append(np.array(rows, np.float32).reshape(-1, 6))
        return out
