"""PBC-like images drawn by the tests themselves, so tests run where the real dataset is absent.

Each image is 360x363 like PBC: a pale pink field of red cells (disks with pale centres) and one
nucleated cell at the centre whose size and nucleus shape depend on the class.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mixmag.classes import CLASS_NAMES

# radius of the whole cell and of its nucleus, per class (platelets are small, no nucleus ring)
_SHAPES = {
    "basophil": (34, 24), "eosinophil": (38, 20), "erythroblast": (28, 18), "ig": (42, 26),
    "lymphocyte": (30, 24), "monocyte": (46, 28), "neutrophil": (38, 16), "platelet": (12, 0),
}


def draw_pbc_image(class_name: str, rng: np.random.Generator, size=(363, 360)) -> np.ndarray:
    h, w = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (200, 205, 235)  # BGR pale pink-beige
    for _ in range(int(rng.integers(18, 30))):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        r = int(rng.integers(26, 34))
        cv2.circle(img, c, r, (150, 140, 215), -1, cv2.LINE_AA)
        cv2.circle(img, c, r // 2, (175, 170, 225), -1, cv2.LINE_AA)
    rc, rn = _SHAPES[class_name]
    cx, cy = w // 2 + int(rng.integers(-4, 5)), h // 2 + int(rng.integers(-4, 5))
    rc = int(rc * rng.uniform(0.9, 1.1))
    if class_name == "platelet":
        cv2.circle(img, (cx, cy), rc, (160, 90, 150), -1, cv2.LINE_AA)
    else:
        cv2.circle(img, (cx, cy), rc, (210, 170, 190), -1, cv2.LINE_AA)  # cytoplasm, lilac
        n_lobes = 3 if class_name in ("neutrophil", "eosinophil") else 1
        for k in range(n_lobes):
            ang = 2 * np.pi * k / n_lobes
            off = 0 if n_lobes == 1 else rn * 0.8
            c = (int(cx + off * np.cos(ang)), int(cy + off * np.sin(ang)))
            cv2.circle(img, c, int(rn * (0.7 if n_lobes > 1 else 1.0)), (120, 40, 90), -1, cv2.LINE_AA)
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def make_drawn_pbc(root: Path, per_class: int = 12, seed: int = 0,
                   with_junk: bool = True) -> Path:
    """A PBC-layout folder of drawn images (plus the .DS_Store trap, like the real archive)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    prefix = {"basophil": "BA", "eosinophil": "EO", "erythroblast": "ERB", "ig": "IG",
              "lymphocyte": "LY", "monocyte": "MO", "neutrophil": "SNE", "platelet": "PLATELET"}
    for cname in CLASS_NAMES:
        d = root / cname
        d.mkdir(exist_ok=True)
        for i in range(per_class):
            img = draw_pbc_image(cname, rng)
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
            (d / f"{prefix[cname]}_{100000 + i}.jpg").write_bytes(buf.tobytes())
    if with_junk:
        (root / "neutrophil" / ".DS_169665.jpg").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 64)
    return root
