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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixmag.cli import run_script  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a dataset written by `mixmag fields`")
    ap.add_argument("--split", default="val")
    ap.add_argument("--detector", default=None, help="zoo name or weights (default: the zoo's)")
    ap.add_argument("--classifier", default=None, help="zoo name, weights or 'none' (default: the zoo's)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--conf", type=float, default=0.25, help="score cut-off, as the report's")
    ap.add_argument("--small-images", choices=("fit", "pad"), default=None,
                    help="predict's handling of images smaller than a tile (default: predict's)")
    ap.add_argument("--fit-min-side", type=int, default=None,
                    help="--small-images fit: the fitted canvas's smallest side (default: predict's)")
    ap.add_argument("--zoom-below", type=float, default=None,
                    help="predict's --zoom-below (default: predict's)")
    ap.add_argument("--drop-inside", type=float, default=None,
                    help="predict's --drop-inside (default: predict's)")
    ap.add_argument("--limit", type=int, default=0, help="N images only, evenly spaced in name order (a quick look)")
    ap.add_argument("--out", default="benchmarks/results/real-fields-val.json")
    args = ap.parse_args(argv)

    from mixmag.bench.real import score_dataset, summary_line
    from mixmag.bench.record import finish_record, start_record

    rec = start_record(__file__, argv, data=str(args.data), split=args.split)
    r = score_dataset(args.data, args.split, args.detector, args.classifier, args.backend,
                      args.conf, args.limit, small_images=args.small_images,
                      fit_min_side=args.fit_min_side, zoom_below=args.zoom_below,
                      drop_inside=args.drop_inside)
    rec.update(r)
    print(f"{r['images']} images ({args.split}), {r['models']['detector']} + "
          f"{r['models']['classifier']}, {r['images_per_s']:.2f} images/s")
    for scope, f in r["figures"].items():
        print(summary_line(scope, f))
    c = r["coco"]
    print(f"COCO mAP@0.5 over the eight + rbc {c['map50_nine']:.3f} (mAP@0.5:0.95 "
          f"{c['map50_95_nine']:.3f}); over the eight {c['map50_eight']:.3f}")
    print(f"wrote {finish_record(rec, args.out)}")
    return 0


if __name__ == "__main__":
    run_script(main, "benchmarks/real.py")
