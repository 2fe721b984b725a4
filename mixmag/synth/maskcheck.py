"""Cut-out masks checked against OI-PBC's box of the same cell.

A composite's truth box is the box of its pasted mask, so a mask that took in a touching red cell,
a platelet or a second white cell gives a box around two things, one labelled. OI-PBC boxes every
cell of the source image by hand: where a mask's box reaches well outside OI-PBC's box of the
centre cell, or holds another white cell or platelet of OI-PBC's, the cut-out is *disputed*.

Inspected on the PBC sources (2026-12-07): with the mask's box more than 20 % outside OI-PBC's box
grown by 4 px, nearly every cut-out had a touching red cell, a platelet or a second cell inside its
mask; between 10 % and 20 % it was a mix of such masks and tight hand-drawn boxes. A mask that is
too *small* (a pale cytoplasm missed) is not disputed: the composite shows only what was pasted,
so its box is still that of what the image holds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.oipbc import centre_box, label_file, read_boxes
from ..errors import MixmagError
from .cutout import cached_mask_box

OUTSIDE_MAX = 0.2   # share of the mask's box outside OI-PBC's grown box before it is disputed
GROW_PX = 4         # hand-drawn boxes sit a pixel or two inside a cell's edge
INSIDE_MIN = 0.5    # another white cell or platelet more than this share inside the mask's box


# a source with no cut-out, no label, or no OI-PBC box on its centre
UNCHECKED = {"checked": False, "outside": float("nan"), "iou": float("nan"), "others_inside": 0,
             "disputed": False}


def _inter(a, b: np.ndarray) -> np.ndarray:
    """Intersection areas of box ``a`` with each box of ``b`` (n, 4)."""
    w = np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0])
    h = np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def check_one(mask_box, boxes: pd.DataFrame, width: int, height: int) -> dict:
    """The check for one source: ``outside`` (share of the mask's box outside OI-PBC's centre box,
    grown), ``others_inside`` (OI-PBC's other white cells / platelets mostly inside the mask's
    box), ``iou`` (of the mask's box and OI-PBC's, not grown), ``disputed``; ``checked`` False
    where OI-PBC has no box on the centre."""
    c = centre_box(boxes, width, height)
    if c is None:
        return dict(UNCHECKED)
    # plain arrays from here: this runs once a source, over every source of a split
    xy = boxes[["x1", "y1", "x2", "y2"]].to_numpy(float)
    i = boxes.index.get_loc(c)
    m = np.asarray(mask_box, float)
    b = xy[i:i + 1]
    area = max((m[2] - m[0]) * (m[3] - m[1]), 1.0)
    outside = 1.0 - float(_inter(m, b + [-GROW_PX, -GROW_PX, GROW_PX, GROW_PX])[0]) / area
    both = float(_inter(m, b)[0])
    iou = both / max(area + (b[0, 2] - b[0, 0]) * (b[0, 3] - b[0, 1]) - both, 1.0)
    keep = boxes["class_name"].to_numpy() != "rbc"
    keep[i] = False
    o = xy[keep]
    o_area = np.maximum((o[:, 2] - o[:, 0]) * (o[:, 3] - o[:, 1]), 1.0)
    inside = int((_inter(m, o) > INSIDE_MIN * o_area).sum())
    return {"checked": True, "outside": round(outside, 4), "iou": round(iou, 4),
            "others_inside": inside, "disputed": bool(outside > OUTSIDE_MAX or inside > 0)}


def check_masks(manifest: pd.DataFrame, labels: Path, cache: Path, mask_version: str) -> pd.DataFrame:
    """One row a manifest row (``path``): checked, outside, iou, others_inside, disputed. Sources
    without an OI-PBC label or a cached cut-out are ``checked`` False and not disputed."""
    rows = []
    for r in manifest.itertuples(index=False):
        res = UNCHECKED
        lf = label_file(labels, r.path)
        got = cached_mask_box(cache, r.sha256, r.class_name, mask_version)
        if got is not None and lf.is_file():
            box, (w, h) = got
            res = check_one(box, read_boxes(lf, w, h), w, h)
        rows.append({"path": r.path, **res})
    return pd.DataFrame(rows, columns=["path", *UNCHECKED])


def disputed_images(dataset: Path, cells: pd.DataFrame, labels: Path,
                    cache: Path | None = None) -> tuple[set[str], dict]:
    """Images of a composite dataset holding at least one disputed cut-out (by ``cells``' image
    and source columns), and a summary; the dataset's manifest, mask version and cut-out cache
    (unless ``cache`` is given) are read from its dataset.json. Refused when none of its cut-outs
    can be checked (no cached cut-out or label): an unchecked set must not pass as a clean one."""
    from ..data.split import load_manifest
    from .cutout import default_cache_dir

    meta_f = Path(dataset) / "dataset.json"
    meta = json.loads(meta_f.read_text()) if meta_f.is_file() else {}
    if meta.get("source_origin") != "manifest" or not meta.get("manifest"):
        raise MixmagError(f"{dataset}: the mask check needs a dataset made from a manifest "
                          "(`mixmag synthesize --split`), whose cut-outs are cached")
    man = load_manifest(meta["manifest"], verify="none")
    man = man[man["path"].isin(set(cells["source"]))]
    cache = Path(cache or meta.get("cutout_cache") or default_cache_dir(dataset))
    res = check_masks(man, labels, cache, meta.get("mask_version", "m5"))
    if len(res) and not res["checked"].any():
        raise MixmagError(f"{dataset}: none of its {len(res)} cut-outs could be checked (no cached "
                          f"cut-out in {cache}, or no OI-PBC label in {labels})")
    bad = set(res.loc[res["disputed"], "path"])
    images = set(cells.loc[cells["source"].isin(bad), "image"])
    summary = {"sources": int(len(res)), "sources_checked": int(res["checked"].sum()),
               "sources_disputed": len(bad), "cells": int(len(cells)),
               "cells_disputed": int(cells["source"].isin(bad).sum()),
               "images_excluded": len(images), "outside_max": OUTSIDE_MAX, "grow_px": GROW_PX}
    return images, summary
