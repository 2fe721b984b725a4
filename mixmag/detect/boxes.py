"""The detector's pre- and postprocessing in NumPy and OpenCV: letterbox, NMS, box scaling.

These are ultralytics' inference steps (``LetterBox(auto=False, center=True)``,
``non_max_suppression(agnostic=True)``, ``scale_boxes``) with the same arithmetic, written against
NumPy arrays so that a detector exported to ONNX runs without importing PyTorch: PyTorch alone is
800 MB of resident memory, more than half of predict's budget on a very large image. NMS itself is
OpenCV's (``cv2.dnn.NMSBoxes``). ``tests/test_detector_boxes.py`` checks them box for box against
ultralytics' own functions on a real detector's raw output.
"""

from __future__ import annotations

import cv2
import numpy as np

PAD_VALUE = 114  # ultralytics' letterbox grey: the detector saw it in training mosaics


def letterbox_shape(shape: tuple[int, int], size: int) -> tuple[tuple[int, int], int, int, int, int]:
    """((new_w, new_h), top, bottom, left, right) of an image of ``shape`` (h, w) letterboxed into
    a ``size`` square, centred, as ultralytics rounds them."""
    r = min(size / shape[0], size / shape[1])
    new_w, new_h = max(round(shape[1] * r), 1), max(round(shape[0] * r), 1)
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    return (new_w, new_h), round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1)


def letterbox(image: np.ndarray, size: int) -> np.ndarray:
    """A BGR uint8 image resized (bilinear, aspect kept) and padded with grey to ``size`` × ``size``."""
    (new_w, new_h), top, bottom, left, right = letterbox_shape(image.shape[:2], size)
    if (image.shape[1], image.shape[0]) != (new_w, new_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT,
                              value=(PAD_VALUE,) * 3)


def to_batch(images: list[np.ndarray], size: int) -> np.ndarray:
    """BGR uint8 images → (N, 3, size, size) float32 RGB in 0–1, letterboxed."""
    return as_input([letterbox(im, size) for im in images])


def as_input(canvases: list[np.ndarray]) -> np.ndarray:
    """BGR uint8 canvases of one shape → the network's (N, 3, H, W) float32 RGB in 0–1."""
    # one float copy, scaled in place (an 8-tile batch at 640 is 39 MB a copy)
    x = np.ascontiguousarray(np.stack(canvases)[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32)
    x /= 255.0
    return x


def scale_boxes(size: int, boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """xyxy boxes on the ``size`` letterbox → pixels of the original image (h, w), clipped; in place."""
    (new_w, new_h), *_ = letterbox_shape(shape, size)
    gain_x, gain_y = new_w / shape[1], new_h / shape[0]
    pad_x, pad_y = round((size - new_w) / 2 - 0.1), round((size - new_h) / 2 - 0.1)
    boxes[:, [0, 2]] -= pad_x
    boxes[:, [1, 3]] -= pad_y
    boxes[:, [0, 2]] /= gain_x
    boxes[:, [1, 3]] /= gain_y
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, shape[1])
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, shape[0])
    return boxes


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float,
        classes: np.ndarray | None = None) -> np.ndarray:
    """Indices of the boxes (xyxy) kept by greedy NMS, highest score first; per class when
    ``classes`` is given. A box is dropped when its IoU with a kept box exceeds ``iou``."""
    if not len(boxes):
        return np.zeros(0, np.int64)
    xywh = np.asarray(boxes, np.float64).copy()
    xywh[:, 2:] -= xywh[:, :2]
    s = np.asarray(scores, np.float32)
    # OpenCV keeps only scores above its threshold, which must be >= 0: every detection here
    # has passed a confidence threshold, so none scores 0
    if classes is None:
        keep = cv2.dnn.NMSBoxes(xywh, s, 0.0, float(iou))
    else:
        keep = cv2.dnn.NMSBoxesBatched(xywh, s, np.asarray(classes, np.int32), 0.0, float(iou))
    return np.asarray(keep, np.int64).reshape(-1)


def decode(raw: np.ndarray, conf: float, iou: float, max_det: int = 1000) -> list[np.ndarray]:
    """A YOLO head's raw output (N, 4 + classes, anchors: cx cy w h, class scores) → one (n, 6)
    float32 array per image, x1 y1 x2 y2 conf class on the letterbox, after class-agnostic NMS
    (one box per cell, whatever its class)."""
    raw = np.asarray(raw, np.float32)
    out = []
    for pred in raw.transpose(0, 2, 1):
        cls = pred[:, 4:]
        best = cls.max(1)
        pred, cls, best = pred[best > conf], cls[best > conf], best[best > conf]
        if not len(pred):
            out.append(np.zeros((0, 6), np.float32))
            continue
        xy, half = pred[:, :2], pred[:, 2:4] / 2
        det = np.concatenate([xy - half, xy + half, best[:, None],
                              cls.argmax(1)[:, None].astype(np.float32)], 1)
        out.append(det[nms(det[:, :4], det[:, 4], iou)[:max_det]])
    return out


STRIDE = 32  # YOLO's largest stride: network inputs are multiples of it


def fitted_side(n: int, scale: float, min_side: int = STRIDE, stride: int = STRIDE) -> int:
    """The side of a fitted canvas for an image side of ``n`` px scaled by ``scale``: the next
    multiple of ``stride``, at least ``min_side``."""
    return max(min_side, -(-int(np.ceil(n * scale - 1e-6)) // stride) * stride)


def scaled_canvas(image: np.ndarray, scale: float, min_side: int = STRIDE) -> np.ndarray:
    """``image`` scaled by ``scale`` at the top-left of the smallest canvas whose sides are
    multiples of the stride (and at least ``min_side``), grey elsewhere: what letterboxing it
    padded to a whole tile gives, without most of the grey the network would otherwise run over.
    Bilinear with the half-pixel centres ``cv2.resize`` uses, so the cell pixels match the padded
    tile's."""
    h, w = image.shape[:2]
    H, W = (fitted_side(n, scale, min_side) for n in (h, w))
    shift = 0.5 * scale - 0.5
    M = np.array([[scale, 0, shift], [0, scale, shift]], np.float64)
    return cv2.warpAffine(image, M, (W, H), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(PAD_VALUE,) * 3)


def unscale_boxes(det: np.ndarray, scale: float, shape: tuple[int, int]) -> np.ndarray:
    """Detections on a ``scaled_canvas`` → the image's pixels (h, w): boxes starting beyond the
    image (in the grey) dropped, the rest divided by ``scale`` and clipped."""
    det = det[(det[:, 0] < shape[1] * scale) & (det[:, 1] < shape[0] * scale)]
    det[:, :4] /= scale
    det[:, [0, 2]] = det[:, [0, 2]].clip(0, shape[1])
    det[:, [1, 3]] = det[:, [1, 3]].clip(0, shape[0])
    return det


def parts_inside(det: np.ndarray, share: float, parts: np.ndarray, wholes: np.ndarray,
                 chunk: int = 1024) -> np.ndarray:
    """Which boxes of ``det`` (n, 6: x1 y1 x2 y2 conf class) are parts of a cell already boxed:
    a box of a class in ``parts`` with at least ``share`` of its area inside a larger box of a
    class in ``wholes`` (a lobe of an eosinophil, the nucleus of an erythroblast). ``parts`` and
    ``wholes``: boolean per class id. Returns a boolean mask over the rows. Parts are compared
    with wholes ``chunk`` rows at a time, so a slide's thousands of boxes stay small in memory."""
    from ..synth.place import intersections

    n = len(det)
    out = np.zeros(n, bool)
    if n < 2:
        return out
    cls = det[:, 5].astype(np.int64)
    b = det[:, :4].astype(np.float64)
    area = np.clip((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-9, None)
    pi, wi = np.flatnonzero(parts[cls]), np.flatnonzero(wholes[cls])
    if not len(pi) or not len(wi):
        return out
    W = b[wi]
    for k in range(0, len(pi), chunk):
        i = pi[k:k + chunk]
        inside = intersections(b[i], W) / area[i, None] >= share  # [part, whole]: share inside
        inside &= area[wi][None, :] > area[i, None]
        out[i] = inside.any(1)
    return out
