"""Cut large images into overlapping tiles at native scale and merge the tiles' detections.

Every tile is exactly ``tile`` × ``tile`` pixels (an image smaller than a tile is padded), so the
detector sees cells at the scale it was trained at. Merging has two steps:

1. NMS (``mixmag.detect.boxes.nms``, OpenCV's) over the whole (uncut) boxes removes the same cell found whole
   in two overlapping tiles;
2. a box that touches an interior tile seam is a cell cut by the tile: it is dropped when most of
   it lies inside a box that was found whole elsewhere, and two cut pieces of a cell larger than
   the overlap (never whole in any tile) are joined into one box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..detect.boxes import PAD_VALUE, nms
from ..synth.place import intersections


@dataclass(frozen=True)
class Tile:
    x0: int
    y0: int
    w: int  # valid (image) pixels inside the tile
    h: int
    cut_left: bool
    cut_top: bool
    cut_right: bool
    cut_bottom: bool


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)  # last tile flush with the far edge
    return sorted(set(starts))


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    if overlap >= tile:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile {tile}")
    tiles = []
    for y0 in _starts(height, tile, overlap):
        for x0 in _starts(width, tile, overlap):
            w, h = min(tile, width - x0), min(tile, height - y0)
            tiles.append(Tile(x0, y0, w, h, x0 > 0, y0 > 0, x0 + w < width, y0 + h < height))
    return tiles


def tile_pixels(img: np.ndarray, t: Tile, tile: int) -> np.ndarray:
    """The pixels of one tile (a contiguous copy; padded to ``tile`` at the image's edge)."""
    patch = img[t.y0:t.y0 + t.h, t.x0:t.x0 + t.w]
    if t.w < tile or t.h < tile:
        canvas = np.full((tile, tile, 3), PAD_VALUE, np.uint8)
        canvas[:t.h, :t.w] = patch
        patch = canvas
    return np.ascontiguousarray(patch)


def cut_tiles(img: np.ndarray, tile: int, overlap: int) -> tuple[list[np.ndarray], list[Tile]]:
    grid = tile_grid(img.shape[0], img.shape[1], tile, overlap)
    return [tile_pixels(img, t, tile) for t in grid], grid


def _cut_flags(boxes: np.ndarray, t: Tile, edge: float) -> np.ndarray:
    """Which boxes (tile coordinates) touch a seam shared with another tile."""
    cut = np.zeros(len(boxes), bool)
    if t.cut_left:
        cut |= boxes[:, 0] <= edge
    if t.cut_top:
        cut |= boxes[:, 1] <= edge
    if t.cut_right:
        cut |= boxes[:, 2] >= t.w - edge
    if t.cut_bottom:
        cut |= boxes[:, 3] >= t.h - edge
    return cut


def merge_tiles(dets: list[np.ndarray], grid: list[Tile], iou: float = 0.5,
                agnostic: bool = True, edge: float = 3.0, contain: float = 0.6) -> np.ndarray:
    """Detections (N, 6: x1 y1 x2 y2 conf cls, tile coordinates) of each tile → image detections."""
    rows, cut, tile_id = [], [], []
    for i, (d, t) in enumerate(zip(dets, grid)):
        d = np.asarray(d, np.float32).reshape(-1, 6)
        d = d[(d[:, 0] < t.w) & (d[:, 1] < t.h)]  # boxes in the padding are not cells
        d[:, [0, 2]] = d[:, [0, 2]].clip(0, t.w)
        d[:, [1, 3]] = d[:, [1, 3]].clip(0, t.h)
        cut.append(_cut_flags(d, t, edge))
        d = d.copy()
        d[:, [0, 2]] += t.x0
        d[:, [1, 3]] += t.y0
        rows.append(d)
        tile_id.append(np.full(len(d), i))
    if not rows:
        return np.zeros((0, 6), np.float32)
    d, cut, tile_id = np.concatenate(rows), np.concatenate(cut), np.concatenate(tile_id)
    if len(grid) == 1 or not len(d):
        return d

    # NMS among whole boxes only: cut pieces of one big cell overlap each other heavily and
    # must be joined below, not suppressed
    whole = np.flatnonzero(~cut)
    keep = nms(d[whole, :4], d[whole, 4], iou, None if agnostic else d[whole, 5].astype(np.int64))
    sel = np.concatenate([whole[keep], np.flatnonzero(cut)])
    d, cut, tile_id = d[sel], cut[sel], tile_id[sel]

    order = np.lexsort((-d[:, 4], cut))  # whole first, then by score
    d, cut, tile_id = d[order], cut[order], tile_id[order]
    area = np.clip((d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]), 1e-6, None)
    inter = intersections(d[:, :4], d[:, :4])
    kept: list[int] = []
    for i in range(len(d)):
        if not cut[i]:
            kept.append(i)
            continue
        # a cut box mostly inside a kept box is a piece of that cell
        if kept and (inter[i, kept] / area[i]).max() > contain:
            j = kept[int(np.argmax(inter[i, kept] / area[i]))]
            if cut[j] and tile_id[j] != tile_id[i]:
                d[j] = _join(d[j], d[i])
                area[j] = (d[j, 2] - d[j, 0]) * (d[j, 3] - d[j, 1])
                inter = intersections(d[:, :4], d[:, :4])
            continue
        # pieces of one big cell from different tiles: overlapping cut boxes, join them
        partners = [j for j in kept if cut[j] and tile_id[j] != tile_id[i] and inter[i, j] > 0
                    and inter[i, j] / min(area[i], area[j]) > 0.3]
        if partners:
            j = partners[0]
            d[j] = _join(d[j], d[i])
            area[j] = (d[j, 2] - d[j, 0]) * (d[j, 3] - d[j, 1])
            inter = intersections(d[:, :4], d[:, :4])
            continue
        kept.append(i)
    return d[sorted(kept)]


def _join(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = a.copy()
    out[:2] = np.minimum(a[:2], b[:2])
    out[2:4] = np.maximum(a[2:4], b[2:4])
    if b[4] > a[4]:
        out[4], out[5] = b[4], b[5]
    return out
