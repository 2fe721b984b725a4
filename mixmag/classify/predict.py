"""``mixmag classify``: class and probabilities for whole single-cell images (PBC-like crops)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MixmagError
from ..images import is_image_name, read_image


def expand_images(items) -> list[Path]:
    """Files as given, folders expanded to the images inside them (sorted, recursive)."""
    out = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and is_image_name(q)
                           and not q.name.startswith("."))
            if not found:
                raise MixmagError(f"{p}: folder holds no images ({', '.join(('.jpg', '.png', '...'))})")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise MixmagError(f"{p}: no such file or folder")
    return out


def classify_images(paths, clf, batch_size: int = 64) -> pd.DataFrame:
    rows, probs, mags, zoomed = [], [], [], []
    for s in range(0, len(paths), batch_size):
        chunk = paths[s:s + batch_size]
        probs.extend(clf.predict([read_image(p) for p in chunk], batch_size))
        if hasattr(clf, "last_magnification"):
            mags.append(clf.last_magnification)
            zoomed.append(clf.last_zoomed)
        rows += [str(p) for p in chunk]
    df = pd.DataFrame({"image": rows})

    pr = np.asarray(probs).reshape(len(rows), len(clf.class_names))
    df["class_id"] = pr.argmax(1)
    df["class_name"] = [clf.class_names[i] for i in df["class_id"]]
    df["class_conf"] = pr.max(1).round(6)
    for j, n in enumerate(clf.class_names):
        df[f"p_{n}"] = pr[:, j].round(6)
    if mags:  # --zoom: the nucleus-based estimate and whether the zoomed pass answered
        df["magnification_est"] = np.round(np.concatenate(mags), 4)
        df["zoomed"] = np.concatenate(zoomed)
    return df
