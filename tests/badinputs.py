"""Bad (and merely unusual) inputs that tests draw themselves: image files, PBC folders, manifests,
checkpoints. Shared by tests/test_bad_inputs.py and tests/test_reliability.py."""

from __future__ import annotations

import hashlib
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from drawn import draw_pbc_image, make_drawn_pbc

# images a command must refuse (or skip with a warning), and the words naming why
BAD_IMAGES = {
    "dsstore": (".DS_169665.jpg", r"\.DS_Store|not a readable image|not an image"),
    "empty": ("empty.jpg", r"empty file"),
    "truncated": ("trunc.jpg", r"truncated"),
    "bomb": ("bomb.png", r"50000x50000.*above the limit"),
    "tiny": ("tiny.jpg", r"too small"),
    "multipage": ("pages.tif", r"multipage TIFF \(3 pages\)"),
}
# images that look odd but must simply work
ODD_IMAGES = {
    "alpha": "alpha.png", "16bit": "deep16.png", "gray": "gray.png", "cmyk": "cmyk.jpg",
    "exif": "exif.jpg",
}


def png_header_only(w: int, h: int) -> bytes:
    """A valid PNG signature + IHDR declaring w x h, no pixel data: a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + b"\x00\x00\x00\x00IEND\xaeB`\x82")


def write_image(kind: str, folder: Path, seed: int = 5) -> Path:
    """One file of ``kind`` (a key of BAD_IMAGES or ODD_IMAGES) in ``folder``, a drawn PBC cell."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    img = draw_pbc_image("basophil", np.random.default_rng(seed))
    name = BAD_IMAGES[kind][0] if kind in BAD_IMAGES else ODD_IMAGES[kind]
    p = folder / name
    if kind == "dsstore":
        p.write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 64)
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        jpg = cv2.imencode(".jpg", img)[1].tobytes()
        p.write_bytes(jpg[: len(jpg) // 2])
    elif kind == "bomb":
        p.write_bytes(png_header_only(50_000, 50_000))
    elif kind == "tiny":
        cv2.imwrite(str(p), img[:6, :6])
    elif kind == "multipage":  # three fields in one file: which one would be "the" image?
        pages = [Image.fromarray(np.ascontiguousarray(np.roll(img, 40 * i, 1)[..., ::-1]))
                 for i in range(3)]
        pages[0].save(p, save_all=True, append_images=pages[1:])
    elif kind == "alpha":
        cv2.imwrite(str(p), np.dstack([img, np.full(img.shape[:2], 255, np.uint8)]))
    elif kind == "16bit":
        cv2.imwrite(str(p), img.astype(np.uint16) * 257)
    elif kind == "gray":
        cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    elif kind == "cmyk":
        Image.fromarray(img[:, :, ::-1]).convert("CMYK").save(p, quality=95)
    elif kind == "exif":
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 degrees to display
        Image.fromarray(img[:, :, ::-1]).save(p, exif=exif.tobytes(), quality=95)
    else:
        raise KeyError(kind)
    return p


def small_pbc(root: Path, per_class: int = 6) -> Path:
    return make_drawn_pbc(root, per_class=per_class, seed=3, with_junk=False)


def pbc_variant(base: Path, dest: Path, kind: str) -> Path:
    """A copy of the PBC folder ``base`` changed as ``kind`` says."""
    from mixmag.classes import CLASS_NAMES

    if dest.exists():
        return dest
    if kind == "empty-dataset":
        for c in CLASS_NAMES:
            (dest / c).mkdir(parents=True)
        return dest
    shutil.copytree(base, dest)
    if kind in BAD_IMAGES or kind in ODD_IMAGES:
        write_image(kind, dest / "basophil")
    elif kind == "missing-classes":
        for c in CLASS_NAMES[3:]:
            shutil.rmtree(dest / c)
    elif kind == "unknown-folder":
        (dest / "wolf").mkdir()
        shutil.copy(next((dest / "basophil").iterdir()), dest / "wolf" / "w1.jpg")
    else:
        raise KeyError(kind)
    return dest


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def manifest_variant(manifest: Path, pbc: Path, dest: Path, kind: str) -> Path:
    """A split manifest (+ sidecar naming ``pbc``) broken as ``kind`` says."""
    import json

    m = pd.read_csv(manifest)
    meta = json.loads(manifest.with_suffix(".json").read_text())
    dest.mkdir(parents=True, exist_ok=True)
    root = pbc
    if kind == "missing-files":
        m.loc[0, "path"] = m.loc[0, "path"].replace(".jpg", "-gone.jpg")
    elif kind == "hash-mismatch":
        # the same names in another copy of the dataset whose first training image differs
        root = dest / "other-pbc"
        if not root.exists():
            shutil.copytree(pbc, root)
        f = root / m.loc[0, "path"]
        img = cv2.imread(str(f))
        cv2.imwrite(str(f), 255 - img)
    elif kind in BAD_IMAGES:
        # a hand-made manifest naming an unusable file (with its true hash, so only decoding fails)
        root = dest / f"pbc-{kind}"
        if not root.exists():
            shutil.copytree(pbc, root)
        p = write_image(kind, root / "basophil")
        # every basophil training source is the bad file, so any run that uses the class meets it
        rows = (m["class_name"] == "basophil") & (m["split"] == "train")
        m.loc[rows, "path"] = f"basophil/{p.name}"
        m.loc[rows, "sha256"] = sha256(p)
    else:
        raise KeyError(kind)
    out = dest / f"split-{kind}.csv"
    m.to_csv(out, index=False)
    meta["pbc_root"] = str(root)
    out.with_suffix(".json").write_text(json.dumps(meta))
    return out
