"""How often a box lies inside another cell's box: in the truth, and among a detector's boxes on no
truth cell (the counts behind `predict --drop-inside`, docs/HISTORY.md 2026-12-07).

    python benchmarks/parts_inside.py --truth datasets/mosaics-train \
        --data datasets/mix-val41-m5 datasets/mix-val42-m5 datasets/mix-val43-m5 \
        --detector runs/detect/real-mix-cpu4/weights/best.pt detector-yolo11n-640-8class-ft \
        --cache-dir runs/deteval/boxes --out benchmarks/results/parts-inside.json

Truth (``--truth``, every split present): boxes of the eight other than platelets with at least
``--share`` of their area inside a larger box of the eight (``mixmag.detect.boxes.parts_inside``,
what predict would drop), and platelets likewise (what it keeps). Detectors on ``--data`` (the
val split, every image): their boxes of the eight at ``--conf`` with IoU < 0.5 with every truth
box, and how many of those lie more than ``--inside`` of their area within one truth box, by
(box class, truth class). Boxes are cached as benchmarks/detect.py caches them.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mixmag.bench.record import finish_record, start_record  # noqa: E402


def truth_parts(cells, share: float) -> dict:
    import numpy as np

    from mixmag.classes import CLASS_NAMES
    from mixmag.detect.boxes import parts_inside

    eight = cells[cells["class_name"].isin(CLASS_NAMES)]
    wholes = np.ones(len(CLASS_NAMES), bool)
    plt = np.array([c == "platelet" for c in CLASS_NAMES])
    found = {"parts": Counter(), "platelets": Counter()}
    for _, g in eight.groupby("image"):
        d = np.c_[g[["x1", "y1", "x2", "y2"]].to_numpy(float), np.ones(len(g)),
                  g["class_name"].map(CLASS_NAMES.index).to_numpy()]
        for kind, parts in (("parts", ~plt), ("platelets", plt)):
            found[kind].update(g["class_name"][parts_inside(d, share, parts, wholes)])
    return {"boxes_of_the_eight": int(len(eight)), "share": share,
            **{k: {"n": int(sum(v.values())), "by_class": dict(v)} for k, v in found.items()}}


def spurious_inside(root: Path, split: str, dname: str, dpath: str, conf: float, inside: float,
                    cache_dir: str | None) -> dict:
    import numpy as np
    import pandas as pd

    from mixmag.bench.detection import box_cache, detect_all, load_model
    from mixmag.detect.magnification import find_native_sizes
    from mixmag.pipeline.predict import Pipeline, PredictOptions, list_sources
    from mixmag.synth.place import box_iou, intersections

    sources = list_sources(root / "images" / split)[0]
    det = load_model("d", dpath)
    pipe = Pipeline(det, None, find_native_sizes(dpath, None),
                    PredictOptions(mode="detector", scale_norm=False, conf=conf, batch=16))
    cache = box_cache(cache_dir, dname, dpath, root, split, len(sources), conf) if cache_dir else None
    boxes, _ = detect_all(pipe, sources, cache)
    cells = pd.read_csv(root / "cells.csv")
    by_image = {Path(k).name: g for k, g in cells[cells["split"] == split].groupby("image")}
    pairs, n_spurious = Counter(), 0
    for src, d in zip(sources, boxes):
        g = by_image.get(src.name)
        d = d[d[:, 4] >= conf]
        if g is None or not len(d):
            continue
        t = g[["x1", "y1", "x2", "y2"]].to_numpy(float)
        iou = box_iou(d[:, :4].astype(float), t)
        share = intersections(d[:, :4].astype(float), t) / np.clip(
            (d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]), 1e-9, None)[:, None]
        for j in np.flatnonzero(iou.max(1) < 0.5):
            n_spurious += 1
            k = int(share[j].argmax())
            if share[j, k] > inside:
                pairs[f"{pipe.det_names[int(d[j, 5])]} in {g['class_name'].iloc[k]}"] += 1
    return {"images": len(sources), "boxes_on_no_cell": n_spurious,
            "inside_a_truth_box": int(sum(pairs.values())), "by_pair": dict(pairs.most_common())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--truth", nargs="*", default=[], help="datasets whose truth is counted")
    ap.add_argument("--share", type=float, default=0.6, help="truth: share of a box inside another")
    ap.add_argument("--data", nargs="*", default=[], help="datasets the detectors run on")
    ap.add_argument("--split", default="val")
    ap.add_argument("--detector", nargs="*", default=[], help="zoo names or weights")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--inside", type=float, default=0.8, help="detectors: share inside a truth box")
    ap.add_argument("--cache-dir", help="keep each detector's boxes here (reused when present)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "parts-inside.json"))
    a = ap.parse_args(argv)

    import pandas as pd

    from mixmag.bench.models import resolve_model, short_name

    rec = start_record(__file__, argv)
    rec["truth"] = {}
    for t in a.truth:
        r = truth_parts(pd.read_csv(Path(t) / "cells.csv"), a.share)
        rec["truth"][Path(t).name] = r
        print(f"{Path(t).name}: {r['boxes_of_the_eight']} boxes of the eight; inside a larger one "
              f"(>= {a.share:g}): {r['parts']['n']} not platelets {r['parts']['by_class']}, "
              f"{r['platelets']['n']} platelets")
    rec["detectors"] = {}
    for spec in a.detector:
        path = resolve_model(spec, "detect")
        name = short_name(path)
        for dset in a.data:
            r = spurious_inside(Path(dset), a.split, name, path, a.conf, a.inside, a.cache_dir)
            rec["detectors"].setdefault(name, {})[Path(dset).name] = r
            print(f"{name} on {Path(dset).name}: {r['boxes_on_no_cell']} boxes on no cell, "
                  f"{r['inside_a_truth_box']} of them > {a.inside:g} inside a truth box {r['by_pair']}")
    print(f"wrote {finish_record(rec, a.out)}")
    return 0


if __name__ == "__main__":
    from mixmag.cli import run_script

    run_script(main, "benchmarks/parts_inside.py")
