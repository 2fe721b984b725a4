"""Smear-like backgrounds: a procedural red-cell field coloured with a real source's palette.

Red cells are drawn as overlapping biconcave discs (dark rim, pale centre, summed where they
overlap, as light is absorbed twice) into a grey *density* map; a few large density tiles are made
once per run (the "bank"). Each composite crops and flips a tile at random and colours it through
a 256-entry lookup table running from the source's plasma colour (density 0) to its red-cell colour
(density 1) and a little beyond. So a background is one crop + one ``cv2.LUT``: no seams (nothing
is tiled inside a canvas), plausible colours, and no nucleated cells or platelets by construction:
every colour in the table is checked against the stain detector, and ``stained_fraction`` /
validate re-check generated images.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from ..fileio import write_bytes
from .mask import stain_map

DENSITY_MAX = 1.6          # LUT index 255 = this density (overlaps of two red cells)
BANK_TILES = 6
BANK_VERSION = "bank1"     # change when make_density_tile changes: cached banks are keyed by it


def make_density_tile(size: int, rng: np.random.Generator) -> np.ndarray:
    """One uint8 density tile: index = density / DENSITY_MAX * 255."""
    r_mean = rng.uniform(14, 34)          # red-cell radius: scale varies between tiles
    cover = rng.uniform(0.55, 1.05)       # how crowded the field is
    pad = int(r_mean * 2)
    acc = np.zeros((size + 2 * pad, size + 2 * pad), np.float32)
    n = int(cover * acc.size / (np.pi * r_mean ** 2))
    rs = np.clip(rng.normal(r_mean, 0.08 * r_mean, n), 6, None)
    aspect = rng.uniform(0.8, 1.0, n)
    ang = rng.uniform(0, 180, n)
    cx = rng.uniform(0, acc.shape[1], n)
    cy = rng.uniform(0, acc.shape[0], n)
    centre = rng.uniform(0.35, 0.6, n)    # pale centre strength
    body = rng.normal(1.0, 0.06, n)
    Hs, Ws = acc.shape
    stamps: dict[int, np.ndarray] = {}
    # plain Python scalars and one reused stamp buffer per size: the loop runs ~3,000 times a tile
    for r, a, t, x, y, c, b in zip(rs.tolist(), aspect.tolist(), ang.tolist(), cx.tolist(),
                                   cy.tolist(), centre.tolist(), body.tolist()):
        k = int(r) + 3
        stamp = stamps.get(k)
        if stamp is None:
            stamp = stamps[k] = np.zeros((2 * k + 1, 2 * k + 1), np.float32)
        else:
            stamp.fill(0)
        cv2.ellipse(stamp, (k, k), (int(r), int(r * a)), t, 0, 360, b, -1, cv2.LINE_AA)
        cv2.ellipse(stamp, (k, k), (int(r * 0.45), int(r * a * 0.45)), t, 0, 360,
                    b * (1 - c), -1, cv2.LINE_AA)
        x0, y0 = int(x) - k, int(y) - k
        x1, y1 = max(0, x0), max(0, y0)
        x2, y2 = min(Ws, x0 + 2 * k + 1), min(Hs, y0 + 2 * k + 1)
        if x2 > x1 and y2 > y1:
            acc[y1:y2, x1:x2] += stamp[y1 - y0:y2 - y0, x1 - x0:x2 - x0]
    acc = cv2.GaussianBlur(acc, (0, 0), max(1.0, r_mean / 10))
    acc += cv2.GaussianBlur(rng.normal(0, 0.05, acc.shape).astype(np.float32), (0, 0), 1.0)
    acc = acc[pad:pad + size, pad:pad + size]
    return np.clip(acc / DENSITY_MAX * 255 + 0.5, 0, 255).astype(np.uint8)


def make_bank(canvas: int, seed: int, n: int = BANK_TILES, cache: Path | None = None) -> list[np.ndarray]:
    """The run's density tiles; a function of (canvas, seed) only, so every worker agrees.

    Building costs ~0.1 s a tile; with ``cache`` (a folder) the tiles are kept there as one .npy
    per (BANK_VERSION, canvas, seed, n) and later runs load them instead.
    """
    f = Path(cache) / "bank" / f"{BANK_VERSION}-c{canvas}-s{seed}-n{n}.npy" if cache else None
    if f is not None and f.is_file():
        try:
            arr = np.load(f, allow_pickle=False)
            if arr.dtype == np.uint8 and arr.shape[0] == n:
                return list(arr)
        except (OSError, ValueError):
            pass            # a damaged cache file is rebuilt below
    rng = np.random.default_rng([seed, 0xB6])
    size = int(canvas * 1.25) + 16
    bank = [make_density_tile(size, rng) for _ in range(n)]
    if f is not None:
        buf = io.BytesIO()
        np.save(buf, np.stack(bank))
        write_bytes(f, buf.getvalue())
    return bank


def palette_lut(palette: np.ndarray) -> np.ndarray:
    """(256, 1, 3) uint8 table: plasma at 0, red cell at density 1, darker beyond.

    Colours the stain detector would flag are pulled back towards the plasma colour, so a
    background can never contain a "stained" pixel whatever palette a source gives.
    """
    plasma, rbc = palette.astype(np.float32)
    d = np.arange(256, dtype=np.float32)[:, None] / 255 * DENSITY_MAX
    # interpolate in optical density (Beer-Lambert), so overlaps darken like real smears
    od_p = -np.log(np.clip(plasma, 1, 255) / 255)
    od_r = -np.log(np.clip(rbc, 1, 255) / 255)
    lut = 255 * np.exp(-(od_p + d * (od_r - od_p)))
    lut = np.clip(lut + 0.5, 0, 255).astype(np.uint8)[:, None, :]
    # the stain detector white-balances to the brightest colour, which in a background is the
    # plasma: test every entry against the plasma, with a 20 % margin on both thresholds
    for _ in range(16):
        od = -np.log(np.clip(lut[:, 0].astype(np.float32), 1, 255) / np.maximum(plasma, 1))
        bad = (od[:, 1] > 0.75 * 0.8) & (od[:, 1] - od[:, 0] > 0.45 * 0.8)
        if not bad.any():
            break
        lut[bad, 0] = ((lut[bad, 0].astype(np.float32) + plasma) / 2).astype(np.uint8)
    return lut


def render_background(bank: list[np.ndarray], canvas: int, palette: np.ndarray,
                      rng: np.random.Generator, out: np.ndarray | None = None) -> np.ndarray:
    """A (canvas, canvas, 3) background; written into ``out`` when given (a reused buffer saves
    the page faults of a fresh 3 MB array per image)."""
    tile = bank[int(rng.integers(len(bank)))]
    y = int(rng.integers(0, tile.shape[0] - canvas + 1))
    x = int(rng.integers(0, tile.shape[1] - canvas + 1))
    d = tile[y:y + canvas, x:x + canvas]
    flip = int(rng.integers(4))
    transpose = rng.random() < 0.5
    scratch = _scratch(canvas)
    # cv2.flip / cv2.transpose copy a 1-channel crop in ~0.05 ms; numpy's copy of a transposed
    # view took ~0.9 ms. Same pixels as d[::-1], d[:, ::-1], d.T.
    if flip:
        d = cv2.flip(d, {1: 1, 2: 0, 3: -1}[flip], dst=scratch[3])
    if transpose:
        d = cv2.transpose(d, dst=scratch[4] if d is scratch[3] else scratch[3])
    jitter = rng.normal(0, 4, (2, 3))
    pal = np.clip(palette.astype(np.float32) + jitter, 0, 255).astype(np.uint8)
    lut = palette_lut(pal)
    # three 1-channel lookups + merge beat one 3-channel lookup on a merged image by about half
    planes = [cv2.LUT(d, np.ascontiguousarray(lut[:, 0, i]), dst=scratch[i]) for i in range(3)]
    if out is None:
        return cv2.merge(planes)
    cv2.merge(planes, dst=out)
    return out


_SCRATCH: dict[int, list[np.ndarray]] = {}


def _scratch(canvas: int) -> list[np.ndarray]:
    """Per-process reusable 1-channel buffers (3 colour planes, 2 for flip/transpose)."""
    if canvas not in _SCRATCH:
        _SCRATCH.clear()
        _SCRATCH[canvas] = [np.empty((canvas, canvas), np.uint8) for _ in range(5)]
    return _SCRATCH[canvas]


def stained_blobs_count(bgr: np.ndarray, min_area: int = 12, ignore: np.ndarray | None = None) -> int:
    """Stained (purple) connected blobs of at least ``min_area`` px outside ``ignore``: a nucleated
    cell or platelet in a background would show up here."""
    s = stain_map(bgr)
    if ignore is not None:
        s &= ~ignore
    n, _, stats, _ = cv2.connectedComponentsWithStats(s.astype(np.uint8), connectivity=8)
    return int((stats[1:, cv2.CC_STAT_AREA] >= min_area).sum())
