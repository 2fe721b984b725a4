"""Synthetic truth and predictions in the project's formats, for tests and the speed benchmark.

Cells sit on a jittered grid (no two overlap much), at magnifications from a fixed set; the
"detector" finds most of them with small box noise, labels most correctly (erythroblast is
mistaken for lymphocyte more than anything else), adds a few duplicates and spurious boxes.
Nothing here is a model of real performance: it only exercises the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES, NUM_CLASSES

P_COLS = [f"p_{n}" for n in CLASS_NAMES]


def synthetic_truth(n_images: int, cells_per_image: int = 10, size: int = 640, seed: int = 0,
                    magnifications=(0.5, 1.0, 1.5), split: str = "test",
                    start_id: int = 0) -> pd.DataFrame:
    """Per-cell records with the generator's columns (docs/CONTRACTS.md)."""
    rng = np.random.default_rng(seed)
    g = int(np.ceil(np.sqrt(cells_per_image)))
    cell = size / g
    n = n_images * cells_per_image
    img = np.repeat(np.arange(n_images), cells_per_image)
    slot = np.tile(rng.permutation(g * g)[:cells_per_image], n_images)
    mag = rng.choice(np.asarray(magnifications, float), n)
    side = np.minimum(cell * 0.85, 36 * mag * size / 640 * rng.uniform(0.8, 1.2, n))
    cx = (slot % g + 0.5) * cell + rng.uniform(-1, 1, n) * (cell - side) / 2 * 0.9
    cy = (slot // g + 0.5) * cell + rng.uniform(-1, 1, n) * (cell - side) / 2 * 0.9
    cls = rng.integers(0, NUM_CLASSES, n)
    names = np.array([f"images/{split}/{start_id + i:06d}.jpg" for i in range(n_images)], object)
    x1, y1 = np.clip(cx - side / 2, 0, size), np.clip(cy - side / 2, 0, size)
    x2, y2 = np.clip(cx + side / 2, 0, size), np.clip(cy + side / 2, 0, size)
    return pd.DataFrame({
        "image": names[img], "image_id": start_id + img,
        "cell": np.tile(np.arange(cells_per_image), n_images),
        "class_name": np.asarray(CLASS_NAMES, object)[cls], "class_id": cls,
        "source": [f"{CLASS_NAMES[c]}/SYN_{k}.jpg" for k, c in enumerate(cls)], "split": split,
        "magnification": mag, "x1": x1.round(2), "y1": y1.round(2), "x2": x2.round(2),
        "y2": y2.round(2), "mask_area": ((x2 - x1) * (y2 - y1) * 0.78).round(0),
        "width": size, "height": size})


def synthetic_predictions(truth: pd.DataFrame, seed: int = 1, p_detect: float = 0.95,
                          accuracy: float = 0.9, p_spurious: float = 0.05,
                          p_duplicate: float = 0.02, jitter: float = 0.06) -> pd.DataFrame:
    """Predictions in `mixmag predict`'s cells.csv columns."""
    rng = np.random.default_rng(seed)
    n = len(truth)
    found = rng.uniform(size=n) < p_detect
    t = truth[found]
    b = t[["x1", "y1", "x2", "y2"]].to_numpy(float)
    wh = np.repeat(b[:, 2:] - b[:, :2], 2, axis=1)
    b = b + rng.normal(0, jitter, b.shape) * wh
    true = t["class_id"].to_numpy()
    cls = true.copy()
    wrong = rng.uniform(size=len(t)) > accuracy
    cls[wrong] = rng.integers(0, NUM_CLASSES, wrong.sum())
    ery, lym = CLASS_NAMES.index("erythroblast"), CLASS_NAMES.index("lymphocyte")
    cls[(true == ery) & (rng.uniform(size=len(t)) < 0.08)] = lym
    score = np.clip(rng.beta(6, 2, len(t)), 0.01, 0.999)
    parts = [(t["image"].to_numpy(), b, cls, score)]
    dup = rng.uniform(size=len(t)) < p_duplicate
    if dup.any():
        parts.append((t["image"].to_numpy()[dup], b[dup] + rng.normal(0, 2, (dup.sum(), 4)),
                      cls[dup], rng.uniform(0.05, 0.5, dup.sum())))
    imgs = truth.drop_duplicates("image")
    n_sp = rng.binomial(len(truth), p_spurious)
    if n_sp:
        pick = imgs.iloc[rng.integers(0, len(imgs), n_sp)]
        w, h = pick["width"].to_numpy(float), pick["height"].to_numpy(float)
        side = rng.uniform(15, 50, n_sp)
        x1, y1 = rng.uniform(0, w - side), rng.uniform(0, h - side)
        parts.append((pick["image"].to_numpy(), np.column_stack([x1, y1, x1 + side, y1 + side]),
                      rng.integers(0, NUM_CLASSES, n_sp), rng.uniform(0.05, 0.7, n_sp)))
    image = np.concatenate([p[0] for p in parts])
    box = np.concatenate([p[1] for p in parts])
    cls = np.concatenate([p[2] for p in parts])
    score = np.concatenate([p[3] for p in parts])
    size = truth.drop_duplicates("image").set_index("image")[["width", "height"]]
    w, h = size.loc[image, "width"].to_numpy(float), size.loc[image, "height"].to_numpy(float)
    box = np.clip(box, 0, np.column_stack([w, h, w, h]))
    ok = (box[:, 2] - box[:, 0] > 1) & (box[:, 3] - box[:, 1] > 1)
    probs = rng.dirichlet(np.full(NUM_CLASSES, 0.3), len(cls)) * 0.3
    probs[np.arange(len(cls)), cls] += 0.7
    df = pd.DataFrame({"image": image, "x1": box[:, 0].round(2), "y1": box[:, 1].round(2),
                       "x2": box[:, 2].round(2), "y2": box[:, 3].round(2),
                       "class_name": np.asarray(CLASS_NAMES, object)[cls], "class_id": cls,
                       "score": (score * probs[np.arange(len(cls)), cls]).round(4),
                       "det_conf": score.round(4),
                       "class_conf": probs[np.arange(len(cls)), cls].round(4)})
    df[P_COLS] = probs.round(4)
    df["magnification_est"] = np.nan
    return df[ok].reset_index(drop=True)


def write_dataset(root: Path, truth: pd.DataFrame, draw: bool = True,
                  empty_images: int = 0) -> Path:
    """A dataset folder as the generator writes it: cells.csv, cells.json, <split>.json (COCO),
    labels/<split>/*.txt and (if ``draw``) images/<split>/*.jpg. ``empty_images`` extra images
    without cells are added to the first split."""
    import cv2

    root = Path(root)
    imgs = truth.drop_duplicates("image")[["image", "image_id", "split", "width", "height"]]
    if empty_images:
        s0 = imgs["split"].iloc[0]
        nxt = int(imgs["image_id"].max()) + 1
        extra = pd.DataFrame({"image": [f"images/{s0}/{nxt + i:06d}.jpg" for i in range(empty_images)],
                              "image_id": nxt + np.arange(empty_images), "split": s0,
                              "width": int(imgs["width"].iloc[0]), "height": int(imgs["height"].iloc[0])})
        imgs = pd.concat([imgs, extra], ignore_index=True)
    for split, part in imgs.groupby("split"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        cats = [{"id": k + 1, "name": n} for k, n in enumerate(CLASS_NAMES)]
        coco = {"images": [], "annotations": [], "categories": cats}
        for r in part.itertuples():
            cells = truth[truth["image"] == r.image]
            coco["images"].append({"id": int(r.image_id), "file_name": r.image,
                                   "width": int(r.width), "height": int(r.height)})
            lines = []
            for c in cells.itertuples():
                w, h = c.x2 - c.x1, c.y2 - c.y1
                coco["annotations"].append({
                    "id": len(coco["annotations"]) + 1, "image_id": int(r.image_id),
                    "category_id": int(c.class_id) + 1, "bbox": [c.x1, c.y1, w, h],
                    "area": float(c.mask_area), "iscrowd": 0,
                    "magnification": float(c.magnification), "source": c.source})
                lines.append(f"{c.class_id} {(c.x1 + w / 2) / r.width:.6f} "
                             f"{(c.y1 + h / 2) / r.height:.6f} {w / r.width:.6f} {h / r.height:.6f}")
            stem = Path(r.image).stem
            (root / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + "\n")
            if draw:
                img = np.full((int(r.height), int(r.width), 3), (200, 205, 235), np.uint8)
                for c in cells.itertuples():
                    ctr = (int((c.x1 + c.x2) / 2), int((c.y1 + c.y2) / 2))
                    rad = max(2, int(min(c.x2 - c.x1, c.y2 - c.y1) / 2) - 1)
                    cv2.circle(img, ctr, rad, (170, 120, 190), -1, cv2.LINE_AA)
                    cv2.circle(img, ctr, max(1, rad // 2), (120, 50, 110), -1, cv2.LINE_AA)
                cv2.imwrite(str(root / r.image), img)
        (root / f"{split}.json").write_text(json.dumps(coco))
    truth.to_csv(root / "cells.csv", index=False)
    (root / "cells.json").write_text(json.dumps({"cells": truth.to_dict(orient="records")},
                                                default=_np))
    return root


def _np(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    raise TypeError(type(o).__name__)


def coco_results(pred: pd.DataFrame, truth: pd.DataFrame) -> list[dict]:
    """Predictions as a COCO results list (image ids from the truth records)."""
    ids = dict(zip(truth["image"].map(lambda p: Path(p).name), truth["image_id"]))
    return [{"image_id": int(ids[Path(r.image).name]), "category_id": int(r.class_id) + 1,
             "bbox": [float(r.x1), float(r.y1), float(r.x2 - r.x1), float(r.y2 - r.y1)],
             "score": float(r.score)} for r in pred.itertuples()]


def write_yolo(folder: Path, pred: pd.DataFrame, sizes: pd.DataFrame) -> Path:
    """Predictions as ultralytics save_txt + save_conf files (``sizes``: image -> width, height)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for image, part in pred.groupby("image"):
        w, h = sizes.loc[image, "width"], sizes.loc[image, "height"]
        lines = [f"{r.class_id} {(r.x1 + r.x2) / 2 / w:.6f} {(r.y1 + r.y2) / 2 / h:.6f} "
                 f"{(r.x2 - r.x1) / w:.6f} {(r.y2 - r.y1) / h:.6f} {r.score:.5f}"
                 for r in part.itertuples()]
        (folder / f"{Path(image).stem}.txt").write_text("\n".join(lines) + "\n")
    return folder
