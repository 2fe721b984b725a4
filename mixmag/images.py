"""Reading images safely: any layout OpenCV reads becomes 8-bit BGR, bombs are refused unread."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np

from .errors import MixmagError

# .svs: a whole slide, read region by region (mixmag.pipeline.slide) where the slides extra is in
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".svs")
# 16k x 16k: far above any smear photo or tile mosaic users have sent, far below a bomb's claim.
MAX_PIXELS = int(os.environ.get("MIXMAG_MAX_PIXELS", 16384 * 16384))


class ImageError(MixmagError):
    """An image file that cannot be used; message names the file and why."""


_PIL_READY = threading.Lock()


def _pil():
    """PIL's Image with every format plugin loaded, once. PIL loads its plugins lazily, the first
    time a file is not one of the common formats; two threads doing that at once (predict reads
    ahead in threads) can see a half-imported plugin, and a broken file then fails with
    ModuleNotFoundError instead of UnidentifiedImageError: a message that depended on timing."""
    from PIL import Image

    with _PIL_READY:
        Image.init()
    return Image


def _pil_open():
    """PIL's own ``Image.open``. Importing ultralytics replaces it process-wide with a wrapper
    that, on a file PIL cannot identify, asks for the pi-heif package (an install attempt, then
    ModuleNotFoundError offline): a broken image's message would depend on whether ultralytics
    happened to be imported. mixmag reads HEIC nowhere, so it keeps to PIL's."""
    import sys

    Image = _pil()
    patches = sys.modules.get("ultralytics.utils.patches")
    if patches is not None and Image.open is getattr(patches, "image_open", None):
        return patches._image_open
    return Image.open


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the file header only, without decoding the pixels."""
    Image = _pil()
    Image.MAX_IMAGE_PIXELS = None  # we apply our own limit below, with a clearer message
    try:
        with _pil_open()(path) as im:
            return im.size
    except Exception as e:  # PIL raises many types for non-images
        raise ImageError(f"{path}: not a readable image ({type(e).__name__})") from None


def to_bgr8(img: np.ndarray) -> np.ndarray:
    """Any decoded array (gray, BGRA, 16-bit, float) as contiguous uint8 BGR."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img.astype(np.float32) * (255.0 if img.max() <= 1.0 else 1.0), 0, 255)
        img = img.astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        # composite on white: slides are bright where nothing absorbs light
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        img = (img[:, :, :3] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
    elif img.shape[2] == 1:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(img)


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS,
               min_side: int = 1) -> np.ndarray:
    """Decode ``path`` to uint8 BGR, EXIF orientation applied.

    Raises ImageError (one line, naming the file) for empty, truncated, non-image, too-small and
    too-large files. The size check reads the header only, so a decompression bomb is never decoded.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror})") from None
    if not data:
        raise ImageError(f"{path}: empty file (0 bytes)")
    w, h = image_size(path)
    if w * h > max_pixels:
        slide = ("; a TIFF this large is read region by region as a whole slide with "
                 "pip install 'mixmag[slides]'") if path.suffix.lower() in (".tif", ".tiff") else ""
        raise ImageError(
            f"{path}: declares {w}x{h} pixels, above the limit of {max_pixels:,} "
            f"(set MIXMAG_MAX_PIXELS to raise it if the image is genuine){slide}")
    if min(w, h) < min_side:
        raise ImageError(f"{path}: {w}x{h} is too small (need at least {min_side} px a side)")
    if path.suffix.lower() in (".jpg", ".jpeg") and _is_truncated_jpeg(data):
        raise ImageError(f"{path}: truncated JPEG (no end-of-image marker)")
    if path.suffix.lower() in (".tif", ".tiff"):
        pages = tiff_pages(path)
        if pages > 1:  # reading the first page alone would drop the rest without a word
            raise ImageError(f"{path}: a multipage TIFF ({pages} pages); mixmag reads one image "
                             "a file: save each page as its own file (e.g. `tiffsplit`); a "
                             "pyramidal slide is read with pip install 'mixmag[slides]'")
    flags = cv2.IMREAD_UNCHANGED if path.suffix.lower() in (".png", ".tif", ".tiff") else cv2.IMREAD_COLOR
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        raise ImageError(f"{path}: could not be decoded (corrupt or unsupported)")
    return to_bgr8(img)


def tiff_pages(path: Path) -> int:
    """Pages in a TIFF, from its directory chain (no pixel is decoded)."""
    try:
        with _pil_open()(path) as im:
            return int(getattr(im, "n_frames", 1))
    except Exception:  # noqa: BLE001 - an unreadable TIFF fails in the decoder with its own word
        return 1


def _is_truncated_jpeg(data: bytes) -> bool:
    # libjpeg fills a truncated scan with grey and only warns; the EOI marker tells us.
    return not data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")


def is_image_name(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES
