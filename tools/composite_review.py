"""Render every disagreement between detectors and a composite's truth, for a blind review.

A composite's truth box is its pasted mask's box; where the mask took in a neighbour that OI-PBC
did not box (a platelet, part of a second cell), the mask check cannot see it, and a detector
that boxes the cells as they are is charged with a miss and a spurious box. This tool lists, over
the images a mask check keeps, every truth cell some detector missed and every box some detector
drew on no truth cell (IoU 0.5, class ignored, at the detector's --conf), merged over detectors,
and draws each one as a numbered picture. The pictures and ``items.csv`` name no detector and are
shuffled, so a reviewer judges the truth, not a model; ``key.csv`` says which detectors gave each.

    python tools/composite_review.py --data datasets/mix-val41-m5 datasets/mix-val42-m5 \
        --detector detector-yolo11n-640-8class-ft runs/detect/X/weights/best.pt --out runs/review/m5

Each reviewer writes ``item,verdict,note`` (verdict ``truth_wrong`` or ``truth_right``) for every
picture; ``--collect`` joins the items, the key and the reviewers' files into one CSV, read by
``benchmarks/detect.py --reviewed`` (docs/HISTORY.md, 2026-12-07 "composite truth reviewed"):
a picture is a truth error only where every reviewer says so.

    python tools/composite_review.py --collect runs/review/m5 --verdicts A.csv B.csv \
        --out benchmarks/truth/m5-val-review.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixmag.errors import MixmagError  # noqa: E402

VERDICTS = ("truth_wrong", "truth_right")
GREEN, RED, YELLOW = (0, 190, 0), (0, 0, 255), (0, 220, 255)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b`` (x1 y1 x2 y2)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def disagreements(root: Path, split: str, detectors: dict[str, str], labels, conf: float,
                  cache_dir: str | None) -> pd.DataFrame:
    """One row per missed truth cell or spurious box, per detector, on the checked images."""
    from mixmag.bench.detection import box_cache, detect_all, load_model
    from mixmag.data.oipbc import find_labels
    from mixmag.detect.magnification import find_native_sizes
    from mixmag.evaluate import evaluate, load_truth
    from mixmag.pipeline.predict import Pipeline, PredictOptions, list_sources
    from mixmag.synth.maskcheck import disputed_images

    truth = load_truth(root, split=split)
    sources, _ = list_sources(root / "images" / split)
    bad, _ = disputed_images(root, truth.cells, find_labels(labels))
    keep = [i for i, s in enumerate(sources) if s.name not in bad]
    names = [sources[i].name for i in keep]
    cells = truth.cells[truth.cells["image"].isin(set(names))].reset_index(drop=True)
    rows = []
    for dname, dpath in detectors.items():
        det = load_model("d", dpath)
        pipe = Pipeline(det, None, find_native_sizes(dpath, None),
                        PredictOptions(mode="detector", scale_norm=False, conf=conf, batch=16))
        cache = (box_cache(cache_dir, dname, dpath, root, split, len(sources), conf)
                 if cache_dir else None)
        dets = detect_all(pipe, sources, cache)[0]
        pred = pd.concat([pd.DataFrame({"image": sources[i].name, "x1": dets[i][:, 0],
                                        "y1": dets[i][:, 1], "x2": dets[i][:, 2],
                                        "y2": dets[i][:, 3], "class_id": dets[i][:, 5].astype(int),
                                        "score": dets[i][:, 4]}) for i in keep], ignore_index=True)
        res = evaluate(cells, pred, iou=0.5, conf=conf, images=names, bootstrap=0, coco=False)
        out, rt, rp = res.outcomes, res.truth.cells, res.pred
        for r in out[out["p"] < 0].itertuples():   # missed truth cells
            t = rt.iloc[r.t]
            rows.append({"data": root.name, "image": t["image"], "kind": "missed",
                         "x1": t["x1"], "y1": t["y1"], "x2": t["x2"], "y2": t["y2"],
                         "detector": dname})
        for r in out[out["t"] < 0].itertuples():   # spurious boxes
            p = rp.iloc[r.p]
            rows.append({"data": root.name, "image": p["image"], "kind": "spurious",
                         "x1": p["x1"], "y1": p["y1"], "x2": p["x2"], "y2": p["y2"],
                         "detector": dname})
    return pd.DataFrame(rows), cells


def merge(rows: pd.DataFrame) -> pd.DataFrame:
    """One item per truth cell missed (by any detector) and per spurious object (boxes of several
    detectors at IoU >= 0.5 with each other are one item); ``detectors`` lists who gave it."""
    items = []
    for (data, image, kind), g in rows.groupby(["data", "image", "kind"], sort=True):
        boxes = g[["x1", "y1", "x2", "y2"]].to_numpy(float)
        done = np.zeros(len(g), bool)
        for i in range(len(g)):
            if done[i]:
                continue
            same = (box_iou(boxes[i:i + 1], boxes)[0] >= (0.99 if kind == "missed" else 0.5)) & ~done
            done |= same
            items.append({"data": data, "image": image, "kind": kind,
                          **dict(zip(["x1", "y1", "x2", "y2"], boxes[i].round(1))),
                          "detectors": " ".join(sorted(set(g["detector"].to_numpy()[same])))})
    return pd.DataFrame(items)


def draw(item, img: np.ndarray, truth: pd.DataFrame, side: int = 420) -> np.ndarray:
    """The item's neighbourhood: every truth box green; a spurious box red, a missed truth box
    yellow and thicker."""
    import cv2

    out = img.copy()
    for t in truth.itertuples():
        cv2.rectangle(out, (int(t.x1), int(t.y1)), (int(t.x2), int(t.y2)), GREEN, 1)
    colour = RED if item.kind == "spurious" else YELLOW
    cv2.rectangle(out, (int(item.x1), int(item.y1)), (int(item.x2), int(item.y2)), colour, 2)
    w, h = item.x2 - item.x1, item.y2 - item.y1
    half = max(80, 1.2 * max(w, h))
    cx, cy = (item.x1 + item.x2) / 2, (item.y1 + item.y2) / 2
    H, W = img.shape[:2]
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    x1, y1 = int(min(W, cx + half)), int(min(H, cy + half))
    crop = out[y0:y1, x0:x1]
    s = side / max(crop.shape[:2])
    return cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)


def collect(review: Path, verdicts: list[str], out: Path, overwrite: bool) -> pd.DataFrame:
    """items.csv + key.csv + each reviewer's verdicts → one row per item, ``verdict`` truth_wrong
    only where every reviewer said so."""
    from mixmag.fileio import atomic_path

    if out.exists() and not overwrite:
        raise MixmagError(f"--out {out}: exists; pass --overwrite to replace it")
    items = pd.read_csv(review / "items.csv", dtype={"item": str})
    items = items.merge(pd.read_csv(review / "key.csv", dtype={"item": str}), on="item")
    for k, f in enumerate(verdicts):
        v = pd.read_csv(f, dtype={"item": str}).rename(
            columns={"verdict": f"verdict_{k + 1}", "note": f"note_{k + 1}"})
        v["item"] = v["item"].str.zfill(3)
        bad = set(v[f"verdict_{k + 1}"]) - set(VERDICTS)
        missing = set(items["item"]) - set(v["item"])
        if bad or missing:
            raise MixmagError(f"{f}: " + (f"verdict {sorted(bad)[0]!r} is none of {VERDICTS}" if bad
                                          else f"no verdict for item {sorted(missing)[0]}"))
        items = items.merge(v[["item", f"verdict_{k + 1}", f"note_{k + 1}"]], on="item")
    cols = [f"verdict_{k + 1}" for k in range(len(verdicts))]
    items["verdict"] = np.where((items[cols] == "truth_wrong").all(axis=1), "truth_wrong", "truth_right")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        items.to_csv(tmp, index=False)
    return items


def main(argv=None) -> int:
    import cv2

    from mixmag.bench.models import resolve_model, short_name
    from mixmag.bench.review import cells_sha1
    from mixmag.fileio import atomic_path

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--collect", metavar="DIR",
                    help="join DIR's items and key with --verdicts into --out, instead of drawing")
    ap.add_argument("--verdicts", nargs="+", help="reviewers' CSVs (item,verdict,note)")
    ap.add_argument("--data", nargs="+", help="composite datasets made by synthesize")
    ap.add_argument("--split", default="val")
    ap.add_argument("--detector", nargs="+", help="zoo names or .pt files")
    ap.add_argument("--labels", help="OI-PBC folder for the mask check")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--cache-dir", default="runs/deteval/boxes")
    ap.add_argument("--seed", type=int, default=0, help="the order items are shown in")
    ap.add_argument("--out", required=True)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.collect:
        if not args.verdicts:
            raise MixmagError("--collect: give the reviewers' files with --verdicts")
        items = collect(Path(args.collect), args.verdicts, out, args.overwrite)
        wrong = items[items["verdict"] == "truth_wrong"]
        print(f"{len(items)} items, {len(wrong)} truth errors on "
              f"{wrong[['data', 'image']].drop_duplicates().shape[0]} images -> {out}")
        return 0
    if not args.data or not args.detector:
        raise MixmagError("give --data and --detector (or --collect)")
    if out.exists() and not args.overwrite:
        raise MixmagError(f"--out {out}: exists; pass --overwrite to replace it")
    detectors = {short_name(p): p for p in (resolve_model(d, "detect") for d in args.detector)}
    items = []
    truths = {}
    for d in args.data:
        rows, cells = disagreements(Path(d), args.split, detectors, args.labels, args.conf,
                                    args.cache_dir)
        truths[Path(d).name] = (Path(d), cells)
        if len(rows):
            items.append(merge(rows))
    items = pd.concat(items, ignore_index=True) if items else pd.DataFrame()
    items = items.sample(frac=1, random_state=args.seed).reset_index(drop=True)
    items.insert(0, "item", [f"{i:03d}" for i in range(len(items))])
    items.insert(2, "cells_sha1", items["data"].map({k: cells_sha1(r) for k, (r, _) in truths.items()}))
    (out / "items").mkdir(parents=True, exist_ok=True)
    for it in items.itertuples():
        root, cells = truths[it.data]
        img = cv2.imread(str(root / "images" / args.split / it.image))
        pic = draw(it, img, cells[cells["image"] == it.image])
        cv2.imwrite(str(out / "items" / f"{it.item}-{it.kind}.png"), pic)
    with atomic_path(out / "items.csv") as tmp:
        items.drop(columns="detectors").to_csv(tmp, index=False)
    with atomic_path(out / "key.csv") as tmp:
        items[["item", "detectors"]].to_csv(tmp, index=False)
    print(f"{len(items)} items ({(items['kind'] == 'missed').sum()} missed, "
          f"{(items['kind'] == 'spurious').sum()} spurious) in {out}")
    return 0


if __name__ == "__main__":
    from mixmag.cli import run_script

    run_script(main, "tools/composite_review.py")
