"""A detector + classifier pair on real PBC fields (a dataset written by `mixmag fields`).

    mixmag fields --split datasets/pbc-split.csv --out datasets/fields-val --splits val --scales 1 0.5 1.5
    python benchmarks/real.py --data datasets/fields-val [--split val] \
        [--detector detector-yolo11n-640-8class-ft] [--classifier classifier-lite0-160-crops-m5] \
        [--limit N] [--out benchmarks/results/real-fields-val.json]

Runs the pipeline as `mixmag predict` does (its zoo preset, ONNX Runtime on a CPU) on every field
image of the split and prints, for all images and per magnification, the targets of the real-image
work: recall of non-red cells, macro F1 over the eight classes (predictions on red cells count
against their class), platelet and erythroblast F1, recall of cells cut by the edge, red cells
called one of the eight per image, spurious boxes per image, and the folder's own cell classified
right (mixmag.bench.real says how each is counted). The truth is OI-PBC's labels, good but not
perfect; the dataset's dataset.json gives their agreement with the PBC folder.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixmag.cli import run_script  # noqa: E402
from mixmag.errors import MixmagError  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a dataset written by `mixmag fields`")
    ap.add_argument("--split", default="val")
    ap.add_argument("--detector", default=None, help="zoo name or weights (default: the zoo's)")
    ap.add_argument("--classifier", default=None, help="zoo name, weights or 'none' (default: the zoo's)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--conf", type=float, default=0.25, help="score cut-off, as the report's")
    ap.add_argument("--limit", type=int, default=0, help="first N images only (a quick look)")
    ap.add_argument("--out", default="benchmarks/results/real-fields-val.json")
    args = ap.parse_args(argv)

    import pandas as pd

    from mixmag.bench.real import figures_by_scale
    from mixmag.bench.record import finish_record, start_record
    from mixmag.pipeline import build_pipeline, list_sources

    root = Path(args.data)
    if not (root / "cells.csv").is_file() or not (root / "dataset.json").is_file():
        raise MixmagError(f"--data {root}: not a dataset written by `mixmag fields`")
    truth = pd.read_csv(root / "cells.csv", dtype={"image": str, "class_name": str})
    truth = truth[truth["split"] == args.split]
    if truth.empty:
        raise MixmagError(f"--data {root}: no {args.split} images")
    images = sorted(truth["image"].unique())[: args.limit or None]
    truth = truth[truth["image"].isin(images)].reset_index(drop=True)
    rec = start_record(__file__, argv, data=str(root), split=args.split, images=len(images))
    pipe = build_pipeline(detector=args.detector, classifier=args.classifier, backend=args.backend)
    sources, _ = list_sources(root / "images" / args.split)
    keep = {Path(n).name for n in images}
    sources = [s for s in sources if s.name in keep]
    t0 = time.perf_counter()
    result = pipe.run(sources, progress=False)
    seconds = time.perf_counter() - t0
    pred = result.cells.copy()
    pred["image"] = f"images/{args.split}/" + pred["image"].astype(str)
    figs = figures_by_scale(truth, pred, conf=args.conf)
    rec.update({"models": pipe.meta, "options": vars(pipe.opt), "seconds": round(seconds, 1),
                "images_per_s": round(len(sources) / seconds, 2), "figures": figs})
    print(f"{len(sources)} images ({args.split}), {pipe.meta['detector']} + "
          f"{pipe.meta['classifier']}, {len(sources) / seconds:.2f} images/s")
    keys = ("recall_of_non_red_cells", "macro_f1", "cut_cell_recall", "centre_cell_right",
            "red_cells_called_one_of_the_eight_per_image", "spurious_per_image")
    for scope, f in figs.items():
        line = ", ".join(f"{k} {f[k]:.3f}" for k in keys)
        print(f"  {scope:>5}: {line}; platelet F1 {f['platelet']['f1']:.3f} "
              f"(R {f['platelet']['recall']:.3f}), erythroblast F1 {f['erythroblast']['f1']:.3f}")
    print(f"wrote {finish_record(rec, args.out)}")
    return 0


if __name__ == "__main__":
    run_script(main, "benchmarks/real.py")
