"""Whole slides: a pyramidal TIFF / OME-TIFF / SVS predicted region by region, in constant memory.

A slide is never decoded whole. ``tiffslide`` (pure Python, an optional extra: ``pip install
mixmag[slides]``) reads it a region at a time:

1. **Level.** With ``slide_level`` auto, a few tiles spread over each pyramid level are detected
   and their cells' median magnification estimated (box size against the detector's native
   sizes, as predict reports it); the level whose estimate is nearest 1× is used, and if even it is
   more than 25 % off, its regions are resized by 1 / estimate (so a one-level slide at 3× is
   detected at 1×). Without native sizes, level 0 as it is.
2. **Regions.** The level is cut into ``slide_region`` px regions overlapping by at least the
   tile overlap; each region goes through the same detector, tile merge and classifier as an
   image. A cell belongs to the region whose core (the plane cut halfway across each overlap
   with a neighbour, ``region_cores``) holds its centre, so a cell on a seam is counted once: it lies whole in that region
   whenever its radius is under half the overlap.
3. **Coordinates.** Boxes come back in level-0 pixels (as slide viewers give them) and each
   cell's magnification is for level 0.

Memory is one region (4,096² px, 50 MB) and its tiles, plus the cells' rows, whatever the slide's size.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..images import MAX_PIXELS, ImageError, to_bgr8

log = logging.getLogger(__name__)

SLIDE_SUFFIXES = (".tif", ".tiff", ".svs")
SLIDES_HINT = "install the slides extra: pip install 'mixmag[slides]' (tiffslide)"
# a slide's level 0 may declare this many pixels (it is read a region at a time, never whole);
# beyond it, a file is more likely a forged header than a smear
MAX_SLIDE_PIXELS = int(os.environ.get("MIXMAG_MAX_SLIDE_PIXELS", 10 ** 11))
SAMPLE_GRID = 3       # tiles sampled per level, a side: 3 x 3
MIN_SAMPLE_CELLS = 10  # fewer cells than this at a level say nothing about its magnification
RESCALE_BEYOND = 1.25  # a level whose cells are estimated this far from 1x is resized


def slides_available() -> bool:
    try:
        import tiffslide  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Slide:
    """An open slide: its pyramid (level 0 first) and a reader of regions as uint8 BGR."""

    path: Path
    dimensions: list[tuple[int, int]]  # (width, height) of each level
    downsamples: list[float]
    handle: object  # tiffslide.TiffSlide

    @property
    def width(self) -> int:
        return self.dimensions[0][0]

    @property
    def height(self) -> int:
        return self.dimensions[0][1]

    @property
    def level_count(self) -> int:
        return len(self.dimensions)

    def read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """The region (x, y, w, h) in ``level``'s pixels, as uint8 BGR."""
        ds = self.downsamples[level]
        try:
            # tiffslide maps level-0 coordinates back with int(x0 / ds): ceil, not round, so
            # that comes back to x (round lost a pixel whenever it rounded down)
            arr = np.asarray(self.handle.read_region((math.ceil(x * ds), math.ceil(y * ds)), level,
                                                     (w, h), as_array=True))
        except Exception as e:  # noqa: BLE001 - a broken tile: one line naming the slide
            raise ImageError(f"{self.path}: cannot read level {level} at ({x}, {y}) "
                             f"({type(e).__name__}: {e})") from None
        if arr.ndim == 3 and arr.shape[2] >= 3:  # tiffslide gives RGB(A)
            arr = arr[:, :, [2, 1, 0, *range(3, arr.shape[2])]]
        return to_bgr8(arr)

    def thumbnail(self, max_side: int, region: int = 4096) -> tuple[np.ndarray, float]:
        """The slide at most ``max_side`` px a side, BGR, and its scale against level 0; read a
        region at a time from the coarsest level still as large, so a slide without a pyramid
        is never decoded whole."""
        import cv2

        level = max((i for i, (w, h) in enumerate(self.dimensions) if max(w, h) >= max_side),
                    default=0)
        w, h = self.dimensions[level]
        scale = min(1.0, max_side / max(w, h))
        out = np.zeros((max(1, round(h * scale)), max(1, round(w * scale)), 3), np.uint8)
        for y in range(0, h, region):
            for x in range(0, w, region):
                part = self.read(level, x, y, min(region, w - x), min(region, h - y))
                x0, y0 = round(x * scale), round(y * scale)
                x1 = min(out.shape[1], round((x + part.shape[1]) * scale))
                y1 = min(out.shape[0], round((y + part.shape[0]) * scale))
                if x1 > x0 and y1 > y0:
                    out[y0:y1, x0:x1] = cv2.resize(part, (x1 - x0, y1 - y0),
                                                   interpolation=cv2.INTER_AREA)
        return out, scale / self.downsamples[level]

    def close(self) -> None:
        self.handle.close()


def open_slide(path: str | os.PathLike) -> Slide | None:
    """The slide at ``path``, or None where it is an ordinary image (read whole, as before): a
    slide is a TIFF-family file with a pyramid of two levels or more, or one level too large to
    decode whole (above ``MIXMAG_MAX_PIXELS``)."""
    path = Path(path)
    if path.suffix.lower() not in SLIDE_SUFFIXES:
        return None
    if not slides_available():
        if path.suffix.lower() == ".svs":
            raise ImageError(f"{path}: a whole-slide file; {SLIDES_HINT}")
        return None
    import tiffslide

    handle = None
    try:
        handle = tiffslide.TiffSlide(path)
        dims = [tuple(map(int, d)) for d in handle.level_dimensions]
        downs = [float(d) for d in handle.level_downsamples]
    except Exception:  # noqa: BLE001 - not a slide tiffslide reads: the image reader has its say
        if handle is not None:
            handle.close()
        return None
    w, h = dims[0]
    if len(dims) < 2 and w * h <= MAX_PIXELS:
        handle.close()
        return None
    if w * h > MAX_SLIDE_PIXELS:
        handle.close()
        raise ImageError(f"{path}: a slide of {w}x{h} pixels, above the limit of "
                         f"{MAX_SLIDE_PIXELS:,} (set MIXMAG_MAX_SLIDE_PIXELS if it is genuine)")
    return Slide(path, dims, downs, handle)


@dataclass
class SlidePlan:
    level: int
    scale: float          # the level's regions are resized by this before detection
    estimate: float | None  # the level's median magnification estimate, None if not measured


def sample_tiles(slide: Slide, level: int, tile: int, grid: int = SAMPLE_GRID) -> list[np.ndarray]:
    """``grid`` x ``grid`` tiles of ``tile`` px spread evenly over a level (fewer on a small one)."""
    w, h = slide.dimensions[level]
    tw, th = min(tile, w), min(tile, h)
    xs = sorted({round(v) for v in np.linspace(0, w - tw, grid)})
    ys = sorted({round(v) for v in np.linspace(0, h - th, grid)})
    return [slide.read(level, x, y, tw, th) for y in ys for x in xs]


def choose_level(slide: Slide, estimate_tiles, tile: int, level: int | None = None) -> SlidePlan:
    """Which level to detect at, and how much to resize it. ``estimate_tiles(images)`` gives
    (median magnification estimate or None, cells found) of a list of tiles."""
    levels = range(slide.level_count) if level is None else [level]
    if level is not None and not 0 <= level < len(slide.dimensions):
        # this slide's failure, not the run's: other images and slides go on
        raise ImageError(f"{slide.path}: --slide-level {level}, but it has levels 0 to "
                         f"{len(slide.dimensions) - 1}")
    best: SlidePlan | None = None
    for lv in levels:
        m, n = estimate_tiles(sample_tiles(slide, lv, tile))
        if m is None or n < MIN_SAMPLE_CELLS:
            log.info("%s level %d: %d cell(s) in the sampled tiles", slide.path.name, lv, n)
            continue
        plan = SlidePlan(lv, 1.0, m)
        if best is None or abs(math.log(m)) < abs(math.log(best.estimate)):
            best = plan
    if best is None:
        lv = level or 0
        log.warning("%s: too few cells in the sampled tiles to estimate the magnification; "
                    "level %d as it is", slide.path.name, lv)
        return SlidePlan(lv, 1.0, None)
    if abs(math.log(best.estimate)) > math.log(RESCALE_BEYOND):
        best.scale = float(np.clip(1 / best.estimate, 1 / 8, 3))
    return best


def region_cores(grid) -> list[tuple[float, float, float, float]]:
    """Each region's core (x0, y0, x1, y1, in the level's pixels): the plane cut halfway across
    every overlap between neighbouring regions, so the cores tile the level without overlap and a
    cell's centre lies in exactly one (the last region, flush with the far edge, overlaps its
    neighbour by more than the others do: halfway is taken from the real overlap)."""
    def cuts(starts_sizes):
        pairs = sorted(set(starts_sizes))
        bounds = {pairs[0][0]: -np.inf}
        for (s0, n0), (s1, _) in zip(pairs, pairs[1:]):
            bounds[s1] = (s1 + s0 + n0) / 2
        upper = {s0: bounds[s1] for (s0, _), (s1, _) in zip(pairs, pairs[1:])}
        upper[pairs[-1][0]] = np.inf
        return bounds, upper

    xl, xu = cuts([(t.x0, t.w) for t in grid])
    yl, yu = cuts([(t.y0, t.h) for t in grid])
    return [(xl[t.x0], yl[t.y0], xu[t.x0], yu[t.y0]) for t in grid]


def in_core(boxes: np.ndarray, core) -> np.ndarray:
    """Which boxes (the level's pixels) have their centre in ``core``."""
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return (cx >= core[0]) & (cy >= core[1]) & (cx < core[2]) & (cy < core[3])
