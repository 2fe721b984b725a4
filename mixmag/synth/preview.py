"""A contact sheet of sample composites with their boxes and class names drawn, for a person."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..fileio import write_bytes

# one distinct colour per class (BGR)
COLOURS = [(0, 0, 255), (0, 160, 255), (0, 200, 0), (255, 0, 0), (200, 0, 200), (160, 160, 0),
           (0, 90, 160), (90, 90, 90)]


def draw_boxes(img: np.ndarray, cells, thickness: int = 2, font_scale: float = 0.6) -> np.ndarray:
    out = img.copy()
    for r in cells.itertuples(index=False):
        c = COLOURS[int(r.class_id) % len(COLOURS)]
        p1, p2 = (int(r.x1), int(r.y1)), (int(r.x2) - 1, int(r.y2) - 1)
        cv2.rectangle(out, p1, p2, c, thickness)
        label = f"{r.class_name} x{r.magnification:g}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 2)
        ty = p1[1] - 4 if p1[1] - th - 6 > 0 else p2[1] + th + 4
        cv2.rectangle(out, (p1[0], ty - th - 3), (p1[0] + tw + 2, ty + 3), (255, 255, 255), -1)
        cv2.putText(out, label, (p1[0] + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, c, 2,
                    cv2.LINE_AA)
    return out


def write_preview(root: str | Path, n: int = 12, tile: int = 640, cols: int = 3) -> Path:
    """preview.png in the dataset folder: the first images of each split, boxes and labels drawn."""
    from .export import load_cells

    root = Path(root)
    cells = load_cells(root)
    imgs = sorted(set(cells["image"]))
    by_split = {s: [i for i in imgs if f"/{s}/" in i] for s in ("train", "val", "test")}
    pick, k = [], 0
    while len(pick) < min(n, len(imgs)):
        for s in by_split.values():
            if k < len(s) and len(pick) < n:
                pick.append(s[k])
        k += 1
    tiles = []
    for name in pick:
        img = cv2.imread(str(root / name))
        img = draw_boxes(img, cells[cells["image"] == name], thickness=3, font_scale=0.9)
        img = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA)
        cv2.putText(img, name, (8, tile - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 2)
        tiles.append(img)
    while len(tiles) % cols:
        tiles.append(np.full((tile, tile, 3), 255, np.uint8))
    sheet = np.vstack([np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)])
    out = root / "preview.png"
    ok, buf = cv2.imencode(".png", sheet)
    write_bytes(out, buf.tobytes())
    return out
