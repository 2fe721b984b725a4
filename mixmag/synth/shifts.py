"""Named stain and optics shifts, fixed in advance, to measure how a pair fares on another lab's
smears (docs/HISTORY.md, 2026-12-04, lists them as they were stated before any training).

Each shift is one albumentations transform with its range pinned to a single value, so it changes
every image the same way (``apply_shift(img, name)``); ``mixmag fields --shift NAME`` writes a
real-field dataset through it and ``benchmarks/real.py`` scores it. Magnification beyond the
trained range is not a pixel shift: build fields with ``--scales 0.35 2.5`` instead.
"""

from __future__ import annotations

import albumentations as A
import numpy as np

from ..errors import MixmagError


def _transforms() -> dict:
    def one(t):
        return A.Compose([t])

    return {
        "hue+10": one(A.HueSaturationValue(hue_shift_limit=(10, 10), sat_shift_limit=(0, 0),
                                           val_shift_limit=(0, 0), p=1.0)),
        "hue-10": one(A.HueSaturationValue(hue_shift_limit=(-10, -10), sat_shift_limit=(0, 0),
                                           val_shift_limit=(0, 0), p=1.0)),
        "sat0.7": one(A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(0.7, 0.7),
                                    hue=(0, 0), p=1.0)),
        "sat1.3": one(A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(1.3, 1.3),
                                    hue=(0, 0), p=1.0)),
        "gamma0.7": one(A.RandomGamma(gamma_limit=(70, 70), p=1.0)),
        "gamma1.4": one(A.RandomGamma(gamma_limit=(140, 140), p=1.0)),
        "blur1.5": one(A.GaussianBlur(blur_limit=0, sigma_limit=(1.5, 1.5), p=1.0)),
        "jpeg30": one(A.ImageCompression(quality_range=(30, 30), p=1.0)),
        "down0.5": one(A.Downscale(scale_range=(0.5, 0.5), p=1.0)),
    }


SHIFTS = ("hed+0.05", "hed-0.05", "hue+10", "hue-10", "sat0.7", "sat1.3", "gamma0.7", "gamma1.4",
          "blur1.5", "jpeg30", "down0.5")
_CACHE: dict = {}


def hed_shift(rgb: np.ndarray, delta: float) -> np.ndarray:
    """The image's own stain, moved: optical density split into haematoxylin, eosin and DAB
    (Ruifrok & Johnston's vectors, scikit-image's ``rgb2hed``), each scaled by ``1 + delta``, back
    to RGB: a lab whose stain is a little stronger (+) or weaker (-) in every channel, the
    multiplicative half of the usual HED jitter (Tellez et al. 2018)."""
    from skimage.color import hed2rgb, rgb2hed

    hed = rgb2hed(rgb)
    # as a ratio of two reconstructions, so the conversion's own round-trip error cancels and
    # delta 0 gives the image back
    ratio = hed2rgb(hed * (1.0 + delta)) / np.maximum(hed2rgb(hed), 1e-6)
    return np.clip(rgb.astype(np.float64) * ratio + 0.5, 0, 255).astype(np.uint8)


def apply_shift(img: np.ndarray, name: str) -> np.ndarray:
    """``img`` (BGR uint8) through the named shift (albumentations works on RGB)."""
    if name not in SHIFTS:
        raise MixmagError(f"--shift {name}: unknown; one of {', '.join(SHIFTS)}")
    if name.startswith("hed"):
        rgb = hed_shift(np.ascontiguousarray(img[..., ::-1]), float(name[3:]))
        return np.ascontiguousarray(rgb[..., ::-1])
    if not _CACHE:
        _CACHE.update(_transforms())
    rgb = np.ascontiguousarray(img[..., ::-1])
    out = _CACHE[name](image=rgb)["image"]
    return np.ascontiguousarray(out[..., ::-1])


# --------------------------------------------------------------------------- training augmentation
# The random counterpart of the fixed shifts: what training sees so that another lab's stain and
# optics are not new. Ranges cover the shifts above without being fitted to them (stated with the
# shifts, 2026-12-04, before any training that uses them): H&E stain matrices and intensities,
# gamma, brightness/contrast, blur, resolution loss and JPEG, each on a share of the images.

def smear_augmentations(bgr: bool = False) -> list:
    """albumentations transforms (pixel-level only: boxes stay) for ``train-detector --augment
    smear`` (``bgr=True``: ultralytics hands its transforms BGR images, and the H&E stain matrices
    are RGB's) and ``train-classifier --augment smear`` (RGB)."""
    stain = dict(method="random_preset", intensity_scale_range=(0.85, 1.15),
                 intensity_shift_range=(-0.1, 0.1), p=0.2)
    return [
        BGRHEStain(**stain) if bgr else A.HEStain(**stain),
        A.RandomGamma(gamma_limit=(65, 150), p=0.3),
        A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.3),
        A.GaussianBlur(sigma_limit=(0.3, 1.6), p=0.2),
        A.Downscale(scale_range=(0.4, 0.9), p=0.15),
        A.ImageCompression(quality_range=(25, 95), p=0.25),
    ]


class BGRHEStain(A.HEStain):
    """albumentations' HEStain for a BGR image: applied to its RGB view, returned as BGR. Defined
    at module level so that pickling (DataLoader workers) and albumentations' registry of
    transform names (ultralytics keeps its transforms as dicts) find it wherever this module is
    imported."""

    def apply(self, img, *args, **params):
        rgb = np.ascontiguousarray(img[..., ::-1])
        return np.ascontiguousarray(super().apply(rgb, *args, **params)[..., ::-1])
