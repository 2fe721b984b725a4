"""Square crops around detected cells for the classifier, plain or scale-normalised.

- plain (scale-norm off): a square of side ``max(w, h) * (1 + 2 * margin)`` around the box, so
  every cell fills about the same fraction of the crop whatever its size;
- scale-normalised (on): a square of side ``window * m`` around the box centre, ``m`` the cell's
  estimated magnification. Resized to the classifier input, the cell then has the size it has in
  a native PBC image (360 px window), which is what the classifier was trained on.

Parts of the square outside the image are filled with the image's median border colour (slide
background), not reflected, so no mirrored copy of the cell appears.
"""

from __future__ import annotations

import cv2
import numpy as np

NATIVE_WINDOW = 360  # PBC crops are 360×363 around one cell
CROP_STYLES = ("scale", "plain")  # scale-norm on / off, as in `mixmag predict --scale-norm on|off`


def background_colour(img: np.ndarray) -> tuple[int, int, int]:
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    return tuple(int(v) for v in np.median(border, axis=0))


def square_crop(img: np.ndarray, cx: float, cy: float, side: float, out_size: int | None = None,
                fill: tuple[int, int, int] | None = None) -> np.ndarray:
    """The square of ``side`` px centred on (cx, cy), padded where it leaves the image."""
    side = max(2, int(round(side)))
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    h, w = img.shape[:2]
    fill = background_colour(img) if fill is None else fill
    crop = np.empty((side, side, 3), np.uint8)
    crop[:] = fill
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:
        crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[sy0:sy1, sx0:sx1]
    if out_size and out_size != side:
        interp = cv2.INTER_AREA if out_size < side else cv2.INTER_LINEAR
        crop = cv2.resize(crop, (out_size, out_size), interpolation=interp)
    return crop


def plain_crops(img: np.ndarray, boxes: np.ndarray, margin: float = 0.15,
                out_size: int | None = None) -> list[np.ndarray]:
    fill = background_colour(img)
    out = []
    for x1, y1, x2, y2 in np.asarray(boxes, float).reshape(-1, 4):
        side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
        out.append(square_crop(img, (x1 + x2) / 2, (y1 + y2) / 2, side, out_size, fill))
    return out


def scale_norm_crops(img: np.ndarray, boxes: np.ndarray, magnifications: np.ndarray,
                     window: int = NATIVE_WINDOW, out_size: int | None = None) -> list[np.ndarray]:
    """Crops showing each cell at native size in a ``window``-px field (resized to ``out_size``)."""
    fill = background_colour(img)
    out_size = out_size or window
    out = []
    for (x1, y1, x2, y2), m in zip(np.asarray(boxes, float).reshape(-1, 4),
                                   np.asarray(magnifications, float)):
        m = float(np.clip(m, 0.1, 10.0))
        out.append(square_crop(img, (x1 + x2) / 2, (y1 + y2) / 2, window * m, out_size, fill))
    return out
