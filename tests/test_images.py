"""Reading user images: every layout OpenCV reads, bad files refused with one clear line."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from mixmag.images import ImageError, read_image


def _png_header_only(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + b"\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture()
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)


def test_layouts_become_bgr8(tmp_path, rgb):
    cv2.imwrite(str(tmp_path / "a.png"), np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]))
    cv2.imwrite(str(tmp_path / "g.png"), rgb[:, :, 0])
    cv2.imwrite(str(tmp_path / "w.png"), rgb.astype(np.uint16) * 257)
    for name in ("a.png", "g.png", "w.png"):
        img = read_image(tmp_path / name)
        assert img.dtype == np.uint8 and img.shape == (40, 60, 3), name
    assert np.array_equal(read_image(tmp_path / "a.png"), rgb)
    assert np.array_equal(read_image(tmp_path / "w.png"), rgb)


def test_transparent_pixels_become_white(tmp_path, rgb):
    cv2.imwrite(str(tmp_path / "t.png"), np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)]))
    assert (read_image(tmp_path / "t.png") == 255).all()


def test_bad_files_refused(tmp_path, rgb):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / ".DS_1.jpg").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 100)
    ok, buf = cv2.imencode(".jpg", rgb)
    (tmp_path / "trunc.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])
    (tmp_path / "bomb.png").write_bytes(_png_header_only(50_000, 50_000))
    cases = {"empty.jpg": "empty file", ".DS_1.jpg": "not a readable image",
             "trunc.jpg": "truncated", "bomb.png": "above the limit"}
    for name, msg in cases.items():
        with pytest.raises(ImageError, match=msg) as e:
            read_image(tmp_path / name)
        assert str(tmp_path / name) in str(e.value) and "\n" not in str(e.value)


def test_too_small(tmp_path, rgb):
    cv2.imwrite(str(tmp_path / "s.png"), rgb[:4, :4])
    with pytest.raises(ImageError, match="too small"):
        read_image(tmp_path / "s.png", min_side=8)


def test_cmyk_and_exif_rotation(tmp_path):
    from PIL import Image

    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, :30] = (255, 0, 0)  # left half red
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    img = read_image(tmp_path / "cmyk.jpg")
    assert img.shape == (40, 60, 3)
    assert img[20, 5, 2] > 240 and img[20, 5, :2].max() < 20 and img[20, 50].max() < 20
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(rgb).save(tmp_path / "exif.jpg", exif=exif.tobytes())
    img = read_image(tmp_path / "exif.jpg")
    assert img.shape == (60, 40, 3)  # displayed upright: the red left half is now on top
    assert img[5, 20, 2] > 240 and img[50, 20].max() < 20
