"""`mixmag validate DATASET`: check a synthetic dataset's invariants from its files alone.

Checks: files present; split hygiene (every cell of a split-S image comes from a split-S source,
by the records and, where a manifest is given or found, by the manifest; no source in two splits);
boxes inside the canvas and non-empty; COCO = YOLO = CSV (same images, same boxes, same classes);
every image decodes at the recorded size; class balance (equal runs: each class' share within
``balance_tol`` of 1/8); and no unlabelled stained blob (nucleated cell or platelet) outside the
labelled boxes on a sample of images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES, NUM_CLASSES
from ..errors import MixmagError
from .background import stained_blobs_count
from .export import load_cells


@dataclass
class ValidationReport:
    root: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, msg: str) -> None:
        self.problems.append(msg)

    def render(self) -> str:
        lines = [f"dataset {self.root}"] + [f"  {n}" for n in self.notes]
        if self.problems:
            lines.append(f"FAILED: {len(self.problems)} violation(s)")
            lines += [f"  - {p}" for p in self.problems[:50]]
            if len(self.problems) > 50:
                lines.append(f"  ... and {len(self.problems) - 50} more")
        else:
            lines.append("OK: every check passed")
        return "\n".join(lines)


def _yolo_frame(root: Path, images: list[str]) -> pd.DataFrame:
    rows = []
    for im in images:
        lab = root / im.replace("images/", "labels/", 1).rsplit(".", 1)[0]
        lab = Path(str(lab) + ".txt")
        if not lab.is_file():
            rows.append({"image": im, "missing": True})
            continue
        for line in lab.read_text().splitlines():
            if line.strip():
                c, cx, cy, w, h = line.split()
                rows.append({"image": im, "class_id": int(c), "cx": float(cx), "cy": float(cy),
                             "w": float(w), "h": float(h), "missing": False})
    return pd.DataFrame(rows, columns=["image", "class_id", "cx", "cy", "w", "h", "missing"])


def validate_dataset(dataset, manifest=None, pbc=None, balance_tol: float = 0.02,
                     stain_images: int = 50, tol_px: float = 0.51) -> ValidationReport:
    root = Path(dataset)
    if not root.is_dir():
        raise MixmagError(f"{root}: no such dataset folder")
    rep = ValidationReport(root)
    for f in ("dataset.json", "data.yaml", "cells.csv", "cells.json"):
        if not (root / f).is_file():
            rep.fail(f"missing {f}")
    if not (root / "cells.csv").is_file() or not (root / "dataset.json").is_file():
        return rep
    meta = json.loads((root / "dataset.json").read_text())
    cells = load_cells(root)
    # a real-field dataset (`mixmag fields`): nine classes (rbc), real cells that touch and
    # overlap, the classes as the smears hold them, and labels that may miss a cell
    real = meta.get("format") == "mixmag-fields/1"
    names_all = list(meta.get("classes") or CLASS_NAMES) if real else list(CLASS_NAMES)
    splits = list(meta["counts"]["images"].keys())
    rep.notes.append(f"{len(cells)} cells in " + ", ".join(
        f"{s}: {meta['counts']['images'][s]} images" for s in splits))

    # --- split hygiene ---
    wrong_dir = cells[[f"images/{s}/" not in i for s, i in zip(cells["split"], cells["image"])]]
    if len(wrong_dir):
        rep.fail(f"{len(wrong_dir)} cells recorded in a split other than their image's folder "
                 f"(first: {wrong_dir['image'].iloc[0]})")
    multi = cells.groupby("source")["split"].nunique()
    if (multi > 1).any():
        rep.fail(f"{int((multi > 1).sum())} sources are used in more than one split "
                 f"(first: {multi[multi > 1].index[0]})")
    man = _find_manifest(root, manifest, meta)
    if man is not None:
        msplit = dict(zip(man["path"], man["split"]))
        known = cells["source"].map(msplit)
        unknown = cells[known.isna()]
        if len(unknown):
            rep.fail(f"{len(unknown)} cells name sources absent from the manifest "
                     f"(first: {unknown['source'].iloc[0]})")
        bad = cells[known.notna() & (known != cells["split"])]
        if len(bad):
            r = bad.iloc[0]
            rep.fail(f"split hygiene: {len(bad)} cells use a source of another split "
                     f"(first: {r['image']} ({r['split']}) uses {r['source']} "
                     f"({msplit[r['source']]}))")
        rep.notes.append(f"split hygiene checked against manifest ({len(man)} sources)")
    else:
        rep.notes.append("split hygiene checked from records only (no manifest given or found)")

    # --- boxes ---
    c = cells
    outside = c[(c.x1 < 0) | (c.y1 < 0) | (c.x2 > c.width) | (c.y2 > c.height)]
    if len(outside):
        rep.fail(f"{len(outside)} boxes reach outside the canvas (first: {outside['image'].iloc[0]})")
    empty = c[(c.x2 <= c.x1) | (c.y2 <= c.y1) | (c.mask_area <= 0)]
    if len(empty):
        rep.fail(f"{len(empty)} empty boxes or masks (first: {empty['image'].iloc[0]})")
    if (c["class_name"] != c["class_id"].map(lambda i: names_all[i] if 0 <= i < len(names_all) else "?")).any():
        rep.fail("class_name and class_id disagree in cells.csv")
    over = _max_pair_iou(c)
    if real:  # touching and overlapping cells are what a real smear has
        rep.notes.append(f"largest IoU between two boxes of one image: {over:.3f} (real cells; no limit)")
    else:
        lim = float(meta.get("arguments", {}).get("max_iou", 0.0))
        if over > lim + 1e-9:
            rep.fail(f"two boxes in one image overlap with IoU {over:.3f} > --overlap-iou {lim}")
        rep.notes.append(f"largest IoU between two boxes of one image: {over:.3f} (limit {lim})")

    # --- COCO = YOLO = CSV ---
    n_images = 0
    for s in splits:
        f = root / f"{s}.json"
        if not f.is_file():
            rep.fail(f"missing {s}.json")
            continue
        from pycocotools.coco import COCO
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(f))
        imgs = {i["id"]: i for i in coco.dataset["images"]}
        n_images += len(imgs)
        cs = c[c["split"] == s]
        if set(cs["image_id"]) - set(imgs):
            rep.fail(f"{s}.json lacks images that cells.csv has")
        for i in imgs.values():
            if not i["file_name"].startswith(f"images/{s}/"):
                rep.fail(f"{s}.json: image {i['file_name']} is not under images/{s}/")
                break
        anns = pd.DataFrame(coco.dataset["annotations"])
        if len(anns) != len(cs):
            rep.fail(f"{s}.json has {len(anns)} annotations, cells.csv {len(cs)} cells")
        elif len(anns):
            a = anns.sort_values("id")
            b = cs.sort_values(["image_id", "cell"])
            bb = np.array(a["bbox"].tolist(), float)
            ref = np.stack([b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1], 1)
            if (a["image_id"].to_numpy() != b["image_id"].to_numpy()).any() or \
                    (a["category_id"].to_numpy() != b["class_id"].to_numpy() + 1).any() or \
                    np.abs(bb - ref).max() > 1e-6 or (a["area"].to_numpy() != b["mask_area"].to_numpy()).any():
                rep.fail(f"{s}.json annotations differ from cells.csv (boxes, classes or areas)")
        # YOLO
        names = [imgs[k]["file_name"] for k in sorted(imgs)]
        y = _yolo_frame(root, names)
        miss = y[y["missing"] == True]  # noqa: E712
        if len(miss):
            rep.fail(f"{len(miss)} images of {s} have no YOLO label file (first: {miss['image'].iloc[0]})")
        y = y[y["missing"] == False].reset_index(drop=True)  # noqa: E712
        if len(y) != len(cs):
            rep.fail(f"labels/{s}: {len(y)} YOLO boxes, cells.csv {len(cs)}")
        elif len(y):
            b = cs.sort_values(["image", "cell"]).reset_index(drop=True)
            y = y.sort_values("image", kind="stable").reset_index(drop=True)
            W, H = b.width.to_numpy(float), b.height.to_numpy(float)
            d = np.abs(np.stack([(y.cx - y.w / 2) * W - b.x1, (y.cy - y.h / 2) * H - b.y1,
                                 (y.cx + y.w / 2) * W - b.x2, (y.cy + y.h / 2) * H - b.y2], 1))
            if (y["image"].to_numpy() != b["image"].to_numpy()).any() or \
                    (y["class_id"].to_numpy() != b["class_id"].to_numpy()).any() or d.max() > tol_px:
                rep.fail(f"labels/{s} differ from cells.csv (classes or boxes; worst {d.max():.2f} px)")
    rep.notes.append(f"COCO, YOLO and cells.csv compared over {n_images} images")

    # --- images decode ---
    all_imgs = sorted({i["file_name"]: i for s in splits if (root / f"{s}.json").is_file()
                       for i in json.loads((root / f"{s}.json").read_text())["images"]}.items())
    bad = []
    for name, info in all_imgs:
        im = cv2.imread(str(root / name))
        if im is None or im.shape[1] != info["width"] or im.shape[0] != info["height"]:
            bad.append(name)
    if bad:
        rep.fail(f"{len(bad)} images missing, undecodable or of the wrong size (first: {bad[0]})")
    rep.notes.append(f"{len(all_imgs) - len(bad)} of {len(all_imgs)} images decode at the recorded size")

    # --- class balance ---
    if real:
        shares = c["class_name"].value_counts(normalize=True)
        rep.notes.append("class shares (as the smears hold them): " + ", ".join(
            f"{n} {shares.get(n, 0) * 100:.1f} %" for n in names_all))
    shares = c["class_id"].value_counts(normalize=True).reindex(range(NUM_CLASSES), fill_value=0)
    worst = float((shares - 1 / NUM_CLASSES).abs().max()) if len(c) else 0.0
    if real:
        pass
    elif meta.get("arguments", {}).get("balance", "equal") == "equal":
        # a small dataset cannot split evenly: allow one cell per class per split of rounding,
        # plus the cells that did not fit on full canvases
        dropped = int(meta.get("canvases_full", {}).get("cells_dropped", 0))
        tol = max(balance_tol, (len(splits) + dropped) / max(len(c), 1))
        if worst > tol:
            rep.fail(f"class balance: a class' share is {worst * 100:.2f} points from 12.5 % "
                     f"(tolerance {tol * 100:.1f})")
        rep.notes.append(f"class shares (equal balance): {shares.min() * 100:.2f}-"
                         f"{shares.max() * 100:.2f} % (worst {worst * 100:.2f} points off 12.5 %)")
    else:
        rep.notes.append("class shares (natural): " + ", ".join(
            f"{CLASS_NAMES[i]} {v * 100:.1f} %" for i, v in shares.items()))

    # --- no unlabelled cells ---
    names = [n for n, _ in all_imgs if n not in bad]
    if stain_images and len(names) > stain_images:
        idx = np.linspace(0, len(names) - 1, stain_images).round().astype(int)
        names = [names[i] for i in idx]
    blobs = []
    for name in names:
        im = cv2.imread(str(root / name))
        ignore = np.zeros(im.shape[:2], bool)
        for r in c[c["image"] == name].itertuples(index=False):
            ignore[max(0, int(r.y1) - 3):int(r.y2) + 3, max(0, int(r.x1) - 3):int(r.x2) + 3] = True
        k = stained_blobs_count(im, ignore=ignore)
        if k:
            blobs.append((name, k))
    if blobs and real:  # the labels are the datasets' authors': a missed cell is a note on them
        rep.notes.append(f"unlabelled stained blobs (possible cells the labels miss) in "
                         f"{len(blobs)} images (first: {blobs[0][0]}: {blobs[0][1]} blobs)")
    elif blobs:
        rep.fail(f"unlabelled stained blobs (possible unlabelled cells) in {len(blobs)} images "
                 f"(first: {blobs[0][0]}: {blobs[0][1]} blobs)")
    rep.notes.append(f"unlabelled stained blobs >= 12 px outside boxes: "
                     f"{sum(k for _, k in blobs)} in {len(names)} images checked")
    return rep


def _max_pair_iou(c: pd.DataFrame) -> float:
    from .place import box_iou

    worst = 0.0
    for _, g in c.groupby("image"):
        if len(g) < 2:
            continue
        b = g[["x1", "y1", "x2", "y2"]].to_numpy(float)
        iou = box_iou(b, b)
        np.fill_diagonal(iou, 0)
        worst = max(worst, float(iou.max()))
    return worst


def _find_manifest(root: Path, manifest, meta) -> pd.DataFrame | None:
    if manifest:
        p = Path(manifest)
        if not p.is_file():
            raise MixmagError(f"--split {p}: no such manifest")
        return pd.read_csv(p, dtype={"path": str, "split": str})
    hint = meta.get("manifest")
    if hint and Path(hint).is_file():
        return pd.read_csv(hint, dtype={"path": str, "split": str})
    return None
