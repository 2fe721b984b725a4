"""Image preparation and augmentation for single-cell crops (albumentations >= 1.4, tested with 2.0).

Every image first goes through ``prepare`` (square resize to the stored size); the bundle stores
exactly that, so a run from the manifest and a run from a bundle see the same pixels.
Training then rescales the cell inside the fixed canvas over the composite range (0.5x-1.5x of its
native size: a smaller cell gains a plain background border, a larger one is cropped, as a
detector's fixed-size crop of a cell at that magnification would look), flips, rotates by 90 degrees, jitters stain
colour mildly, blurs sometimes, and resizes to the network input.
"""

from __future__ import annotations

import random

import cv2
import numpy as np


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size (PBC crops are within 1 % of square, so no crop or pad is needed)."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def prepare(img_bgr: np.ndarray, size: int) -> np.ndarray:
    """BGR uint8 of any size -> RGB uint8 size x size (the stored form)."""
    return cv2.cvtColor(resize_square(img_bgr, size), cv2.COLOR_BGR2RGB)


def rescale_in_canvas(img: np.ndarray, scale: float) -> np.ndarray:
    """The cell at ``scale`` x its size in the same canvas, centred.

    Shrinking leaves a border, filled with the median colour of the image's outer frame (the smear
    background): reflecting would mirror copies of the cell itself into the crop.
    """
    if scale == 1.0:
        return img
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), 0.0, scale)
    fill = (0, 0, 0)
    if scale < 1.0:
        frame = np.concatenate([img[:4].reshape(-1, 3), img[-4:].reshape(-1, 3),
                                img[:, :4].reshape(-1, 3), img[:, -4:].reshape(-1, 3)])
        fill = tuple(float(v) for v in np.median(frame, axis=0))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    return cv2.warpAffine(img, m, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=fill)


class TrainTransform:
    """Random in-canvas rescale (own code: its fill colour depends on the image), then an
    albumentations pipeline: flips, 90-degree rotations, mild stain jitter, blur, resize.
    Called like an albumentations transform: ``t(image=rgb)["image"]``.
    """

    def __init__(self, imgsz: int, scale_range=(0.5, 1.5), colour: bool = True, scale_p: float = 1.0,
                 smear: bool = False):
        import albumentations as A

        self.scale_range = tuple(scale_range) if scale_range else (1.0, 1.0)
        self.scale_p = scale_p
        self.rng = np.random.default_rng(0)
        ts = [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=1.0)]
        if colour:
            ts += [
                # stain and illumination vary between smears: mild, so granule colours stay true
                A.HueSaturationValue(hue_shift_limit=6, sat_shift_limit=15, val_shift_limit=10, p=0.5),
                A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5),
                A.GaussianBlur(blur_limit=(3, 5), p=0.15),
            ]
        if smear:  # another lab's stain and optics (train-classifier --augment smear)
            from ..synth.shifts import smear_augmentations

            ts += smear_augmentations(bgr=False)
        ts.append(A.Resize(imgsz, imgsz, interpolation=cv2.INTER_AREA))
        self.compose = A.Compose(ts)

    def set_random_seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        if hasattr(self.compose, "set_random_seed"):  # albumentations 2.x
            self.compose.set_random_seed(seed)

    def __call__(self, image: np.ndarray) -> dict:
        lo, hi = self.scale_range
        if (hi > lo or lo != 1.0) and self.rng.random() < self.scale_p:
            image = rescale_in_canvas(image, float(self.rng.uniform(lo, hi)))
        return self.compose(image=image)


def train_transform(imgsz: int, scale_range=(0.5, 1.5), colour: bool = True,
                    scale_p: float = 1.0, smear: bool = False) -> TrainTransform:
    """The training augmentation: RGB uint8 (stored size) -> RGB uint8 imgsz x imgsz."""
    return TrainTransform(imgsz, scale_range, colour, scale_p, smear)


def seed_transform(transform, seed: int) -> None:
    """Seed an albumentations pipeline (2.x keeps its own generator; 1.x uses the global ones)."""
    random.seed(seed)  # albumentations 1.x draws from the global generators
    np.random.seed(seed % (2**32))
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed % (2**32))


class EvalTransform:
    """Deterministic: optional in-canvas rescale (the rescaled-test protocol), then resize."""

    def __init__(self, imgsz: int, scale: float = 1.0):
        self.imgsz, self.scale = imgsz, scale

    def __call__(self, image: np.ndarray) -> dict:
        img = rescale_in_canvas(image, self.scale)
        return {"image": resize_square(img, self.imgsz)}
