"""Render every disagreement between detectors and a composite's truth, for a blind review.

A composite's truth box is its pasted mask's box; where the mask took in a neighbour that OI-PBC
did not box (a platelet, part of a second cell), the mask check cannot see it, and a detector
that boxes the cells as they are is charged with a miss and a spurious box. This tool lists, over
the images a mask check keeps, every truth cell some detector missed and every box some detector
drew on no truth cell (IoU 0.5, class ignored, at the detector's --conf), merged over detectors,
and draws each one as a numbered picture in ``OUT/items/``. The pictures name no detector and are
shuffled, so a reviewer given only that folder judges the truth, not a model; ``OUT/key.csv``
says which detectors gave each.

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
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixmag.errors import MixmagError  # noqa: E402
from mixmag.synth.place import box_iou  # noqa: E402

VERDICTS = ("truth_wrong", "truth_right")
GREEN, RED, YELLOW = (0, 190, 0), (0, 0, 255), (0, 220, 255)


def disagreements(root: Path, split: str, detectors: dict[str, tuple[str, object]], labels,
                  conf: float, cache_dir: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per missed truth cell or spurious box, per detector, on the checked images; the
    truth cells of those images). ``detectors``: short name -> (weights file, loaded model)."""
    from mixmag.bench.detection import box_cache, detect_all
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
    for dname, (dpath, det) in detectors.items():
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
            same[i] = True  # a zero-area box is still its own item
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


def _read_csv(path, what: str, needs: set[str]) -> pd.DataFrame:
    """A CSV as text columns (a hash of digits stays a hash), refused in one line when it is
    missing or lacks a column."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise MixmagError(f"{what} {path}: cannot read it ({type(e).__name__})") from None
    if not needs <= set(df.columns):
        raise MixmagError(f"{what} {path}: needs the columns {sorted(needs)}")
    return df


def collect(review: Path, verdicts: list[str], out: Path, overwrite: bool) -> pd.DataFrame:
    """items.csv + key.csv + each reviewer's verdicts (``item,verdict[,note]``) → one row per
    item, ``verdict`` truth_wrong only where every reviewer said so."""
    from mixmag.fileio import atomic_path

    if out.exists() and not overwrite:
        raise MixmagError(f"--out {out}: exists; pass --overwrite to replace it")
    if len({Path(f).resolve() for f in verdicts}) < len(verdicts):
        raise MixmagError("--verdicts: the same file twice is one reviewer, not two")
    items = _read_csv(review / "items.csv", "--collect", {"item", "data", "split", "image", "kind"})
    items = items.merge(_read_csv(review / "key.csv", "--collect", {"item", "detectors"}), on="item")
    for k, f in enumerate(verdicts):
        v = _read_csv(f, "--verdicts", {"item", "verdict"})
        v["item"] = v["item"].str.strip().str.zfill(3)
        v["verdict"] = v["verdict"].str.strip()
        if "note" not in v:
            v["note"] = ""
        bad = sorted(set(v["verdict"]) - set(VERDICTS))
        twice = sorted(v.loc[v["item"].duplicated(), "item"])
        missing = sorted(set(items["item"]) - set(v["item"]))
        if bad or twice or missing:
            raise MixmagError(f"{f}: " + (f"verdict {bad[0]!r} is none of {VERDICTS}" if bad else
                                          f"item {twice[0]} has two verdicts" if twice else
                                          f"no verdict for item {missing[0]}"))
        v = v.rename(columns={"verdict": f"verdict_{k + 1}", "note": f"note_{k + 1}"})
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
    from mixmag.bench.detection import load_model

    # each model loads once for every dataset
    detectors = {short_name(p): (p, load_model("d", p))
                 for p in (resolve_model(d, "detect") for d in args.detector)}
    found, truths = [], {}
    for d in args.data:
        rows, cells = disagreements(Path(d), args.split, detectors, args.labels, args.conf,
                                    args.cache_dir)
        truths[Path(d).name] = (Path(d), cells)
        if len(rows):
            found.append(merge(rows))
    cols = ["data", "image", "kind", "x1", "y1", "x2", "y2", "detectors"]
    items = pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=cols)
    items = items.sample(frac=1, random_state=args.seed).reset_index(drop=True)
    items.insert(0, "item", [f"{i:03d}" for i in range(len(items))])
    items.insert(2, "split", args.split)
    items.insert(3, "cells_sha1", items["data"].map({k: cells_sha1(r) for k, (r, _) in truths.items()}))
    # a fresh folder of pictures: none of an earlier run may sit among them unlisted
    pics = out / "items"
    shutil.rmtree(pics, ignore_errors=True)
    pics.mkdir(parents=True)
    for it in items.itertuples():
        root, cells = truths[it.data]
        img = cv2.imread(str(root / "images" / args.split / it.image))
        pic = draw(it, img, cells[cells["image"] == it.image])
        cv2.imwrite(str(pics / f"{it.item}-{it.kind}.png"), pic)
    with atomic_path(out / "items.csv") as tmp:
        items.drop(columns="detectors").to_csv(tmp, index=False)
    # which detectors gave each item: beside the pictures, not among them (reviewers get items/)
    with atomic_path(out / "key.csv") as tmp:
        items[["item", "detectors"]].to_csv(tmp, index=False)
    print(f"{len(items)} items ({(items['kind'] == 'missed').sum()} missed, "
          f"{(items['kind'] == 'spurious').sum()} spurious) in {out}")
    return 0


if __name__ == "__main__":
    from mixmag.cli import run_script

    run_script(main, "tools/composite_review.py")
